// Media (API.md "Media"): uploads, the owner's delete, and the public bytes at /media/:id.
import { Hono } from "hono";
import type { AppEnv, SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { deleteMedia, mediaBytes, mediaFile, uploadMedia } from "../workflows/media/uploads.ts";
import { refreshAudience } from "../workflows/posts.ts";
import { signedIn } from "./middleware/session.ts";
import { idParam, params } from "./middleware/validate.ts";

/** A file never changes under its id, so caches may keep it; a deleted one is gone within a day. */
const CACHE_CONTROL = "public, max-age=86400, immutable";

export function mediaRoutes(deps: Deps) {
  return new Hono<AppEnv>()
    .route("/api/media", signedIn(uploadRoutes(deps)))
    .get("/media/:id", params(idParam), async (c) => {
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
    });
}

/** Uploading a file and deleting one's own. */
function uploadRoutes(deps: Deps) {
  return new Hono<SignedInEnv>()
    .post("/", async (c) => {
      const media = await uploadMedia(deps, c.var.session.sub, c.req.raw);
      return c.json(media, 201, { location: media.url });
    })
    .delete("/:id", params(idParam), async (c) => {
      const userId = c.var.session.sub;
      const { postIds } = await deleteMedia(deps, c.req.valid("param").id, userId);
      if (postIds.length > 0) await refreshAudience(deps, userId);
      return c.body(null, 204);
    });
}
