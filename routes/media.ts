// Media (the reference's "Media" group): uploads, the owner's delete, the public bytes at /media/:id,
// and private message attachments (their upload, signed links, and the bytes behind a link).
import { type Context, Hono } from "hono";
import type { ByteRange } from "../providers/storage.ts";
import type { AppEnv, SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { deleteMedia, mediaBytes, mediaFile, uploadMedia } from "../workflows/media/uploads.ts";
import { refreshAudience } from "../workflows/posts.ts";
import { signedIn } from "./middleware/session.ts";
import { idParam, params, query } from "./middleware/validate.ts";
import {
  attachmentLink,
  disposition,
  signedAttachment,
  uploadAttachment,
} from "../workflows/media/attachments.ts";
import { id } from "../input.ts";
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

const attachmentUpload = z.object({
  id: z.string(),
  name: z.string(),
  contentType: z.string(),
  size: z.int(),
  createdAt: timestamp,
  url: z.string().meta({ description: "`/api/attachments/{id}/content` (see below)." }),
}).meta({ id: "AttachmentUpload" });

const attachmentLinkAnswer = attachmentUpload.omit({ createdAt: true }).extend({
  url: z.string().meta({
    description:
      "A signed URL of the bytes, for the caller only: S3's presigned URL, or this server's `/media/private/{id}?viewer=&expires=&signature=`.",
  }),
  expiresAt: timestamp.meta({ description: "When `url` stops working." }),
}).meta({ id: "AttachmentLink" });

const signedQuery = z.object({
  viewer: id,
  expires: z.coerce.number().int().min(0).max(2 ** 40),
  signature: z.string().regex(/^[0-9a-f]{64}$/, "is not a signature"),
});

/** A file's bytes by range, as both byte routes answer them (see `bytesAnswer`). */
const RANGE_ANSWERS = {
  206: {
    description: "The one range `Range: bytes=…` asked for.",
    contentType: "*/*",
    headers: { "Content-Range": { description: "`bytes <first>-<last>/<size>`." } },
  },
  416: { description: "The range starts past the end (`Content-Range: bytes */<size>`)." },
};

/** What the byte routes read besides the path: ranges, as a player seeking in a video asks. */
const RANGE_HEADERS = {
  Range: { description: "One range, `bytes=<first>-[<last>]` or `bytes=-<suffix>`." },
  "If-Range": { description: "The ETag the range is for; another gets the whole file." },
};

const PRIVATE_HEADERS = {
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; sandbox",
  "referrer-policy": "no-referrer",
};

export function mediaRoutes(deps: Deps) {
  return new Hono<AppEnv>()
    .route("/api/media", signedIn(uploadRoutes(deps)))
    .route("/api/attachments", signedIn(attachmentRoutes(deps)))
    .get(
      "/media/private/:id",
      describe({
        summary: "A message attachment's bytes, through a signed URL (local storage)",
        description:
          "The URL `GET /api/attachments/{id}/content` redirects to when files are stored locally: it works for `ATTACHMENT_URL_SECONDS` and only while the viewer may still see the file (a block ends it at once).",
        answers: {
          200: { description: "The bytes, for this viewer only.", contentType: "*/*" },
          ...RANGE_ANSWERS,
        },
        headers: RANGE_HEADERS,
        errors: {
          400: ["invalid-request"],
          403: ["forbidden", "link-expired"],
          404: ["not-found"],
        },
      }),
      params(idParam),
      query(signedQuery),
      async (c) => {
        const { file, secondsLeft } = await signedAttachment(
          deps,
          c.req.valid("param").id,
          c.req.valid("query"),
        );
        const headers = {
          ...PRIVATE_HEADERS,
          "content-type": file.contentType,
          "content-disposition": disposition(file),
          "cache-control": `private, max-age=${secondsLeft}`,
          "cross-origin-resource-policy": "same-site",
        };
        return await bytesAnswer(c, file.size, headers, (range) => mediaBytes(deps, file, range));
      },
    )
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
          ...RANGE_ANSWERS,
        },
        headers: RANGE_HEADERS,
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
        return await bytesAnswer(c, row.size, headers, (range) => mediaBytes(deps, row, range));
      },
    );
}

/**
 * The bytes, whole (200) or the one range asked for (206, `Content-Range`), so a video seeks
 * without downloading what comes before. A range past the end is 416; several ranges, a malformed
 * one or an `If-Range` that is not the current ETag get the whole file, as HTTP allows.
 */
async function bytesAnswer(
  c: Context,
  size: number,
  headers: Record<string, string>,
  read: (range?: ByteRange) => Promise<ReadableStream<Uint8Array>>,
) {
  const ranged = { ...headers, "accept-ranges": "bytes" };
  const range = wantedRange(c.req.header("range"), c.req.header("if-range"), headers.etag, size);
  if (range === "unsatisfiable") {
    return c.body(null, 416, { ...ranged, "content-range": `bytes */${size}` });
  }
  const [status, length, extra] = range
    ? [206, range.end - range.start + 1, {
      "content-range": `bytes ${range.start}-${range.end}/${size}`,
    }] as const
    : [200, size, {}] as const;
  const answered = { ...ranged, ...extra, "content-length": String(length) };
  if (c.req.method === "HEAD") return c.body(null, status, answered);
  return c.body(await read(range ?? undefined), status, answered);
}

/** The one range of `bytes=a-b`, `bytes=a-` or `bytes=-n` within `size`; null for the whole. */
function wantedRange(
  header: string | undefined,
  ifRange: string | undefined,
  etag: string | undefined,
  size: number,
): ByteRange | "unsatisfiable" | null {
  if (!header?.startsWith("bytes=")) return null;
  if (ifRange !== undefined && ifRange !== etag) return null;
  const spec = /^(\d*)-(\d*)$/.exec(header.slice(6).trim());
  if (!spec || (spec[1] === "" && spec[2] === "")) return null;
  if (spec[1] === "") {
    const suffix = Number(spec[2]);
    return suffix === 0 ? "unsatisfiable" : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(spec[1]);
  const end = spec[2] === "" ? size - 1 : Math.min(Number(spec[2]), size - 1);
  if (spec[2] !== "" && Number(spec[2]) < start) return null;
  return start >= size ? "unsatisfiable" : { start, end };
}

/** Private files for messages: the upload, and a signed URL for one of the two members. */
function attachmentRoutes(deps: Deps) {
  const linkErrors = { 404: ["not-found"] };
  return new Hono<SignedInEnv>()
    .post(
      "/",
      describe({
        summary: "Upload a private file to send in a message (`attachmentIds`)",
        description:
          "The same types and limits as `POST /api/media`, and a daily budget per sender (`ATTACHMENT_BYTES_PER_DAY`; past it, 429 with `Retry-After`). Only the uploader sees it until a message carries it, then only that conversation's two members; it is never at `/media/{id}`. Delete an unsent one with `DELETE /api/media/{id}`.",
        body: {
          contentType: "multipart/form-data",
          schema: z.object({
            file: z.string().meta({
              contentMediaType: "application/octet-stream",
              description: "The file (one part named `file`); its name is kept.",
            }),
          }),
        },
        answers: { 201: { schema: attachmentUpload } },
        errors: { 429: ["rate-limited"] },
      }),
      async (c) => c.json(await uploadAttachment(deps, c.var.session.sub, c.req.raw), 201),
    )
    .get(
      "/:id",
      describe({
        summary: "A signed URL of a private file, for one of its conversation's members",
        answers: { 200: { schema: attachmentLinkAnswer } },
        errors: linkErrors,
      }),
      params(idParam),
      async (c) => {
        const { file, url, expiresAt } = await attachmentLink(
          deps,
          c.req.valid("param").id,
          c.var.session.sub,
        );
        const { id, name, contentType, size } = file;
        c.header("cache-control", "no-store");
        return c.json({ id, name, contentType, size, url, expiresAt });
      },
    )
    .get(
      "/:id/content",
      describe({
        summary: "A private file's bytes: a redirect to a short-lived signed URL",
        description:
          "Every message's `attachments[].url`. Works with the session cookie, so a browser can use it as an image's `src`.",
        answers: {
          302: {
            description: "`Location` is the signed URL (see `GET /api/attachments/{id}`).",
            headers: { Location: { description: "The signed URL." } },
          },
        },
        errors: linkErrors,
      }),
      params(idParam),
      async (c) => {
        const { url } = await attachmentLink(deps, c.req.valid("param").id, c.var.session.sub);
        c.header("cache-control", "no-store");
        return c.redirect(url, 302);
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
