// Follows, connection requests, blocks and reports (the reference\'s "Profiles, discovery, graph" group).
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
import { documented } from "./middleware/describe.ts";
import { connectionRequest, page, person, report, timestamp } from "./reference/schemas.ts";

const describe = documented("Follows, connections and blocks");

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
      .post(
        "/follows/:userId",
        describe({
          summary: "Follow a member (idempotent)",
          answers: { 204: {} },
          errors: { 404: ["not-found"] },
        }),
        params(userParam),
        async (c) => {
          await follow(deps, c.var.session.sub, c.req.valid("param").userId);
          return c.body(null, 204);
        },
      )
      .delete(
        "/follows/:userId",
        describe({ summary: "Stop following a member", answers: { 204: {} } }),
        params(userParam),
        async (c) => {
          await unfollow(deps, c.var.session.sub, c.req.valid("param").userId);
          return c.body(null, 204);
        },
      )
      .post(
        "/connections",
        describe({
          summary: "Ask a member to connect",
          description:
            "With EMAIL_VERIFICATION=required, a member whose address is not confirmed may send 5 requests in all: 403 `email-unverified` past that.",
          answers: { 201: connectionRequest },
          errors: { 403: ["email-unverified"], 404: ["not-found"], 409: ["connection-exists"] },
        }),
        body(connectionInput),
        async (c) => {
          const request = await requestConnection(deps, c.var.session.sub, c.req.valid("json"));
          return c.json(requestView(request), 201);
        },
      )
      .get(
        "/connections",
        describe({
          summary: "The caller's connection requests, sent and received",
          answers: { 200: page(connectionRequest) },
        }),
        query(connectionQuery),
        async (c) => {
          const session = c.var.session;
          return c.json(
            await listConnectionRequests(
              await settledHistory(deps),
              session.sub,
              c.req.valid("query"),
            ),
          );
        },
      )
      .get(
        "/connections/:id",
        describe({
          summary: "One of the caller's connection requests",
          answers: { 200: connectionRequest },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          const session = c.var.session;
          const request = await readConnectionRequest(
            deps.kv,
            c.req.valid("param").id,
            session.sub,
          );
          return c.json(requestView(request));
        },
      )
      .patch(
        "/connections/:id",
        describe({
          summary: "Accept, reject (recipient) or withdraw (sender) a request",
          answers: { 200: connectionRequest },
          errors: { 403: ["forbidden"], 404: ["not-found"], 409: ["not-pending"] },
        }),
        params(idParam),
        body(connectionMove),
        async (c) => {
          const session = c.var.session;
          const { id } = c.req.valid("param");
          const request = await answerConnection(deps, session.sub, id, c.req.valid("json").status);
          return c.json(requestView(request));
        },
      )
      .get(
        "/blocks",
        describe({
          summary: "Members the caller blocked",
          answers: { 200: page(z.object({ user: person, blockedAt: timestamp })) },
        }),
        query(pageQuery),
        async (c) => {
          const session = c.var.session;
          return c.json(
            await listBlocks(await settledHistory(deps), session.sub, c.req.valid("query")),
          );
        },
      )
      .post(
        "/blocks/:userId",
        describe({
          summary: "Block a member: each is hidden from the other everywhere",
          answers: { 204: {} },
          errors: { 404: ["not-found"] },
        }),
        params(userParam),
        async (c) => {
          await block(deps, c.var.session.sub, c.req.valid("param").userId);
          return c.body(null, 204);
        },
      )
      .delete(
        "/blocks/:userId",
        describe({
          summary: "Unblock a member",
          answers: { 204: {} },
          errors: { 404: ["not-found"] },
        }),
        params(userParam),
        async (c) => {
          if (!await unblock(deps, c.var.session.sub, c.req.valid("param").userId)) {
            throw new NotFound("You have not blocked this member.");
          }
          return c.body(null, 204);
        },
      )
      .post(
        "/reports",
        describe({
          summary: "Report a member (or one of their posts) to the administrators",
          answers: { 201: report },
          errors: { 404: ["not-found"] },
        }),
        body(reportInput),
        async (c) => {
          const report = await fileReport(deps, c.var.session.sub, c.req.valid("json"));
          return c.json(report, 201);
        },
      ),
  );
}
