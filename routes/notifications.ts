// Notifications of the signed-in user (the reference\'s "Notifications" group).
import { Hono } from "hono";
import { z } from "zod";
import { html } from "hono/html";
import { plainPage } from "./web.ts";
import type { AppEnv, SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import {
  changePreferences,
  countUnread,
  listNotifications,
  markRead,
  preferencesOf,
  stopEmails,
} from "../db/notifications.ts";
import { NOTIFICATION_TYPES, type NotificationType } from "../db/schema.ts";
import { Invalid } from "../errors.ts";
import { unsubscribeAllowed } from "../workflows/notifications.ts";
import { signedIn } from "./middleware/session.ts";
import { body, optionalJsonBody, pageQuery, query } from "./middleware/validate.ts";
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

const perType = z.strictObject(
  Object.fromEntries(NOTIFICATION_TYPES.map((type) => [type, z.boolean()])) as Record<
    NotificationType,
    z.ZodBoolean
  >,
);
const preferences = z.object({ inApp: perType, email: perType });
const preferencesChange = z.strictObject({
  inApp: perType.partial().optional(),
  email: perType.partial().optional(),
});
const unsubscribeQuery = z.object({ u: id, sig: z.string().regex(/^[0-9a-f]{64}$/) });

export function notificationRoutes(deps: Deps) {
  const db = deps.database.db;
  // The unsubscribe link works without a session: its signature is the member's consent.
  const unsubscribe = new Hono<AppEnv>()
    .get(
      "/unsubscribe",
      describe({
        summary:
          "The page a digest's unsubscribe link opens (no sign-in): a button that stops them",
        description:
          "Answers a page with one button (a form POST to the same address), so a mail scanner that opens links stops nothing; mail clients that unsubscribe in one click POST directly.",
        answers: { 200: { contentType: "text/html" } },
        errors: { 400: ["invalid"] },
      }),
      query(unsubscribeQuery),
      async (c) => {
        const { u, sig } = c.req.valid("query");
        await signedLink(u, sig);
        return c.html(plainPage(
          "Convene emails",
          html`<h1>Stop emails from Convene?</h1>
<form method="post"><button>Stop all emails</button></form>
<p>You will still see notifications in the app. Choose per type on your profile page.</p>`,
        ));
      },
    )
    .post(
      "/unsubscribe",
      describe({
        summary: "Stop every notification email of the linked member (no sign-in)",
        answers: { 200: { contentType: "text/html" } },
        errors: { 400: ["invalid"] },
      }),
      query(unsubscribeQuery),
      async (c) => {
        const { u, sig } = c.req.valid("query");
        await signedLink(u, sig);
        await stopEmails(db, u);
        return c.html(plainPage(
          "Convene emails",
          html`<h1>Done</h1>
<p>Convene will send you no more notification emails. Turn them back on, per type, on your
profile page.</p>`,
        ));
      },
    );
  async function signedLink(userId: string, signature: string) {
    if (!await unsubscribeAllowed(deps, userId, signature)) {
      throw new Invalid("This unsubscribe link is not one Convene sent.", [
        { path: "sig", message: "does not match" },
      ]);
    }
  }
  return new Hono<AppEnv>().route("/", unsubscribe).route(
    "/",
    signedIn(
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
        .get(
          "/preferences",
          describe({
            summary: "What the caller is told of, per type: in the app and by email",
            answers: { 200: preferences },
          }),
          async (c) => {
            return c.json((await preferencesOf(db, c.var.session.sub))!);
          },
        )
        .put(
          "/preferences",
          describe({
            summary: "Change what the caller is told of (types not named keep their choice)",
            description:
              "By email, a member who is offline gets one email per batch (sent 10 minutes after the first notification it carries), never one per event. Defaults: everything in the app; by email, messages, connection requests and acceptances, interviews, orders and moderation.",
            answers: { 200: preferences },
          }),
          body(preferencesChange),
          async (c) => {
            return c.json((await changePreferences(db, c.var.session.sub, c.req.valid("json")))!);
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
    ),
  );
}
