// Private chat's rules, shared by the socket and HTTP: sending (decided in KV, stored in Postgres
// through the outbox, delivered through both users' event logs), read receipts, and typing.
import { z } from "zod";
import type { Deps } from "../deps.ts";
import {
  conversationPeer,
  markConversationRead,
  messageExists,
  messageView,
  storeMessages,
} from "../db/chat.ts";
import { NotFound } from "../errors.ts";
import { mayMessage, type MessageInput, notConnected, sendPrivateMessage } from "../kv/chat.ts";
import { MEDIA_TYPES } from "../db/schema.ts";
import { id } from "../input.ts";
import type { ChatMessage } from "../db/records.ts";
import { isBlocked } from "../kv/graph.ts";
import { appendEventsNow } from "../kv/events.ts";
import { coordination } from "../kv/outbox.ts";
import { settledHistory } from "./history.ts";
import { notifyRecords } from "./notifications.ts";

const CHAT_MESSAGE = "chat-message";

export const tempId = z.string().min(1).max(100);

/** Files one message may carry. */
const MAX_ATTACHMENTS = 10;

/** What a message says: text, private files (see POST /api/attachments), or both. */
export const messageContent = {
  text: z.string().trim().max(4000).default(""),
  attachmentIds: z.array(id).max(MAX_ATTACHMENTS)
    .refine((ids) => new Set(ids).size === ids.length, "each file may appear once")
    .optional(),
};

/** Refuses a message with neither text nor files, naming `text`. */
export function sayingSomething<T extends z.ZodType<{ text: string; attachmentIds?: string[] }>>(
  schema: T,
) {
  return schema.refine((content) => content.text.length > 0 || !!content.attachmentIds?.length, {
    path: ["text"],
    message: "must not be empty (send text, files or both)",
  });
}

const chatMessage = z.object({
  id: z.string(),
  conversationId: z.string(),
  seq: z.number().int().min(1),
  fromUserId: z.string(),
  toUserId: z.string(),
  text: z.string(),
  tempId: z.string(),
  createdAt: z.number(),
  attachments: z.array(z.object({
    id: z.string(),
    name: z.string(),
    contentType: z.enum(MEDIA_TYPES),
    size: z.number().int(),
  })).optional(),
});

export function registerChatAppliers(deps: Deps) {
  deps.outbox.registerBatch(CHAT_MESSAGE, chatMessage, async (list) => {
    await storeMessages(deps.database.db, list);
  });
}

/** What the sender's sockets get when a message is stored (and again for a re-sent tempId). */
export function deliveredView(message: ChatMessage) {
  return {
    tempId: message.tempId,
    messageId: message.id,
    conversationId: message.conversationId,
    toUserId: message.toUserId,
    createdAt: new Date(message.createdAt).toISOString(),
  };
}

/** What the recipient's sockets get: the message as the HTTP API shows it, its id as `messageId`. */
function incomingView(message: ChatMessage) {
  // Just sent, it is unread: the frame carries no read state.
  const { id, readAt: _, ...view } = messageView({ ...message, senderId: message.fromUserId });
  return { messageId: id, ...view };
}

/**
 * Sends a message: `incoming-message` to the recipient's log, `message-delivered` to the sender's,
 * a Postgres row through the outbox, and a `message` notification when the recipient is offline.
 * Returns once the row is stored (or left to the sweep, if storing failed).
 */
export async function sendMessage(
  deps: Deps,
  fromUserId: string,
  input: Omit<MessageInput, "fromUserId">,
): Promise<{ message: ChatMessage; replayed: boolean }> {
  return await sendPrivateMessage(
    coordination(deps),
    { fromUserId, ...input },
    (message, { recipientOnline }) => {
      const records = [
        deps.outbox.record(CHAT_MESSAGE, message),
        ...(recipientOnline ? [] : notifyRecords(deps.outbox, {
          userId: message.toUserId,
          actorId: message.fromUserId,
          type: "message",
          subjectId: message.conversationId,
          eventId: message.id,
        })),
      ];
      return {
        events: [
          { userId: message.toUserId, type: "incoming-message", data: incomingView(message) },
          { userId: message.fromUserId, type: "message-delivered", data: deliveredView(message) },
        ],
        records,
      };
    },
  );
}

/**
 * Marks a conversation read up to `messageId` (default: its newest message) and, when the marker
 * moved, sends the other participant `message-read`. Non-participants get 404.
 */
export async function readConversation(
  deps: Deps,
  userId: string,
  input: { conversationId: string; messageId?: string },
): Promise<void> {
  const db = await settledHistory(deps);
  const peer = await conversationPeer(db, input.conversationId, userId);
  if (!peer) throw new NotFound("No conversation of yours has this id.");
  const moved = await markConversationRead(
    db,
    input.conversationId,
    userId,
    input.messageId,
    new Date(deps.clock.now()),
  );
  if (!moved) {
    if (input.messageId && !await messageExists(db, input.conversationId, input.messageId)) {
      throw new NotFound("This conversation has no message with this id.");
    }
    return; // already read that far
  }
  if (await isBlocked(deps.kv, userId, peer)) return;
  await appendEventsNow(deps.kv, [{
    userId: peer,
    type: "message-read",
    data: {
      conversationId: input.conversationId,
      messageId: moved.messageId,
      readerId: userId,
      readAt: new Date(deps.clock.now()).toISOString(),
    },
  }], deps.clock.now);
}

/** `typing`: an ephemeral signal to the other user's sockets, only between users who may talk. */
export async function signalTyping(deps: Deps, userId: string, toUserId: string) {
  if (!await mayMessage(deps.kv, userId, toUserId)) throw notConnected();
  deps.hub.broadcast([toUserId], { type: "typing", data: { from: userId } });
}
