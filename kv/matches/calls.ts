// Decisions on a match (end, connect, video, signals): each is one commit checked against the
// match's versionstamp that also appends the events it causes to both participants' logs and
// carries its outbox records (kv/decisions.ts).
import { commitDecision } from "../decisions.ts";
import type { ConnectionTransition, EndReason, Match } from "../../db/records.ts";
import { Conflict, Forbidden } from "../../errors.ts";
import { backoff, busy } from "../backoff.ts";
import { listDue } from "../due.ts";
import { acceptPair, pairBlocked, readPair } from "../graph.ts";
import { headKeys } from "../events.ts";
import { eventHeadKey, matchDueKey, matchDuePrefix, matchKey, matchMemberKey } from "../keys.ts";
import type { Coordination } from "../outbox.ts";
import {
  ATTEMPTS,
  callOver,
  CONNECT_WINDOW_MS,
  decider,
  isLive,
  isParticipant,
  MATCH_RETENTION_MS,
  type MatchAction,
  type MatchEffects,
  type Membership,
  noSuchMatch,
  peerDecides,
  peerOf,
  readMembership,
} from "./match.ts";

/** A decision on one match: the match as it will be, and what it was. */
interface Decision {
  next: Match;
  action: MatchAction;
  /** Anything else the commit decides (a connection), with its checks. */
  also?: (atomic: Deno.AtomicOperation) => ConnectionTransition | null;
}

/** The two members' match memberships and event heads: what a decision on their match reads. */
function pairKeys(one: string, two: string): Deno.KvKey[] {
  return [matchMemberKey(one), matchMemberKey(two), eventHeadKey(one), eventHeadKey(two)];
}

/**
 * Reads the match, lets `decide` choose (or refuse by throwing, or return null for "nothing to
 * change"), and commits the decision checked against the match's versionstamp, with its events
 * and outbox records. A participant's decision on someone else's match gets 404.
 */
async function decideOnMatch(
  deps: Coordination,
  matchId: string,
  actorId: string | null,
  decide: (match: Match, now: number) => Promise<Decision | null> | Decision | null,
  effects: MatchEffects,
): Promise<{ match: Match; changed: boolean } | null> {
  const key = matchKey(matchId);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    // Who takes part never changes: the nearest replica tells whose records to read, so the match,
    // both memberships and both heads come in one strong read (a replica without it yet: two).
    const known = (await deps.kv.get<Match>(key, { consistency: "eventual" })).value;
    const [entry, ...readRest] = await deps.kv.getMany<[Match, ...unknown[]]>([
      key,
      ...(known ? pairKeys(known.offerer.id, known.answerer.id) : []),
    ]);
    const match = entry.value;
    if (actorId !== null && (!match || !isParticipant(match, actorId))) throw noSuchMatch();
    if (!match) return null;
    const now = deps.now();
    const decision = await decide(match, now);
    if (!decision) return { match, changed: false };
    const { next } = decision;
    const [one, two] = [match.offerer.id, match.answerer.id];
    const [memberOne, memberTwo, ...heads] =
      (readRest.length > 0 ? readRest : await deps.kv.getMany(pairKeys(one, two))) as [
        Deno.KvEntryMaybe<Membership>,
        Deno.KvEntryMaybe<Membership>,
        ...Deno.KvEntryMaybe<unknown>[],
      ];
    const atomic = deps.kv.atomic().check(entry)
      .set(entry.key, next, { expireIn: MATCH_RETENTION_MS });
    if (match.state === "live" && next.state === "ended") {
      atomic.delete(matchDueKey(match.endsAt, match.id));
      for (const member of [memberOne, memberTwo]) {
        if (member.value?.status === "in-call" && member.value.matchId === match.id) {
          atomic.check(member).delete(member.key);
        }
      }
    }
    const connection = decision.also?.(atomic);
    const { events, records } = effects({
      match: next,
      action: decision.action,
      actorId,
      connection,
    });
    if (
      await commitDecision(deps, atomic, {
        events,
        heads,
        at: now,
        records,
        operation: "match.decide",
      })
    ) {
      return { match: next, changed: true };
    }
    await backoff(attempt);
  }
  throw busy("This match");
}

/**
 * Ends a live match: a participant hanging up or blocking, or the system when its time is up (a
 * system end before `endsAt` is a no-op, so an early or repeated job changes nothing). A call past
 * `endsAt` always ends as a timeout, at `endsAt`, whoever gets to it first. Ending an ended match
 * changes nothing (`changed: false`); both participants get `call-ended` exactly once.
 */
export function endMatch(
  deps: Coordination,
  input: { matchId: string; actorId: string | null; reason: EndReason },
  effects: MatchEffects,
) {
  return decideOnMatch(deps, input.matchId, input.actorId, (match, now) => {
    if (match.state === "ended") return null;
    const overdue = now >= match.endsAt;
    if (input.reason === "timeout" && !overdue) return null;
    const next: Match = {
      ...match,
      state: "ended",
      version: match.version + 1,
      endedAt: overdue ? match.endsAt : now,
      endReason: overdue ? "timeout" : input.reason,
      endedBy: overdue ? null : input.actorId,
    };
    return { next, action: "end" };
  }, effects).then((result) => result?.changed ? result.match : null);
}

/**
 * `connect`: with a sole female participant, her call alone creates the connection (403 for the
 * other); otherwise the first call records the wish and the second creates it. Allowed during the
 * call and for a day after it. The connection is decided in the same commit as the match.
 */
export async function connectMatch(
  deps: Coordination,
  input: { matchId: string; userId: string },
  effects: MatchEffects,
): Promise<{ match: Match; connected: boolean }> {
  const match = await asParticipant(deps, input, effects, async (match, now) => {
    if (match.connectedAt !== null) return null;
    if (match.endReason === "blocked" || now > (match.endedAt ?? now) + CONNECT_WINDOW_MS) {
      throw new Conflict("This match can no longer lead to a connection.", "match-closed");
    }
    const sole = decider(match);
    if (sole && sole.id !== input.userId) throw peerDecides("connecting");
    const asks = [...new Set([...match.connectAsks, input.userId])];
    if (!sole && asks.length < 2) {
      if (match.connectAsks.includes(input.userId)) return null;
      return {
        next: { ...match, connectAsks: asks, version: match.version + 1 },
        action: "connect-ask",
      };
    }
    const peer = peerOf(match, input.userId);
    const pair = await readPair(deps.kv, input.userId, peer.id);
    if (pairBlocked(pair)) {
      throw new Conflict("This match can no longer lead to a connection.", "match-closed");
    }
    return {
      next: { ...match, connectAsks: asks, connectedAt: now, version: match.version + 1 },
      action: "connect",
      also: (atomic) => acceptPair(atomic, pair, { actorId: input.userId, otherId: peer.id, now }),
    };
  });
  return { match, connected: match.connectedAt !== null };
}

/** `video-request` during a live call: the peer is asked (once; asking again changes nothing). */
export function requestVideo(
  deps: Coordination,
  input: { matchId: string; userId: string },
  effects: MatchEffects,
): Promise<Match> {
  return asParticipant(deps, input, effects, (match, now) => {
    if (!isLive(match, now)) throw callOver(match);
    if (match.videoApprovedAt !== null || match.videoRequestedBy === input.userId) return null;
    return {
      next: { ...match, videoRequestedBy: input.userId, version: match.version + 1 },
      action: "video-request",
    };
  });
}

/**
 * `video-approve` during a live call: with a sole female participant only she approves (with or
 * without a request); otherwise the peer of whoever requested it does.
 */
export function approveVideo(
  deps: Coordination,
  input: { matchId: string; userId: string },
  effects: MatchEffects,
): Promise<Match> {
  return asParticipant(deps, input, effects, (match, now) => {
    if (!isLive(match, now)) throw callOver(match);
    if (match.videoApprovedAt !== null) return null;
    const sole = decider(match);
    if (sole && sole.id !== input.userId) throw peerDecides("approving video");
    if (!sole && match.videoRequestedBy === null) {
      throw new Conflict("Nobody has asked for video in this call yet.", "no-video-request");
    }
    if (!sole && match.videoRequestedBy === input.userId) {
      throw new Forbidden("You asked for video; your peer approves it.", "peer-decides");
    }
    return {
      next: {
        ...match,
        videoApprovedAt: now,
        videoApprovedBy: input.userId,
        version: match.version + 1,
      },
      action: "video-approve",
    };
  });
}

/** A participant's decision on their match (404 for anyone else); the match as it now is. */
async function asParticipant(
  deps: Coordination,
  input: { matchId: string; userId: string },
  effects: MatchEffects,
  decide: (match: Match, now: number) => Promise<Decision | null> | Decision | null,
): Promise<Match> {
  return (await decideOnMatch(deps, input.matchId, input.userId, decide, effects))!.match;
}

/**
 * Relays a WebRTC signal to the peer's event log, only within a live match the sender is in; the
 * append checks the match, so nothing is relayed once the call has ended.
 */
export async function relaySignal(
  deps: Coordination,
  input: { matchId: string; fromUserId: string; type: string; payload: unknown },
): Promise<void> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const entry = await deps.kv.get<Match>(matchKey(input.matchId));
    const match = entry.value;
    if (!match || !isParticipant(match, input.fromUserId)) throw noSuchMatch();
    const now = deps.now();
    if (!isLive(match, now)) throw callOver(match);
    const peer = peerOf(match, input.fromUserId);
    const heads = await deps.kv.getMany(headKeys([peer.id]));
    const events = [{
      userId: peer.id,
      type: input.type,
      data: { matchId: match.id, fromUserId: input.fromUserId, payload: input.payload },
    }];
    if (
      await commitDecision(deps, deps.kv.atomic().check(entry), {
        events,
        heads,
        at: now,
        operation: "match.signal",
      })
    ) {
      return;
    }
    await backoff(attempt);
  }
  throw busy("This call's signalling");
}

/** The live match between two members, if they are in one together. */
export async function sharedMatchId(kv: Deno.Kv, userId: string, otherId: string) {
  const member = await readMembership(kv, userId);
  return member?.status === "in-call" && member.peerId === otherId ? member.matchId : null;
}

/** Live matches whose time is up at or before `now`, oldest first (the sweep ends them). */
export async function dueMatches(kv: Deno.Kv, now: number, limit: number): Promise<string[]> {
  return (await listDue<string>(kv, matchDuePrefix(), now, limit)).map((entry) => entry.value);
}
