// Conversations and messages: stored as KV decided them, listed with unread counts, read receipts.
import { and, desc, eq, lt, sql } from "drizzle-orm";
import { z } from "zod";
import { afterPosition } from "./keyset.ts";
import { INT4_MAX } from "../input.ts";
import { decodeCursor, keysetPage, timeCursor } from "../cursor.ts";
import type { ChatMessage } from "./records.ts";
import { type Database, rowsOf } from "./client.ts";
import { attachmentPath } from "./media.ts";
import {
  type AttachmentRef,
  conversationMembers,
  conversationMutes,
  conversations,
  media,
  messageMedia,
  type MessageRow,
  messages,
  users,
} from "./schema.ts";

export interface MessageView {
  id: string;
  conversationId: string;
  /** The sender's id. */
  from: string;
  text: string;
  createdAt: string;
  /** When the other participant read it; null until then (or when not known yet). */
  readAt: string | null;
  /** Private files sent with it; `url` needs the session of one of the two members. */
  attachments: AttachmentView[];
}

export type AttachmentView = AttachmentRef & { url: string };

export interface ConversationView {
  id: string;
  peer: { id: string; name: string };
  lastMessage: MessageView | null;
  unreadCount: number;
  /** The member muted its notifications. */
  muted: boolean;
  lastMessageAt: string;
}

/** A message from a row, from `row_to_json` (time as a string) or from KV (time in ms). */
type StoredMessage = Pick<MessageRow, "id" | "conversationId" | "senderId" | "text"> & {
  createdAt: Date | string | number;
  readAt?: Date | string | null;
  attachments?: AttachmentRef[] | null;
};

export function messageView(message: StoredMessage): MessageView {
  return {
    id: message.id,
    conversationId: message.conversationId,
    from: message.senderId,
    text: message.text,
    createdAt: new Date(message.createdAt).toISOString(),
    readAt: message.readAt ? new Date(message.readAt).toISOString() : null,
    attachments: (message.attachments ?? []).map((file) => ({
      ...file,
      url: attachmentPath(file.id),
    })),
  };
}

/**
 * Stores decided messages, creating each conversation and its members with its first message:
 * one statement for any number of messages and conversations, idempotent by message id (the
 * outbox may apply a message twice, in any order with others).
 */
export async function storeMessages(db: Database, list: ChatMessage[]): Promise<void> {
  if (list.length === 0) return;
  // One JSON parameter for every message: a parameter per value cost drizzle more CPU than the
  // statement itself.
  const input = JSON.stringify(list.map((message) => ({
    id: message.id,
    conversation_id: message.conversationId,
    seq: message.seq,
    sender_id: message.fromUserId,
    recipient_id: message.toUserId,
    text: message.text,
    temp_id: message.tempId,
    at: new Date(message.createdAt).toISOString(),
    attachments: message.attachments ?? [],
  })));
  await db.execute(sql`
    with input as (
      select * from json_to_recordset(${input}::json) as message (id text, conversation_id text,
        seq int, sender_id text, recipient_id text, text text, temp_id text, at timestamptz,
        attachments jsonb)
    ), conversation as (
      insert into ${conversations} as c (id, user_a, user_b, last_seq, created_at, last_message_at)
      select conversation_id, least(sender_id, recipient_id), greatest(sender_id, recipient_id),
        max(seq), min(at), max(at)
      from input
      group by conversation_id, least(sender_id, recipient_id), greatest(sender_id, recipient_id)
      on conflict (id) do update set
        last_seq = greatest(c.last_seq, excluded.last_seq),
        last_message_at = greatest(c.last_message_at, excluded.last_message_at)
      returning id
    ), members as (
      insert into ${conversationMembers} as m (conversation_id, user_id, other_id, last_message_at)
      select conversation_id, user_id, other_id, max(at) from (
        select conversation_id, sender_id as user_id, recipient_id as other_id, at from input
        union all
        select conversation_id, recipient_id, sender_id, at from input
      ) as sides
      group by conversation_id, user_id, other_id
      on conflict (conversation_id, user_id) do update set
        last_message_at = greatest(m.last_message_at, excluded.last_message_at)
    ), stored as (
      insert into ${messages}
        (id, conversation_id, seq, sender_id, text, temp_id, created_at, attachments)
      select input.id, conversation.id, input.seq, input.sender_id, input.text, input.temp_id,
        input.at, input.attachments
      from input join conversation on conversation.id = input.conversation_id
      order by input.conversation_id, input.seq
      on conflict do nothing
    )
    -- What keeps a sent file from removal. A file already gone (its owner's account with it)
    -- is left out rather than failing the batch.
    insert into ${messageMedia} (message_id, media_id)
    select input.id, file->>'id' from input, jsonb_array_elements(input.attachments) as file
    where exists (select 1 from ${media} where ${media.id} = file->>'id')
    on conflict do nothing`);
}

/** The other participant, when `userId` takes part in the conversation; null otherwise. */
export async function conversationPeer(
  db: Database,
  conversationId: string,
  userId: string,
): Promise<string | null> {
  const [row] = await db.select({ otherId: conversationMembers.otherId })
    .from(conversationMembers)
    .where(and(
      eq(conversationMembers.conversationId, conversationId),
      eq(conversationMembers.userId, userId),
    ));
  return row?.otherId ?? null;
}

const conversationCursor = timeCursor;

/** The user's conversations, latest message first, each with its unread count. */
export async function listConversations(
  db: Database,
  userId: string,
  options: { cursor?: string; limit: number },
) {
  const after = options.cursor ? decodeCursor(options.cursor, conversationCursor) : null;
  const m = conversationMembers;
  const rows = await db.select({
    conversationId: m.conversationId,
    lastMessageAt: m.lastMessageAt,
    peerId: m.otherId,
    peerName: users.name,
    unreadCount: sql<number>`(select count(*) from ${messages}
      where ${messages.conversationId} = ${m.conversationId}
        and ${messages.seq} > ${m.lastReadSeq}
        and ${messages.senderId} <> ${userId})::int`,
    lastMessage: sql<StoredMessage | null>`(select row_to_json(last) from (
      select id, conversation_id as "conversationId", sender_id as "senderId", text,
        created_at as "createdAt", read_at as "readAt", attachments
      from ${messages} where ${messages.conversationId} = ${m.conversationId}
      order by ${messages.seq} desc limit 1) last)`,
    muted: sql<boolean>`exists (select 1 from ${conversationMutes}
      where ${conversationMutes.userId} = ${userId}
        and ${conversationMutes.conversationId} = ${m.conversationId})`,
  }).from(m)
    .innerJoin(users, eq(users.id, m.otherId))
    .where(and(
      eq(m.userId, userId),
      afterPosition(m.lastMessageAt, m.conversationId, after),
    ))
    .orderBy(desc(m.lastMessageAt), desc(m.conversationId))
    .limit(options.limit + 1);
  return keysetPage(
    rows,
    options.limit,
    (row): ConversationView => ({
      id: row.conversationId,
      peer: { id: row.peerId, name: row.peerName },
      lastMessage: row.lastMessage ? messageView(row.lastMessage) : null,
      unreadCount: row.unreadCount,
      muted: row.muted,
      lastMessageAt: row.lastMessageAt.toISOString(),
    }),
    (row) => [row.lastMessageAt.toISOString(), row.conversationId],
  );
}

const messageCursor = z.number().int().min(1).max(INT4_MAX);

/** A conversation's messages, newest first; the cursor is the last message's position. */
export async function listMessages(
  db: Database,
  conversationId: string,
  options: { cursor?: string; limit: number },
) {
  const before = options.cursor ? decodeCursor(options.cursor, messageCursor) : null;
  const rows = await db.select().from(messages)
    .where(and(
      eq(messages.conversationId, conversationId),
      before ? lt(messages.seq, before) : undefined,
    ))
    .orderBy(desc(messages.seq))
    .limit(options.limit + 1);
  return keysetPage(rows, options.limit, messageView, (row) => row.seq);
}

/**
 * Marks the conversation read by `userId` up to `messageId` (or its newest message). Only moves
 * forward. Returns the message the read marker now stands on when it moved, null when it did not,
 * and throws nothing: the caller has already checked the membership.
 */
export async function markConversationRead(
  db: Database,
  conversationId: string,
  userId: string,
  messageId: string | undefined,
  at: Date,
): Promise<{ messageId: string; otherId: string } | null> {
  const target = messageId
    ? sql`select id, seq from ${messages}
        where ${messages.id} = ${messageId} and ${messages.conversationId} = ${conversationId}`
    : sql`select id, seq from ${messages} where ${messages.conversationId} = ${conversationId}
        order by ${messages.seq} desc limit 1`;
  // The marker and the time each message it passes was read, in one statement.
  const result = await db.execute(sql`
    with target as (${target}),
    moved as (
      update ${conversationMembers} set last_read_seq = target.seq
      from target
      where ${conversationMembers.conversationId} = ${conversationId}
        and ${conversationMembers.userId} = ${userId}
        and ${conversationMembers.lastReadSeq} < target.seq
      returning target.id, target.seq, ${conversationMembers.otherId} as other_id),
    stamped as (
      update ${messages} set read_at = ${at}
      where ${messages.conversationId} = ${conversationId}
        and ${messages.senderId} <> ${userId}
        and ${messages.readAt} is null
        and ${messages.seq} <= (select seq from moved))
    select id, other_id from moved`);
  const [row] = rowsOf<{ id: string; other_id: string }>(result);
  return row ? { messageId: row.id, otherId: row.other_id } : null;
}

/** Whether the message belongs to the conversation (for a clear 404 on a read receipt). */
export async function messageExists(db: Database, conversationId: string, messageId: string) {
  const [row] = await db.select({ id: messages.id }).from(messages)
    .where(and(eq(messages.id, messageId), eq(messages.conversationId, conversationId)));
  return row !== undefined;
}
