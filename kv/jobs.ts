// Job bookkeeping in KV: done markers, run leases and failure counts.
import { FAILURE_TTL_MS, type JobFailure } from "./dead-letters.ts";
import { jobDoneKey, jobFailureKey, jobLeaseKey } from "./keys.ts";

/** Done markers outlive every retry and redelivery window of both adapters. */
const DONE_TTL_MS = 7 * 24 * 3600 * 1000;
/**
 * A delivery that crashed without releasing its lease blocks duplicates this long at most: less
 * than the KV queue's last retry (36 s after the first attempt), so a crashed run is retried.
 * Handlers must finish well within it.
 */
export const LEASE_MS = 30_000;

interface Lease {
  until: number;
}

export type Claim =
  | { kind: "claimed" }
  | { kind: "done" }
  | { kind: "busy"; retryInMs: number };

/** Takes the run lease of a job unless it is done or another delivery holds the lease. */
export async function claimJob(kv: Deno.Kv, jobId: string, now: number): Promise<Claim> {
  const [done, lease] = await kv.getMany<[unknown, Lease]>([
    jobDoneKey(jobId),
    jobLeaseKey(jobId),
  ]);
  if (done.value !== null) return { kind: "done" };
  if (lease.value && lease.value.until > now) {
    return { kind: "busy", retryInMs: lease.value.until - now };
  }
  const claimed = await kv.atomic().check(done).check(lease)
    .set(jobLeaseKey(jobId), { until: now + LEASE_MS } satisfies Lease, { expireIn: LEASE_MS })
    .commit();
  return claimed.ok ? { kind: "claimed" } : { kind: "busy", retryInMs: 1000 };
}

/** Marks a job done: later deliveries of its id are skipped. */
export async function completeJob(kv: Deno.Kv, jobId: string, now: number) {
  await kv.atomic()
    .set(jobDoneKey(jobId), now, { expireIn: DONE_TTL_MS })
    .delete(jobLeaseKey(jobId))
    .delete(jobFailureKey(jobId))
    .commit();
}

/** Lets the next delivery of a job claim it (a run put off without counting a failure). */
export async function releaseJob(kv: Deno.Kv, jobId: string) {
  await kv.delete(jobLeaseKey(jobId));
}

/** Counts a failed attempt, releases the lease, and returns the updated failure record. */
export async function recordJobFailure(
  kv: Deno.Kv,
  jobId: string,
  error: string,
  now: number,
): Promise<JobFailure> {
  for (;;) {
    const previous = await kv.get<JobFailure>(jobFailureKey(jobId));
    const failure = { attempts: (previous.value?.attempts ?? 0) + 1, error, failedAt: now };
    const result = await kv.atomic().check(previous)
      .set(jobFailureKey(jobId), failure, { expireIn: FAILURE_TTL_MS })
      .delete(jobLeaseKey(jobId))
      .commit();
    if (result.ok) return failure;
  }
}
