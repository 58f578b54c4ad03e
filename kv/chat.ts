// The private-message decision: one KV commit checks that the pair may talk (chatPermission) and
// that the sender's tempId is unused, gives the message the conversation's next sequence number,
// and appends its events to both users' logs, with the outbox records it causes.
import { commitDecision } from "./decisions.ts";
import { locksOf } from "./keyed-lock.ts";
import type { ChatMessage, ConnectionRequest } from "../db/records.ts";
import { Conflict, Forbidden, Invalid } from "../errors.ts";
import { backoff, busy } from "./backoff.ts";
import { newId } from "../ids.ts";
import { EVENT_RETENTION_MS, type EventDraft } from "./events.ts";
import {
  blockKey,
  chatTempKey,
  connectionKey,
  connectionPairKey,
  connectionRequestKey,
  conversationPairKey,
  eventHeadKey,
  matchMemberKey,
  presenceKey,
} from "./keys.ts";
import type { Membership } from "./matches/match.ts";
import type { Coordination, OutboxRecord } from "./outbox.ts";
import { type PresenceRecord, presenceStatus } from "./presence.ts";
import { getAll } from "./store.ts";

/** What a connection pair key holds (see kv/graph.ts). */
interface LivePair {
  requestId: string;
}

interface ConversationPair {
  conversationId: string;
  lastSeq: number;
}

/** What a decided message causes: events for the logs and records for the outbox. */
export type MessageEffects = (
  message: ChatMessage,
  context: { recipientOnline: boolean },
) => { events: EventDraft[]; records: OutboxRecord[] };

/**
 * Commits contended by concurrent sends are retried this often before answering 409. Each round of
 * a race lets at least one send commit, so a burst of n sends into one conversation needs up to n
 * rounds: 100 covers a client flushing a 100-message backlog at once (30 did not, under load).
 */
const ATTEMPTS = 100;

/**
 * The one rule of who may message whom, for HTTP and socket sends and for typing: two different
 * users, neither blocking the other, who are in a call together right now or whose connection
 * request was accepted (a pending one allows nothing). Returns the entries the answer rests on, so
 * a commit that relies on it checks them.
 */
export async function chatPermission(
  kv: Deno.Kv,
  userId: string,
  otherId: string,
): Promise<Permission> {
  if (userId === otherId) return { allowed: false, readFrom: [] };
  return await permissionFrom(kv, await kv.getMany(permissionKeys(userId, otherId)));
}

type Permission = { allowed: boolean; readFrom: Deno.KvEntryMaybe<unknown>[] };

/** What chatPermission reads, in one getMany (a send reads them with its own keys, in one). */
const permissionKeys = (userId: string, otherId: string) => [
  connectionKey(userId, otherId),
  blockKey(userId, otherId),
  blockKey(otherId, userId),
  matchMemberKey(userId),
  connectionPairKey(userId, otherId),
];

async function permissionFrom(kv: Deno.Kv, read: Deno.KvEntryMaybe<unknown>[]) {
  const [connected, blockedOne, blockedTwo, member, pair] = read as [
    Deno.KvEntryMaybe<unknown>,
    Deno.KvEntryMaybe<unknown>,
    Deno.KvEntryMaybe<unknown>,
    Deno.KvEntryMaybe<Membership>,
    Deno.KvEntryMaybe<LivePair>,
  ];
  if (blockedOne.value !== null || blockedTwo.value !== null) {
    return { allowed: false, readFrom: read };
  }
  const otherId = String(connected.key.at(-1));
  if (inCallWith(member.value, otherId)) return { allowed: true, readFrom: read };
  // The connection index (written by the commit that accepts, removed by the one that ends it).
  if (connected.value !== null) return { allowed: true, readFrom: read };
  // A connection from before the index existed, until the start-up fill reaches it.
  if (!pair.value) return { allowed: false, readFrom: read };
  const request = await kv.get<ConnectionRequest>(connectionRequestKey(pair.value.requestId));
  return { allowed: request.value?.status === "accepted", readFrom: [...read, request] };
}

export async function mayMessage(kv: Deno.Kv, userId: string, otherId: string): Promise<boolean> {
  return (await chatPermission(kv, userId, otherId)).allowed;
}

const inCallWith = (member: Membership | null, otherId: string) =>
  member?.status === "in-call" && member.peerId === otherId;

export function notConnected() {
  return new Forbidden(
    "You can message only your connections (accepted connection requests) and the member you " +
      "are in a call with.",
    "not-connected",
  );
}

/**
 * Decides a message from `fromUserId` to `toUserId`. A tempId the sender already used for this
 * recipient returns that message (`replayed`) and stores nothing.
 */
export async function sendPrivateMessage(
  deps: Coordination,
  input: { fromUserId: string; toUserId: string; tempId: string; text: string },
  effects: MessageEffects,
): Promise<{ message: ChatMessage; replayed: boolean }> {
  const { fromUserId, toUserId } = input;
  if (fromUserId === toUserId) {
    throw new Invalid("You cannot message yourself.", [
      { path: "toUserId", message: "is your own id" },
    ]);
  }
  // Both sides of a conversation write its key and both event heads: this isolate's sends of one
  // conversation take turns (rule 5) instead of losing commits to each other and backing off.
  const turn = [fromUserId, toUserId].sort().join("/");
  return await locksOf(deps.outbox).run(`chat:${turn}`, () => decide(deps, input, effects));
}

async function decide(
  deps: Coordination,
  input: { fromUserId: string; toUserId: string; tempId: string; text: string },
  effects: MessageEffects,
): Promise<{ message: ChatMessage; replayed: boolean }> {
  const { kv } = deps;
  const { fromUserId, toUserId } = input;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    // One read for the whole decision: the send's own keys and the permission's (ten keys, at
    // getMany's limit: getAll sends more as batches at once, should a rule add one).
    const read = await getAll(kv, [
      chatTempKey(fromUserId, input.tempId),
      conversationPairKey(fromUserId, toUserId),
      presenceKey(toUserId),
      eventHeadKey(fromUserId),
      eventHeadKey(toUserId),
      ...permissionKeys(fromUserId, toUserId),
    ]);
    const [temp, conversation, presence, ...heads] = read.slice(0, 5) as [
      Deno.KvEntryMaybe<ChatMessage>,
      Deno.KvEntryMaybe<ConversationPair>,
      Deno.KvEntryMaybe<PresenceRecord>,
      Deno.KvEntryMaybe<number>,
      Deno.KvEntryMaybe<number>,
    ];
    const permission = await permissionFrom(kv, read.slice(5));
    if (temp.value) {
      if (temp.value.toUserId !== toUserId) {
        throw new Conflict(
          "You already used this tempId for a message to someone else; use a new one.",
          "temp-id-reused",
          { tempId: input.tempId },
        );
      }
      return { message: temp.value, replayed: true };
    }
    if (!permission.allowed) throw notConnected();

    const now = deps.now();
    const message: ChatMessage = {
      id: newId(now),
      conversationId: conversation.value?.conversationId ?? newId(now),
      seq: (conversation.value?.lastSeq ?? 0) + 1,
      ...input,
      createdAt: now,
    };
    const { events, records } = effects(message, {
      recipientOnline: presenceStatus(presence.value, now) !== "offline",
    });
    const atomic = kv.atomic()
      .check(temp, conversation, ...permission.readFrom)
      .set(temp.key, message, { expireIn: EVENT_RETENTION_MS })
      .set(conversation.key, { conversationId: message.conversationId, lastSeq: message.seq });
    if (await commitDecision(deps, atomic, { events, heads, at: now, records })) {
      return { message, replayed: false };
    }
    await backoff(attempt);
  }
  throw busy("This conversation");
}
