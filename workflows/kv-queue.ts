// KV queue adapter (embedded default): `kv.enqueue` with `delay`, one `listenQueue` dispatcher,
// `keysIfUndelivered` into the dead-letter store once the backoff schedule is used up.
import { deadLetterKey, jobDedupeKey } from "../kv/keys.ts";
import {
  enqueued,
  isJobMessage,
  JOB_RETRIES,
  jobMessage,
  type JobRequest,
  type Jobs,
} from "./jobs.ts";
import { runJob, type RunnerDeps } from "./runner.ts";

/** How long a dedupe id is remembered (QStash keeps its own for 10 minutes too). */
const DEDUPE_WINDOW_MS = 10 * 60 * 1000;

/** Jobs per commit in `enqueueMany`: each adds a check, a dedupe entry and a message. */
const JOBS_PER_COMMIT = 50;

/** Delays between the attempts of a failing job: JOB_RETRIES retries, then a dead letter. */
export const DEFAULT_BACKOFF_MS = [1000, 5000, 30000];

export function kvQueueJobs(
  kv: Deno.Kv,
  options: { backoffMs?: number[] } = {},
): Jobs {
  const backoffSchedule = options.backoffMs ?? DEFAULT_BACKOFF_MS;
  if (backoffSchedule.length !== JOB_RETRIES) {
    throw new Error(`the backoff schedule needs ${JOB_RETRIES} delays`);
  }
  /** Adds one job (and its dedupe entry) to `atomic`; returns the job and that entry's key. */
  function add(atomic: Deno.AtomicOperation, { name, payload, options = {} }: JobRequest) {
    const job = jobMessage(name, payload, options);
    const dedupeKey = options.dedupeId ? jobDedupeKey(options.dedupeId) : null;
    if (dedupeKey) {
      atomic.check({ key: dedupeKey, versionstamp: null })
        .set(dedupeKey, job.id, { expireIn: DEDUPE_WINDOW_MS });
    }
    atomic.enqueue(job, {
      delay: Math.max(0, Math.round((options.delaySeconds ?? 0) * 1000)),
      keysIfUndelivered: [deadLetterKey(job.id)],
      backoffSchedule,
    });
    return { job, dedupeKey };
  }

  const jobs: Jobs = {
    kind: "kv-queue",
    async enqueue(name, payload, options = {}) {
      const atomic = kv.atomic();
      const { job, dedupeKey } = add(atomic, { name, payload, options });
      const result = await atomic.commit();
      if (!result.ok && dedupeKey) return (await kv.get<string>(dedupeKey)).value ?? job.id;
      if (!result.ok) throw new Error(`could not enqueue job "${name}"`);
      enqueued([name]);
      return job.id;
    },
    async enqueueMany(requests) {
      // A dedupe id given twice is one job (two checks of one absent entry would both pass).
      const seen = new Set<string>();
      const distinct = requests.filter(({ options }) => {
        const id = options?.dedupeId;
        if (id === undefined) return true;
        if (seen.has(id)) return false;
        seen.add(id);
        return true;
      });
      for (let start = 0; start < distinct.length; start += JOBS_PER_COMMIT) {
        const chunk = distinct.slice(start, start + JOBS_PER_COMMIT);
        const atomic = kv.atomic();
        for (const request of chunk) add(atomic, request);
        if ((await atomic.commit()).ok) {
          enqueued(chunk.map((request) => request.name));
          continue;
        }
        // Some job of the chunk was enqueued before (a sweep and a writer both applying it):
        // one by one, each keeps its own dedupe.
        for (const { name, payload, options } of chunk) await jobs.enqueue(name, payload, options);
      }
    },
  };
  return jobs;
}

/**
 * Delivers KV queue messages to the registry until `kv` closes, each run counted by `track`. A
 * failing handler rethrows, so KV retries it on its backoff schedule and finally writes it to the
 * dead-letter store.
 */
export function listenForJobs(
  deps: RunnerDeps & { jobs: Jobs },
  track: <T>(work: () => Promise<T>) => Promise<T> = (work) => work(),
): Promise<void> {
  return deps.kv.listenQueue(async (message: unknown) => {
    if (!isJobMessage(message)) {
      deps.log({ level: "error", msg: "dropped a queue message that is not a job", message });
      return;
    }
    await track(() => runJob(deps, message, { final: false })).catch((error) => {
      // The store closed under a running job (a shutdown, a test's end). Nothing more can be
      // recorded in it, by returning or by rethrowing alike: the delivery stays unfinished either
      // way. So it is one log line, not an uncaught exception.
      if (
        !(error instanceof Deno.errors.BadResource || /database is closed/i.test(String(error)))
      ) {
        throw error;
      }
      deps.log({ level: "info", msg: "job interrupted: the store closed", job: message.name });
    });
  });
}
