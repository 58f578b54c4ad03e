// The jobs port: what a job is, how it is enqueued, and the one registry of handlers that both
// adapters (KV queue: workflows/kv-queue.ts, QStash: workflows/qstash.ts) deliver to.
import type { z } from "zod";
import { Invalid, PermanentFailure } from "../errors.ts";
import { newId } from "../ids.ts";
import { instruments, traceparent } from "../telemetry.ts";

export interface JobMessage {
  id: string;
  name: string;
  payload: unknown;
  /** How many times the job was put off because a dependency could not be reached. */
  postponed?: number;
  /** The W3C traceparent of the span that enqueued it: its run joins that trace. */
  traceparent?: string;
}

export interface EnqueueOptions {
  /** Run no sooner than this many seconds from now. */
  delaySeconds?: number;
  /** Enqueues with the same id within the dedupe window are dropped. */
  dedupeId?: string;
  /** The job's id (default: a new one). Deliveries of one id have one effect, however enqueued. */
  jobId?: string;
  /** Carried in the message: how many times it was put off during an outage (the runner's). */
  postponed?: number;
  /** The trace the job's run joins (default: the active span's, if any). */
  traceparent?: string;
}

/** A job message: its id, name and payload, and what it carries along. */
export function jobMessage(name: string, payload: unknown, options: EnqueueOptions): JobMessage {
  const parent = options.traceparent ?? traceparent();
  return {
    id: options.jobId ?? newId(),
    name,
    payload,
    ...(options.postponed ? { postponed: options.postponed } : {}),
    ...(parent ? { traceparent: parent } : {}),
  };
}

/** One job to enqueue, as `Jobs.enqueue` takes it. */
export interface JobRequest {
  name: string;
  payload: unknown;
  options?: EnqueueOptions;
}

export interface Jobs {
  readonly kind: "kv-queue" | "qstash";
  /** Enqueues a job and returns its id (the existing job's id when `dedupeId` was seen). */
  enqueue(name: string, payload: unknown, options?: EnqueueOptions): Promise<string>;
  /**
   * Enqueues several jobs, each as `enqueue` would, in as few writes as the adapter allows (the
   * KV queue: one commit per chunk). Where absent, callers enqueue one by one.
   */
  enqueueMany?(jobs: JobRequest[]): Promise<void>;
}

/** Enqueues `requests` with `enqueueMany` where the adapter has it, else one by one, at once. */
export async function enqueueAll(jobs: Jobs, requests: JobRequest[]): Promise<void> {
  if (requests.length === 0) return;
  if (jobs.enqueueMany) return await jobs.enqueueMany(requests);
  await Promise.all(requests.map((job) => jobs.enqueue(job.name, job.payload, job.options)));
}

/** Counts jobs an adapter enqueued into `convene.jobs.queued` (the runner counts them out). */
export function enqueued(names: string[]) {
  for (const name of names) instruments.jobsQueued.add(1, { "convene.job": name });
}

/** Retries after the first attempt, on both adapters; then the job is a dead letter. */
export const JOB_RETRIES = 3;

/** A failure no retry can fix (a payload of the wrong shape, an address the provider refuses). */
export class PermanentJobError extends PermanentFailure {
  override name = "PermanentJobError";
}

type Handler = (payload: unknown, job: JobMessage) => Promise<void>;

/** Every job handler, by name. Handlers must be idempotent: a job may be delivered twice. */
export class JobRegistry {
  #handlers = new Map<string, Handler>();

  register<S extends z.ZodType>(
    name: string,
    schema: S,
    handler: (payload: z.infer<S>, job: JobMessage) => Promise<void>,
  ): this {
    if (this.#handlers.has(name)) throw new Error(`job "${name}" is registered twice`);
    this.#handlers.set(name, (payload, job) => {
      const parsed = schema.safeParse(payload);
      if (!parsed.success) {
        throw new PermanentJobError(`payload of "${name}" is invalid: ${parsed.error.message}`);
      }
      return handler(parsed.data, job);
    });
    return this;
  }

  /** Runs a job's handler; throws when it fails (PermanentJobError when retrying cannot help). */
  async run(job: JobMessage): Promise<void> {
    const handler = this.#handlers.get(job.name);
    if (!handler) throw new PermanentJobError(`no job is called "${job.name}"`);
    await handler(job.payload, job);
  }
}

export function isJobMessage(value: unknown): value is JobMessage {
  const job = value as JobMessage | null;
  return typeof job === "object" && job !== null && typeof job.id === "string" &&
    job.id.length > 0 && job.id.length <= 200 && typeof job.name === "string" && "payload" in job;
}

export function workflowUrl(publicUrl: string, name: string): string {
  return `${publicUrl}/workflows/${encodeURIComponent(name)}`;
}

/** Parses a delivered body into a job for `name`; anything else is a 400. */
export function parseDelivery(name: string, rawBody: string): JobMessage {
  let body: unknown;
  try {
    body = JSON.parse(rawBody);
  } catch {
    throw new Invalid("The delivery body is not JSON.");
  }
  if (!isJobMessage(body)) throw new Invalid("The delivery body is not a job message.");
  if (body.name !== name) {
    throw new Invalid(`The delivery names job "${body.name}" but was sent to "${name}".`);
  }
  return body;
}
