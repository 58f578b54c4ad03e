// Job bookkeeping in KV: done markers, run leases, failure counts and the dead-letter store.
import type { JobMessage } from "../workflows/jobs.ts";
import { deadLetterKey, deadLetterPrefix, jobDoneKey, jobFailureKey, jobLeaseKey } from "./keys.ts";
import { listPage, type PageOptions } from "./pages.ts";

/** Done markers outlive every retry and redelivery window of both adapters. */
const DONE_TTL_MS = 7 * 24 * 3600 * 1000;
/** Failure records outlive the dead letter's likely wait for an admin. */
const FAILURE_TTL_MS = 30 * 24 * 3600 * 1000;
/**
 * A delivery that crashed without releasing its lease blocks duplicates this long at most: less
 * than the KV queue's last retry (36 s after the first attempt), so a crashed run is retried.
 * Handlers must finish well within it.
 */
export const LEASE_MS = 30_000;

export interface JobFailure {
  attempts: number;
  error: string;
  failedAt: number;
}

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

/** The same record the KV queue writes through `keysIfUndelivered`: the job message itself. */
export async function storeDeadLetter(kv: Deno.Kv, job: JobMessage) {
  await kv.set(deadLetterKey(job.id), job);
}

export interface DeadLetter {
  id: string;
  name: string;
  payload: unknown;
  attempts: number;
  lastError: string | null;
  failedAt: string | null;
}

/** Dead letters, oldest first, with the failure each one ended on. */
export async function listDeadLetters(kv: Deno.Kv, page: PageOptions) {
  const { entries, nextCursor } = await listPage<JobMessage>(kv, deadLetterPrefix(), page);
  const failures = await getFailures(kv, entries.map((entry) => entry.value.id));
  const items: DeadLetter[] = entries.map((entry, index) => {
    const failure = failures[index];
    return {
      id: entry.value.id,
      name: entry.value.name,
      payload: entry.value.payload,
      attempts: failure?.attempts ?? 0,
      lastError: failure?.error ?? null,
      failedAt: failure ? new Date(failure.failedAt).toISOString() : null,
    };
  });
  return { items, nextCursor };
}

async function getFailures(kv: Deno.Kv, jobIds: string[]): Promise<(JobFailure | null)[]> {
  const failures: (JobFailure | null)[] = [];
  for (let start = 0; start < jobIds.length; start += 10) {
    const keys = jobIds.slice(start, start + 10).map(jobFailureKey);
    for (const entry of await kv.getMany<JobFailure[]>(keys)) failures.push(entry.value);
  }
  return failures;
}

export interface TakenDeadLetter {
  job: JobMessage;
  failure: JobFailure | null;
}

/**
 * Takes a dead letter out to replay or discard it, with its failure count so a replay starts with
 * fresh retries. Null when there is none, or when a concurrent caller took it first.
 */
export async function takeDeadLetter(kv: Deno.Kv, jobId: string): Promise<TakenDeadLetter | null> {
  const [letter, failure] = await kv.getMany<[JobMessage, JobFailure]>([
    deadLetterKey(jobId),
    jobFailureKey(jobId),
  ]);
  if (!letter.value) return null;
  const taken = await kv.atomic().check(letter).check(failure)
    .delete(letter.key)
    .delete(failure.key)
    .commit();
  return taken.ok ? { job: letter.value, failure: failure.value } : null;
}

/** Puts back a dead letter whose replay could not be enqueued, failure count included. */
export async function restoreDeadLetter(kv: Deno.Kv, taken: TakenDeadLetter) {
  const atomic = kv.atomic().set(deadLetterKey(taken.job.id), taken.job);
  if (taken.failure) {
    atomic.set(jobFailureKey(taken.job.id), taken.failure, { expireIn: FAILURE_TTL_MS });
  }
  await atomic.commit();
}
