// Media (the reference\'s "Media" group): uploads, the owner's delete, and the public bytes at /media/:id.
import { Hono } from "hono";
import type { AppEnv, SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { deleteMedia, mediaBytes, mediaFile, uploadMedia } from "../workflows/media/uploads.ts";
import { refreshAudience } from "../workflows/posts.ts";
import { signedIn } from "./middleware/session.ts";
import { idParam, params } from "./middleware/validate.ts";
import { z } from "zod";
import { documented } from "./middleware/describe.ts";
import { timestamp } from "./reference/schemas.ts";

const describe = documented("Media");

const uploadedFile = z.object({
  id: z.string(),
  url: z.string(),
  contentType: z.string(),
  size: z.int(),
  createdAt: timestamp,
}).meta({ id: "MediaFile" });

/** A file never changes under its id, so caches may keep it; a deleted one is gone within a day. */
const CACHE_CONTROL = "public, max-age=86400, immutable";

export function mediaRoutes(deps: Deps) {
  return new Hono<AppEnv>()
    .route("/api/media", signedIn(uploadRoutes(deps)))
    .get(
      "/media/:id",
      describe({
        summary: "A file's bytes (public, immutable under its id)",
        answers: {
          200: {
            description:
              "The bytes, with their sniffed `Content-Type`, an `ETag` and a day of caching.",
            contentType: "*/*",
          },
          304: { description: "Not modified (`If-None-Match` matched)." },
        },
        errors: { 404: ["not-found"] },
      }),
      params(idParam),
      async (c) => {
        const row = await mediaFile(deps, c.req.valid("param").id);
        const etag = `"${row.sha256}"`;
        const headers = {
          "content-type": row.contentType,
          etag,
          "cache-control": CACHE_CONTROL,
          "x-content-type-options": "nosniff",
          // Bytes to look at, never a document that runs: no scripts, even in a PDF viewer.
          "content-security-policy": "default-src 'none'; sandbox",
          // App clients on other origins embed these images.
          "cross-origin-resource-policy": "cross-origin",
          "referrer-policy": "no-referrer",
        };
        const known = c.req.header("if-none-match")?.split(",").map((tag) => tag.trim());
        if (known?.includes(etag) || known?.includes("*")) return c.body(null, 304, headers);
        const sized = { ...headers, "content-length": String(row.size) };
        if (c.req.method === "HEAD") return c.body(null, 200, sized);
        return c.body(await mediaBytes(deps, row), 200, sized);
      },
    );
}

/** Uploading a file and deleting one's own. */
function uploadRoutes(deps: Deps) {
  return new Hono<SignedInEnv>()
    .post(
      "/",
      describe({
        summary:
          "Upload a file (images and PDF ≤ 5 MiB, MP4 and WebM videos ≤ 50 MiB by default; the type is sniffed from the bytes)",
        body: {
          contentType: "multipart/form-data",
          schema: z.object({
            file: z.string().meta({
              contentMediaType: "application/octet-stream",
              description: "The file (one part named `file`).",
            }),
          }),
        },
        answers: {
          201: { schema: uploadedFile, headers: { Location: { description: "The file's URL." } } },
        },
      }),
      async (c) => {
        const media = await uploadMedia(deps, c.var.session.sub, c.req.raw);
        return c.json(media, 201, { location: media.url });
      },
    )
    .delete(
      "/:id",
      describe({
        summary: "Delete one's file; the blob goes in a background job",
        answers: { 204: {} },
        errors: { 403: ["forbidden"], 404: ["not-found"], 409: ["media-in-use"] },
      }),
      params(idParam),
      async (c) => {
        const userId = c.var.session.sub;
        const { postIds } = await deleteMedia(deps, c.req.valid("param").id, userId);
        if (postIds.length > 0) await refreshAudience(deps, userId);
        return c.body(null, 204);
      },
    );
}
