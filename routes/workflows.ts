// QStash deliveries: `POST /workflows/:name`, signature-checked on the raw body, then run once.
import { Hono } from "hono";
import type { AppEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { DomainError, Unauthorized, Unavailable } from "../errors.ts";
import { JOB_RETRIES, parseDelivery, workflowUrl } from "../workflows/jobs.ts";
import { runJob } from "../workflows/runner.ts";
import { z } from "zod";
import { documented } from "./middleware/describe.ts";

const describe = documented("Jobs");

export function workflowRoutes(deps: Deps) {
  return new Hono<AppEnv>()
    .post(
      "/:name",
      describe({
        summary: "A QStash delivery of a background job",
        description:
          "Verified with QStash's `Upstash-Signature` over the raw body and this URL; a job runs once per id.",
        headers: {
          "Upstash-Signature": { description: "QStash's JWT signature.", required: true },
          "Upstash-Retried": { description: "How many times QStash retried this delivery." },
        },
        body: {
          schema: z.object({ id: z.string(), name: z.string(), payload: z.unknown() }).meta({
            description: "A job message.",
          }),
        },
        answers: { 200: z.object({ jobId: z.string(), outcome: z.string() }) },
        errors: { 401: ["unauthorized"], 409: ["job-running"] },
      }),
      async (c) => {
        const name = c.req.param("name");
        const signature = c.req.header("upstash-signature");
        if (!signature) throw new Unauthorized("Upstash-Signature is required.");
        if (!deps.verifyDelivery) {
          throw new Unauthorized("QStash signing keys are not configured: deliveries are refused.");
        }
        const raw = await c.req.text();
        const url = workflowUrl(deps.config.PUBLIC_URL, name);
        if (!await deps.verifyDelivery(signature, raw, url)) {
          throw new Unauthorized("The Upstash-Signature does not match this delivery.");
        }
        const job = parseDelivery(name, raw);
        // QStash counts retries from 0; the last one it will make is JOB_RETRIES.
        const retried = Number(c.req.header("upstash-retried"));
        const final = Number.isFinite(retried) && retried >= JOB_RETRIES;
        const outcome = await runJob(deps, job, { final }).catch((error) => {
          if (error instanceof DomainError) throw error;
          // The runner logged the failure; a non-2xx answer makes QStash retry with backoff.
          throw new Unavailable(`Job ${job.id} failed and will be retried.`, { jobId: job.id });
        });
        return c.json({ jobId: job.id, outcome });
      },
    );
}
