// Outbox records that enqueue a job once their commit succeeded (rule 2 of the design's
// durable coordination): notifications, emails and delayed work decided by a KV commit.
import { z } from "zod";
import type { Clock } from "../deps.ts";
import type { Outbox, OutboxRecord } from "../kv/outbox.ts";
import { enqueueAll, type JobRequest, type Jobs } from "./jobs.ts";

const ENQUEUE = "enqueue";

const enqueuePayload = z.object({
  name: z.string(),
  payload: z.unknown(),
  /** Milliseconds since the epoch: run no sooner (absolute, so a late sweep does not add delay). */
  runAt: z.number().optional(),
});

export function registerEnqueueApplier(outbox: Outbox, jobs: Jobs, clock: Clock) {
  // The job id is the record id: applying twice (request and sweep) still runs the job once.
  outbox.registerBatch(ENQUEUE, enqueuePayload, async (batch, records) => {
    const requests: JobRequest[] = batch.map((job, i) => ({
      name: job.name,
      payload: job.payload,
      options: {
        jobId: records[i].id,
        dedupeId: `outbox:${records[i].id}`,
        // The job joins the trace of the decision that wrote its record, not the writer's batch.
        traceparent: records[i].traceparent,
        delaySeconds: job.runAt === undefined ? 0 : Math.max(0, (job.runAt - clock.now()) / 1000),
      },
    }));
    await enqueueAll(jobs, requests);
  });
}

/** An outbox record that enqueues `name` with `payload` (at `runAt`, if given). */
export function jobRecord(
  outbox: Outbox,
  name: string,
  payload: unknown,
  options: { runAt?: number } = {},
): OutboxRecord {
  return outbox.record(ENQUEUE, { name, payload, runAt: options.runAt });
}
