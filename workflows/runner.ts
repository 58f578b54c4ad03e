// Runs one delivery of a job for either adapter: at most one effect per job id, failures counted,
// retried by rethrowing, and dead-lettered when retrying cannot help or retries are used up.
import type { Clock, Logger } from "../deps.ts";
import { DomainError, isPermanentFailure, isUnreachable } from "../errors.ts";
import { storeDeadLetter } from "../kv/dead-letters.ts";
import { claimJob, completeJob, recordJobFailure, releaseJob } from "../kv/jobs.ts";
import { JOB_RETRIES, type JobMessage, type JobRegistry, type Jobs } from "./jobs.ts";
import { inSpanUnder, instruments } from "../telemetry.ts";

export interface RunnerDeps {
  kv: Deno.Kv;
  registry: JobRegistry;
  /** Where a job put off during an outage is enqueued again. */
  jobs: Jobs;
  clock: Clock;
  log: Logger;
}

export type RunOutcome = "done" | "duplicate" | "dead-lettered" | "postponed";

/** A job put off during an outage runs again after 2, 4, 8, 16 s, then every 30 s. */
export function postponeSeconds(times: number): number {
  return Math.min(30, 2 ** Math.min(times, 5));
}

/** Another delivery of the same job is running: try again later (the transport retries). */
export class JobBusy extends DomainError {
  constructor(jobId: string, retryInMs: number) {
    const retryAfter = Math.max(1, Math.ceil(retryInMs / 1000));
    super(
      409,
      "job-running",
      "Conflict",
      `Job ${jobId} is already running in another delivery.`,
      { retryAfter },
      { "Retry-After": String(retryAfter) },
    );
  }
}

/**
 * Runs `job` unless it already ran. A failure becomes a dead letter when retrying cannot help,
 * when `final` says the transport will not deliver it again (QStash's last retry), or when the
 * job has failed JOB_RETRIES + 1 times (the KV queue's count; its `keysIfUndelivered` write stays
 * as the backstop for messages that could not be delivered at all).
 */
export function runJob(
  deps: RunnerDeps,
  job: JobMessage,
  delivery: { final: boolean },
): Promise<RunOutcome> {
  return inSpanUnder(
    job.traceparent,
    `job ${job.name}`,
    { "convene.job.id": job.id },
    async (span) => {
      const counted = (outcome: string) =>
        instruments.jobRuns.add(1, { "convene.job": job.name, "convene.outcome": outcome });
      const queued = { "convene.job": job.name };
      instruments.jobsQueued.add(-1, queued);
      try {
        const outcome = await runJobOnce(deps, job, delivery);
        span.setAttribute("convene.outcome", outcome);
        counted(outcome);
        return outcome;
      } catch (error) {
        counted("retry"); // thrown for the transport to deliver it again
        instruments.jobsQueued.add(1, queued);
        throw error;
      }
    },
  );
}

async function runJobOnce(
  deps: RunnerDeps,
  job: JobMessage,
  delivery: { final: boolean },
): Promise<RunOutcome> {
  const fields = { job: job.name, jobId: job.id };
  const claim = await claimJob(deps.kv, job.id, deps.clock.now());
  if (claim.kind === "done") {
    deps.log({ level: "info", msg: "job already done", ...fields });
    return "duplicate";
  }
  if (claim.kind === "busy") throw new JobBusy(job.id, claim.retryInMs);

  try {
    await deps.registry.run(job);
  } catch (error) {
    if (isUnreachable(error) && !isPermanentFailure(error)) return await postpone(deps, job, error);
    const message = error instanceof Error ? error.message : String(error);
    const failure = await recordJobFailure(deps.kv, job.id, message, deps.clock.now());
    const permanent = isPermanentFailure(error);
    if (permanent || delivery.final || failure.attempts > JOB_RETRIES) {
      await storeDeadLetter(deps.kv, job);
      deps.log({
        level: "error",
        msg: "job dead-lettered",
        ...fields,
        attempts: failure.attempts,
        permanent,
        error: message,
      });
      return "dead-lettered";
    }
    deps.log({
      level: "warn",
      msg: "job failed",
      ...fields,
      attempts: failure.attempts,
      error: message,
    });
    throw error;
  }
  await completeJob(deps.kv, job.id, deps.clock.now());
  deps.log({ level: "info", msg: "job done", ...fields });
  return "done";
}

/**
 * A dependency the job needs cannot be reached: that is no fault of the job, so no attempt is
 * counted and no transport retry spent. It is enqueued again (same id, so still one effect) to
 * run after a growing delay, until the dependency answers.
 */
async function postpone(deps: RunnerDeps, job: JobMessage, error: unknown): Promise<RunOutcome> {
  const postponed = (job.postponed ?? 0) + 1;
  const delaySeconds = postponeSeconds(postponed);
  await releaseJob(deps.kv, job.id);
  try {
    await deps.jobs.enqueue(job.name, job.payload, { jobId: job.id, delaySeconds, postponed });
  } catch {
    throw error; // not even re-enqueued: the transport's own retry is the backstop
  }
  deps.log({
    level: "warn",
    msg: "job postponed: a dependency cannot be reached",
    job: job.name,
    jobId: job.id,
    postponed,
    retryInSeconds: delaySeconds,
    error: error instanceof Error ? error.message : String(error),
  });
  return "postponed";
}
