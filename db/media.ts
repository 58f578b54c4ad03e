// Media rows: who owns which file, and what uses it. Posts, profiles and interview submissions
// reference a file through foreign keys that do not cascade, so Postgres itself refuses to delete
// a file that is in use; a removal is attempted, and a refusal means "still used".
import { and, asc, eq, gt, inArray, lt, sql } from "drizzle-orm";
import { type Database, inTransaction, isForeignKeyViolation, rowsOf } from "./client.ts";
import {
  interviewMedia,
  media,
  type MediaRow,
  messageMedia,
  postMedia,
  posts,
  users,
} from "./schema.ts";

/**
 * Where a file is served: a path on this server's own origin (GET /media/:id). Every view (an
 * upload, a profile photo, a post's or a submission's files) gives this one form.
 */
export function mediaPath(id: string): string {
  return `/media/${encodeURIComponent(id)}`;
}

/**
 * Where a private file (a message attachment) is asked for: a path that needs the caller's
 * session, checks that they may see it, and redirects to a short-lived signed URL.
 */
export function attachmentPath(id: string): string {
  return `/api/attachments/${encodeURIComponent(id)}/content`;
}

/** Files as views list them, in order: each id with its path. */
export function mediaRefs(ids: readonly string[]): { id: string; url: string }[] {
  return ids.map((id) => ({ id, url: mediaPath(id) }));
}

/** Records an upload; null when the owner's account is gone. */
export async function insertMedia(db: Database, row: MediaRow): Promise<MediaRow | null> {
  try {
    const [inserted] = await db.insert(media).values(row).returning();
    return inserted;
  } catch (error) {
    if (isForeignKeyViolation(error)) return null;
    throw error;
  }
}

/**
 * Records a private upload if the owner's uploads since `budget.since` leave room for it, in one
 * transaction that locks the owner's row, so two uploads at once cannot both take the last room.
 * `over` (with what was spent) when they do not; null when the owner's account is gone.
 */
export async function insertPrivateMedia(
  db: Database,
  row: MediaRow,
  budget: { bytes: number; since: Date },
): Promise<{ inserted: MediaRow } | { over: { bytes: number; oldest: Date | null } } | null> {
  return await inTransaction(db, async (tx) => {
    const owner = await tx.select({ id: users.id }).from(users).where(eq(users.id, row.ownerId))
      .for("update");
    if (owner.length === 0) return null;
    const spent = await privateBytesSince(tx, row.ownerId, budget.since);
    if (spent.bytes + row.size > budget.bytes) return { over: spent };
    const [inserted] = await tx.insert(media).values(row).returning();
    return { inserted };
  });
}

export async function findMedia(db: Database, id: string): Promise<MediaRow | null> {
  const [row] = await db.select().from(media).where(eq(media.id, id)).limit(1);
  return row ?? null;
}

export async function findMediaMany(db: Database, ids: string[]): Promise<MediaRow[]> {
  if (ids.length === 0) return [];
  return await db.select().from(media).where(inArray(media.id, ids));
}

const unused = sql`not exists (select 1 from ${postMedia} where ${postMedia.mediaId} = ${media.id})
  and not exists (select 1 from ${users} where ${users.avatarMediaId} = ${media.id})
  and not exists (select 1 from ${users} where ${users.videoMediaId} = ${media.id})
  and not exists (select 1 from ${interviewMedia} where ${interviewMedia.mediaId} = ${media.id})
  and not exists (select 1 from ${messageMedia} where ${messageMedia.mediaId} = ${media.id})`;

/**
 * Deletes the row of a file nothing uses. "used" when something does (also when a use was
 * committed while this ran: the foreign keys refuse the delete); "gone" when there is no row.
 */
export async function deleteUnusedMedia(
  db: Database,
  id: string,
): Promise<"deleted" | "used" | "gone"> {
  try {
    const deleted = await db.delete(media).where(and(eq(media.id, id), unused))
      .returning({ id: media.id });
    if (deleted.length > 0) return "deleted";
  } catch (error) {
    if (isForeignKeyViolation(error)) return "used";
    throw error;
  }
  return await findMedia(db, id) ? "used" : "gone";
}

/**
 * The owner's delete: the file leaves every post and profile of theirs that shows it, and its row
 * goes, in one transaction. A file submitted with an interview is evidence the interviewer
 * relies on, and one sent in a message is the message's, so they stay ("evidence"). Returns the
 * posts that changed (their feeds are stale).
 */
export async function deleteMediaEverywhere(
  db: Database,
  id: string,
): Promise<{ postIds: string[] } | "evidence" | "gone"> {
  return await inTransaction(db, async (tx) => {
    // Locks the row: a concurrent attach waits, then fails its foreign-key check.
    const locked = rowsOf<{ id: string }>(
      await tx.execute(sql`select id from ${media} where ${media.id} = ${id} for update`),
    );
    if (locked.length === 0) return "gone";
    const [evidence] = await tx.select({ id: interviewMedia.interviewId }).from(interviewMedia)
      .where(eq(interviewMedia.mediaId, id)).limit(1);
    const [sent] = await tx.select({ id: messageMedia.messageId }).from(messageMedia)
      .where(eq(messageMedia.mediaId, id)).limit(1);
    if (evidence || sent) return "evidence";
    const changed = await tx.update(posts)
      .set({ mediaIds: sql`array_remove(${posts.mediaIds}, ${id})` })
      .where(sql`${posts.id} in (select ${postMedia.postId} from ${postMedia}
        where ${postMedia.mediaId} = ${id})`)
      .returning({ id: posts.id });
    await tx.delete(postMedia).where(eq(postMedia.mediaId, id));
    await tx.update(users).set({ avatarMediaId: null }).where(eq(users.avatarMediaId, id));
    await tx.update(users).set({ videoMediaId: null }).where(eq(users.videoMediaId, id));
    await tx.delete(media).where(eq(media.id, id));
    return { postIds: changed.map((post) => post.id) };
  });
}

/** Files older than `before` that nothing uses, oldest first. */
export async function listUnusedMedia(db: Database, before: Date, limit: number) {
  return await db.select({ id: media.id, ownerId: media.ownerId }).from(media)
    .where(and(lt(media.createdAt, before), unused))
    .orderBy(asc(media.createdAt), asc(media.id))
    .limit(limit);
}

/**
 * The private bytes `ownerId` uploaded since `since`, and when the oldest of those uploads was
 * made (when the window starts to free up).
 */
async function privateBytesSince(db: Database, ownerId: string, since: Date) {
  const [row] = await db.select({
    bytes: sql<number>`coalesce(sum(${media.size}), 0)::bigint`.mapWith(Number),
    oldest: sql<Date | null>`min(${media.createdAt})`.mapWith((value) =>
      value === null ? null : new Date(value)
    ),
  }).from(media)
    .where(and(eq(media.ownerId, ownerId), eq(media.private, true), gt(media.createdAt, since)));
  return row;
}
