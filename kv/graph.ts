// Connection requests and blocks: the live state of every pair, decided by versionstamp-checked
// KV commits. Postgres learns about each decision through the outbox records written with it.
import { commitDecision } from "./decisions.ts";
import type { ConnectionRequest, ConnectionTransition as Transition } from "../db/records.ts";
import { Conflict, Forbidden, NotFound } from "../errors.ts";
import { newId } from "../ids.ts";
import type { Coordination, OutboxRecord } from "./outbox.ts";
import { busy as contended } from "./backoff.ts";
import {
  blockKey,
  connectionKey,
  connectionPairKey,
  connectionPrefix,
  connectionRequestKey,
} from "./keys.ts";

/** What a pair's key holds while a request between them is pending or accepted. */
interface LivePair {
  requestId: string;
}

/** The outbox records a transition must cause, written into the commit that decides it. */
export type Effects = (transition: Transition) => OutboxRecord[];

/** Commits contended by concurrent requests are retried this often before giving up. */
const ATTEMPTS = 20;

/** Records in a commit that two users are connected (or no longer are), in both directions. */
function indexConnection(atomic: Deno.AtomicOperation, a: string, b: string, connected: boolean) {
  for (const [userId, otherId] of [[a, b], [b, a]]) {
    if (connected) atomic.set(connectionKey(userId, otherId), true);
    else atomic.delete(connectionKey(userId, otherId));
  }
}

/**
 * Presence is visible between connections only: the users who see `userId`'s presence, who are
 * also the only users whose presence `userId` may see (a connection is mutual). The socket
 * announcements and GET /api/presence both ask this. Read from the nearest replica: a connection
 * made a moment ago may be missing from it for that moment.
 */
export async function presencePeers(kv: Deno.Kv, userId: string): Promise<Set<string>> {
  const peers = new Set<string>();
  const entries = kv.list({ prefix: [...connectionPrefix(userId)] }, { consistency: "eventual" });
  for await (const entry of entries) peers.add(entry.key.at(-1) as string);
  return peers;
}

/**
 * Adds a connection made before the index existed (a one-time migration), if the pair is still
 * connected when the commit lands; idempotent.
 */
export async function indexConnectionIfLive(kv: Deno.Kv, userId: string, otherId: string) {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const pair = await kv.get<LivePair>(connectionPairKey(userId, otherId));
    if (!pair.value) return;
    const request = await kv.get<ConnectionRequest>(connectionRequestKey(pair.value.requestId));
    if (request.value?.status !== "accepted") return;
    const atomic = kv.atomic().check(pair, request);
    indexConnection(atomic, userId, otherId, true);
    if ((await atomic.commit()).ok) return;
  }
  throw busy();
}

/** Either user blocked the other. */
export async function isBlocked(kv: Deno.Kv, userId: string, otherId: string): Promise<boolean> {
  const [one, two] = await kv.getMany([blockKey(userId, otherId), blockKey(otherId, userId)]);
  return one.value !== null || two.value !== null;
}

/**
 * Sends a request from `fromUserId` to `toUserId`. At most one request per unordered pair is
 * pending or accepted: when A→B and B→A race, one commit wins and every other gets 409.
 */
export async function sendConnectionRequest(
  deps: Coordination,
  input: { fromUserId: string; toUserId: string; message: string | null },
  effects: Effects,
): Promise<Transition> {
  const pairKey = connectionPairKey(input.fromUserId, input.toUserId);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const [pair, blockedOne, blockedTwo] = await deps.kv.getMany<[LivePair, unknown, unknown]>([
      pairKey,
      blockKey(input.fromUserId, input.toUserId),
      blockKey(input.toUserId, input.fromUserId),
    ]);
    if (blockedOne.value !== null || blockedTwo.value !== null) throw noSuchUser();
    if (pair.value) throw await pairTaken(deps.kv, pair.value.requestId);
    const now = deps.now();
    const request: ConnectionRequest = {
      id: newId(now),
      ...input,
      status: "pending",
      version: 1,
      createdAt: now,
      updatedAt: now,
    };
    const transition: Transition = { request, from: null, actorId: input.fromUserId };
    const records = effects(transition);
    const atomic = deps.kv.atomic().check(pair, blockedOne, blockedTwo)
      .set(pairKey, { requestId: request.id } satisfies LivePair)
      .set(connectionRequestKey(request.id), request);
    if (!(await commitDecision(deps, atomic, { records, operation: "connection.request" }))) {
      continue;
    }
    return transition;
  }
  throw busy();
}

const MOVES: Record<string, { by: "recipient" | "sender" }> = {
  accepted: { by: "recipient" },
  rejected: { by: "recipient" },
  withdrawn: { by: "sender" },
};

/**
 * Moves a pending request to accepted or rejected (recipient only) or withdrawn (sender only).
 * Anyone but the two users gets 404; a request that is no longer pending gets 409.
 */
export async function moveConnectionRequest(
  deps: Coordination,
  input: { requestId: string; actorId: string; to: "accepted" | "rejected" | "withdrawn" },
  effects: Effects,
): Promise<Transition> {
  const key = connectionRequestKey(input.requestId);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    // Who sent it to whom never changes: the nearest replica names the pair's key, so the request
    // and the pair come in one strong read (a replica without it yet: two reads).
    const known = (await deps.kv.get<ConnectionRequest>(key, { consistency: "eventual" })).value;
    const knownPair = known ? connectionPairKey(known.fromUserId, known.toUserId) : null;
    const keys: Deno.KvKey[] = knownPair ? [key, knownPair] : [key];
    const [entry, readPair] = await deps.kv.getMany(keys) as [
      Deno.KvEntryMaybe<ConnectionRequest>,
      Deno.KvEntryMaybe<LivePair> | undefined,
    ];
    const request = entry.value;
    if (!request || ![request.fromUserId, request.toUserId].includes(input.actorId)) {
      throw new NotFound("No connection request of yours has this id.");
    }
    const mover = MOVES[input.to].by === "recipient" ? request.toUserId : request.fromUserId;
    if (input.actorId !== mover) {
      throw new Forbidden(
        MOVES[input.to].by === "recipient"
          ? "Only the recipient may accept or reject a request."
          : "Only the sender may withdraw a request.",
      );
    }
    if (request.status !== "pending") {
      throw new Conflict(`This request is already ${request.status}.`, "not-pending", {
        requestStatus: request.status,
      });
    }
    const pairKey = connectionPairKey(request.fromUserId, request.toUserId);
    const pair = readPair ?? await deps.kv.get<LivePair>(pairKey);
    const next = {
      ...request,
      status: input.to,
      version: request.version + 1,
      updatedAt: deps.now(),
    };
    const transition: Transition = { request: next, from: request.status, actorId: input.actorId };
    const records = effects(transition);
    const atomic = deps.kv.atomic().check(entry, pair).set(entry.key, next);
    // Accepted keeps the pair taken; a finished request frees it for a new one.
    if (input.to !== "accepted" && pair.value?.requestId === request.id) atomic.delete(pairKey);
    if (input.to === "accepted") {
      indexConnection(atomic, request.fromUserId, request.toUserId, true);
    }
    if (!(await commitDecision(deps, atomic, { records, operation: "connection.move" }))) continue;
    return transition;
  }
  throw busy();
}

/**
 * `blockerId` blocks `blockedId` (idempotent). A pending or accepted request between them ends
 * in the same commit, so nothing can slip in between the block and the end of the connection.
 */
export async function placeBlock(
  deps: Coordination,
  input: { blockerId: string; blockedId: string },
  effects: { block: () => OutboxRecord[]; transition: Effects },
): Promise<void> {
  const key = blockKey(input.blockerId, input.blockedId);
  const pairKey = connectionPairKey(input.blockerId, input.blockedId);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const [block, pair] = await deps.kv.getMany<[{ at: number }, LivePair]>([key, pairKey]);
    if (block.value) return;
    const now = deps.now();
    const atomic = deps.kv.atomic().check(block, pair).set(key, { at: now });
    const records = effects.block();
    if (pair.value) {
      const entry = await deps.kv.get<ConnectionRequest>(
        connectionRequestKey(pair.value.requestId),
      );
      if (entry.value) {
        const next = {
          ...entry.value,
          status: "ended" as const,
          version: entry.value.version + 1,
          updatedAt: now,
        };
        records.push(
          ...effects.transition({
            request: next,
            from: entry.value.status,
            actorId: input.blockerId,
          }),
        );
        atomic.check(entry).set(entry.key, next);
      }
      atomic.delete(pairKey);
      indexConnection(atomic, input.blockerId, input.blockedId, false);
    }
    if (!(await commitDecision(deps, atomic, { records, operation: "block.place" }))) continue;
    return;
  }
  throw busy();
}

/** Lifts a block placed by `blockerId`; false when there was none. */
export async function liftBlock(
  deps: Coordination,
  input: { blockerId: string; blockedId: string },
  effects: () => OutboxRecord[],
): Promise<boolean> {
  const key = blockKey(input.blockerId, input.blockedId);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const block = await deps.kv.get(key);
    if (block.value === null) return false;
    const records = effects();
    const atomic = deps.kv.atomic().check(block).delete(key);
    if (!(await commitDecision(deps, atomic, { records, operation: "block.lift" }))) continue;
    return true;
  }
  throw busy();
}

/** What deciding "these two are connected" inside a larger commit has to read and check. */
export interface PairState {
  pair: Deno.KvEntryMaybe<LivePair>;
  blocks: Deno.KvEntryMaybe<unknown>[];
  /** The pending or accepted request the pair key points at, if any. */
  request: Deno.KvEntryMaybe<ConnectionRequest> | null;
}

export async function readPair(kv: Deno.Kv, userId: string, otherId: string): Promise<PairState> {
  const [pair, ...blocks] = await kv.getMany<[LivePair, unknown, unknown]>([
    connectionPairKey(userId, otherId),
    blockKey(userId, otherId),
    blockKey(otherId, userId),
  ]);
  const request = pair.value
    ? await kv.get<ConnectionRequest>(connectionRequestKey(pair.value.requestId))
    : null;
  return { pair, blocks, request };
}

export const pairBlocked = (state: PairState) => state.blocks.some((block) => block.value !== null);

/**
 * Adds "`actorId` and `otherId` are connected" to a commit under construction (a match whose
 * participants consented): a pending request between them is accepted, or an accepted request
 * is created. Checks everything it read, so a block or request racing it fails the commit.
 * Returns the transition to record, or null when they were connected already.
 */
export function acceptPair(
  atomic: Deno.AtomicOperation,
  state: PairState,
  input: { actorId: string; otherId: string; now: number },
): Transition | null {
  atomic.check(state.pair, ...state.blocks);
  const current = state.request?.value;
  if (state.request) atomic.check(state.request);
  if (current?.status === "accepted") return null;
  indexConnection(atomic, input.actorId, input.otherId, true);
  if (current) {
    const request = {
      ...current,
      status: "accepted" as const,
      version: current.version + 1,
      updatedAt: input.now,
    };
    atomic.set(state.request!.key, request);
    return { request, from: current.status, actorId: input.actorId };
  }
  const request: ConnectionRequest = {
    id: newId(input.now),
    fromUserId: input.actorId,
    toUserId: input.otherId,
    message: null,
    status: "accepted",
    version: 1,
    createdAt: input.now,
    updatedAt: input.now,
  };
  atomic.set(state.pair.key, { requestId: request.id } satisfies LivePair)
    .set(connectionRequestKey(request.id), request);
  return { request, from: null, actorId: input.actorId };
}

/** The current state of a request, for its participants only. */
export async function readConnectionRequest(
  kv: Deno.Kv,
  requestId: string,
  userId: string,
): Promise<ConnectionRequest> {
  const { value } = await kv.get<ConnectionRequest>(connectionRequestKey(requestId));
  if (!value || ![value.fromUserId, value.toUserId].includes(userId)) {
    throw new NotFound("No connection request of yours has this id.");
  }
  return value;
}

/** The pending or accepted request between two users, if any. */
export async function livePairRequest(
  kv: Deno.Kv,
  userId: string,
  otherId: string,
): Promise<ConnectionRequest | null> {
  const pair = await kv.get<LivePair>(connectionPairKey(userId, otherId));
  if (!pair.value) return null;
  return (await kv.get<ConnectionRequest>(connectionRequestKey(pair.value.requestId))).value;
}

async function pairTaken(kv: Deno.Kv, requestId: string) {
  const { value } = await kv.get<ConnectionRequest>(connectionRequestKey(requestId));
  const status = value?.status ?? "pending";
  return new Conflict(
    status === "accepted"
      ? "You are already connected."
      : "A connection request between you is already pending.",
    "connection-exists",
    { requestId, requestStatus: status, fromUserId: value?.fromUserId },
  );
}

export function noSuchUser() {
  return new NotFound("No member has this id.");
}

const busy = () => contended("This pair");
