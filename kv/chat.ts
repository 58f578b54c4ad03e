// The private-message decision: one KV commit checks that the pair may talk (chatPermission) and
// that the sender's tempId is unused, gives the message the conversation's next sequence number,
// and appends its events to both users' logs, with the outbox records it causes.
import { commitDecision } from "./decisions.ts";
import { locksOf } from "./keyed-lock.ts";
import type { ChatMessage, ConnectionRequest } from "../db/records.ts";
import { Conflict, Forbidden, Invalid } from "../errors.ts";
import { backoff, busy } from "./backoff.ts";
import { newId } from "../ids.ts";
import { EVENT_RETENTION_MS, type EventDraft, headSeq } from "./events.ts";
import {
  attachmentKey,
  blockKey,
  chatTempKey,
  connectionKey,
  connectionPairKey,
  connectionRequestKey,
  conversationPairKey,
  eventHeadKey,
  matchMemberKey,
  memberStandingKey,
  presenceKey,
} from "./keys.ts";
import type { Membership } from "./matches/match.ts";
import type { Coordination, OutboxRecord } from "./outbox.ts";
import { type PresenceRecord, presenceStatus } from "./presence.ts";
import { ofApp, Remembered } from "./remembered.ts";
import { getAll } from "./store.ts";
import { type AttachmentRecord, attachmentsToSend } from "./attachments.ts";
import { suspended, type Suspension } from "./moderation.ts";

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

type Permission = {
  allowed: boolean;
  readFrom: Deno.KvEntryMaybe<unknown>[];
  /** The sender is suspended (see kv/moderation.ts). */
  suspended?: boolean;
};

/** What chatPermission reads, in one getMany (a send reads them with its own keys, in one). */
const permissionKeys = (userId: string, otherId: string) => [
  connectionKey(userId, otherId),
  blockKey(userId, otherId),
  blockKey(otherId, userId),
  matchMemberKey(userId),
  connectionPairKey(userId, otherId),
  memberStandingKey(userId),
];

async function permissionFrom(
  kv: Deno.Kv,
  read: Deno.KvEntryMaybe<unknown>[],
  now = Date.now(),
): Promise<Permission> {
  const [connected, blockedOne, blockedTwo, member, pair, standing] = read as [
    Deno.KvEntryMaybe<unknown>,
    Deno.KvEntryMaybe<unknown>,
    Deno.KvEntryMaybe<unknown>,
    Deno.KvEntryMaybe<Membership>,
    Deno.KvEntryMaybe<LivePair>,
    Deno.KvEntryMaybe<Suspension>,
  ];
  // A suspended member sends nothing: a send's commit checks this entry with the rest.
  if (suspended(standing.value, now)) return { allowed: false, readFrom: read, suspended: true };
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

export function accountSuspended() {
  return new Forbidden("Your account is suspended: you cannot send messages.", "account-suspended");
}

export function notConnected() {
  return new Forbidden(
    "You can message only your connections (accepted connection requests) and the member you " +
      "are in a call with.",
    "not-connected",
  );
}

export interface MessageInput {
  fromUserId: string;
  toUserId: string;
  tempId: string;
  text: string;
  /** Private files uploaded by the sender (see kv/attachments.ts), each sent once. */
  attachmentIds?: string[];
}

/**
 * Decides a message from `fromUserId` to `toUserId`. A tempId the sender already used for this
 * recipient returns that message (`replayed`) and stores nothing.
 */
export async function sendPrivateMessage(
  deps: Coordination,
  input: MessageInput,
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
  return await locksOf(deps.outbox).run(`chat:${turn}`, () => decide(deps, input, effects, turn));
}

/**
 * What this isolate last knew of a conversation's checked keys, as entries with their
 * versionstamps: the send after a successful one decides on them and goes straight to its commit,
 * whose checks refuse it if any of them changed since (a block, a send from another isolate, any
 * event in either log); that send then reads afresh. So a conversation's sends in one isolate
 * cost one round trip each, not two. The conversation and both event heads are the pair's (either
 * side's send writes them); the permission's keys are each sender's own.
 */
interface Known {
  /** The conversation key and both users' event heads, as the last commit here left them. */
  state: Map<string, Deno.KvEntryMaybe<unknown>>;
  /** Per sender: the permission's entries as last read (see permissionKeys). */
  permissions: Map<string, Deno.KvEntryMaybe<unknown>[]>;
}

/** Conversations an isolate remembers at most; the oldest are forgotten first. */
const REMEMBERED_CONVERSATIONS = 10_000;

const knownOf = new WeakMap<object, Remembered<string, Known>>();

/** What this isolate's app (found by its outbox, see ofApp) knows of the conversation `turn`. */
function knownFor(owner: object, turn: string): Known {
  const conversations = ofApp(knownOf, owner, () => new Remembered(REMEMBERED_CONVERSATIONS));
  let known = conversations.get(turn);
  if (!known) conversations.set(turn, known = { state: new Map(), permissions: new Map() });
  return known;
}

/** The keys a send checks besides its tempId: the conversation, both heads, the permission's. */
const checkedKeys = (fromUserId: string, toUserId: string) => [
  conversationPairKey(fromUserId, toUserId),
  eventHeadKey(fromUserId),
  eventHeadKey(toUserId),
  ...permissionKeys(fromUserId, toUserId),
];

/** The checked entries from memory, in checkedKeys' order, or null when any is unknown. */
function recall(known: Known, keys: Deno.KvKey[], fromUserId: string) {
  const permission = known.permissions.get(fromUserId);
  const state = keys.slice(0, 3).map((key) => known.state.get(JSON.stringify(key)));
  if (!permission || state.some((entry) => !entry)) return null;
  return [...state as Deno.KvEntryMaybe<unknown>[], ...permission];
}

async function decide(
  deps: Coordination,
  input: MessageInput,
  effects: MessageEffects,
  turn: string,
): Promise<{ message: ChatMessage; replayed: boolean }> {
  const { kv } = deps;
  const { fromUserId, toUserId, attachmentIds = [], ...fields } = input;
  const known = knownFor(deps.outbox, turn);
  const tempKey = chatTempKey(fromUserId, input.tempId);
  const keys = checkedKeys(fromUserId, toUserId);
  const fileKeys = attachmentIds.map(attachmentKey);
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const recalled = recall(known, keys, fromUserId);
    // Forgotten unless this attempt commits: a refused commit means something changed.
    known.state.clear();
    known.permissions.delete(fromUserId);
    // The recipient's presence only chooses whether to notify: the nearest replica answers it,
    // beside the decision's own read.
    const presence = kv.get<PresenceRecord>(presenceKey(toUserId), { consistency: "eventual" });
    // A send that ends before needing it (refused, replayed) leaves its failure unawaited.
    presence.catch(() => {});
    // One read for the whole decision (ten keys, and the attachments': getAll sends more than
    // getMany's limit as batches at once), or, when this isolate knows the rest, one of the
    // attachments alone (none without them): a tempId it has not seen is taken to be unused, and
    // the commit checks that it still is.
    const read = recalled
      ? [
        { key: tempKey, value: null, versionstamp: null },
        ...recalled,
        ...fileKeys.length > 0 ? await getAll(kv, fileKeys) : [],
      ]
      : await getAll(kv, [tempKey, ...keys, ...fileKeys]);
    const [temp, ...checked] = read.slice(0, read.length - fileKeys.length);
    const fileEntries = read.slice(read.length - fileKeys.length) as Deno.KvEntryMaybe<
      AttachmentRecord
    >[];
    const [conversation, ...heads] = checked.slice(0, 3) as [
      Deno.KvEntryMaybe<ConversationPair>,
      Deno.KvEntryMaybe<number>,
      Deno.KvEntryMaybe<number>,
    ];
    const permission = await permissionFrom(kv, checked.slice(3), deps.now());
    if (temp.value) {
      const used = temp.value as ChatMessage;
      if (used.toUserId !== toUserId) {
        throw new Conflict(
          "You already used this tempId for a message to someone else; use a new one.",
          "temp-id-reused",
          { tempId: input.tempId },
        );
      }
      return { message: used, replayed: true };
    }
    if (permission.suspended) throw accountSuspended();
    if (!permission.allowed) throw notConnected();
    const files = attachmentsToSend(fileEntries, fromUserId);

    const now = deps.now();
    const message: ChatMessage = {
      id: newId(now),
      conversationId: conversation.value?.conversationId ?? newId(now),
      seq: (conversation.value?.lastSeq ?? 0) + 1,
      fromUserId,
      toUserId,
      ...fields,
      createdAt: now,
      ...(files.length > 0 && {
        attachments: files.map(({ value: { id, name, contentType, size } }) => ({
          id,
          name,
          contentType,
          size,
        })),
      }),
    };
    const { events, records } = effects(message, {
      recipientOnline: presenceStatus((await presence).value, now) !== "offline",
    });
    const pair: ConversationPair = { conversationId: message.conversationId, lastSeq: message.seq };
    const atomic = kv.atomic()
      .check(temp, conversation, ...permission.readFrom, ...files)
      .set(temp.key, message, { expireIn: EVENT_RETENTION_MS })
      .set(conversation.key, pair);
    const sent = {
      conversationId: message.conversationId,
      messageId: message.id,
      memberIds: [fromUserId, toUserId] as [string, string],
    };
    for (const file of files) atomic.set(file.key, { ...file.value, sent });
    const committed = await commitDecision(deps, atomic, {
      events,
      heads,
      at: now,
      records,
      operation: "chat.send",
    });
    if (committed) {
      // What this commit wrote is what the conversation's next send here checks.
      const { versionstamp } = committed;
      const written = (key: Deno.KvKey, value: unknown) => ({ key, value, versionstamp });
      known.state.set(JSON.stringify(conversation.key), written(conversation.key, pair));
      for (const head of heads) {
        const appended = events.filter((event) => event.userId === head.key[1]).length;
        known.state.set(
          JSON.stringify(head.key),
          appended > 0 ? written(head.key, headSeq(head) + appended) : head,
        );
      }
      // A permission resting on more than its keys (an old connection request) is read again.
      if (permission.readFrom.length === checked.length - 3) {
        known.permissions.set(fromUserId, permission.readFrom);
      }
      return { message, replayed: false };
    }
    await backoff(attempt);
  }
  throw busy("This conversation");
}
