// Administration: dead letters (list, replay, discard) and the development mail outbox.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv, Deps } from "../app.ts";
import { listReports } from "../db/reports.ts";
import { NotFound } from "../errors.ts";
import { listDeadLetters, restoreDeadLetter, takeDeadLetter } from "../kv/jobs.ts";
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
      // Taking it out first makes concurrent replays of one dead letter enqueue it once.
      const taken = await takeDeadLetter(deps.kv, c.req.valid("param").id);
      if (!taken) throw noSuchDeadLetter();
      const { job } = taken;
      try {
        // Same job id: if an earlier delivery did finish after all, the replay does nothing.
        await deps.jobs.enqueue(job.name, job.payload, { jobId: job.id });
      } catch (error) {
        await restoreDeadLetter(deps.kv, taken);
        throw error;
      }
      deps.log({ level: "info", msg: "dead letter replayed", job: job.name, jobId: job.id });
      return c.json({ jobId: job.id, name: job.name }, 202);
    })
    .delete("/dead-letters/:id", params(jobIdParam), async (c) => {
      const taken = await takeDeadLetter(deps.kv, c.req.valid("param").id);
      if (!taken) throw noSuchDeadLetter();
      deps.log({
        level: "info",
        msg: "dead letter discarded",
        job: taken.job.name,
        jobId: taken.job.id,
      });
      return c.body(null, 204);
    })
    .get("/reports", query(pageQuery), async (c) => {
      return c.json(await listReports(deps.database.db, c.req.valid("query")));
    })
    .get("/outbox", query(pageQuery), async (c) => {
      if (deps.config.production) throw new NotFound("The mail outbox exists in development only.");
      return c.json(await listDevMail(deps.kv, c.req.valid("query")));
    });
}

function noSuchDeadLetter() {
  return new NotFound("No dead letter has this id (it may have been replayed already).");
}
