// Matchmaking and calls (API.md "Matchmaking and calls").
import { Hono } from "hono";
import type { SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { listInteractions } from "../db/matches.ts";
import { readMatch } from "../kv/matches.ts";
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

export function matchRoutes(deps: Deps) {
  const view = (match: Parameters<typeof matchView>[0], userId: string) =>
    matchView(match, userId, deps.clock.now());
  return signedIn(
    new Hono<SignedInEnv>()
      .post("/match/queue", body(queueInput), async (c) => {
        const userId = c.var.session.sub;
        const { intent } = c.req.valid("json");
        await join(deps, userId, intent);
        // Accepted: `found-match` arrives over the socket (at once when someone was waiting).
        return c.json({ status: "queuing", intent }, 202);
      })
      .delete("/match/queue", async (c) => {
        await leave(deps, c.var.session.sub);
        return c.body(null, 204);
      })
      .get("/match/current", async (c) => {
        const userId = c.var.session.sub;
        return c.json(view(await currentMatch(deps, userId), userId));
      })
      .get("/match/:id", params(idParam), async (c) => {
        const userId = c.var.session.sub;
        return c.json(view(await readMatch(deps.kv, c.req.valid("param").id, userId), userId));
      })
      .post("/match/:id/end", params(idParam), async (c) => {
        const userId = c.var.session.sub;
        return c.json(view(await endCall(deps, userId, c.req.valid("param").id), userId));
      })
      .post("/match/:id/connect", params(idParam), async (c) => {
        const userId = c.var.session.sub;
        const { match } = await connect(deps, userId, c.req.valid("param").id);
        return c.json(view(match, userId));
      })
      .post("/match/:id/video-request", params(idParam), async (c) => {
        const userId = c.var.session.sub;
        return c.json(view(await videoRequest(deps, userId, c.req.valid("param").id), userId), 202);
      })
      .post("/match/:id/video-approve", params(idParam), async (c) => {
        const userId = c.var.session.sub;
        return c.json(view(await videoApprove(deps, userId, c.req.valid("param").id), userId));
      })
      .get("/history/interactions", query(pageQuery), async (c) => {
        const userId = c.var.session.sub;
        return c.json(
          await listInteractions(await settledHistory(deps), userId, c.req.valid("query")),
        );
      }),
  );
}
