// The social graph in Postgres: follows, accepted connections, blocks and connection history.
// Reports of members (and optionally one of their posts) for administrators to review.
import { and, desc, eq, type InferSelectModel, isNull, or, sql } from "drizzle-orm";
import { afterPosition } from "./keyset.ts";
import { decodeCursor, keysetPage, timeCursor } from "../cursor.ts";
import type { ConnectionTransition as Transition } from "./records.ts";
import { type Database, inTransaction, isForeignKeyViolation, rowsOf } from "./client.ts";
import {
  blocks,
  connectionEvents,
  connectionRequests,
  connections,
  type ConnectionStatus,
  follows,
  reports,
  users,
} from "./schema.ts";
import { publicProfile } from "./users.ts";
import { visibleTo } from "./visibility.ts";
import { alias } from "drizzle-orm/pg-core";

/** Follows (idempotent); true when this call created the follow. */
export async function insertFollow(
  db: Database,
  followerId: string,
  followeeId: string,
  at: Date,
): Promise<boolean> {
  try {
    const rows = await db.insert(follows).values({ followerId, followeeId, createdAt: at })
      .onConflictDoNothing().returning({ followeeId: follows.followeeId });
    return rows.length > 0;
  } catch (error) {
    if (isForeignKeyViolation(error)) return false; // either account is gone
    throw error;
  }
}

/** Unfollows (idempotent); true when a follow was removed. */
export async function deleteFollow(db: Database, followerId: string, followeeId: string) {
  const rows = await db.delete(follows)
    .where(and(eq(follows.followerId, followerId), eq(follows.followeeId, followeeId)))
    .returning({ followeeId: follows.followeeId });
  return rows.length > 0;
}

const followCursor = timeCursor;

/**
 * Followers (or followees) of `userId`, most recent follow first, without anyone blocked with
 * the viewer. Keyset on (followed at, user id).
 */
export async function listFollows(
  db: Database,
  side: "followers" | "following",
  userId: string,
  viewerId: string,
  page: { cursor?: string; limit: number },
) {
  const [self, other] = side === "followers"
    ? [follows.followeeId, follows.followerId]
    : [follows.followerId, follows.followeeId];
  const after = page.cursor ? decodeCursor(page.cursor, followCursor) : null;
  const rows = await db.select({ user: users, since: follows.createdAt }).from(follows)
    .innerJoin(users, eq(users.id, other))
    .where(and(
      eq(self, userId),
      visibleTo(viewerId, other),
      afterPosition(follows.createdAt, other, after, "asc"),
    ))
    .orderBy(desc(follows.createdAt), other)
    .limit(page.limit + 1);
  return keysetPage(
    rows,
    page.limit,
    (row) => ({ ...publicProfile(row.user), followedAt: row.since.toISOString() }),
    (row) => [row.since.toISOString(), row.user.id],
  );
}

export async function countFollows(db: Database, userId: string) {
  const [row] = await db.select({
    followers: sql<
      number
    >`(select count(*)::int from ${follows} where ${follows.followeeId} = ${userId})`,
    following: sql<
      number
    >`(select count(*)::int from ${follows} where ${follows.followerId} = ${userId})`,
    connections: sql<
      number
    >`(select count(*)::int from ${connections} where ${connections.userId} = ${userId})`,
  }).from(sql`(select 1) as one`);
  return row;
}

export async function isFollowing(db: Database, followerId: string, followeeId: string) {
  const rows = await db.select({ id: follows.followeeId }).from(follows)
    .where(and(eq(follows.followerId, followerId), eq(follows.followeeId, followeeId))).limit(1);
  return rows.length > 0;
}

/**
 * Writes a decided connection transition: its event, the request row (never overwritten by an
 * older version), and, when this is the newest version, the connections it makes or ends.
 * Idempotent: applying it again changes nothing.
 */
export async function recordConnectionTransition(db: Database, transition: Transition) {
  const { request } = transition;
  const at = new Date(request.updatedAt);
  try {
    await inTransaction(db, async (tx) => {
      await tx.insert(connectionEvents).values({
        requestId: request.id,
        version: request.version,
        actorId: transition.actorId,
        fromStatus: transition.from,
        toStatus: request.status,
        at,
      }).onConflictDoNothing();
      const newest = await tx.insert(connectionRequests).values({
        ...request,
        createdAt: new Date(request.createdAt),
        updatedAt: at,
      }).onConflictDoUpdate({
        target: connectionRequests.id,
        set: {
          status: sql`excluded.status`,
          version: sql`excluded.version`,
          updatedAt: sql`excluded.updated_at`,
        },
        setWhere: sql`${connectionRequests.version} < excluded.version`,
      }).returning({ id: connectionRequests.id });
      if (newest.length === 0) return;
      const pair = [
        { userId: request.fromUserId, otherId: request.toUserId },
        { userId: request.toUserId, otherId: request.fromUserId },
      ];
      if (request.status === "accepted") {
        await tx.insert(connections)
          .values(pair.map((row) => ({ ...row, requestId: request.id, since: at })))
          .onConflictDoNothing();
      } else {
        await tx.delete(connections).where(eq(connections.requestId, request.id));
      }
    });
  } catch (error) {
    // An account deleted since: there is nothing left to record about it.
    if (!isForeignKeyViolation(error)) throw error;
  }
}

/**
 * Makes Postgres agree with KV about one block: present (with the follows between the two
 * removed) or lifted. Order-independent, so a late sweep cannot undo a newer decision.
 */
export async function syncBlock(
  db: Database,
  blockerId: string,
  blockedId: string,
  placedAt: Date | null,
) {
  const row = and(eq(blocks.blockerId, blockerId), eq(blocks.blockedId, blockedId));
  if (!placedAt) {
    await db.delete(blocks).where(row);
    return;
  }
  try {
    await inTransaction(db, async (tx) => {
      await tx.insert(blocks).values({ blockerId, blockedId, createdAt: placedAt })
        .onConflictDoNothing();
      await tx.delete(follows).where(or(
        and(eq(follows.followerId, blockerId), eq(follows.followeeId, blockedId)),
        and(eq(follows.followerId, blockedId), eq(follows.followeeId, blockerId)),
      ));
    });
  } catch (error) {
    if (!isForeignKeyViolation(error)) throw error;
  }
}

/** Everyone `blockerId` has blocked, most recent first. */
export async function listBlocks(
  db: Database,
  blockerId: string,
  page: { cursor?: string; limit: number },
) {
  const after = page.cursor ? decodeCursor(page.cursor, followCursor) : null;
  const rows = await db.select({ user: users, since: blocks.createdAt }).from(blocks)
    .innerJoin(users, eq(users.id, blocks.blockedId))
    .where(and(
      eq(blocks.blockerId, blockerId),
      afterPosition(blocks.createdAt, blocks.blockedId, after, "asc"),
    ))
    .orderBy(desc(blocks.createdAt), blocks.blockedId)
    .limit(page.limit + 1);
  return keysetPage(
    rows,
    page.limit,
    (row) => ({
      user: { id: row.user.id, name: row.user.name },
      blockedAt: row.since.toISOString(),
    }),
    (row) => [row.since.toISOString(), row.user.id],
  );
}

type RequestRow = InferSelectModel<typeof connectionRequests>;

export function requestView(row: RequestRow | Transition["request"]) {
  return {
    id: row.id,
    fromUserId: row.fromUserId,
    toUserId: row.toUserId,
    message: row.message,
    status: row.status,
    version: row.version,
    createdAt: new Date(row.createdAt).toISOString(),
    updatedAt: new Date(row.updatedAt).toISOString(),
  };
}

const requestCursor = timeCursor;

/** The caller's requests, sent and received, newest first (optionally one status only). */
export async function listConnectionRequests(
  db: Database,
  userId: string,
  options: {
    status?: ConnectionStatus;
    direction?: "sent" | "received";
    cursor?: string;
    limit: number;
  },
) {
  const after = options.cursor ? decodeCursor(options.cursor, requestCursor) : null;
  const mine = options.direction === "sent"
    ? eq(connectionRequests.fromUserId, userId)
    : options.direction === "received"
    ? eq(connectionRequests.toUserId, userId)
    : or(eq(connectionRequests.fromUserId, userId), eq(connectionRequests.toUserId, userId));
  const rows = await db.select().from(connectionRequests)
    .where(and(
      mine,
      options.status ? eq(connectionRequests.status, options.status) : undefined,
      afterPosition(connectionRequests.createdAt, connectionRequests.id, after),
    ))
    .orderBy(desc(connectionRequests.createdAt), desc(connectionRequests.id))
    .limit(options.limit + 1);
  return keysetPage(
    rows,
    options.limit,
    requestView,
    (row) => [row.createdAt.toISOString(), row.id],
  );
}

/** Who sees `authorId`'s posts in their feed: followers, connections and the author. */
export async function feedAudience(db: Database, authorId: string): Promise<string[]> {
  const rows = await db.execute<{ id: string }>(sql`
    select ${follows.followerId} as id from ${follows} where ${follows.followeeId} = ${authorId}
    union
    select ${connections.otherId} from ${connections} where ${connections.userId} = ${authorId}`);
  return [authorId, ...rowsOf<{ id: string }>(rows).map((row) => row.id)];
}

/** A page of every connection (each pair once per direction), for filling KV's connection index. */
export async function connectionPairs(
  db: Database,
  after: [string, string] | null,
  limit: number,
): Promise<[string, string][]> {
  const rows = await db.select({ userId: connections.userId, otherId: connections.otherId })
    .from(connections)
    .where(
      after
        ? sql`(${connections.userId}, ${connections.otherId}) > (${after[0]}, ${after[1]})`
        : undefined,
    )
    .orderBy(connections.userId, connections.otherId)
    .limit(limit);
  return rows.map((row) => [row.userId, row.otherId]);
}

export async function insertReport(
  db: Database,
  report: {
    id: string;
    reporterId: string;
    userId: string;
    postId: string | null;
    reason: string;
    at: Date;
  },
) {
  const [row] = await db.insert(reports).values({ ...report, createdAt: report.at }).returning();
  return reportView(row);
}

function reportView(row: typeof reports.$inferSelect) {
  return {
    id: row.id,
    reporterId: row.reporterId,
    userId: row.userId,
    postId: row.postId,
    reason: row.reason,
    createdAt: row.createdAt.toISOString(),
    resolution: row.resolvedAt
      ? { at: row.resolvedAt.toISOString(), by: row.resolvedBy, note: row.resolutionNote }
      : null,
  };
}

/** Resolves a report with a note (once: a resolved report keeps its first resolution). */
export async function resolveReport(
  db: Database,
  reportId: string,
  resolution: { by: string; note: string; at: Date },
) {
  const [row] = await db.update(reports).set({
    resolvedAt: resolution.at,
    resolvedBy: resolution.by,
    resolutionNote: resolution.note,
  }).where(and(eq(reports.id, reportId), isNull(reports.resolvedAt))).returning();
  if (row) return { report: reportView(row), changed: true };
  const [existing] = await db.select().from(reports).where(eq(reports.id, reportId));
  return existing ? { report: reportView(existing), changed: false } : null;
}

const reporter = alias(users, "reporter");
const cursorShape = timeCursor;

/** Every report, newest first, with the names of both members. */
export async function listReports(db: Database, page: { cursor?: string; limit: number }) {
  const after = page.cursor ? decodeCursor(page.cursor, cursorShape) : null;
  const rows = await db.select({
    report: reports,
    reporterName: reporter.name,
    userName: users.name,
  })
    .from(reports)
    .innerJoin(users, eq(users.id, reports.userId))
    .innerJoin(reporter, eq(reporter.id, reports.reporterId))
    .where(
      afterPosition(reports.createdAt, reports.id, after),
    )
    .orderBy(desc(reports.createdAt), desc(reports.id))
    .limit(page.limit + 1);
  return keysetPage(
    rows,
    page.limit,
    (row) => ({
      ...reportView(row.report),
      reporter: { id: row.report.reporterId, name: row.reporterName },
      user: { id: row.report.userId, name: row.userName },
    }),
    ({ report }) => [report.createdAt.toISOString(), report.id],
  );
}
