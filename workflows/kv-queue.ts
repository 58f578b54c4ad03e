// KV queue adapter (embedded default): `kv.enqueue` with `delay`, one `listenQueue` dispatcher,
// `keysIfUndelivered` into the dead-letter store once the backoff schedule is used up.
import { newId } from "../ids.ts";
import { deadLetterKey, jobDedupeKey } from "../kv/keys.ts";
import { isJobMessage, JOB_RETRIES, type JobMessage, type Jobs } from "./jobs.ts";
import { runJob, type RunnerDeps } from "./runner.ts";

/** How long a dedupe id is remembered (QStash keeps its own for 10 minutes too). */
const DEDUPE_WINDOW_MS = 10 * 60 * 1000;

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
  return {
    kind: "kv-queue",
    async enqueue(name, payload, enqueueOptions = {}) {
      const job: JobMessage = { id: enqueueOptions.jobId ?? newId(), name, payload };
      const atomic = kv.atomic();
      const dedupeKey = enqueueOptions.dedupeId ? jobDedupeKey(enqueueOptions.dedupeId) : null;
      if (dedupeKey) {
        atomic.check({ key: dedupeKey, versionstamp: null })
          .set(dedupeKey, job.id, { expireIn: DEDUPE_WINDOW_MS });
      }
      atomic.enqueue(job, {
        delay: Math.max(0, Math.round((enqueueOptions.delaySeconds ?? 0) * 1000)),
        keysIfUndelivered: [deadLetterKey(job.id)],
        backoffSchedule,
      });
      const result = await atomic.commit();
      if (!result.ok && dedupeKey) return (await kv.get<string>(dedupeKey)).value ?? job.id;
      if (!result.ok) throw new Error(`could not enqueue job "${name}"`);
      return job.id;
    },
  };
}

/**
 * Delivers KV queue messages to the registry until `kv` closes, each run counted by `track`. A
 * failing handler rethrows, so KV retries it on its backoff schedule and finally writes it to the
 * dead-letter store.
 */
export function listenForJobs(
  deps: RunnerDeps,
  track: <T>(work: () => Promise<T>) => Promise<T> = (work) => work(),
): Promise<void> {
  return deps.kv.listenQueue(async (message: unknown) => {
    if (!isJobMessage(message)) {
      deps.log({ level: "error", msg: "dropped a queue message that is not a job", message });
      return;
    }
    await track(() => runJob(deps, message, { final: false }));
  });
}
