// Matchmaking in KV: who waits in which intent queue, who is in which call, and every decision
// about a match. Pairing is one commit that takes both members out of the queue and puts them in
// the same match, checked against both members' entries, so nobody is ever in two matches.
// Each later decision (end, connect, video) is one commit checked against the match's versionstamp
// that also appends the events it causes to both participants' logs and carries its outbox records.
import { locksOf } from "./keyed-lock.ts";
import type { ConnectionTransition, EndReason, Match, Participant } from "../db/records.ts";
import { Conflict, Forbidden, NotFound } from "../errors.ts";
import { newId } from "../ids.ts";
import { backoff, busy } from "./backoff.ts";
import { listDue } from "./due.ts";
import { acceptPair, pairBlocked, readPair } from "./graph.ts";
import { appendEvents, type EventDraft, headKeys } from "./events.ts";
import {
  blockKey,
  eventHeadKey,
  matchDueKey,
  matchDuePrefix,
  matchKey,
  matchMemberKey,
  matchQueueKey,
  matchQueuePrefix,
  matchQueuesPrefix,
  recentMatchKey,
} from "./keys.ts";
import type { Coordination, OutboxRecord } from "./outbox.ts";

/** Where a member is in matchmaking (absent: neither queuing nor in a call). */
export type Membership =
  | { status: "queuing"; intent: string; joinedAt: number }
  | { status: "in-call"; matchId: string; peerId: string };

/** A waiting member as the queue holds them. */
interface QueueEntry extends Participant {
  intent: string;
  joinedAt: number;
}

export type MatchAction =
  | "start"
  | "end"
  | "connect-ask"
  | "connect"
  | "video-request"
  | "video-approve";

/** A decided change: the match as it now is, what happened, and who did it (null: the system). */
export interface MatchChange {
  match: Match;
  action: MatchAction;
  actorId: string | null;
  /** The connection a `connect` made (null when the two were connected already). */
  connection?: ConnectionTransition | null;
}

/** What a change causes, written into the commit that decides it. */
export type MatchEffects = (
  change: MatchChange,
) => { events: EventDraft[]; records: OutboxRecord[] };

export interface MatchRules {
  callDurationMs: number;
  /** Two members matched within this long are not paired again. */
  cooldownMs: number;
  effects: MatchEffects;
}

/** The outbox kind a block writes: it ends a call between the two, if they are in one. */
export const BLOCK_ENDS_CALL = "match-block";

/** Ended matches stay in KV this long (for `connect` after the call); history is in Postgres. */
export const MATCH_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
/** `connect` is possible this long after a call ended. */
export const CONNECT_WINDOW_MS = 24 * 60 * 60 * 1000;
/** Pairing first tries the members who joined just before and after: this many on each side. */
const WINDOW = 16;
/** Commits contended by concurrent decisions are retried this often before answering 409. */
const ATTEMPTS = 100;

export const isParticipant = (match: Match, userId: string) =>
  match.offerer.id === userId || match.answerer.id === userId;

export const peerOf = (match: Match, userId: string) =>
  match.offerer.id === userId ? match.answerer : match.offerer;

/** The participant whose consent alone decides `connect` and video: the only woman, if one is. */
export function decider(match: Match): Participant | null {
  const women = [match.offerer, match.answerer].filter((person) => person.gender === "female");
  return women.length === 1 ? women[0] : null;
}

/** A live match whose time is up is over for everyone, whether or not its end is committed yet. */
export const isLive = (match: Match, now: number) => match.state === "live" && now < match.endsAt;

export async function readMembership(kv: Deno.Kv, userId: string): Promise<Membership | null> {
  return (await kv.get<Membership>(matchMemberKey(userId))).value;
}

/** The match, for its participants only (404 for everyone else: its existence is private). */
export async function readMatch(kv: Deno.Kv, matchId: string, userId: string): Promise<Match> {
  const { value } = await kv.get<Match>(matchKey(matchId));
  if (!value || !isParticipant(value, userId)) throw noSuchMatch();
  return value;
}

/**
 * Puts `seeker` in the queue of `intent` (409 when already queued or in a call), or pairs them at
 * once with an eligible member who waits. A call of theirs past its end (its job not run yet) is
 * ended first. Returns the new match (null while the seeker waits) and the call this join ended,
 * if any.
 *
 * A join is one strong read and one commit: the waiting members are listed from the nearest
 * replica, the seeker's and the first few candidates' entries are read at once, and one commit
 * either pairs the seeker with the first eligible candidate or queues them. A queued seeker then
 * scans the queue again, strongly: a member who joined meanwhile (unseen by the replica, or
 * queued by a join that raced this one) is paired now, so nobody eligible is left waiting.
 */
export async function joinQueue(
  deps: Coordination,
  seeker: Participant,
  intent: string,
  rules: MatchRules,
): Promise<{ match: Match | null; ended: Match | null }> {
  // The isolate's joiners of one intent take turns (rule 5): in a burst they would otherwise race
  // for the same waiting members and lose most commits; other isolates still race, and the
  // commit's checks still decide.
  const inTurn = <T>(work: () => Promise<T>) => locksOf(deps.outbox).run(`match:${intent}`, work);
  let ended: Match | null = null;
  for (let attempt = 0;; attempt++) {
    if (attempt === ATTEMPTS) throw busy("Your matchmaking state");
    const joined = await inTurn(() => joinOnce(deps, seeker, intent, rules));
    if (joined.outcome === "paired") return { match: joined.match, ended };
    if (joined.outcome === "queued") {
      return { match: await inTurn(() => pairWaiting(deps, seeker.id, rules)), ended };
    }
    if (joined.outcome === "in-call") {
      const { member } = joined;
      ended = await endMatch(
        deps,
        { matchId: member.value.matchId, actorId: null, reason: "timeout" },
        rules.effects,
      );
      if (!ended) {
        const match = await deps.kv.get<Match>(matchKey(member.value.matchId));
        if (match.value) throw inCall(member.value.matchId);
        // Its match is gone from KV (past retention without ever ending): nothing holds them.
        await deps.kv.atomic().check(member, match).delete(member.key).commit();
      }
      continue;
    }
    await backoff(attempt); // lost a race: read again
  }
}

/** Waiting members a join considers at once (each costs a getMany, sent together). */
const AT_ONCE = 3;

type InCall = Deno.KvEntry<Extract<Membership, { status: "in-call" }>>;

type Joined =
  | { outcome: "paired"; match: Match }
  | { outcome: "queued" | "lost" }
  | { outcome: "in-call"; member: InCall };

async function joinOnce(
  deps: Coordination,
  seeker: Participant,
  intent: string,
  rules: MatchRules,
): Promise<Joined> {
  const waiting: Deno.KvEntry<QueueEntry>[] = [];
  const listed = deps.kv.list<QueueEntry>({ prefix: matchQueuePrefix(intent) }, {
    limit: AT_ONCE + 1,
    consistency: "eventual",
  });
  for await (const entry of listed) {
    if (entry.value.id !== seeker.id && waiting.length < AT_ONCE) waiting.push(entry);
  }
  const reads = waiting.length > 0
    ? await Promise.all(waiting.map((peer) => readPairing(deps.kv, seeker.id, peer.value.id)))
    : [[await deps.kv.get<Membership>(matchMemberKey(seeker.id))]];
  const member = reads[0][0] as Deno.KvEntryMaybe<Membership>;
  if (member.value?.status === "queuing") throw alreadyQueued(member.value);
  if (member.value?.status === "in-call") {
    return { outcome: "in-call", member: member as InCall };
  }
  const self: QueueEntry = { ...seeker, intent, joinedAt: deps.now() };
  for (const [index, peer] of waiting.entries()) {
    const paired = await pair(deps, { entry: self, queued: null }, peer, reads[index], rules);
    if (paired === "ineligible") continue;
    return paired === "lost" ? { outcome: "lost" } : { outcome: "paired", match: paired };
  }
  const committed = await deps.kv.atomic().check(member)
    .set(member.key, { status: "queuing", intent, joinedAt: self.joinedAt } satisfies Membership)
    .set(matchQueueKey(intent, self.joinedAt, seeker.id), self)
    .commit();
  return { outcome: committed.ok ? "queued" : "lost" };
}

/**
 * Pairs a queued member with an eligible waiting member of the same intent (not blocked either
 * way, not matched within the cooldown): the longest-waiting one near them in the queue first and,
 * after a lost race, one at random. Returns the match, or null when nobody eligible waits (or the
 * member is no longer queuing).
 *
 * Why nobody eligible is left waiting: every member runs this after their own enqueue committed,
 * so of any two waiting members the later one's scan sees the earlier one and pairs with it, or
 * with someone else. A lost race means another pairing committed, so the loop always progresses.
 */
export async function pairWaiting(
  deps: Coordination,
  userId: string,
  rules: MatchRules,
): Promise<Match | null> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const member = await deps.kv.get<Membership>(matchMemberKey(userId));
    if (member.value?.status !== "queuing") return null;
    const { intent, joinedAt } = member.value;
    const selfKey = matchQueueKey(intent, joinedAt, userId);
    let lost = false;
    for await (const candidate of candidates(deps.kv, selfKey, attempt > 0)) {
      const [read, [queued]] = await Promise.all([
        readPairing(deps.kv, userId, candidate.value.id),
        deps.kv.getMany<[QueueEntry]>([selfKey]),
      ]);
      if (!queued.value) return null; // paired meanwhile by someone else's scan
      const self = { entry: queued.value, queued };
      const paired = await pair(deps, self, candidate, read, rules);
      if (paired === "ineligible") continue;
      if (paired === "lost") lost = true;
      else return paired;
      break;
    }
    if (!lost) return null;
    await backoff(attempt);
  }
  // Still queued: the next joiner or the sweep pairs them.
  return null;
}

/**
 * Waiting members of the seeker's queue: first the window of those who joined just before and just
 * after, oldest first (or shuffled, after a lost race), then, if the window was not the whole
 * queue, everyone else. A short queue is one window, so it is served strictly first come, first
 * served; in a burst each joiner looks at its own neighbourhood, so joiners rarely collide.
 */
async function* candidates(
  kv: Deno.Kv,
  self: Deno.KvKey,
  shuffle: boolean,
): AsyncGenerator<Deno.KvEntry<QueueEntry>> {
  const prefix = self.slice(0, -2);
  const userId = self[self.length - 1];
  const collect = async (iterator: Deno.KvListIterator<QueueEntry>) => {
    const entries: Deno.KvEntry<QueueEntry>[] = [];
    for await (const entry of iterator) if (entry.value.id !== userId) entries.push(entry);
    return entries;
  };
  const [before, after] = await Promise.all([
    collect(kv.list({ prefix, end: self }, { reverse: true, limit: WINDOW })),
    collect(kv.list({ prefix, start: self }, { limit: WINDOW + 1 })),
  ]);
  const window = [...before.reverse(), ...after];
  if (shuffle) {
    for (let i = window.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [window[i], window[j]] = [window[j], window[i]];
    }
  }
  yield* window;
  if (before.length < WINDOW && after.length < WINDOW) return;
  const seen = new Set(window.map((entry) => entry.value.id));
  for await (const entry of kv.list<QueueEntry>({ prefix })) {
    if (entry.value.id !== userId && !seen.has(entry.value.id)) yield entry;
  }
}

/**
 * What pairing `userId` with `peerId` checks, in one getMany: both members, blocks either way, the
 * rematch cooldown, and both event heads (for the found-match events).
 */
function readPairing(kv: Deno.Kv, userId: string, peerId: string) {
  return kv.getMany<unknown[]>([
    matchMemberKey(userId),
    matchMemberKey(peerId),
    blockKey(userId, peerId),
    blockKey(peerId, userId),
    recentMatchKey(userId, peerId),
    eventHeadKey(userId),
    eventHeadKey(peerId),
  ]);
}

/**
 * Pairs the seeker with a waiting `candidate` in one commit, on what readPairing read: checked
 * against both members (and the seeker's queue entry, when `queued`: null for a seeker not in the
 * queue yet), the blocks and the cooldown, so neither can end up in two matches.
 */
async function pair(
  deps: Coordination,
  seeker: { entry: QueueEntry; queued: Deno.KvEntry<QueueEntry> | null },
  candidate: Deno.KvEntry<QueueEntry>,
  read: Deno.KvEntryMaybe<unknown>[],
  rules: MatchRules,
): Promise<Match | "ineligible" | "lost"> {
  const [member, peerMember, blockedOne, blockedTwo, recent, ...heads] = read as [
    Deno.KvEntryMaybe<Membership>,
    Deno.KvEntryMaybe<Membership>,
    Deno.KvEntryMaybe<unknown>,
    Deno.KvEntryMaybe<unknown>,
    Deno.KvEntryMaybe<{ until: number }>,
    Deno.KvEntryMaybe<number>,
    Deno.KvEntryMaybe<number>,
  ];
  const mine = seeker.entry;
  const expected = seeker.queued ? mine.joinedAt : null;
  const current = member.value?.status === "queuing" ? member.value.joinedAt : member.value;
  if (current !== expected) return "lost"; // the seeker's own state moved on
  const now = deps.now();
  const peer = candidate.value;
  const waiting = peerMember.value;
  if (
    waiting?.status !== "queuing" || waiting.joinedAt !== peer.joinedAt ||
    blockedOne.value !== null || blockedTwo.value !== null ||
    (recent.value !== null && recent.value.until > now)
  ) return "ineligible";
  // Whoever joined earlier makes the offer; on a tie, the one who was found waiting.
  const [offerer, answerer] = mine.joinedAt < peer.joinedAt ? [mine, peer] : [peer, mine];
  const match: Match = {
    id: newId(now),
    intent: mine.intent,
    offerer: { id: offerer.id, name: offerer.name, gender: offerer.gender },
    answerer: { id: answerer.id, name: answerer.name, gender: answerer.gender },
    state: "live",
    version: 1,
    startedAt: now,
    endsAt: now + rules.callDurationMs,
    endedAt: null,
    endReason: null,
    endedBy: null,
    connectAsks: [],
    connectedAt: null,
    videoRequestedBy: null,
    videoApprovedAt: null,
    videoApprovedBy: null,
  };
  const { events, records } = rules.effects({ match, action: "start", actorId: null });
  // The candidate's queue entry goes with their membership (one commit always changes both), so
  // checking the membership, read strongly, covers the entry the replica listed.
  const atomic = deps.kv.atomic()
    .check(member, peerMember, blockedOne, blockedTwo, recent)
    .delete(candidate.key)
    .set(member.key, { status: "in-call", matchId: match.id, peerId: peer.id } satisfies Membership)
    .set(
      peerMember.key,
      { status: "in-call", matchId: match.id, peerId: mine.id } satisfies Membership,
    )
    .set(matchKey(match.id), match, { expireIn: MATCH_RETENTION_MS })
    .set(matchDueKey(match.endsAt, match.id), match.id)
    .set(recent.key, { until: now + rules.cooldownMs }, { expireIn: rules.cooldownMs });
  if (seeker.queued) atomic.check(seeker.queued).delete(seeker.queued.key);
  appendEvents(atomic, heads, events, now);
  if (!(await deps.outbox.write(atomic, ...records).commit()).ok) return "lost";
  deps.outbox.afterCommit(...records);
  return match;
}

/** Takes a queued member out of the queue; false when they were not queuing. */
export async function leaveQueue(kv: Deno.Kv, userId: string): Promise<boolean> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const member = await kv.get<Membership>(matchMemberKey(userId));
    if (member.value?.status !== "queuing") return false;
    const { intent, joinedAt } = member.value;
    const committed = await kv.atomic().check(member)
      .delete(member.key)
      .delete(matchQueueKey(intent, joinedAt, userId))
      .commit();
    if (committed.ok) return true;
    await backoff(attempt);
  }
  throw busy("Your matchmaking state");
}

/** A decision on one match: the match as it will be, and what it was. */
interface Decision {
  next: Match;
  action: MatchAction;
  /** Anything else the commit decides (a connection), with its checks. */
  also?: (atomic: Deno.AtomicOperation) => ConnectionTransition | null;
}

/**
 * Reads the match, lets `decide` choose (or refuse by throwing, or return null for "nothing to
 * change"), and commits the decision checked against the match's versionstamp, with its events
 * and outbox records. A participant's decision on someone else's match gets 404.
 */
/** The two members' match memberships and event heads: what a decision on their match reads. */
function pairKeys(one: string, two: string): Deno.KvKey[] {
  return [matchMemberKey(one), matchMemberKey(two), eventHeadKey(one), eventHeadKey(two)];
}

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
    appendEvents(atomic, heads, events, now);
    if ((await deps.outbox.write(atomic, ...records).commit()).ok) {
      deps.outbox.afterCommit(...records);
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
    const atomic = deps.kv.atomic().check(entry);
    appendEvents(atomic, heads, [{
      userId: peer.id,
      type: input.type,
      data: { matchId: match.id, fromUserId: input.fromUserId, payload: input.payload },
    }], now);
    if ((await atomic.commit()).ok) return;
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

/** Everyone waiting, in every queue (the sweep checks they are still there, and pairs them). */
export async function waitingMembers(kv: Deno.Kv, limit: number) {
  const waiting: { userId: string; intent: string; joinedAt: number }[] = [];
  for await (const entry of kv.list<QueueEntry>({ prefix: [...matchQueuesPrefix()] }, { limit })) {
    waiting.push({
      userId: entry.value.id,
      intent: entry.value.intent,
      joinedAt: entry.value.joinedAt,
    });
  }
  return waiting;
}

/** How many wait in one queue (for views and tests). */
export async function queueLength(kv: Deno.Kv, intent: string): Promise<number> {
  let count = 0;
  for await (const _ of kv.list({ prefix: [...matchQueuePrefix(intent)] })) count++;
  return count;
}

export function noSuchMatch() {
  return new NotFound("No match of yours has this id.");
}

function alreadyQueued(member: { intent: string; joinedAt: number }) {
  return new Conflict(`You are already queued for "${member.intent}".`, "already-queued", {
    intent: member.intent,
    joinedAt: new Date(member.joinedAt).toISOString(),
  });
}

function inCall(matchId: string) {
  return new Conflict("You are in a call; end it before joining a queue.", "in-call", { matchId });
}

function callOver(match: Match) {
  return new Conflict("This call has ended.", "call-ended", { matchId: match.id });
}

function peerDecides(what: string) {
  return new Forbidden(`In this match, ${what} is your peer's decision.`, "peer-decides");
}
