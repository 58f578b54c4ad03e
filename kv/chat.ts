// The private-message decision: one KV commit checks that the pair may talk (connected, neither
// blocked) and that the sender's tempId is unused, gives the message the conversation's next
// sequence number, and appends its events to both users' logs, with the outbox records it causes.
import { Conflict, Forbidden, Invalid } from "../errors.ts";
import { backoff, busy } from "./backoff.ts";
import { newId } from "../ids.ts";
import { type ConnectionRequest, isBlocked } from "./graph.ts";
import { appendEvents, EVENT_RETENTION_MS, type EventDraft } from "./events.ts";
import {
  blockKey,
  chatTempKey,
  connectionPairKey,
  connectionRequestKey,
  conversationPairKey,
  eventHeadKey,
  matchMemberKey,
  presenceKey,
} from "./keys.ts";
import type { Membership } from "./matches.ts";
import type { Coordination, OutboxRecord } from "./outbox.ts";
import { type PresenceRecord, presenceStatus } from "./presence.ts";

export interface ChatMessage {
  id: string;
  conversationId: string;
  /** Position in the conversation; the order both participants see. */
  seq: number;
  fromUserId: string;
  toUserId: string;
  text: string;
  tempId: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
}

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
 * Whether two users may message each other: connected (or in a call together right now), and
 * neither blocked the other.
 */
export async function mayMessage(kv: Deno.Kv, userId: string, otherId: string): Promise<boolean> {
  if (userId === otherId || await isBlocked(kv, userId, otherId)) return false;
  const [pair, member] = await kv.getMany<[LivePair, Membership]>([
    connectionPairKey(userId, otherId),
    matchMemberKey(userId),
  ]);
  if (inCallWith(member.value, otherId)) return true;
  if (!pair.value) return false;
  const request = await kv.get<ConnectionRequest>(connectionRequestKey(pair.value.requestId));
  return request.value?.status === "accepted";
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
  const { kv } = deps;
  const { fromUserId, toUserId } = input;
  if (fromUserId === toUserId) {
    throw new Invalid("You cannot message yourself.", [
      { path: "toUserId", message: "is your own id" },
    ]);
  }
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const [temp, pair, blockedOne, blockedTwo, conversation, presence, member, ...heads] = await kv
      .getMany<
        [
          ChatMessage,
          LivePair,
          unknown,
          unknown,
          ConversationPair,
          PresenceRecord,
          Membership,
          number,
          number,
        ]
      >([
        chatTempKey(fromUserId, input.tempId),
        connectionPairKey(fromUserId, toUserId),
        blockKey(fromUserId, toUserId),
        blockKey(toUserId, fromUserId),
        conversationPairKey(fromUserId, toUserId),
        presenceKey(toUserId),
        matchMemberKey(fromUserId),
        eventHeadKey(fromUserId),
        eventHeadKey(toUserId),
      ]);
    if (temp.value) {
      if (temp.value.toUserId !== toUserId) {
        throw new Conflict(
          "temp-id-reused",
          "You already used this tempId for a message to someone else; use a new one.",
          { tempId: input.tempId },
        );
      }
      return { message: temp.value, replayed: true };
    }
    if (blockedOne.value !== null || blockedTwo.value !== null) throw notConnected();
    // Allowed by a live call together, or else by an accepted connection; the commit checks which.
    let allowedBy: Deno.KvEntryMaybe<unknown> = member;
    if (!inCallWith(member.value, toUserId)) {
      if (!pair.value) throw notConnected();
      const request = await kv.get<ConnectionRequest>(connectionRequestKey(pair.value.requestId));
      if (request.value?.status !== "accepted") throw notConnected();
      allowedBy = request;
    }

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
      .check(temp, pair, blockedOne, blockedTwo, allowedBy, conversation)
      .set(temp.key, message, { expireIn: EVENT_RETENTION_MS })
      .set(conversation.key, { conversationId: message.conversationId, lastSeq: message.seq });
    appendEvents(atomic, heads, events, now);
    deps.outbox.write(atomic, ...records);
    if ((await atomic.commit()).ok) return { message, replayed: false };
    await backoff(attempt);
  }
  throw busy("This conversation");
}
