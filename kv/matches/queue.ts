// The matchmaking queue in KV: who waits in which intent queue, and pairing. Pairing is one
// commit that takes both members out of the queue and puts them in the same match, checked against
// both members' entries, so nobody is ever in two matches.
import { commitDecision } from "../decisions.ts";
import { locksOf } from "../keyed-lock.ts";
import { ofApp } from "../remembered.ts";
import { getAll } from "../store.ts";
import type { Match, Participant } from "../../db/records.ts";
import { newId } from "../../ids.ts";
import { backoff, busy } from "../backoff.ts";
import {
  blockKey,
  eventHeadKey,
  matchDueKey,
  matchKey,
  matchMemberKey,
  matchQueueKey,
  matchQueuePrefix,
  matchQueuesPrefix,
  recentMatchKey,
} from "../keys.ts";
import type { Coordination } from "../outbox.ts";
import { endMatch } from "./calls.ts";
import {
  alreadyQueued,
  ATTEMPTS,
  inCall,
  MATCH_RETENTION_MS,
  type MatchRules,
  type Membership,
  type QueueEntry,
} from "./match.ts";

/** Pairing first tries the members who joined just before and after: this many on each side. */
const WINDOW = 16;

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
  const together = await joinTogether(deps, seeker, intent, rules, inTurn);
  if (together) return { match: together, ended: null };
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
    const paired = await pair(
      deps,
      { entry: self, queued: null },
      { entry: peer.value, queued: peer },
      reads[index],
      rules,
    );
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
      const read = await readPairing(deps.kv, userId, candidate.value.id, selfKey);
      const queued = read[PAIRING_KEYS] as Deno.KvEntryMaybe<QueueEntry>;
      if (!queued.value) return null; // paired meanwhile by someone else's scan
      const self = { entry: queued.value, queued: queued as Deno.KvEntry<QueueEntry> };
      const paired = await pair(
        deps,
        self,
        { entry: candidate.value, queued: candidate },
        read,
        rules,
      );
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

/** The keys readPairing reads before `also`. */
const PAIRING_KEYS = 7;

/**
 * What pairing `userId` with `peerId` checks, in one getMany: both members, blocks either way, the
 * rematch cooldown, and both event heads (for the found-match events); then `also` (a queued
 * seeker's own queue entry).
 */
function readPairing(kv: Deno.Kv, userId: string, peerId: string, ...also: Deno.KvKey[]) {
  return kv.getMany<unknown[]>([
    matchMemberKey(userId),
    matchMemberKey(peerId),
    blockKey(userId, peerId),
    blockKey(peerId, userId),
    recentMatchKey(userId, peerId),
    eventHeadKey(userId),
    eventHeadKey(peerId),
    ...also,
  ]);
}

/** One side of a pairing: the member, and their queue entry (null for one not queued yet). */
interface Side {
  entry: QueueEntry;
  queued: Deno.KvEntry<QueueEntry> | null;
}

/**
 * Pairs the seeker with `candidate` in one commit, on what readPairing read: checked against both
 * members (each queued as `queued` says, or not in the queue yet), the blocks and the cooldown, so
 * neither can end up in two matches.
 */
async function pair(
  deps: Coordination,
  seeker: Side,
  candidate: Side,
  read: Deno.KvEntryMaybe<unknown>[],
  rules: MatchRules,
): Promise<Match | "ineligible" | "lost"> {
  const [member, peerMember, blockedOne, blockedTwo, recent, ...heads] = read.slice(
    0,
    PAIRING_KEYS,
  ) as [
    Deno.KvEntryMaybe<Membership>,
    Deno.KvEntryMaybe<Membership>,
    Deno.KvEntryMaybe<unknown>,
    Deno.KvEntryMaybe<unknown>,
    Deno.KvEntryMaybe<{ until: number }>,
    Deno.KvEntryMaybe<number>,
    Deno.KvEntryMaybe<number>,
  ];
  const mine = seeker.entry;
  if (!asExpected(seeker, member.value)) return "lost"; // the seeker's own state moved on
  const now = deps.now();
  const peer = candidate.entry;
  if (
    !asExpected(candidate, peerMember.value) ||
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
    .set(member.key, { status: "in-call", matchId: match.id, peerId: peer.id } satisfies Membership)
    .set(
      peerMember.key,
      { status: "in-call", matchId: match.id, peerId: mine.id } satisfies Membership,
    )
    .set(matchKey(match.id), match, { expireIn: MATCH_RETENTION_MS })
    .set(matchDueKey(match.endsAt, match.id), match.id)
    .set(recent.key, { until: now + rules.cooldownMs }, { expireIn: rules.cooldownMs });
  if (seeker.queued) atomic.check(seeker.queued).delete(seeker.queued.key);
  if (candidate.queued) atomic.delete(candidate.queued.key);
  if (
    !(await commitDecision(deps, atomic, {
      events,
      heads,
      at: now,
      records,
      operation: "match.pair",
    }))
  ) return "lost";
  return match;
}

/** Whether a side's membership is what pairing it expects: queuing as listed, or none yet. */
function asExpected(side: Side, membership: Membership | null): boolean {
  if (!side.queued) return membership === null;
  return membership?.status === "queuing" && membership.joinedAt === side.entry.joinedAt;
}

/** A joiner waiting for its isolate's next turn on its intent's queue. */
interface Arrival extends PromiseWithResolvers<Match | null> {
  seeker: QueueEntry;
}

const arrivals = new WeakMap<object, Map<string, Arrival[]>>();

/**
 * In a burst, an isolate's joiners of one intent are paired with each other in batches: the turn
 * that comes first takes everyone who arrived while the turn before it ran, and pairs them in three
 * round trips however many they are (their memberships and the queue's oldest waiting members,
 * then each pair's checks, then each pair's commit), instead of three or more each, one after
 * another. The oldest waiting members are served first. Returns the match, or null to join alone
 * (nobody to pair with, a pairing that was ineligible or lost, or a member already in a call).
 */
async function joinTogether(
  deps: Coordination,
  participant: Participant,
  intent: string,
  rules: MatchRules,
  inTurn: (work: () => Promise<void>) => Promise<void>,
): Promise<Match | null> {
  const pending = ofApp(arrivals, deps.outbox, () => new Map<string, Arrival[]>());
  const arrival: Arrival = {
    seeker: { ...participant, intent, joinedAt: deps.now() },
    ...Promise.withResolvers<Match | null>(),
  };
  let waiting = pending.get(intent);
  if (!waiting) pending.set(intent, waiting = []);
  waiting.push(arrival);
  await inTurn(async () => {
    const batch = pending.get(intent) ?? [];
    pending.delete(intent);
    try {
      if (batch.length > 1) await pairArrivals(deps, intent, batch, rules);
    } catch (error) {
      for (const each of batch) each.reject(error);
    }
    for (const each of batch) each.resolve(null); // those not settled join alone
  });
  return await arrival.promise;
}

/** A pairing a batch tries: the arrivals it settles when it commits. */
interface Attempt {
  seeker: Side;
  candidate: Side;
  arrivals: Arrival[];
}

/**
 * Pairs a batch of arrivals (see joinTogether), settling those it pairs with their match and
 * refusing those already queued; the rest are left to join alone.
 */
async function pairArrivals(
  deps: Coordination,
  intent: string,
  batch: Arrival[],
  rules: MatchRules,
) {
  const ids = new Set<string>();
  const distinct = batch.filter((arrival) =>
    !ids.has(arrival.seeker.id) && ids.add(arrival.seeker.id)
  );
  const waiting: Deno.KvEntry<QueueEntry>[] = [];
  const listed = deps.kv.list<QueueEntry>({ prefix: matchQueuePrefix(intent) }, {
    limit: distinct.length,
    consistency: "eventual",
  });
  const [members] = await Promise.all([
    getAll<(Membership | null)[]>(
      deps.kv,
      distinct.map((arrival) => matchMemberKey(arrival.seeker.id)),
    ),
    (async () => {
      for await (const entry of listed) if (!ids.has(entry.value.id)) waiting.push(entry);
    })(),
  ]);
  const free: Arrival[] = [];
  for (const [index, arrival] of distinct.entries()) {
    const member = members[index].value;
    if (member?.status === "queuing") arrival.reject(alreadyQueued(member));
    else if (member === null) free.push(arrival);
  }
  // The oldest waiting members first, then the arrivals with each other, in the order they came
  // (the earlier one as the candidate, so it makes the offer).
  const fresh = (arrival: Arrival): Side => ({ entry: arrival.seeker, queued: null });
  const attempts: Attempt[] = [];
  let next = 0;
  for (const queued of waiting) {
    if (next === free.length) break;
    const arrival = free[next++];
    attempts.push({
      seeker: fresh(arrival),
      candidate: { entry: queued.value, queued },
      arrivals: [arrival],
    });
  }
  for (; next + 1 < free.length; next += 2) {
    const [first, second] = [free[next], free[next + 1]];
    attempts.push({ seeker: fresh(second), candidate: fresh(first), arrivals: [first, second] });
  }
  await Promise.all(attempts.map(async ({ seeker, candidate, arrivals }) => {
    try {
      const read = await readPairing(deps.kv, seeker.entry.id, candidate.entry.id);
      const paired = await pair(deps, seeker, candidate, read, rules);
      if (typeof paired === "string") return; // ineligible or lost: they join alone
      for (const arrival of arrivals) arrival.resolve(paired);
    } catch (error) {
      for (const arrival of arrivals) arrival.reject(error);
    }
  }));
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
