// Matches in Postgres: the history of every call KV decided, and each member's list of them.
import { and, desc, eq, isNotNull, or } from "drizzle-orm";
import { decodeCursor, keysetPage, timeCursor } from "../cursor.ts";
import { type Match, outcomeOf } from "./records.ts";
import type { Database } from "./client.ts";
import { isForeignKeyViolation, newestVersions, upsertVersions } from "./client.ts";
import { afterPosition } from "./keyset.ts";
import { matches, users } from "./schema.ts";

const date = (ms: number | null) => ms === null ? null : new Date(ms);

/**
 * Writes matches as KV decided them, in one statement (never over a newer version). Idempotent:
 * applying them again, or after a newer version, changes nothing.
 */
export async function recordMatches(db: Database, list: Match[]) {
  const rows = newestVersions(list).map(matchRow);
  try {
    await upsertVersions(db, matches, rows, [
      "version",
      "endsAt",
      "endedAt",
      "durationSeconds",
      "endReason",
      "endedBy",
      "outcome",
      "connectedAt",
      "videoApprovedAt",
    ]);
  } catch (error) {
    // An account deleted since: there is nothing left to record about its match. (A batch of
    // several is retried one by one, so the others are still written.)
    if (!isForeignKeyViolation(error) || rows.length !== 1) throw error;
  }
}

function matchRow(match: Match) {
  return {
    id: match.id,
    intent: match.intent,
    offererId: match.offerer.id,
    answererId: match.answerer.id,
    version: match.version,
    startedAt: new Date(match.startedAt),
    endsAt: new Date(match.endsAt),
    endedAt: date(match.endedAt),
    durationSeconds: match.endedAt === null
      ? null
      : Math.round((match.endedAt - match.startedAt) / 1000),
    endReason: match.endReason,
    endedBy: match.endedBy,
    outcome: outcomeOf(match),
    connectedAt: date(match.connectedAt),
    videoApprovedAt: date(match.videoApprovedAt),
  };
}

const interactionCursor = timeCursor;

/**
 * The caller's finished matches, newest first, with the peer, duration and outcome. A block is
 * shown as `blocked` only to the member who blocked; the other sees the call as `ended`.
 */
export async function listInteractions(
  db: Database,
  userId: string,
  page: { cursor?: string; limit: number },
) {
  const after = page.cursor ? decodeCursor(page.cursor, interactionCursor) : null;
  const rows = await db.select({ match: matches, peer: { id: users.id, name: users.name } })
    .from(matches)
    .innerJoin(
      users,
      or(
        and(eq(matches.offererId, userId), eq(users.id, matches.answererId)),
        and(eq(matches.answererId, userId), eq(users.id, matches.offererId)),
      ),
    )
    .where(and(isNotNull(matches.endedAt), afterPosition(matches.startedAt, matches.id, after)))
    .orderBy(desc(matches.startedAt), desc(matches.id))
    .limit(page.limit + 1);
  return keysetPage(
    rows,
    page.limit,
    ({ match, peer }) => ({
      matchId: match.id,
      intent: match.intent,
      role: match.offererId === userId ? "offerer" : "answerer",
      peer,
      startedAt: match.startedAt.toISOString(),
      endedAt: match.endedAt!.toISOString(),
      durationSeconds: match.durationSeconds,
      outcome: match.outcome === "blocked" && match.endedBy !== userId ? "ended" : match.outcome,
      connected: match.connectedAt !== null,
      videoApproved: match.videoApprovedAt !== null,
    }),
    ({ match }) => [match.startedAt.toISOString(), match.id],
  );
}
