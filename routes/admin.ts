// Administration: this isolate's live figures (the operations page), dead letters of jobs and of
// the outbox (list, replay, discard), reports, and the development mail outbox.
import { Hono } from "hono";
import { z } from "zod";
import type { SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { listReports } from "../db/graph.ts";
import { NotFound } from "../errors.ts";
import { listDeadLetters, restoreDeadLetter, takeDeadLetter } from "../kv/dead-letters.ts";
import { BACKLOG_COUNT_LIMIT, storeBacklog } from "../kv/outbox.ts";
import { recent, RECENT_SECONDS, RECENT_STEP_SECONDS } from "../telemetry.ts";
import { listDevMail } from "../providers/mail.ts";
import { audit } from "../workflows/audit.ts";
import {
  genderSetting,
  resolutionInput,
  resolve,
  restore,
  settleGender,
  suspend,
  suspensionInput,
  takeDown,
  takedownInput,
} from "../workflows/moderation.ts";
import { GENDERS } from "../db/schema.ts";
import { listAdminActions } from "../db/audit.ts";
import { settledHistory } from "../workflows/history.ts";
import { adminOnly } from "./middleware/session.ts";
import { body, idParam, pageQuery, params, query } from "./middleware/validate.ts";
import { documented } from "./middleware/describe.ts";
import { page, person, report, timestamp } from "./reference/schemas.ts";

const takedownView = z.object({ id: z.string(), takenDownAt: timestamp });

const describe = documented("Administration");

const deadLetter = z.object({
  id: z.string(),
  source: z.enum(["job", "outbox"]),
  name: z.string(),
  payload: z.unknown(),
  attempts: z.int(),
  lastError: z.string(),
  failedAt: timestamp,
});

/** Job ids are server-made: a UUID, or `<job>:<UUID>` for jobs keyed by what they act on. */
const jobIdParam = z.object({ id: z.string().regex(/^[\w:-]{1,200}$/, "not a job id") });

const series = z.array(z.number());
const operations = z.object({
  scope: z.literal("isolate").meta({
    description: "The figures are those of the isolate that answered; other isolates keep theirs.",
  }),
  now: timestamp,
  stepSeconds: z.int(),
  windowSeconds: z.int(),
  at: z.array(timestamp).meta({ description: "The end of each step, oldest first." }),
  series: z.object({
    requestsPerSecond: series,
    errorsPerSecond: series.meta({ description: "Answers with a 5xx status." }),
    messagesPerSecond: series.meta({ description: "Chat messages delivered to a socket here." }),
    messageLatencyP95: z.array(z.number().nullable()).meta({
      description: "ms from a message's commit to its delivery; null in a step without any.",
    }),
    feedP95: z.array(z.number().nullable()).meta({ description: "ms to answer a feed page." }),
    sockets: series.meta({ description: "Sockets open at the end of each step." }),
  }),
  current: z.object({
    sockets: z.int(),
    outboxBacklog: z.int().meta({
      description: "Over every isolate, counted up to `countedUpTo`.",
    }),
    oldestOutboxAgeSeconds: z.number().nullable(),
    deadLetters: z.int().meta({ description: "Counted up to `countedUpTo`." }),
    countedUpTo: z.int().meta({
      description: "Where the two counts stop: at this value there may be more.",
    }),
  }),
});

export function adminRoutes(deps: Deps) {
  return adminOnly(
    deps,
    new Hono<SignedInEnv>()
      .get(
        "/operations",
        describe({
          summary:
            "This isolate's live figures over the last five minutes, for the operations page",
          answers: { 200: operations },
        }),
        async (c) => {
          const now = deps.clock.now();
          const backlog = await storeBacklog(deps.kv, now, BACKLOG_COUNT_LIMIT);
          const { at, rates, p95, gauges } = recent.series();
          const zeros = at.map(() => 0);
          const empty = at.map(() => null);
          return c.json({
            scope: "isolate" as const,
            now: new Date(now).toISOString(),
            stepSeconds: RECENT_STEP_SECONDS,
            windowSeconds: RECENT_SECONDS,
            at,
            series: {
              requestsPerSecond: rates.requests ?? zeros,
              errorsPerSecond: rates.errors ?? zeros,
              messagesPerSecond: rates.messageLatency ?? zeros,
              messageLatencyP95: p95.messageLatency ?? empty,
              feedP95: p95.feed ?? empty,
              sockets: gauges.sockets ?? zeros,
            },
            current: {
              sockets: recent.level("sockets"),
              outboxBacklog: backlog.outboxRecords,
              oldestOutboxAgeSeconds: backlog.oldestOutboxAgeSeconds,
              deadLetters: backlog.deadLetters,
              countedUpTo: BACKLOG_COUNT_LIMIT,
            },
          });
        },
      )
      .get(
        "/dead-letters",
        describe({
          summary: "Jobs and outbox records that failed every retry",
          answers: { 200: page(deadLetter) },
        }),
        query(pageQuery),
        async (c) => {
          return c.json(await listDeadLetters(deps.kv, c.req.valid("query")));
        },
      )
      .post(
        "/dead-letters/:id/replay",
        describe({
          summary: "Run a dead letter again (once, however often this is called)",
          answers: {
            202: z.object({
              jobId: z.string(),
              name: z.string(),
              source: z.enum(["job", "outbox"]),
            }),
          },
          errors: { 404: ["not-found"] },
        }),
        params(jobIdParam),
        async (c) => {
          // Taking it out first makes concurrent replays of one dead letter start it once.
          const taken = await takeDeadLetter(deps.kv, c.req.valid("param").id);
          if (!taken) throw noSuchDeadLetter();
          const { letter } = taken;
          const source = letter.source ?? "job";
          try {
            // Same id: if an earlier attempt did finish after all, the replay does nothing.
            if (source === "outbox") await deps.outbox.replay(letter);
            else await deps.jobs.enqueue(letter.name, letter.payload, { jobId: letter.id });
          } catch (error) {
            await restoreDeadLetter(deps.kv, taken);
            throw error;
          }
          deps.log({
            level: "info",
            msg: "dead letter replayed",
            source,
            name: letter.name,
            id: letter.id,
          });
          await audit(deps, {
            actorId: c.var.session.sub,
            action: "dead-letter.replay",
            subject: { type: "dead-letter", id: letter.id },
            detail: { name: letter.name, source },
          });
          return c.json({ jobId: letter.id, name: letter.name, source }, 202);
        },
      )
      .delete(
        "/dead-letters/:id",
        describe({
          summary: "Discard a dead letter",
          answers: { 204: {} },
          errors: { 404: ["not-found"] },
        }),
        params(jobIdParam),
        async (c) => {
          const taken = await takeDeadLetter(deps.kv, c.req.valid("param").id);
          if (!taken) throw noSuchDeadLetter();
          const { letter } = taken;
          deps.log({
            level: "info",
            msg: "dead letter discarded",
            source: letter.source ?? "job",
            name: letter.name,
            id: letter.id,
          });
          await audit(deps, {
            actorId: c.var.session.sub,
            action: "dead-letter.discard",
            subject: { type: "dead-letter", id: letter.id },
            detail: { name: letter.name, source: letter.source ?? "job" },
          });
          return c.body(null, 204);
        },
      )
      .get(
        "/audit",
        describe({
          summary: "What admins did, newest first: who, what, to what, when",
          description:
            "Every admin action that changed something: products (`product.create`, `product.edit`, `product.archive`, `product.restore`), sales (`sale.create`, `sale.edit`, `sale.restock`, `sale.end`, `sale.cancel`), refunds (`order.refund`), dead letters (`dead-letter.replay`, `dead-letter.discard`), and moderation (`member.suspend`, `member.restore`, `member.gender`, `post.takedown`, `comment.takedown`, `report.resolve`). An entry is written with the action: in its KV commit, or in its Postgres transaction.",
          answers: {
            200: page(z.object({
              id: z.string(),
              actor: z.object({ id: z.string(), name: z.string().nullable() }),
              action: z.string(),
              subject: z.object({ type: z.string(), id: z.string() }),
              detail: z.unknown(),
              at: timestamp,
            })),
          },
        }),
        query(pageQuery),
        async (c) => {
          return c.json(await listAdminActions(await settledHistory(deps), c.req.valid("query")));
        },
      )
      .post(
        "/users/:id/suspend",
        describe({
          summary: "Suspend a member, for a time (`until`) or for good",
          description:
            "One KV commit sets their standing and ends every session of theirs; their sockets close, they leave the matchmaking queue and a call of theirs ends. Until it ends they cannot sign in (403 `account-suspended`) or send a message (a send racing the suspension commits before it or not at all), and their posts, comments and profile are hidden from everyone: discovery, search, feeds. Suspending again replaces the suspension.",
          answers: {
            200: z.object({
              suspended: z.literal(true),
              since: timestamp,
              until: timestamp.nullable(),
              reason: z.string(),
            }),
          },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        body(suspensionInput),
        async (c) => {
          const { id } = c.req.valid("param");
          return c.json(await suspend(deps, c.var.session.sub, id, c.req.valid("json")));
        },
      )
      .post(
        "/users/:id/restore",
        describe({
          summary: "End a member's suspension",
          description: "`restored` is false when they were not suspended (nothing changes then).",
          answers: { 200: z.object({ suspended: z.literal(false), restored: z.boolean() }) },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          return c.json(await restore(deps, c.var.session.sub, c.req.valid("param").id));
        },
      )
      .patch(
        "/users/:id/gender",
        describe({
          summary: "Set a member's gender at their request (members choose it once)",
          description:
            "Matchmaking's safety rules rest on the stored gender, so a member chooses it once (at signup or on their profile; `undisclosed` is no choice yet) and every later change is an admin's, with a reason, in the audit log.",
          answers: { 200: z.object({ id: z.string(), gender: z.enum(GENDERS) }) },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        body(genderSetting),
        async (c) => {
          const { id } = c.req.valid("param");
          return c.json(await settleGender(deps, c.var.session.sub, id, c.req.valid("json")));
        },
      )
      .post(
        "/posts/:id/takedown",
        describe({
          summary: "Take a post down: hidden from everyone; its author is told",
          answers: { 200: takedownView },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        body(takedownInput),
        async (c) => {
          const { id } = c.req.valid("param");
          return c.json(await takeDown(deps, c.var.session.sub, "post", id, c.req.valid("json")));
        },
      )
      .post(
        "/comments/:id/takedown",
        describe({
          summary: "Take a comment down: hidden from everyone; its author is told",
          answers: { 200: takedownView },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        body(takedownInput),
        async (c) => {
          const { id } = c.req.valid("param");
          return c.json(
            await takeDown(deps, c.var.session.sub, "comment", id, c.req.valid("json")),
          );
        },
      )
      .post(
        "/reports/:id/resolve",
        describe({
          summary: "Resolve a report with a note (once: again answers the first resolution)",
          answers: { 200: report },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        body(resolutionInput),
        async (c) => {
          const { id } = c.req.valid("param");
          return c.json(await resolve(deps, c.var.session.sub, id, c.req.valid("json")));
        },
      )
      .get(
        "/reports",
        describe({
          summary: "Reports filed by members, newest first",
          answers: { 200: page(report.extend({ reporter: person, user: person })) },
        }),
        query(pageQuery),
        async (c) => {
          return c.json(await listReports(deps.database.db, c.req.valid("query")));
        },
      )
      .get(
        "/outbox",
        describe({
          summary: 'Mail the development mailer "sent" (development only)',
          answers: {
            200: page(
              z.object({
                id: z.string(),
                to: z.string(),
                subject: z.string(),
                text: z.string(),
                sentAt: timestamp,
              }),
            ),
          },
          errors: { 404: ["not-found"] },
        }),
        query(pageQuery),
        async (c) => {
          if (deps.config.production) {
            throw new NotFound("The mail outbox exists in development only.");
          }
          return c.json(await listDevMail(deps.kv, c.req.valid("query")));
        },
      ),
  );
}

function noSuchDeadLetter() {
  return new NotFound("No dead letter has this id (it may have been replayed already).");
}
