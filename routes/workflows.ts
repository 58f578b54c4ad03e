// QStash deliveries: `POST /workflows/:name`, signature-checked on the raw body, then run.
import { Hono } from "hono";
import type { AppEnv, Deps } from "../app.ts";
import { Unauthorized } from "../errors.ts";
import { parseDelivery, workflowUrl } from "../workflows/jobs.ts";

export function workflowRoutes(deps: Deps) {
  return new Hono<AppEnv>()
    .post("/:name", async (c) => {
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
      await deps.registry.run(job);
      return c.json({ ok: true, jobId: job.id });
    });
}
