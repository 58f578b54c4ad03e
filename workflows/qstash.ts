// QStash adapter (production): publishes JSON to this app's `/workflows/:name`; deliveries come
// back signed and are verified with the real Receiver on the raw body and the exact URL.
import { Client, Receiver } from "@upstash/qstash";
import { enqueued, JOB_RETRIES, jobMessage, type Jobs, workflowUrl } from "./jobs.ts";

export interface QstashOptions {
  token: string;
  /** QStash API base URL (unset: Upstash's own). */
  baseUrl?: string;
  /** Public base URL QStash calls back: jobs go to `${publicUrl}/workflows/:name`. */
  publicUrl: string;
}

export function qstashJobs(options: QstashOptions): Jobs {
  const client = new Client({ token: options.token, baseUrl: options.baseUrl });
  return {
    kind: "qstash",
    async enqueue(name, payload, enqueueOptions = {}) {
      const job = jobMessage(name, payload, enqueueOptions);
      const published = await client.publishJSON({
        url: workflowUrl(options.publicUrl, name),
        body: job,
        delay: enqueueOptions.delaySeconds ? Math.round(enqueueOptions.delaySeconds) : undefined,
        deduplicationId: enqueueOptions.dedupeId,
        retries: JOB_RETRIES,
      });
      if (!published.deduplicated) enqueued([name]);
      return job.id;
    },
  };
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
