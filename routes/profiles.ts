// Profiles, search, follower lists and discovery (API.md "Profiles, discovery, graph").
import { Hono } from "hono";
import { z } from "zod";
import type { SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { listFollows } from "../db/graph.ts";
import { searchUsers } from "../db/users.ts";
import { publicUser } from "../workflows/auth/accounts.ts";
import { reachableUser } from "../workflows/graph.ts";
import { discover, editProfile, profilePatch, viewProfile } from "../workflows/profiles.ts";
import { signedIn } from "./middleware/session.ts";
import { body, idParam, pageQuery, params, query } from "./middleware/validate.ts";

const searchQuery = pageQuery.extend({
  q: z.string().trim().min(1, "say what to look for").max(100),
});

export function profileRoutes(deps: Deps) {
  const db = deps.database.db;
  return signedIn(
    new Hono<SignedInEnv>()
      .patch("/profile", body(profilePatch), async (c) => {
        const session = c.var.session;
        const user = await editProfile(deps, session.sub, c.req.valid("json"));
        return c.json({ user: publicUser(user) });
      })
      .get("/users", query(searchQuery), async (c) => {
        const session = c.var.session;
        const { q, ...page } = c.req.valid("query");
        return c.json(await searchUsers(db, session.sub, q, page));
      })
      .get("/users/:id", params(idParam), async (c) => {
        const session = c.var.session;
        return c.json(await viewProfile(deps, session.sub, c.req.valid("param").id));
      })
      .get("/users/:id/followers", params(idParam), query(pageQuery), async (c) => {
        const session = c.var.session;
        const { id } = c.req.valid("param");
        await reachableUser(deps, session.sub, id);
        return c.json(await listFollows(db, "followers", id, session.sub, c.req.valid("query")));
      })
      .get("/users/:id/following", params(idParam), query(pageQuery), async (c) => {
        const session = c.var.session;
        const { id } = c.req.valid("param");
        await reachableUser(deps, session.sub, id);
        return c.json(await listFollows(db, "following", id, session.sub, c.req.valid("query")));
      })
      .get("/discover", query(pageQuery), async (c) => {
        const session = c.var.session;
        return c.json(await discover(deps, session.sub, c.req.valid("query")));
      }),
  );
}
