// The `notify` job: stores a notification in Postgres (collapsing repeats) and appends it to the
// recipient's event log, which pushes it live to every socket and keeps it for `resume`.
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { isNotified, recordNotification } from "../db/notifications.ts";
import { NOTIFICATION_TYPES } from "../db/schema.ts";
import { appendEventsNow } from "../kv/events.ts";
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

export function registerNotifyJob(deps: Deps) {
  deps.registry.register("notify", notifyPayload, async (payload, job) => {
    const notification = await recordNotification(deps.database.db, {
      ...payload,
      eventId: payload.eventId ?? job.id,
      at: new Date(deps.clock.now()),
    });
    if (notification) {
      await appendEventsNow(deps.kv, [{
        userId: payload.userId,
        type: "notification",
        data: notification,
      }], deps.clock.now);
    }
  });
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
