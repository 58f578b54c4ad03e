// A KV-queue jobs adapter that holds back the jobs a test names, as a lost or late delivery
// would, until the test releases them through the real queue (or never does).
import { newId } from "../../ids.ts";
import type { EnqueueOptions, Jobs } from "../../workflows/jobs.ts";
import { kvQueueJobs } from "../../workflows/kv-queue.ts";
import { TEST_BACKOFF_MS } from "./app.ts";

export interface HeldJob {
  name: string;
  payload: unknown;
  options: EnqueueOptions & { jobId: string };
}

export function heldJobs(names: string[]) {
  const held: HeldJob[] = [];
  let queue: Jobs | undefined;
  return {
    /** Jobs enqueued but not delivered yet, with the options (delay) they were enqueued with. */
    held,
    /** The adapter for `createTestApp({ jobs })`. */
    jobs(kv: Deno.Kv): Jobs {
      const real = queue = kvQueueJobs(kv, { backoffMs: TEST_BACKOFF_MS });
      return {
        kind: "kv-queue",
        enqueue(name, payload, options = {}) {
          if (!names.includes(name)) return real.enqueue(name, payload, options);
          const jobId = options.jobId ?? newId();
          held.push({ name, payload, options: { ...options, jobId } });
          return Promise.resolve(jobId);
        },
      };
    },
    /** Delivers `job` again now, as a duplicate publish would (a new job id, the same payload). */
    async deliver(job: HeldJob): Promise<void> {
      await queue!.enqueue(job.name, job.payload);
    },
    /** Delivers every held job called `name` now (whatever its delay); how many there were. */
    async release(name: string): Promise<number> {
      const due = held.filter((job) => job.name === name);
      held.splice(0, held.length, ...held.filter((job) => job.name !== name));
      for (const job of due) {
        await queue!.enqueue(job.name, job.payload, { jobId: job.options.jobId });
      }
      return due.length;
    },
  };
}
