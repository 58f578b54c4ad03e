// Moderation: an admin suspends a member (for a time or for good) and restores them, takes a post
// or comment down (its author is told), resolves reports, and settles a member's gender when they
// ask for a change. Every action is in the audit log.
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { resolveReport } from "../db/graph.ts";
import { takeDownComment, takeDownPost } from "../db/posts.ts";
import { GENDERS } from "../db/schema.ts";
import { findUserById, recordStanding, setGender } from "../db/users.ts";
import { insertAdminActions } from "../db/audit.ts";
import { inTransaction } from "../db/client.ts";
import { Invalid, NotFound } from "../errors.ts";
import { storableTime } from "../input.ts";
import { announceSessionsChanged } from "../kv/events.ts";
import { readMembership } from "../kv/matches/match.ts";
import { restoreMember, suspendMember, type Suspension } from "../kv/moderation.ts";
import { coordination } from "../kv/outbox.ts";
import { rememberMember } from "../kv/profiles.ts";
import { type AdminAction, auditRecord, auditRow } from "./audit.ts";
import { endCall, leave } from "./matches.ts";
import { notifyRecords } from "./notifications.ts";

const STANDING_RECORD = "member-standing";

const standingPayload = z.object({
  userId: z.string(),
  at: z.number().nullable(),
  until: z.number().nullable(),
  reason: z.string().nullable(),
});

export const suspensionInput = z.strictObject({
  reason: z.string().trim().min(1, "say why").max(500),
  /** When it ends (ISO 8601); absent: for good, until an admin restores the member. */
  until: storableTime.transform((text) => Date.parse(text)).optional(),
});

export const takedownInput = z.strictObject({
  reason: z.string().trim().min(1, "say why").max(500),
});

export const resolutionInput = z.strictObject({
  note: z.string().trim().min(1, "say how it was resolved").max(2000),
});

export const genderSetting = z.strictObject({
  gender: z.enum(GENDERS),
  reason: z.string().trim().min(1, "say why").max(500),
});

export function registerModeration(deps: Deps) {
  deps.outbox.register(STANDING_RECORD, standingPayload, async (standing) => {
    await recordStanding(deps.database.db, standing.userId, {
      at: standing.at === null ? null : new Date(standing.at),
      until: standing.until === null ? null : new Date(standing.until),
      reason: standing.reason,
    });
  });
}

async function existingMember(deps: Deps, userId: string) {
  const user = await findUserById(deps.database.db, userId);
  if (!user) throw new NotFound("No member has this id.");
  return user;
}

/**
 * Suspends a member: one KV commit sets their standing and ends every session of theirs (with
 * its history row and audit entry); then their sockets close, they leave the queue and a call of
 * theirs ends. Until it ends they cannot sign in, send anything, or be found: their posts and
 * comments are hidden and they leave discovery, search and matchmaking. Suspending again replaces
 * the suspension.
 */
export async function suspend(
  deps: Deps,
  adminId: string,
  userId: string,
  input: z.infer<typeof suspensionInput>,
) {
  if (userId === adminId) {
    throw new Invalid("You cannot suspend yourself.", [{ path: "id", message: "is your own id" }]);
  }
  await existingMember(deps, userId);
  const now = deps.clock.now();
  if (input.until !== undefined && input.until <= now) {
    throw new Invalid("A suspension must end in the future.", [
      { path: "until", message: "must be in the future (or absent: for good)" },
    ]);
  }
  const suspension: Suspension = {
    at: now,
    until: input.until ?? null,
    reason: input.reason,
    by: adminId,
  };
  await suspendMember(coordination(deps), deps.sessions, userId, suspension, [
    deps.outbox.record(STANDING_RECORD, {
      userId,
      at: now,
      until: suspension.until,
      reason: input.reason,
    }),
    auditRecord(deps, memberAction(adminId, "member.suspend", userId, input)),
  ]);
  await announceSessionsChanged(deps.kv, userId, deps.clock.now);
  // Out of matchmaking: out of the queue, and out of a call (their peer is told it ended).
  const member = await readMembership(deps.kv, userId);
  if (member?.status === "in-call") await endCall(deps, userId, member.matchId);
  else await leave(deps, userId);
  return suspensionView(suspension);
}

/** Restores a suspended member; `restored` is false when they were not (nothing changes then). */
export async function restore(deps: Deps, adminId: string, userId: string) {
  await existingMember(deps, userId);
  const restored = await restoreMember(coordination(deps), userId, () => [
    deps.outbox.record(STANDING_RECORD, { userId, at: null, until: null, reason: null }),
    auditRecord(deps, memberAction(adminId, "member.restore", userId)),
  ]);
  return { suspended: false, restored };
}

const memberAction = (
  actorId: string,
  action: string,
  userId: string,
  detail?: unknown,
): AdminAction => ({ actorId, action, subject: { type: "user", id: userId }, detail });

function suspensionView(suspension: Suspension) {
  return {
    suspended: true,
    since: new Date(suspension.at).toISOString(),
    until: suspension.until === null ? null : new Date(suspension.until).toISOString(),
    reason: suspension.reason,
  };
}

/**
 * Takes a post or a comment down: hidden from everyone, in one Postgres transaction with its
 * audit row; its author is told (a `moderation` notification). Taking it down again changes
 * nothing more.
 */
export async function takeDown(
  deps: Deps,
  adminId: string,
  what: "post" | "comment",
  subjectId: string,
  input: z.infer<typeof takedownInput>,
) {
  const at = new Date(deps.clock.now());
  const authorId = await inTransaction(deps.database.db, async (tx) => {
    const authorId = what === "post"
      ? await takeDownPost(tx, subjectId, at)
      : await takeDownComment(tx, subjectId, at);
    if (!authorId) throw new NotFound(`No ${what} has this id.`);
    await insertAdminActions(tx, [auditRow(deps, {
      actorId: adminId,
      action: `${what}.takedown`,
      subject: { type: what, id: subjectId },
      detail: { ...input, authorId },
    })]);
    return authorId;
  });
  await deps.outbox.send(...notifyRecords(deps.outbox, {
    userId: authorId,
    actorId: adminId,
    type: "moderation",
    subjectId,
    eventId: `takedown:${subjectId}`,
  }));
  return { id: subjectId, takenDownAt: at.toISOString() };
}

/** Resolves a report with a note; resolving it again answers the first resolution. */
export async function resolve(
  deps: Deps,
  adminId: string,
  reportId: string,
  input: z.infer<typeof resolutionInput>,
) {
  const at = new Date(deps.clock.now());
  const resolved = await inTransaction(deps.database.db, async (tx) => {
    const resolved = await resolveReport(tx, reportId, { by: adminId, note: input.note, at });
    if (!resolved) throw new NotFound("No report has this id.");
    if (resolved.changed) {
      await insertAdminActions(tx, [auditRow(deps, {
        actorId: adminId,
        action: "report.resolve",
        subject: { type: "report", id: reportId },
        detail: input,
      })]);
    }
    return resolved;
  });
  return resolved.report;
}

/**
 * Sets a member's gender at their request (it is chosen once by the member; every later change is
 * an admin's, audit-logged, since matchmaking's safety rules rest on it).
 */
export async function settleGender(
  deps: Deps,
  adminId: string,
  userId: string,
  input: z.infer<typeof genderSetting>,
) {
  await existingMember(deps, userId);
  const at = new Date(deps.clock.now());
  const row = await inTransaction(deps.database.db, async (tx) => {
    const row = await setGender(tx, userId, input.gender, at);
    await insertAdminActions(tx, [
      auditRow(deps, memberAction(adminId, "member.gender", userId, input)),
    ]);
    return row;
  });
  await rememberMember(deps.kv, row); // matchmaking reads the card
  return { id: userId, gender: row.gender };
}
