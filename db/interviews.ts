// Interviews in Postgres: the history of every transition KV decided, the listing by role, and
// the verified skill a passed interview grants.
import { and, asc, desc, eq, inArray, or, sql } from "drizzle-orm";
import { decodeCursor, keysetPage, timeCursor } from "../cursor.ts";
import {
  type Interview,
  type InterviewTransition as Transition,
  recordFromRow,
  rowOf,
} from "./records.ts";
import type { Database } from "./client.ts";
import { inTransaction, isForeignKeyViolation } from "./client.ts";
import { afterPosition } from "./keyset.ts";
import {
  interviewEvents,
  interviewMedia,
  type InterviewRow,
  interviews,
  type InterviewState,
  media,
  users,
} from "./schema.ts";

/**
 * Writes a decided transition: the interview row (never overwritten by an older version), its
 * event, and for a passed interview the candidate's verified skill. Idempotent: applying it again
 * changes nothing. A skill the candidate has already verified keeps its first evidence.
 */
export async function recordInterviewTransition(db: Database, transition: Transition) {
  const { interview } = transition;
  const row = rowOf(interviews, interview);
  try {
    await inTransaction(db, async (tx) => {
      const { id: _, interviewerId: _i, candidateId: _c, createdAt: _t, ...changing } = row;
      await tx.insert(interviews).values(row).onConflictDoUpdate({
        target: interviews.id,
        set: changing,
        setWhere: sql`${interviews.version} < excluded.version`,
      });
      await tx.insert(interviewEvents).values({
        interviewId: interview.id,
        version: interview.version,
        action: transition.action,
        actorId: transition.actorId,
        fromState: transition.from,
        toState: interview.state,
        at: row.updatedAt,
      }).onConflictDoNothing();
      if (interview.mediaIds.length > 0) await linkSubmittedMedia(tx, interview);
      if (interview.state === "SCORED" && interview.passed) {
        const evidence = {
          skill: interview.skill,
          interviewId: interview.id,
          verifiedAt: new Date(interview.scoredAt!).toISOString(),
        };
        await tx.update(users)
          .set({
            verifiedSkills: sql`${users.verifiedSkills} || ${JSON.stringify([evidence])}::jsonb`,
          })
          .where(and(
            eq(users.id, interview.candidateId),
            sql`not exists (select 1 from jsonb_array_elements(${users.verifiedSkills}) as held
              where held->>'skill' = ${interview.skill})`,
          ));
      }
    });
  } catch (error) {
    // An account deleted since: there is nothing left to record about it.
    if (!isForeignKeyViolation(error)) throw error;
  }
}

/**
 * Marks the submitted files as used by the interview, so they are never swept. A file its owner
 * deleted in the meantime is skipped: the rest of the transition is recorded regardless.
 */
async function linkSubmittedMedia(tx: Database, interview: Interview) {
  try {
    await tx.transaction(async (savepoint) => {
      await savepoint.insert(interviewMedia)
        .select(
          savepoint.select({
            interviewId: sql<string>`${interview.id}`.as("interview_id"),
            mediaId: media.id,
          })
            .from(media).where(inArray(media.id, interview.mediaIds)),
        )
        .onConflictDoNothing();
    });
  } catch (error) {
    if (!isForeignKeyViolation(error)) throw error;
  }
}

export function rowToInterview(row: InterviewRow): Interview {
  return recordFromRow(row);
}

const interviewCursor = timeCursor;

/** The caller's interviews (as interviewer, candidate, or either), newest first. */
export async function listInterviews<I>(
  db: Database,
  userId: string,
  options: {
    role?: "interviewer" | "candidate";
    state?: InterviewState;
    cursor?: string;
    limit: number;
  },
  toItem: (interview: Interview) => I,
) {
  const after = options.cursor ? decodeCursor(options.cursor, interviewCursor) : null;
  const mine = options.role === "interviewer"
    ? eq(interviews.interviewerId, userId)
    : options.role === "candidate"
    ? eq(interviews.candidateId, userId)
    : or(eq(interviews.interviewerId, userId), eq(interviews.candidateId, userId));
  const rows = await db.select().from(interviews)
    .where(and(
      mine,
      options.state ? eq(interviews.state, options.state) : undefined,
      afterPosition(interviews.createdAt, interviews.id, after),
    ))
    .orderBy(desc(interviews.createdAt), desc(interviews.id))
    .limit(options.limit + 1);
  return keysetPage(
    rows,
    options.limit,
    (row) => toItem(rowToInterview(row)),
    (row) => [row.createdAt.toISOString(), row.id],
  );
}

/** Every recorded transition of an interview, oldest first. */
export async function listInterviewEvents(db: Database, interviewId: string) {
  const rows = await db.select().from(interviewEvents)
    .where(eq(interviewEvents.interviewId, interviewId))
    .orderBy(asc(interviewEvents.version));
  return rows.map((row) => ({
    version: row.version,
    action: row.action,
    actorId: row.actorId,
    from: row.fromState,
    to: row.toState,
    at: row.at.toISOString(),
  }));
}
