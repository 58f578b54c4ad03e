// Posts, likes, comments and the feed (the reference\'s "Posts and feed" group).
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
import { documented } from "./middleware/describe.ts";
import { page, person, post, timestamp } from "./reference/schemas.ts";
import { z } from "zod";
import { instruments, recent } from "../telemetry.ts";

const describe = documented("Posts and feed");

const like = z.object({ liked: z.boolean(), likeCount: z.int() });
const comment = z.object({
  id: z.string(),
  postId: z.string(),
  author: person,
  text: z.string(),
  createdAt: timestamp,
}).meta({ id: "Comment" });

export function postRoutes(deps: Deps) {
  return signedIn(
    new Hono<SignedInEnv>()
      .post(
        "/posts",
        describe({
          summary: "Publish a post (text, optionally media the caller uploaded)",
          answers: { 201: post },
          errors: { 403: ["forbidden"], 404: ["not-found"] },
        }),
        body(postInput),
        async (c) => {
          const post = await createPost(deps, c.var.session.sub, c.req.valid("json"));
          return c.json(post, 201);
        },
      )
      .get(
        "/posts/:id",
        describe({ summary: "One post", answers: { 200: post }, errors: { 404: ["not-found"] } }),
        params(idParam),
        async (c) => {
          return c.json(await readPost(deps, c.req.valid("param").id, c.var.session.sub));
        },
      )
      .patch(
        "/posts/:id",
        describe({
          summary: "Edit one's post",
          answers: { 200: post },
          errors: { 403: ["forbidden"], 404: ["not-found"] },
        }),
        params(idParam),
        body(postPatch),
        async (c) => {
          const session = c.var.session;
          const { id } = c.req.valid("param");
          return c.json(await editPost(deps, id, session.sub, c.req.valid("json").text));
        },
      )
      .delete(
        "/posts/:id",
        describe({
          summary: "Delete one's post",
          answers: { 204: {} },
          errors: { 403: ["forbidden"], 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          await removePost(deps, c.req.valid("param").id, c.var.session.sub);
          return c.body(null, 204);
        },
      )
      .post(
        "/posts/:id/like",
        describe({
          summary: "Like a post (idempotent)",
          answers: { 200: like },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          return c.json(await likePost(deps, c.req.valid("param").id, c.var.session.sub, true));
        },
      )
      .delete(
        "/posts/:id/like",
        describe({
          summary: "Unlike a post (idempotent)",
          answers: { 200: like },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          return c.json(await likePost(deps, c.req.valid("param").id, c.var.session.sub, false));
        },
      )
      .post(
        "/posts/:id/comments",
        describe({
          summary: "Comment on a post",
          answers: { 201: comment },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        body(commentInput),
        async (c) => {
          const session = c.var.session;
          const { id } = c.req.valid("param");
          return c.json(await addComment(deps, id, session.sub, c.req.valid("json").text), 201);
        },
      )
      .get(
        "/posts/:id/comments",
        describe({
          summary: "A post's comments, oldest first",
          answers: { 200: page(comment) },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        query(pageQuery),
        async (c) => {
          const session = c.var.session;
          const { id } = c.req.valid("param");
          return c.json(await commentsOf(deps, id, session.sub, c.req.valid("query")));
        },
      )
      .delete(
        "/comments/:id",
        describe({
          summary: "Delete a comment (its author or the post's)",
          answers: { 204: {} },
          errors: { 403: ["forbidden"], 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          await removeComment(deps, c.req.valid("param").id, c.var.session.sub);
          return c.body(null, 204);
        },
      )
      .get(
        "/feed",
        describe({
          summary: "Posts by the caller, those they follow and their connections, newest first",
          answers: {
            200: {
              schema: page(post),
              headers: { "X-Cache": { description: "`hit` when the page came from the cache." } },
            },
          },
        }),
        query(pageQuery),
        async (c) => {
          const session = c.var.session;
          const started = performance.now();
          const { body, cached } = await feed(deps, session.sub, c.req.valid("query"));
          const ms = performance.now() - started;
          instruments.feedLatency.record(ms, { "convene.cache": cached ? "hit" : "miss" });
          recent.sample("feed", ms);
          return c.body(body, 200, {
            "content-type": "application/json",
            "x-cache": cached ? "hit" : "miss",
          });
        },
      ),
  );
}
