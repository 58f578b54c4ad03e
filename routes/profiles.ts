// Profiles, search, follower lists and discovery (the reference\'s "Profiles, discovery, graph" group).
import { Hono } from "hono";
import { html } from "hono/html";
import { z } from "zod";
import type { SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { listFollows } from "../db/graph.ts";
import { searchUsers } from "../db/users.ts";
import { publicUser } from "../workflows/auth/accounts.ts";
import { reachableUser } from "../workflows/graph.ts";
import {
  discover,
  editProfile,
  memberPicture,
  profilePatch,
  viewProfile,
} from "../workflows/profiles.ts";
import { signedIn } from "./middleware/session.ts";
import { body, idParam, pageQuery, params, query } from "./middleware/validate.ts";
import { documented } from "./middleware/describe.ts";
import { page, profile, timestamp, user } from "./reference/schemas.ts";
import { CONNECTION_STATUSES } from "../db/schema.ts";

const describe = documented("Profiles and discovery");

const profileView = profile.extend({
  followerCount: z.int(),
  followingCount: z.int(),
  connectionCount: z.int(),
  relationship: z.object({
    following: z.boolean(),
    followedBy: z.boolean(),
    connection: z.object({
      id: z.string(),
      status: z.enum(CONNECTION_STATUSES),
      fromUserId: z.string(),
    }).nullable(),
  }).nullable().meta({ description: "Null on one's own profile." }),
});

const follower = profile.extend({ followedAt: timestamp });

const discovery = z.object({
  profile,
  score: z.number(),
  explain: z.object({
    skills: z.number(),
    location: z.number(),
    mutuals: z.number(),
    recency: z.number(),
  }).meta({ description: "Each feature's weight × value; they add up to `score`." }),
  signals: z.object({
    sharedSkills: z.array(z.string()),
    sameLocation: z.boolean(),
    mutualConnections: z.int(),
    lastActiveAt: timestamp,
  }),
});

const hidden = { 404: ["not-found"] }; // unknown, deleted, or blocked either way

const searchQuery = pageQuery.extend({
  q: z.string().trim().min(1, "say what to look for").max(100),
});

export function profileRoutes(deps: Deps) {
  const db = deps.database.db;
  return signedIn(
    new Hono<SignedInEnv>()
      .patch(
        "/profile",
        describe({
          summary: "Edit one's profile",
          description:
            "`gender` is chosen once (`undisclosed` is no choice yet): a later change is 409 `gender-settled`, and an admin makes it at the member's request (`PATCH /api/admin/users/{id}/gender`), since matchmaking's safety rules rest on it.",
          answers: { 200: z.object({ user }) },
          errors: { 403: ["forbidden"], 404: ["not-found"], 409: ["gender-settled"] },
        }),
        body(profilePatch),
        async (c) => {
          const session = c.var.session;
          const user = await editProfile(deps, session.sub, c.req.valid("json"));
          return c.json({ user: publicUser(user, deps.config) });
        },
      )
      .get(
        "/users",
        describe({
          summary: "Search members by name, bio or skill (plain text)",
          answers: { 200: page(profile) },
        }),
        query(searchQuery),
        async (c) => {
          const session = c.var.session;
          const { q, ...page } = c.req.valid("query");
          return c.json(await searchUsers(db, session.sub, q, page));
        },
      )
      .get(
        "/users/:id",
        describe({
          summary: "A member's public profile, with counts and the caller's relationship",
          answers: { 200: profileView },
          errors: hidden,
        }),
        params(idParam),
        async (c) => {
          const session = c.var.session;
          return c.json(await viewProfile(deps, session.sub, c.req.valid("param").id));
        },
      )
      .get(
        "/users/:id/avatar",
        describe({
          summary: "A member's picture: their photo, or their initials",
          description:
            "Every member has one, so a client can show `/api/users/{id}/avatar` beside any name: a 302 to the photo (`/media/{id}`), or, without a photo, an SVG of their initials on a colour of their own.",
          answers: {
            200: { description: "The initials (`image/svg+xml`).", contentType: "image/svg+xml" },
            302: { description: "`Location` is the photo." },
          },
          errors: hidden,
        }),
        params(idParam),
        async (c) => {
          const picture = await memberPicture(deps, c.var.session.sub, c.req.valid("param").id);
          // Private: a block or a suspension hides it from this viewer, not from everyone.
          c.header("cache-control", "private, max-age=300");
          if ("photo" in picture) return c.redirect(picture.photo, 302);
          // Initials, white on the member's hue; `html` escapes them like any interpolation.
          const svg = html`
            <svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"
              viewBox="0 0 64 64">
              <rect width="64" height="64" rx="32" fill="hsl(${picture.hue} 45% 42%)" />
              <text x="32" y="32" dy=".35em" text-anchor="middle" fill="#fff"
                font-family="system-ui, sans-serif" font-size="26">${picture.initials}</text>
            </svg>
          `;
          return c.body(String(svg), 200, {
            "content-type": "image/svg+xml",
            "x-content-type-options": "nosniff",
            "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
          });
        },
      )
      .get(
        "/users/:id/followers",
        describe({
          summary: "Who follows a member",
          answers: { 200: page(follower) },
          errors: hidden,
        }),
        params(idParam),
        query(pageQuery),
        async (c) => {
          const session = c.var.session;
          const { id } = c.req.valid("param");
          await reachableUser(deps, session.sub, id);
          return c.json(await listFollows(db, "followers", id, session.sub, c.req.valid("query")));
        },
      )
      .get(
        "/users/:id/following",
        describe({
          summary: "Whom a member follows",
          answers: { 200: page(follower) },
          errors: hidden,
        }),
        params(idParam),
        query(pageQuery),
        async (c) => {
          const session = c.var.session;
          const { id } = c.req.valid("param");
          await reachableUser(deps, session.sub, id);
          return c.json(await listFollows(db, "following", id, session.sub, c.req.valid("query")));
        },
      )
      .get(
        "/discover",
        describe({
          summary: "Ranked peers, each score explained feature by feature",
          answers: { 200: page(discovery).extend({ computedAt: timestamp.optional() }) },
        }),
        query(pageQuery),
        async (c) => {
          const session = c.var.session;
          return c.json(await discover(deps, session.sub, c.req.valid("query")));
        },
      ),
  );
}
