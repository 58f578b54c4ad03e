// Administration: dead letters (list, replay, discard) and the development mail outbox.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv, Deps } from "../app.ts";
import { NotFound } from "../errors.ts";
import { getDeadLetter, listDeadLetters, removeDeadLetter, storeDeadLetter } from "../kv/jobs.ts";
import { listDevMail } from "../providers/mail.ts";
import { requireAdmin } from "./middleware/session.ts";
import { pageQuery, params, query } from "./middleware/validate.ts";

const jobIdParam = z.object({ id: z.string().min(1).max(200) });

export function adminRoutes(deps: Deps) {
  return new Hono<AppEnv>()
    .use("*", requireAdmin(deps))
    .get("/dead-letters", query(pageQuery), async (c) => {
      return c.json(await listDeadLetters(deps.kv, c.req.valid("query")));
    })
    .post("/dead-letters/:id/replay", params(jobIdParam), async (c) => {
      const entry = await getDeadLetter(deps.kv, c.req.valid("param").id);
      // Taking it out first makes concurrent replays of one dead letter enqueue it once.
      if (!entry.value || !await removeDeadLetter(deps.kv, entry)) throw noSuchDeadLetter();
      const job = entry.value;
      try {
        // Same job id: if an earlier delivery did finish after all, the replay does nothing.
        await deps.jobs.enqueue(job.name, job.payload, { jobId: job.id });
      } catch (error) {
        await storeDeadLetter(deps.kv, job);
        throw error;
      }
      deps.log({ level: "info", msg: "dead letter replayed", job: job.name, jobId: job.id });
      return c.json({ jobId: job.id, name: job.name }, 202);
    })
    .delete("/dead-letters/:id", params(jobIdParam), async (c) => {
      const entry = await getDeadLetter(deps.kv, c.req.valid("param").id);
      if (!entry.value || !await removeDeadLetter(deps.kv, entry)) throw noSuchDeadLetter();
      deps.log({
        level: "info",
        msg: "dead letter discarded",
        job: entry.value.name,
        jobId: entry.value.id,
      });
      return c.body(null, 204);
    })
    .get("/outbox", query(pageQuery), async (c) => {
      if (deps.config.production) throw new NotFound("The mail outbox exists in development only.");
      return c.json(await listDevMail(deps.kv, c.req.valid("query")));
    });
}

function noSuchDeadLetter() {
  return new NotFound("No dead letter has this id (it may have been replayed already).");
}
