// Follows, connection requests, blocks and reports (API.md "Profiles, discovery, graph").
import { Hono } from "hono";
import { z } from "zod";
import type { SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { listBlocks, listConnectionRequests, requestView } from "../db/graph.ts";
import { CONNECTION_STATUSES } from "../db/schema.ts";
import { NotFound } from "../errors.ts";
import { readConnectionRequest } from "../kv/graph.ts";
import {
  answerConnection,
  block,
  fileReport,
  follow,
  reportInput,
  requestConnection,
  unblock,
  unfollow,
} from "../workflows/graph.ts";
import { settledHistory } from "../workflows/history.ts";
import { signedIn } from "./middleware/session.ts";
import { body, idParam, pageQuery, params, query } from "./middleware/validate.ts";
import { id } from "../input.ts";

const userParam = z.object({ userId: id });

const connectionInput = z.strictObject({
  toUserId: id,
  message: z.string().trim().max(500).optional(),
});

const connectionMove = z.strictObject({ status: z.enum(["accepted", "rejected", "withdrawn"]) });

const connectionQuery = pageQuery.extend({
  status: z.enum(CONNECTION_STATUSES).optional(),
  direction: z.enum(["sent", "received"]).optional(),
});

export function graphRoutes(deps: Deps) {
  return signedIn(
    new Hono<SignedInEnv>()
      .post("/follows/:userId", params(userParam), async (c) => {
        await follow(deps, c.var.session.sub, c.req.valid("param").userId);
        return c.body(null, 204);
      })
      .delete("/follows/:userId", params(userParam), async (c) => {
        await unfollow(deps, c.var.session.sub, c.req.valid("param").userId);
        return c.body(null, 204);
      })
      .post("/connections", body(connectionInput), async (c) => {
        const request = await requestConnection(deps, c.var.session.sub, c.req.valid("json"));
        return c.json(requestView(request), 201);
      })
      .get("/connections", query(connectionQuery), async (c) => {
        const session = c.var.session;
        return c.json(
          await listConnectionRequests(
            await settledHistory(deps),
            session.sub,
            c.req.valid("query"),
          ),
        );
      })
      .get("/connections/:id", params(idParam), async (c) => {
        const session = c.var.session;
        const request = await readConnectionRequest(deps.kv, c.req.valid("param").id, session.sub);
        return c.json(requestView(request));
      })
      .patch("/connections/:id", params(idParam), body(connectionMove), async (c) => {
        const session = c.var.session;
        const { id } = c.req.valid("param");
        const request = await answerConnection(deps, session.sub, id, c.req.valid("json").status);
        return c.json(requestView(request));
      })
      .get("/blocks", query(pageQuery), async (c) => {
        const session = c.var.session;
        return c.json(
          await listBlocks(await settledHistory(deps), session.sub, c.req.valid("query")),
        );
      })
      .post("/blocks/:userId", params(userParam), async (c) => {
        await block(deps, c.var.session.sub, c.req.valid("param").userId);
        return c.body(null, 204);
      })
      .delete("/blocks/:userId", params(userParam), async (c) => {
        if (!await unblock(deps, c.var.session.sub, c.req.valid("param").userId)) {
          throw new NotFound("You have not blocked this member.");
        }
        return c.body(null, 204);
      })
      .post("/reports", body(reportInput), async (c) => {
        const report = await fileReport(deps, c.var.session.sub, c.req.valid("json"));
        return c.json(report, 201);
      }),
  );
}
