// The server → client side of the socket protocol: every event a socket can receive, as a schema.
// The AsyncAPI document is generated from these, and the tests check every frame they receive
// against them, so a new field or event cannot go undocumented.
import { z } from "zod";
import { GENDERS, INTERVIEW_STATES, NOTIFICATION_TYPES } from "../db/schema.ts";
import { SALE_STATUSES } from "../db/records.ts";
import { PRESENCE_STATUSES } from "../kv/presence.ts";

/** An ISO-8601 UTC time, as every answer and event writes times. */
export const timestamp = z.string().meta({
  format: "date-time",
  examples: ["2026-12-02T15:04:05.000Z"],
});

/** Who did something: enough to show a name and link the profile. */
export const person = z.strictObject({ id: z.string(), name: z.string() }).meta({ id: "Person" });

/** A private file as messages carry it. */
export const attachment = z.strictObject({
  id: z.string(),
  name: z.string().meta({ description: "The sender's file name, cleaned." }),
  contentType: z.string().meta({ description: "Sniffed from the bytes." }),
  size: z.int(),
  url: z.string().meta({
    description:
      "`/api/attachments/{id}/content`: with the session of one of the conversation's two members it redirects (302) to a short-lived signed URL of the bytes.",
  }),
}).meta({ id: "Attachment" });

export const notification = z.strictObject({
  id: z.string(),
  type: z.enum(NOTIFICATION_TYPES),
  actor: person,
  subjectId: z.string(),
  read: z.boolean(),
  count: z.int().meta({ description: "How many times it happened since last read." }),
  createdAt: timestamp,
}).meta({ id: "Notification" });

/** What a participant learns of a match when it starts. */
export const foundMatch = z.strictObject({
  matchId: z.string(),
  peer: z.strictObject({ id: z.string(), name: z.string(), gender: z.enum(GENDERS) }),
  role: z.enum(["offerer", "answerer"]).meta({ description: "The offerer sends the SDP offer." }),
  intent: z.string(),
  startedAt: timestamp,
  endsAt: timestamp.meta({ description: "The call ends by itself then (`call-ended`)." }),
});

const signalled = z.strictObject({
  matchId: z.string(),
  fromUserId: z.string(),
  payload: z.json().meta({ description: "As the peer's browser produced it (SDP or candidate)." }),
});

/** The `id` of a durable event: pass the last one seen as `lastEventId` to resume after it. */
const eventId = z.string().regex(/^\d+$/).meta({
  description: "Set on events read from the user's log (a re-sent tempId's ack has none).",
});

/** Every event, by type: [summary, data, durable (has an id, replayed by resume)]. */
export const SERVER_EVENTS = {
  "incoming-message": [
    "A message to the socket's user",
    z.strictObject({
      messageId: z.string(),
      conversationId: z.string(),
      from: z.string(),
      text: z.string(),
      createdAt: timestamp,
      attachments: z.array(attachment),
    }),
    true,
  ],
  "message-delivered": [
    "The ack of the socket user's `private-message`, matched by `tempId`",
    z.strictObject({
      tempId: z.string(),
      messageId: z.string(),
      conversationId: z.string(),
      toUserId: z.string(),
      createdAt: timestamp,
      replayed: z.boolean().optional().meta({
        description: "True when the tempId was sent before: the same message, not a new one.",
      }),
    }),
    true,
  ],
  "message-read": [
    "The other participant read the conversation up to `messageId`",
    z.strictObject({
      conversationId: z.string(),
      messageId: z.string(),
      readerId: z.string(),
      readAt: timestamp,
    }),
    true,
  ],
  typing: [
    "A connection is typing to the socket's user",
    z.strictObject({ from: z.string() }),
    false,
  ],
  presence: [
    "A connection's presence changed",
    z.strictObject({ userId: z.string(), status: z.enum(PRESENCE_STATUSES) }),
    false,
  ],
  notification: ["A new notification (or one raised again)", notification, true],
  "stock-update": [
    "The stock of a subscribed sale changed",
    z.strictObject({
      saleId: z.string(),
      status: z.enum(SALE_STATUSES),
      stockRemaining: z.int(),
      items: z.array(z.strictObject({ productId: z.string(), stockRemaining: z.int() })),
    }),
    false,
  ],
  purchase: [
    "A unit of a subscribed sale was paid for: a line for its live feed, at most one every 2 s " +
    "(`others`: purchases since the last line). Never who bought: `place` is the buyer's city " +
    "from their profile, or null.",
    z.strictObject({
      saleId: z.string(),
      item: z.string(),
      place: z.string().nullable(),
      others: z.int(),
    }),
    false,
  ],
  "found-match": ["The socket's user was matched", foundMatch, true],
  "call-ended": [
    "The call ended (by a participant, a block, or its time)",
    z.strictObject({
      matchId: z.string(),
      reason: z.enum(["timeout", "ended", "connected", "blocked"]),
      endedAt: timestamp,
      durationSeconds: z.number(),
    }),
    true,
  ],
  "connect-request": [
    "The peer asked to connect",
    z.strictObject({ matchId: z.string(), fromUserId: z.string() }),
    true,
  ],
  "match-connected": [
    "The match became a connection",
    z.strictObject({ matchId: z.string(), peerId: z.string(), connectedAt: timestamp }),
    true,
  ],
  "video-request": [
    "The peer asked for video",
    z.strictObject({ matchId: z.string(), fromUserId: z.string() }),
    true,
  ],
  "video-approved": [
    "Video was approved",
    z.strictObject({ matchId: z.string(), approvedBy: z.string() }),
    true,
  ],
  offer: ["The peer's SDP offer, relayed unchanged", signalled, true],
  answer: ["The peer's SDP answer, relayed unchanged", signalled, true],
  "ice-candidate": ["The peer's ICE candidate, relayed unchanged", signalled, true],
  "interview-updated": [
    "An interview of the socket's user changed state",
    z.strictObject({
      interviewId: z.string(),
      state: z.enum(INTERVIEW_STATES),
      version: z.int(),
      from: z.enum(INTERVIEW_STATES).nullable(),
      action: z.string(),
      actorId: z.string().nullable(),
      at: timestamp,
    }),
    true,
  ],
  "session-ended": [
    "The session was revoked (logout, password change) or expired: the socket closes",
    z.strictObject({ reason: z.enum(["expired", "revoked"]) }),
    false,
  ],
  queue: [
    "The answer to `join-queue` (queuing; `found-match` follows) or `leave-queue`",
    z.strictObject({
      ref: z.union([z.string(), z.number()]).optional(),
      status: z.enum(["queuing", "left"]),
      intent: z.string().optional(),
    }),
    false,
  ],
  pong: [
    "The answer to `ping`",
    z.strictObject({ ref: z.union([z.string(), z.number()]).optional(), at: timestamp }),
    false,
  ],
  error: [
    "A refused frame (the socket stays open), or a refused connection before it closes",
    z.looseObject({
      code: z.string().meta({
        description: "`invalid-json`, `unknown-type`, `invalid-frame`, `rate-limited`, " +
          "`not-connected`, `account-suspended`, `email-unverified`, `not-found`, `too-many-sockets`, `events-expired`, …",
      }),
      status: z.int().optional(),
      detail: z.string(),
      ref: z.union([z.string(), z.number()]).optional().meta({
        description: "The `id` of the refused frame.",
      }),
      errors: z.array(z.strictObject({ path: z.string(), message: z.string() })).optional(),
    }),
    false,
  ],
} as const satisfies Record<string, readonly [string, z.ZodType, boolean]>;

export type ServerEventType = keyof typeof SERVER_EVENTS;

/** One frame as the server sends it. */
export function serverFrame(type: ServerEventType) {
  const [, data, durable] = SERVER_EVENTS[type];
  return z.strictObject({
    type: z.literal(type),
    ...(durable ? { id: eventId.optional() } : {}),
    data,
  });
}
