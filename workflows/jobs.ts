// The jobs port: enqueue named jobs on QStash (production) or the KV queue (embedded default),
// and one registry of handlers that both adapters deliver to.
import { Client, Receiver } from "@upstash/qstash";
import type { z } from "zod";
import { Invalid, NotFound } from "../errors.ts";
import { newId } from "../ids.ts";
import { deadLetterKey, jobDedupeKey } from "../kv/keys.ts";

export interface JobMessage {
  id: string;
  name: string;
  payload: unknown;
}

export interface EnqueueOptions {
  /** Run no sooner than this many seconds from now. */
  delaySeconds?: number;
  /** Enqueues with the same id within the dedupe window are dropped. */
  dedupeId?: string;
}

export interface Jobs {
  readonly kind: "kv-queue" | "qstash";
  enqueue(name: string, payload: unknown, options?: EnqueueOptions): Promise<string>;
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
    this.#handlers.set(name, (payload, job) => handler(schema.parse(payload), job));
    return this;
  }

  has(name: string): boolean {
    return this.#handlers.has(name);
  }

  /** Runs a delivered job; throws (so the transport retries) when the handler fails. */
  async run(job: JobMessage): Promise<void> {
    const handler = this.#handlers.get(job.name);
    if (!handler) throw new NotFound(`No job is called "${job.name}".`);
    await handler(job.payload, job);
  }
}

/** How long a dedupe id is remembered (QStash keeps its own for 10 minutes too). */
const DEDUPE_WINDOW_MS = 10 * 60 * 1000;

export function isJobMessage(value: unknown): value is JobMessage {
  const job = value as JobMessage | null;
  return typeof job === "object" && job !== null && typeof job.id === "string" &&
    typeof job.name === "string" && "payload" in job;
}

/** KV queue adapter: `kv.enqueue` with `delay`; undelivered messages land in the dead-letter keys. */
export function kvQueueJobs(kv: Deno.Kv): Jobs {
  return {
    kind: "kv-queue",
    async enqueue(name, payload, options = {}) {
      const job: JobMessage = { id: newId(), name, payload };
      const atomic = kv.atomic();
      if (options.dedupeId) {
        const key = jobDedupeKey(options.dedupeId);
        atomic.check({ key, versionstamp: null }).set(key, job.id, { expireIn: DEDUPE_WINDOW_MS });
      }
      atomic.enqueue(job, {
        delay: Math.max(0, Math.round((options.delaySeconds ?? 0) * 1000)),
        keysIfUndelivered: [deadLetterKey(job.id)],
        backoffSchedule: [1000, 5000, 30000],
      });
      const result = await atomic.commit();
      if (!result.ok && options.dedupeId) {
        return (await kv.get<string>(jobDedupeKey(options.dedupeId))).value ?? job.id;
      }
      return job.id;
    },
  };
}

/**
 * Delivers KV queue messages to the registry until `kv` closes. A failing handler rethrows, so
 * KV retries it on its backoff schedule.
 */
export function listenForJobs(
  kv: Deno.Kv,
  registry: JobRegistry,
  log: (record: Record<string, unknown>) => void,
): Promise<void> {
  return kv.listenQueue(async (message: unknown) => {
    if (!isJobMessage(message)) {
      log({ level: "error", msg: "dropped a queue message that is not a job", message });
      return;
    }
    try {
      await registry.run(message);
    } catch (error) {
      log({
        level: "warn",
        msg: "job failed",
        job: message.name,
        jobId: message.id,
        error: String(error),
      });
      throw error;
    }
  });
}

export interface QstashOptions {
  token: string;
  /** QStash API base URL (unset: Upstash's own). */
  baseUrl?: string;
  /** Public base URL QStash calls back: jobs go to `${publicUrl}/workflows/:name`. */
  publicUrl: string;
}

/** QStash adapter: publishes JSON to this app's `/workflows/:name` with delay and dedupe id. */
export function qstashJobs(options: QstashOptions): Jobs {
  const client = new Client({ token: options.token, baseUrl: options.baseUrl });
  return {
    kind: "qstash",
    async enqueue(name, payload, enqueueOptions = {}) {
      const job: JobMessage = { id: newId(), name, payload };
      await client.publishJSON({
        url: workflowUrl(options.publicUrl, name),
        body: job,
        delay: enqueueOptions.delaySeconds ? Math.round(enqueueOptions.delaySeconds) : undefined,
        deduplicationId: enqueueOptions.dedupeId,
        retries: 3,
      });
      return job.id;
    },
  };
}

export function workflowUrl(publicUrl: string, name: string): string {
  return `${publicUrl}/workflows/${encodeURIComponent(name)}`;
}

/** Verifies `Upstash-Signature` on the raw body against the exact URL QStash signed. */
export function qstashVerifier(keys: { current: string; next: string }) {
  const receiver = new Receiver({ currentSigningKey: keys.current, nextSigningKey: keys.next });
  return async (signature: string, rawBody: string, url: string): Promise<boolean> => {
    try {
      return await receiver.verify({ signature, body: rawBody, url, clockTolerance: 5 });
    } catch {
      return false;
    }
  };
}

export type DeliveryVerifier = ReturnType<typeof qstashVerifier>;

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
