// The dead-letter store: jobs that failed every retry and outbox records that kept failing, each
// kept whole (payload included) with the failure it ended on, for an admin to list, replay or
// discard.
import { deadLetterKey, deadLetterPrefix, jobFailureKey } from "./keys.ts";
import { listPage, type PageOptions } from "./pages.ts";

/** Failure records outlive the dead letter's likely wait for an admin. */
export const FAILURE_TTL_MS = 30 * 24 * 3600 * 1000;

export interface JobFailure {
  attempts: number;
  error: string;
  failedAt: number;
}

/**
 * What is stored: a job message as it was enqueued (the KV queue writes exactly that through
 * `keysIfUndelivered`), or an outbox record's kind and payload with `source: "outbox"`.
 */
export interface DeadLetterRecord {
  id: string;
  name: string;
  payload: unknown;
  source?: DeadLetterSource;
}

export type DeadLetterSource = "job" | "outbox";

/** Adds a dead letter and the failure it ended on to a commit. */
export function addDeadLetter(
  atomic: Deno.AtomicOperation,
  letter: DeadLetterRecord,
  failure: JobFailure,
): Deno.AtomicOperation {
  return atomic.set(deadLetterKey(letter.id), letter)
    .set(jobFailureKey(letter.id), failure, { expireIn: FAILURE_TTL_MS });
}

/** A job that failed its last attempt (its failure record is already written by the runner). */
export async function storeDeadLetter(kv: Deno.Kv, letter: DeadLetterRecord) {
  await kv.set(deadLetterKey(letter.id), letter);
}

export interface DeadLetter {
  id: string;
  source: DeadLetterSource;
  name: string;
  payload: unknown;
  attempts: number;
  lastError: string | null;
  failedAt: string | null;
}

/** Dead letters, oldest first, with the failure each one ended on. */
export async function listDeadLetters(kv: Deno.Kv, page: PageOptions) {
  const { entries, nextCursor } = await listPage<DeadLetterRecord>(kv, deadLetterPrefix(), page);
  const failures = await getFailures(kv, entries.map((entry) => entry.value.id));
  const items: DeadLetter[] = entries.map((entry, index) => {
    const failure = failures[index];
    return {
      id: entry.value.id,
      source: entry.value.source ?? "job",
      name: entry.value.name,
      payload: entry.value.payload,
      attempts: failure?.attempts ?? 0,
      lastError: failure?.error ?? null,
      failedAt: failure ? new Date(failure.failedAt).toISOString() : null,
    };
  });
  return { items, nextCursor };
}

async function getFailures(kv: Deno.Kv, ids: string[]): Promise<(JobFailure | null)[]> {
  const failures: (JobFailure | null)[] = [];
  for (let start = 0; start < ids.length; start += 10) {
    const keys = ids.slice(start, start + 10).map(jobFailureKey);
    for (const entry of await kv.getMany<JobFailure[]>(keys)) failures.push(entry.value);
  }
  return failures;
}

export interface TakenDeadLetter {
  letter: DeadLetterRecord;
  failure: JobFailure | null;
}

/**
 * Takes a dead letter out to replay or discard it, with its failure count so a replay starts with
 * fresh retries. Null when there is none, or when a concurrent caller took it first.
 */
export async function takeDeadLetter(kv: Deno.Kv, id: string): Promise<TakenDeadLetter | null> {
  const [letter, failure] = await kv.getMany<[DeadLetterRecord, JobFailure]>([
    deadLetterKey(id),
    jobFailureKey(id),
  ]);
  if (!letter.value) return null;
  const taken = await kv.atomic().check(letter).check(failure)
    .delete(letter.key)
    .delete(failure.key)
    .commit();
  return taken.ok ? { letter: letter.value, failure: failure.value } : null;
}

/** Puts back a dead letter whose replay could not be started, failure count included. */
export async function restoreDeadLetter(kv: Deno.Kv, taken: TakenDeadLetter) {
  const atomic = kv.atomic().set(deadLetterKey(taken.letter.id), taken.letter);
  if (taken.failure) {
    atomic.set(jobFailureKey(taken.letter.id), taken.failure, { expireIn: FAILURE_TTL_MS });
  }
  await atomic.commit();
}

/** Dead letters waiting for an admin, counted up to `limit`. */
export async function countDeadLetters(kv: Deno.Kv, limit: number): Promise<number> {
  let count = 0;
  for await (const _ of kv.list({ prefix: deadLetterPrefix() }, { limit })) count++;
  return count;
}
