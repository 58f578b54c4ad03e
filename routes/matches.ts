// Matchmaking and calls (the reference\'s "Matchmaking and calls" group).
import { Hono } from "hono";
import type { SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { listInteractions } from "../db/matches.ts";
import { readMatch } from "../kv/matches/match.ts";
import {
  connect,
  currentMatch,
  endCall,
  join,
  leave,
  matchView,
  queueInput,
  videoApprove,
  videoRequest,
} from "../workflows/matches.ts";
import { settledHistory } from "../workflows/history.ts";
import { signedIn } from "./middleware/session.ts";
import { body, idParam, pageQuery, params, query } from "./middleware/validate.ts";
import { documented } from "./middleware/describe.ts";
import { match, page, person, timestamp } from "./reference/schemas.ts";
import { z } from "zod";
import { MATCH_OUTCOMES } from "../db/schema.ts";

const describe = documented("Matchmaking and calls");

const interaction = z.object({
  matchId: z.string(),
  intent: z.string(),
  role: z.enum(["offerer", "answerer"]),
  peer: person,
  startedAt: timestamp,
  endedAt: timestamp,
  durationSeconds: z.number(),
  outcome: z.enum(MATCH_OUTCOMES),
  connected: z.boolean(),
  videoApproved: z.boolean(),
});

export function matchRoutes(deps: Deps) {
  const view = (match: Parameters<typeof matchView>[0], userId: string) =>
    matchView(match, userId, deps.clock.now());
  return signedIn(
    new Hono<SignedInEnv>()
      .post(
        "/match/queue",
        describe({
          summary: "Join the queue for an intent",
          description: "`found-match` arrives over `/ws`, at once when someone was waiting.",
          answers: { 202: z.object({ status: z.literal("queuing"), intent: z.string() }) },
          errors: {
            403: ["email-unverified"],
            404: ["not-found"],
            409: ["already-queued", "in-call"],
          },
        }),
        body(queueInput),
        async (c) => {
          const userId = c.var.session.sub;
          const { intent } = c.req.valid("json");
          await join(deps, userId, intent);
          // Accepted: `found-match` arrives over the socket (at once when someone was waiting).
          return c.json({ status: "queuing", intent }, 202);
        },
      )
      .delete(
        "/match/queue",
        describe({ summary: "Leave the queue", answers: { 204: {} } }),
        async (c) => {
          await leave(deps, c.var.session.sub);
          return c.body(null, 204);
        },
      )
      .get(
        "/match/current",
        describe({
          summary: "The caller's live match",
          answers: { 200: match },
          errors: { 404: ["not-found"] },
        }),
        async (c) => {
          const userId = c.var.session.sub;
          return c.json(view(await currentMatch(deps, userId), userId));
        },
      )
      .get(
        "/match/:id",
        describe({
          summary: "One of the caller's matches",
          answers: { 200: match },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          const userId = c.var.session.sub;
          return c.json(view(await readMatch(deps.kv, c.req.valid("param").id, userId), userId));
        },
      )
      .post(
        "/match/:id/end",
        describe({
          summary: "End the call; both get `call-ended`",
          answers: { 200: match },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          const userId = c.var.session.sub;
          return c.json(view(await endCall(deps, userId, c.req.valid("param").id), userId));
        },
      )
      .post(
        "/match/:id/connect",
        describe({
          summary: "Connect with the peer (hers alone to decide when a woman is in the match)",
          answers: { 200: match },
          errors: { 403: ["peer-decides"], 404: ["not-found"], 409: ["match-closed"] },
        }),
        params(idParam),
        async (c) => {
          const userId = c.var.session.sub;
          const { match } = await connect(deps, userId, c.req.valid("param").id);
          return c.json(view(match, userId));
        },
      )
      .post(
        "/match/:id/video-request",
        describe({
          summary: "Ask the peer for video",
          answers: { 202: match },
          errors: { 404: ["not-found"], 409: ["call-ended"] },
        }),
        params(idParam),
        async (c) => {
          const userId = c.var.session.sub;
          return c.json(
            view(await videoRequest(deps, userId, c.req.valid("param").id), userId),
            202,
          );
        },
      )
      .post(
        "/match/:id/video-approve",
        describe({
          summary: "Approve video (hers alone when a woman is in the match)",
          answers: { 200: match },
          errors: {
            403: ["peer-decides"],
            404: ["not-found"],
            409: ["call-ended", "no-video-request"],
          },
        }),
        params(idParam),
        async (c) => {
          const userId = c.var.session.sub;
          return c.json(view(await videoApprove(deps, userId, c.req.valid("param").id), userId));
        },
      )
      .get(
        "/history/interactions",
        describe({
          summary: "The caller's past matches with duration and outcome",
          answers: { 200: page(interaction) },
        }),
        query(pageQuery),
        async (c) => {
          const userId = c.var.session.sub;
          return c.json(
            await listInteractions(await settledHistory(deps), userId, c.req.valid("query")),
          );
        },
      ),
  );
}
