// Posts, likes, comments and the feed (API.md "Posts and feed").
import { Hono } from "hono";
import type { SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import {
  addComment,
  commentInput,
  commentsOf,
  createPost,
  editPost,
  feed,
  likePost,
  postInput,
  postPatch,
  readPost,
  removeComment,
  removePost,
} from "../workflows/posts.ts";
import { signedIn } from "./middleware/session.ts";
import { body, idParam, pageQuery, params, query } from "./middleware/validate.ts";

export function postRoutes(deps: Deps) {
  return signedIn(
    new Hono<SignedInEnv>()
      .post("/posts", body(postInput), async (c) => {
        const post = await createPost(deps, c.var.session.sub, c.req.valid("json"));
        return c.json(post, 201);
      })
      .get("/posts/:id", params(idParam), async (c) => {
        return c.json(await readPost(deps, c.req.valid("param").id, c.var.session.sub));
      })
      .patch("/posts/:id", params(idParam), body(postPatch), async (c) => {
        const session = c.var.session;
        const { id } = c.req.valid("param");
        return c.json(await editPost(deps, id, session.sub, c.req.valid("json").text));
      })
      .delete("/posts/:id", params(idParam), async (c) => {
        await removePost(deps, c.req.valid("param").id, c.var.session.sub);
        return c.body(null, 204);
      })
      .post("/posts/:id/like", params(idParam), async (c) => {
        return c.json(await likePost(deps, c.req.valid("param").id, c.var.session.sub, true));
      })
      .delete("/posts/:id/like", params(idParam), async (c) => {
        return c.json(await likePost(deps, c.req.valid("param").id, c.var.session.sub, false));
      })
      .post("/posts/:id/comments", params(idParam), body(commentInput), async (c) => {
        const session = c.var.session;
        const { id } = c.req.valid("param");
        return c.json(await addComment(deps, id, session.sub, c.req.valid("json").text), 201);
      })
      .get("/posts/:id/comments", params(idParam), query(pageQuery), async (c) => {
        const session = c.var.session;
        const { id } = c.req.valid("param");
        return c.json(await commentsOf(deps, id, session.sub, c.req.valid("query")));
      })
      .delete("/comments/:id", params(idParam), async (c) => {
        await removeComment(deps, c.req.valid("param").id, c.var.session.sub);
        return c.body(null, 204);
      })
      .get("/feed", query(pageQuery), async (c) => {
        const session = c.var.session;
        const { body, cached } = await feed(deps, session.sub, c.req.valid("query"));
        return c.body(body, 200, {
          "content-type": "application/json",
          "x-cache": cached ? "hit" : "miss",
        });
      }),
  );
}
