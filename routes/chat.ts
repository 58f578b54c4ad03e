// Conversations and messages over HTTP (the reference\'s "Chat" group): the same rules as the socket.
import { type Context, Hono } from "hono";
import { z } from "zod";
import type { SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { conversationPeer, listConversations, listMessages, messageView } from "../db/chat.ts";
import { NotFound } from "../errors.ts";
import { setMuted } from "../db/notifications.ts";
import {
  messageContent,
  readConversation,
  sayingSomething,
  sendMessage,
  tempId,
} from "../workflows/chat.ts";
import { settledHistory } from "../workflows/history.ts";
import { signedIn } from "./middleware/session.ts";
import {
  body,
  idParam,
  optionalJsonBody,
  pageQuery,
  params,
  query,
} from "./middleware/validate.ts";
import { id } from "../input.ts";
import { documented, REPLAYED } from "./middleware/describe.ts";
import { message, page, person, timestamp } from "./reference/schemas.ts";

const describe = documented("Chat");

const conversation = z.object({
  id: z.string(),
  peer: person,
  lastMessage: message.nullable(),
  unreadCount: z.int(),
  muted: z.boolean().meta({ description: "The caller muted its notifications." }),
  lastMessageAt: timestamp,
});

const userParam = z.object({ userId: id });
const sentAnswer = { schema: message.extend({ tempId: z.string() }), headers: REPLAYED };
const sendErrors = {
  403: ["not-connected", "account-suspended"],
  404: ["not-found"],
  409: ["temp-id-reused"],
};
const messageInput = sayingSomething(z.strictObject({ ...messageContent, tempId }));
const readInput = z.strictObject({ messageId: id.optional() });

export function chatRoutes(deps: Deps) {
  /** Sends the request's message to `toUserId` and answers it (201, or the first answer again). */
  async function sent(
    c: Context<SignedInEnv>,
    fromUserId: string,
    toUserId: string,
    input: z.infer<typeof messageInput>,
  ) {
    const { message, replayed } = await sendMessage(deps, fromUserId, { toUserId, ...input });
    if (replayed) c.header("Idempotent-Replayed", "true");
    return c.json({
      ...messageView({ ...message, senderId: message.fromUserId }),
      tempId: message.tempId,
    }, 201);
  }
  async function muteConversation(userId: string, conversationId: string, muted: boolean) {
    const db = await settledHistory(deps);
    if (!await conversationPeer(db, conversationId, userId)) {
      throw new NotFound("No conversation of yours has this id.");
    }
    await setMuted(db, userId, conversationId, muted, new Date(deps.clock.now()));
  }
  return signedIn(
    new Hono<SignedInEnv>()
      .get(
        "/conversations",
        describe({
          summary: "The caller's conversations, latest first, with unread counts",
          answers: { 200: page(conversation) },
        }),
        query(pageQuery),
        async (c) => {
          const session = c.var.session;
          return c.json(
            await listConversations(await settledHistory(deps), session.sub, c.req.valid("query")),
          );
        },
      )
      .put(
        "/conversations/:id/mute",
        describe({
          summary: "Mute a conversation: no notification of its messages, in the app or by email",
          description: "Idempotent; `DELETE` unmutes. The messages themselves still arrive.",
          answers: { 204: {} },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          await muteConversation(c.var.session.sub, c.req.valid("param").id, true);
          return c.body(null, 204);
        },
      )
      .delete(
        "/conversations/:id/mute",
        describe({
          summary: "Unmute a conversation",
          answers: { 204: {} },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          await muteConversation(c.var.session.sub, c.req.valid("param").id, false);
          return c.body(null, 204);
        },
      )
      .get(
        "/conversations/:id/messages",
        describe({
          summary: "A conversation's messages, newest first",
          answers: { 200: page(message) },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        query(pageQuery),
        async (c) => {
          const session = c.var.session;
          const { id } = c.req.valid("param");
          const db = await settledHistory(deps);
          if (!await conversationPeer(db, id, session.sub)) {
            throw new NotFound("No conversation of yours has this id.");
          }
          return c.json(await listMessages(db, id, c.req.valid("query")));
        },
      )
      .post(
        "/users/:userId/messages",
        describe({
          summary: "Send a message to a member (the socket's `private-message` over HTTP)",
          description:
            "Only connected or currently matched members may message each other. Re-sending a `tempId` answers the same message with `Idempotent-Replayed: true`.",
          answers: { 201: sentAnswer },
          errors: sendErrors,
        }),
        params(userParam),
        body(messageInput),
        async (c) => {
          const { userId } = c.req.valid("param");
          return await sent(c, c.var.session.sub, userId, c.req.valid("json"));
        },
      )
      .post(
        "/conversations/:id/messages",
        describe({
          summary: "Send a message into one of one's conversations, by its id",
          description:
            "Sends to the conversation's other participant, as `POST /api/users/{userId}/messages` does. Deprecated, and kept working for clients written against the original contract: `id` may be the member's id instead of a conversation's (a conversation of the caller's with that id is looked for first). Use `POST /api/users/{userId}/messages` for that.",
          answers: { 201: sentAnswer },
          errors: sendErrors,
        }),
        params(idParam),
        body(messageInput),
        async (c) => {
          const userId = c.var.session.sub;
          const { id } = c.req.valid("param");
          const peer = await conversationPeer(await settledHistory(deps), id, userId);
          return await sent(c, userId, peer ?? id, c.req.valid("json"));
        },
      )
      .post(
        "/conversations/:id/read",
        describe({
          summary: "Mark a conversation read (up to `messageId`, or all of it)",
          body: { schema: readInput, required: false },
          answers: { 204: {} },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          const session = c.var.session;
          const input = optionalJsonBody(readInput, await c.req.text());
          await readConversation(deps, session.sub, {
            conversationId: c.req.valid("param").id,
            ...input,
          });
          return c.body(null, 204);
        },
      ),
  );
}
