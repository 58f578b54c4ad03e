// Voice/video matchmaking: joining and leaving intent queues, what each match decision causes
// (both participants' events, history in Postgres, the call-end job), presence while queuing or in
// a call, the end of a call when a block comes between its participants, and the cron sweep.
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { unverified, verificationRequired } from "./auth/verification.ts";
import { recordMatches } from "../db/matches.ts";
import { memberCard } from "./profiles.ts";
import { NotFound } from "../errors.ts";
import {
  approveVideo,
  connectMatch,
  dueMatches,
  endMatch,
  relaySignal,
  requestVideo,
  sharedMatchId,
} from "../kv/matches/calls.ts";
import {
  BLOCK_ENDS_CALL,
  decider,
  isLive,
  type MatchChange,
  type MatchEffects,
  type MatchRules,
  type Membership,
  peerOf,
  readMatch,
  readMembership,
} from "../kv/matches/match.ts";
import { joinQueue, leaveQueue, pairWaiting, waitingMembers } from "../kv/matches/queue.ts";
import { type Match, matchSchema, outcomeOf } from "../db/records.ts";
import { coordination } from "../kv/outbox.ts";
import { readPresence } from "../kv/presence.ts";
import { connectionRecords } from "./graph.ts";
import { jobRecord } from "./outbox-jobs.ts";

const MATCH_RECORD = "match-record";
const END_JOB = "match-end";
/** Sweeps handle at most this many calls and waiting members each. */
const SWEEP_BATCH = 500;

/** The signalling frames relayed between the two participants of a live match. */
export const SIGNALS = ["offer", "answer", "ice-candidate"] as const;

export const queueInput = z.strictObject({
  // Free-form, so communities can add intents; a slug, so it is one well-behaved KV key part.
  intent: z.string().trim().toLowerCase().min(1, "must not be empty").max(40)
    .regex(/^[a-z0-9][a-z0-9 _-]*$/, "a-z, 0-9, spaces, '-' and '_' only")
    .transform((intent) => intent.replace(/\s+/g, " ")),
  // Anything else (a user id, a gender) is ignored: both come from the session and the profile.
});

const matchJob = z.object({ matchId: z.string().min(1).max(100) });
const blockPayload = z.object({ blockerId: z.string(), blockedId: z.string() });

export function registerMatchmaking(deps: Deps) {
  deps.outbox.registerBatch(MATCH_RECORD, matchSchema, async (list) => {
    await recordMatches(deps.database.db, list);
  });
  deps.outbox.register(BLOCK_ENDS_CALL, blockPayload, async ({ blockerId, blockedId }) => {
    const matchId = await sharedMatchId(deps.kv, blockerId, blockedId);
    if (matchId) await endCall(deps, blockerId, matchId, "blocked");
  });
  deps.registry.register(END_JOB, matchJob, async ({ matchId }) => {
    await timeUp(deps, matchId);
  });
  deps.hub.onPresenceChange(async (userId, status) => {
    // A member whose last socket went away leaves the queue.
    if (status === "offline") await leaveQueue(deps.kv, userId);
  });
}

export function matchRules(deps: Deps): MatchRules {
  return {
    callDurationMs: deps.config.CALL_DURATION_SECONDS * 1000,
    cooldownMs: deps.config.REMATCH_COOLDOWN_SECONDS * 1000,
    effects: effects(deps),
  };
}

/** Both participants' events, the history record and the end-of-call job of each decision. */
function effects(deps: Deps): MatchEffects {
  return ({ match, action, actorId, connection }: MatchChange) => {
    const people = [match.offerer, match.answerer];
    const both = (type: string, data: (userId: string) => unknown) =>
      people.map((person) => ({ userId: person.id, type, data: data(person.id) }));
    const toPeer = (type: string, data: unknown) => [{
      userId: peerOf(match, actorId!).id,
      type,
      data,
    }];
    const history = deps.outbox.record(MATCH_RECORD, match);
    switch (action) {
      case "start":
        return {
          events: both("found-match", (userId) => foundMatch(match, userId)),
          records: [
            history,
            jobRecord(deps.outbox, END_JOB, { matchId: match.id }, { runAt: match.endsAt }),
          ],
        };
      case "end":
        return {
          events: both("call-ended", (userId) => ({
            matchId: match.id,
            // The member who was blocked is told the call ended, not why.
            reason: match.endReason === "blocked" && userId !== match.endedBy
              ? "ended"
              : match.endReason,
            endedAt: new Date(match.endedAt!).toISOString(),
            durationSeconds: Math.round((match.endedAt! - match.startedAt) / 1000),
          })),
          records: [history],
        };
      case "connect-ask":
      case "video-request":
        // The peer is asked; nothing is decided yet.
        return {
          events: toPeer(action === "connect-ask" ? "connect-request" : "video-request", {
            matchId: match.id,
            fromUserId: actorId,
          }),
          records: [],
        };
      case "connect":
        return {
          events: both("match-connected", (userId) => ({
            matchId: match.id,
            peerId: peerOf(match, userId).id,
            connectedAt: new Date(match.connectedAt!).toISOString(),
          })),
          records: [history, ...(connection ? connectionRecords(deps, connection) : [])],
        };
      case "video-approve":
        return {
          events: both("video-approved", () => ({ matchId: match.id, approvedBy: actorId })),
          records: [history],
        };
    }
  };
}

function foundMatch(match: Match, userId: string) {
  return {
    matchId: match.id,
    peer: peerOf(match, userId),
    role: match.offerer.id === userId ? "offerer" : "answerer",
    intent: match.intent,
    startedAt: new Date(match.startedAt).toISOString(),
    endsAt: new Date(match.endsAt).toISOString(),
  };
}

/** The match as one participant sees it. */
export function matchView(match: Match, viewerId: string, now: number) {
  const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();
  const peer = peerOf(match, viewerId);
  const sole = decider(match);
  const outcome = outcomeOf(match);
  return {
    ...foundMatch(match, viewerId),
    id: match.id,
    state: isLive(match, now) ? "live" : "ended",
    endedAt: iso(match.endedAt),
    outcome: outcome === "blocked" && match.endedBy !== viewerId ? "ended" : outcome,
    connected: match.connectedAt !== null,
    /** Whose consent `connect` and `video-approve` need: yours, your peer's, or both. */
    consent: sole ? (sole.id === viewerId ? "you" : "peer") : "both",
    connectAsked: {
      you: match.connectAsks.includes(viewerId),
      peer: match.connectAsks.includes(peer.id),
    },
    video: {
      requestedBy: match.videoRequestedBy,
      approved: match.videoApprovedAt !== null,
      approvedAt: iso(match.videoApprovedAt),
    },
  };
}

/** Joins a queue; the member's name and gender come from their stored profile. */
export async function join(deps: Deps, userId: string, intent: string) {
  const card = await memberCard(deps, userId);
  if (!card) throw new NotFound("Your account no longer exists.");
  if (verificationRequired(deps.config) && card.verified === false) {
    throw unverified("being matched");
  }
  const seeker = { id: userId, name: card.name, gender: card.gender };
  const { match, ended } = await joinQueue(coordination(deps), seeker, intent, matchRules(deps));
  // The joiner, the peer they were paired with, and the peer of an overdue call this join ended.
  const people = [match, ended].flatMap((call) => call ? [call.offerer.id, call.answerer.id] : []);
  deps.hub.announceLater([...new Set([userId, ...people])]);
}

export async function leave(deps: Deps, userId: string) {
  if (await leaveQueue(deps.kv, userId)) deps.hub.announceLater([userId]);
}

/** The member's live match; 404 (saying whether they are queuing) when there is none. */
export async function currentMatch(deps: Deps, userId: string): Promise<Match> {
  let member = await readMembership(deps.kv, userId);
  if (member?.status === "in-call") {
    const match = await readMatch(deps.kv, member.matchId, userId);
    if (isLive(match, deps.clock.now())) return match;
    await timeUp(deps, match.id); // past its end: end it now rather than show a dead call
    member = await readMembership(deps.kv, userId);
  }
  throw noCurrentMatch(member);
}

function noCurrentMatch(member: Membership | null) {
  const error = new NotFound(
    member?.status === "queuing"
      ? `You are queued for "${member.intent}"; no match yet.`
      : "You are not in a call.",
  );
  if (member?.status === "queuing") {
    Object.assign(error.extra, {
      queuing: { intent: member.intent, joinedAt: new Date(member.joinedAt).toISOString() },
    });
  }
  return error;
}

export async function endCall(
  deps: Deps,
  userId: string,
  matchId: string,
  reason: "ended" | "blocked" = "ended",
): Promise<Match> {
  const ended = await endMatch(
    coordination(deps),
    { matchId, actorId: userId, reason },
    effects(deps),
  );
  const match = ended ?? await readMatch(deps.kv, matchId, userId);
  if (ended) deps.hub.announceLater([match.offerer.id, match.answerer.id]);
  return match;
}

/** The end-of-call job and sweep: a time-up call ends (an early or repeated run changes nothing). */
export async function timeUp(deps: Deps, matchId: string): Promise<Match | null> {
  const ended = await endMatch(
    coordination(deps),
    { matchId, actorId: null, reason: "timeout" },
    effects(deps),
  );
  if (ended) deps.hub.announceLater([ended.offerer.id, ended.answerer.id]);
  return ended;
}

export function connect(deps: Deps, userId: string, matchId: string) {
  return connectMatch(coordination(deps), { matchId, userId }, effects(deps));
}

export function videoRequest(deps: Deps, userId: string, matchId: string) {
  return requestVideo(coordination(deps), { matchId, userId }, effects(deps));
}

export function videoApprove(deps: Deps, userId: string, matchId: string) {
  return approveVideo(coordination(deps), { matchId, userId }, effects(deps));
}

export function signal(
  deps: Deps,
  userId: string,
  type: (typeof SIGNALS)[number],
  input: { matchId: string; payload: unknown },
) {
  return relaySignal(coordination(deps), { ...input, fromUserId: userId, type });
}

/**
 * The cron backstop: ends every call whose time is up (its job lost or late), takes out of the
 * queue members who have had no socket for a presence lifetime, and pairs whoever still waits
 * (members who became eligible since, e.g. when a rematch cooldown ran out).
 */
export async function sweepMatches(deps: Deps) {
  const now = deps.clock.now();
  let ended = 0;
  let removed = 0;
  let paired = 0;
  for (const matchId of await dueMatches(deps.kv, now, SWEEP_BATCH)) {
    if (await timeUp(deps, matchId)) ended++;
  }
  const waiting = await waitingMembers(deps.kv, SWEEP_BATCH);
  const presence = await readPresence(deps.kv, waiting.map((member) => member.userId), now);
  for (const member of waiting) {
    const gone = presence.get(member.userId) === "offline" &&
      member.joinedAt < now - deps.hub.options.presenceTtlMs;
    if (gone) {
      if (await leaveQueue(deps.kv, member.userId)) removed++;
      continue;
    }
    const match = await pairWaiting(coordination(deps), member.userId, matchRules(deps));
    if (match) {
      paired++;
      deps.hub.announceLater([match.offerer.id, match.answerer.id]);
    }
  }
  if (ended + removed + paired > 0) {
    deps.log({ level: "info", msg: "matches swept", ended, removed, paired });
  }
  return { ended, removed, paired };
}
