// The `notify` job: stores a notification in Postgres (collapsing repeats) and appends it to the
// recipient's event log, which pushes it live to every socket and keeps it for `resume`, as the
// member's choices allow; for a member who is offline, it also keeps it for one batched email
// (the `email-digest` job), which carries a link that stops these emails without signing in.
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { isNotified, recipientOf, recordNotification, resolvePrefs } from "../db/notifications.ts";
import { NOTIFICATION_TYPES, type NotificationType } from "../db/schema.ts";
import { findUserById } from "../db/users.ts";
import { appendEventsNow } from "../kv/events.ts";
import { addDigestItem, takeDigest } from "../kv/digests.ts";
import { coordination } from "../kv/outbox.ts";
import { readPresence } from "../kv/presence.ts";
import { digestEmail } from "./send-email.ts";
import { hmacHex, sameSecret } from "../hashes.ts";
import type { Outbox, OutboxRecord } from "../kv/outbox.ts";
import type { Jobs } from "./jobs.ts";
import { jobRecord } from "./outbox-jobs.ts";

export const notifyPayload = z.object({
  /** The recipient. */
  userId: z.string().min(1).max(100),
  /** Who did it. */
  actorId: z.string().min(1).max(100),
  type: z.enum(NOTIFICATION_TYPES),
  /** What it is about: a post, a request, a conversation, an interview, an order. */
  subjectId: z.string().min(1).max(200),
  /** Identifies the event (default: the job id), so a redelivered event changes nothing. */
  eventId: z.string().min(1).max(200).optional(),
});

export type NotifyPayload = z.infer<typeof notifyPayload>;

/** A digest is sent this long after the first notification it carries. */
export const DIGEST_DELAY_MS = 10 * 60 * 1000;
const DIGEST_JOB = "email-digest";

export function registerNotifyJob(deps: Deps) {
  deps.registry.register("notify", notifyPayload, async (payload, job) => {
    const eventId = payload.eventId ?? job.id;
    const recipient = await recipientOf(deps.database.db, payload);
    // A muted conversation tells its member nothing, in the app or by email.
    if (!recipient || recipient.muted) return;
    if (recipient.prefs.inApp[payload.type]) {
      const notification = await recordNotification(deps.database.db, {
        ...payload,
        eventId,
        at: new Date(deps.clock.now()),
      });
      if (notification) {
        await appendEventsNow(deps.kv, [{
          userId: payload.userId,
          type: "notification",
          data: notification,
        }], deps.clock.now);
      }
    }
    if (recipient.prefs.email[payload.type] && isNotified(payload)) {
      await digestLater(deps, payload, eventId, recipient.actorName);
    }
  });
  deps.registry.register(DIGEST_JOB, z.object({ userId: z.string() }), async ({ userId }) => {
    await sendDigest(deps, userId);
  });
}

/** Keeps a notification for the member's email digest, if they are offline now. */
async function digestLater(
  deps: Deps,
  payload: NotifyPayload,
  eventId: string,
  actorName: string | null,
) {
  const now = deps.clock.now();
  const status = (await readPresence(deps.kv, [payload.userId], now)).get(payload.userId);
  if (status !== "offline") return; // in the app: told there
  const due = await addDigestItem(deps.kv, payload.userId, eventId, {
    type: payload.type,
    actorName,
    subjectId: payload.subjectId,
    at: now,
  }, now + DIGEST_DELAY_MS);
  if (due !== null) {
    await deps.jobs.enqueue(DIGEST_JOB, { userId: payload.userId }, {
      delaySeconds: DIGEST_DELAY_MS / 1000,
      jobId: `${DIGEST_JOB}:${payload.userId}:${due}`,
      dedupeId: `${DIGEST_JOB}:${payload.userId}:${due}`,
    });
  }
}

/**
 * The digest job: one email with every notification waiting for the member (those they still
 * want by email), unless they are in the app now; sent by the `send-email` job its commit
 * carries, with a link that stops these emails without signing in.
 */
export async function sendDigest(deps: Deps, userId: string) {
  const now = deps.clock.now();
  const [status, user] = await Promise.all([
    readPresence(deps.kv, [userId], now).then((map) => map.get(userId)),
    findUserById(deps.database.db, userId),
  ]);
  const prefs = user && resolvePrefs(user.notificationPrefs);
  const unsubscribe = user && await unsubscribeLink(deps, userId);
  const items = await takeDigest(coordination(deps), userId, (items) => {
    const wanted = items.filter((item) =>
      prefs?.email[item.type as NotificationType] && status === "offline"
    );
    return user && wanted.length > 0
      ? [jobRecord(
        deps.outbox,
        "send-email",
        digestEmail(user, wanted, {
          console: `${deps.config.PUBLIC_URL}/#/notifications`,
          unsubscribe: unsubscribe!,
        }),
      )]
      : [];
  });
  return items.length;
}

/** The link in every digest that stops them: the member's id, signed with the server's key. */
export async function unsubscribeLink(deps: Deps, userId: string) {
  const signature = await unsubscribeSignature(deps.config.JWT_SECRET, userId);
  return `${deps.config.PUBLIC_URL}/api/notifications/unsubscribe?u=${
    encodeURIComponent(userId)
  }&sig=${signature}`;
}

function unsubscribeSignature(secret: string, userId: string) {
  return hmacHex(secret, `unsubscribe:${userId}`);
}

/** Whether `signature` is the member's unsubscribe signature (compared in constant time). */
export async function unsubscribeAllowed(deps: Deps, userId: string, signature: string) {
  return await sameSecret(signature, await unsubscribeSignature(deps.config.JWT_SECRET, userId));
}

/** Enqueues a notification; nothing when users act on their own things. */
export async function notify(jobs: Jobs, payload: NotifyPayload): Promise<string | null> {
  if (!isNotified(payload)) return null;
  return await jobs.enqueue("notify", payload);
}

/** The outbox record that notifies `userId`, for a commit to carry; none for one's own acts. */
export function notifyRecords(outbox: Outbox, payload: NotifyPayload): OutboxRecord[] {
  return isNotified(payload) ? [jobRecord(outbox, "notify", payload)] : [];
}
