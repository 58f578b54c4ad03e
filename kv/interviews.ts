// The interview state machine: every move is one KV commit that checks the interview's
// versionstamp, writes its next state and version, appends an event to both participants' logs
// and carries the outbox records (history in Postgres, notifications, delayed jobs) it causes.
import { commitDecision } from "./decisions.ts";
import {
  type Interview,
  INTERVIEW_ACTIONS,
  type InterviewAction,
  type InterviewTransition as Transition,
} from "../db/records.ts";
import type { InterviewState } from "../db/schema.ts";
import { Conflict, Forbidden, NotFound } from "../errors.ts";
import { backoff, busy as contended } from "./backoff.ts";
import { listDue } from "./due.ts";
import { type EventDraft, headKeys } from "./events.ts";
import { interviewDueKey, interviewDuePrefix, interviewKey } from "./keys.ts";
import type { Coordination, OutboxRecord } from "./outbox.ts";

type Mover = "candidate" | "interviewer" | "participant" | "system";

/** The whole lifecycle: every legal move, the states it leaves, where it goes, and who makes it. */
export const MOVES: Record<
  InterviewAction,
  { from: InterviewState[]; to: InterviewState; by: Mover }
> = {
  start: { from: ["CREATED"], to: "STARTED", by: "candidate" },
  submit: { from: ["STARTED"], to: "SUBMITTED", by: "candidate" },
  evaluate: { from: ["SUBMITTED"], to: "EVALUATING", by: "system" },
  score: { from: ["EVALUATING"], to: "SCORED", by: "interviewer" },
  cancel: { from: ["CREATED", "STARTED"], to: "CANCELLED", by: "participant" },
  expire: { from: ["STARTED"], to: "EXPIRED", by: "system" },
};

/** What a transition causes, written into the commit that decides it. */
export type Effects = (transition: Transition) => { events: EventDraft[]; records: OutboxRecord[] };

/** A submission gets this long to be evaluated by its job before the sweep evaluates it. */
export const EVALUATION_GRACE_MS = 60_000;

/** Commits contended by concurrent moves are retried this often before answering 409. */
const ATTEMPTS = 30;

/** The moves `userId` may make on `interview` now. */
export function allowedActions(interview: Interview, userId: string): InterviewAction[] {
  return INTERVIEW_ACTIONS.filter((action) =>
    MOVES[action].from.includes(interview.state) && mayMove(interview, userId, MOVES[action].by)
  );
}

function mayMove(interview: Interview, userId: string, by: Mover): boolean {
  if (by === "candidate") return userId === interview.candidateId;
  if (by === "interviewer") return userId === interview.interviewerId;
  return by === "participant" && isParticipant(interview, userId);
}

export function isParticipant(interview: Interview, userId: string): boolean {
  return userId === interview.interviewerId || userId === interview.candidateId;
}

/** When the system's next move on this interview is due, and which move it is. */
function pendingSystemMove(interview: Interview): { at: number; action: InterviewAction } | null {
  if (interview.state === "STARTED") return { at: interview.expiresAt!, action: "expire" };
  if (interview.state === "SUBMITTED") {
    return { at: interview.submittedAt! + EVALUATION_GRACE_MS, action: "evaluate" };
  }
  return null;
}

/** Stores a new interview (state CREATED, version 1). */
export async function createInterview(
  deps: Coordination,
  interview: Interview,
  effects: Effects,
): Promise<Transition> {
  const transition: Transition = {
    interview,
    action: "create",
    from: null,
    actorId: interview.interviewerId,
  };
  const { events, records } = effects(transition);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const [entry, ...heads] = await deps.kv.getMany([
      interviewKey(interview.id),
      ...headKeys([interview.interviewerId, interview.candidateId]),
    ]);
    if (entry.value !== null) throw new Error(`interview ${interview.id} exists already`);
    const atomic = deps.kv.atomic().check(entry).set(entry.key, interview);
    const at = interview.createdAt;
    if (
      await commitDecision(deps, atomic, {
        events,
        heads,
        at,
        records,
        operation: "interview.create",
      })
    ) return transition;
    await backoff(attempt);
  }
  throw busy();
}

/** The interview, for its participants only (404 for everyone else: its existence is private). */
export async function readInterview(
  kv: Deno.Kv,
  interviewId: string,
  userId: string,
): Promise<Interview> {
  const { value } = await kv.get<Interview>(interviewKey(interviewId));
  if (!value || !isParticipant(value, userId)) throw noSuchInterview();
  return value;
}

export interface Move {
  interviewId: string;
  action: InterviewAction;
  /** The participant making the move; null for the system (jobs and the sweep). */
  actorId: string | null;
  /** The fields this move sets besides state and version (e.g. the answer, the scores). */
  change?: (interview: Interview, now: number) => Partial<Interview>;
}

/**
 * Makes one move. A participant's illegal move is refused: 404 for non-participants, 403 for the
 * wrong participant, 409 (with the current state) for a move the state does not allow. A system
 * move that no longer applies (already evaluated, no longer started, not yet due) returns null and
 * changes nothing, so jobs and sweeps may run it any number of times.
 *
 * A started interview past its deadline is expired by whichever move reaches it first: a late
 * submission commits the expiry and then answers 409 `interview-expired`, as does any participant
 * move on an interview that has expired.
 */
export async function moveInterview(
  deps: Coordination,
  move: Move,
  effects: Effects,
): Promise<Transition | null> {
  const key = interviewKey(move.interviewId);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    // Who takes part never changes: the nearest replica tells whose event logs to read, so the
    // interview and both heads come in one strong read (a replica without it yet: two reads).
    const known = (await deps.kv.get<Interview>(key, { consistency: "eventual" })).value;
    const [entry, ...readHeads] = await deps.kv.getMany<[Interview, ...unknown[]]>([
      key,
      ...(known ? headKeys([known.interviewerId, known.candidateId]) : []),
    ]);
    const interview = entry.value;
    if (move.actorId !== null) {
      if (!interview || !isParticipant(interview, move.actorId)) throw noSuchInterview();
      if (!mayMove(interview, move.actorId, MOVES[move.action].by)) {
        throw wrongParticipant(move.action);
      }
    }
    if (!interview) return null;
    const now = deps.now();
    const overdue = interview.state === "STARTED" && now > interview.expiresAt!;
    // A participant's move on an overdue interview becomes its expiry (then answers 409).
    const action = overdue && move.actorId !== null ? "expire" : move.action;
    if (!MOVES[action].from.includes(interview.state)) {
      if (move.actorId === null) return null;
      // The same answer whether the expiry job or this late move reached it first.
      throw interview.state === "EXPIRED"
        ? expired(interview)
        : illegalMove(interview, move.action);
    }
    if (action === "expire" && !overdue) return null;
    const next: Interview = {
      ...interview,
      ...(action === move.action ? move.change?.(interview, now) : {}),
      state: MOVES[action].to,
      version: interview.version + 1,
      updatedAt: now,
    };
    const transition: Transition = {
      interview: next,
      action,
      from: interview.state,
      actorId: action === move.action ? move.actorId : null,
    };
    const { events, records } = effects(transition);
    const heads = readHeads.length > 0
      ? readHeads
      : await deps.kv.getMany(headKeys([interview.interviewerId, interview.candidateId]));
    const atomic = deps.kv.atomic().check(entry).set(entry.key, next);
    const wasDue = pendingSystemMove(interview);
    const due = pendingSystemMove(next);
    if (wasDue) atomic.delete(interviewDueKey(wasDue.at, interview.id));
    if (due) atomic.set(interviewDueKey(due.at, next.id), due.action);
    if (
      !(await commitDecision(deps, atomic, {
        events,
        heads,
        at: now,
        records,
        operation: "interview.move",
      }))
    ) {
      await backoff(attempt);
      continue;
    }
    if (action !== move.action && move.actorId !== null) throw expired(next);
    return transition;
  }
  throw busy();
}

/**
 * Interviews whose system move is due at or before `now`, oldest first, with that move: the cron sweep
 * runs each, so an expiry or evaluation whose job was lost still happens. Every move keeps this
 * index in its own commit, so an entry exists exactly while its interview waits for that move.
 */
export async function dueMoves(
  kv: Deno.Kv,
  now: number,
  limit: number,
): Promise<{ interviewId: string; action: InterviewAction }[]> {
  const due = await listDue<InterviewAction>(kv, interviewDuePrefix(), now, limit);
  return due.map((entry) => ({ interviewId: String(entry.key[2]), action: entry.value }));
}

const VERBS: Record<InterviewAction, string> = {
  start: "started",
  submit: "submitted",
  evaluate: "evaluated",
  score: "scored",
  cancel: "cancelled",
  expire: "expired",
};

function illegalMove(interview: Interview, action: InterviewAction) {
  const hint = action === "score" && interview.state === "SUBMITTED"
    ? " Its evaluation has not finished yet; you will be notified when it can be scored."
    : "";
  return new Conflict(
    `An interview that is ${interview.state} cannot be ${VERBS[action]}.${hint}`,
    "invalid-transition",
    { state: interview.state, version: interview.version },
  );
}

function expired(interview: Interview) {
  return new Conflict(
    `The time limit of ${interview.timeLimitMinutes} minutes passed at ${
      new Date(interview.expiresAt!).toISOString()
    }; the interview has expired.`,
    "interview-expired",
    { state: interview.state, version: interview.version },
  );
}

function wrongParticipant(action: InterviewAction) {
  const who = MOVES[action].by;
  return new Forbidden(
    who === "system"
      ? `An interview is ${VERBS[action]} by the system, not by a participant.`
      : `Only the ${who} may ${action} this interview.`,
  );
}

export function noSuchInterview() {
  return new NotFound("No interview of yours has this id.");
}

const busy = () => contended("This interview");
