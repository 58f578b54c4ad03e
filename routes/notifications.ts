// Notifications of the signed-in user (the reference\'s "Notifications" group).
import { Hono } from "hono";
import { z } from "zod";
import type { SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { countUnread, listNotifications, markRead } from "../db/notifications.ts";
import { signedIn } from "./middleware/session.ts";
import { optionalJsonBody, pageQuery, query } from "./middleware/validate.ts";
import { id } from "../input.ts";
import { documented } from "./middleware/describe.ts";
import { notification, page } from "./reference/schemas.ts";

const describe = documented("Notifications");

const listQuery = pageQuery.extend({
  unread: z.enum(["true", "false"]).default("false").transform((value) => value === "true"),
});

const readInput = z.strictObject({
  /** Which to mark read; absent marks every notification read. */
  ids: z.array(id).max(100).optional(),
});

export function notificationRoutes(deps: Deps) {
  const db = deps.database.db;
  return signedIn(
    new Hono<SignedInEnv>()
      .get(
        "/",
        describe({
          summary: "The caller's notifications, newest first",
          answers: { 200: page(notification) },
        }),
        query(listQuery),
        async (c) => {
          const session = c.var.session;
          return c.json(await listNotifications(db, session.sub, c.req.valid("query")));
        },
      )
      .get(
        "/unread-count",
        describe({
          summary: "How many notifications are unread",
          answers: { 200: z.object({ count: z.int() }) },
        }),
        async (c) => {
          const session = c.var.session;
          return c.json({ count: await countUnread(db, session.sub) });
        },
      )
      .post(
        "/read",
        describe({
          summary: "Mark notifications read (`ids`, or every one)",
          body: { schema: readInput, required: false },
          answers: { 204: {} },
        }),
        async (c) => {
          const session = c.var.session;
          const { ids } = optionalJsonBody(readInput, await c.req.text());
          await markRead(db, session.sub, ids, new Date(deps.clock.now()));
          return c.body(null, 204);
        },
      ),
  );
}
