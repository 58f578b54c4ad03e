// Media: uploads checked by their bytes and size as they stream in, the owner's delete, the
// ownership check behind every attachment, and the jobs and daily sweep that remove blobs
// nothing uses (never one that something does).
import { sha256Hex } from "../../hashes.ts";
import {
  MaxFileSizeExceededError,
  MaxPartsExceededError,
  MaxTotalSizeExceededError,
  MultipartParseError,
  parseMultipartRequest,
} from "@remix-run/multipart-parser";
import { z } from "zod";
import type { Deps } from "../../deps.ts";
import {
  deleteMediaEverywhere,
  deleteUnusedMedia,
  findMedia,
  findMediaMany,
  insertMedia,
  listUnusedMedia,
  mediaPath,
} from "../../db/media.ts";
import { MEDIA_TYPES, type MediaRow, type MediaType } from "../../db/schema.ts";
import { findUserById } from "../../db/users.ts";
import {
  Conflict,
  Forbidden,
  Invalid,
  NotFound,
  PayloadTooLarge,
  Unauthorized,
  Unavailable,
  UnsupportedMediaType,
} from "../../errors.ts";
import { newId } from "../../ids.ts";
import type { Outbox } from "../../kv/outbox.ts";
import { jobRecord } from "../outbox-jobs.ts";
import type { ByteRange } from "../../providers/storage.ts";
import { sniffMediaType } from "./sniff.ts";
import { attachmentSentTo, forgetAttachment } from "../../kv/attachments.ts";
import { id } from "../../input.ts";

const RELEASE_JOB = "media-release";
const PURGE_OWNER_JOB = "media-purge-owner";

/** Room for the multipart framing around the file (boundaries, part headers, small fields). */
const FRAMING_BYTES = 64 * 1024;

export interface MediaView {
  id: string;
  url: string;
  contentType: MediaType;
  size: number;
  createdAt: string;
}

function mediaView(row: MediaRow): MediaView {
  return {
    id: row.id,
    url: mediaPath(row.id),
    contentType: row.contentType,
    size: row.size,
    createdAt: row.createdAt.toISOString(),
  };
}

/** Where a file's bytes live: under its owner, so an account's files can be purged together. */
export function blobKey(ownerId: string, mediaId: string) {
  return `${ownerId}/${mediaId}`;
}

/**
 * Reads the `file` part of a multipart upload, refusing as soon as it is too large (the rest of
 * the body is never read), checks its bytes against the allow-list, stores it and records it.
 */
export async function uploadMedia(deps: Deps, ownerId: string, request: Request) {
  return mediaView(await storeUpload(deps, ownerId, await readUpload(deps, request)));
}

/** An upload as read: its bytes, their sniffed type, and the name the client gave the file. */
export interface Upload {
  bytes: Uint8Array;
  contentType: MediaType;
  filename: string | undefined;
}

/** Reads and checks the `file` part: 415 for a type not allowed, 413 past its type's limit. */
export async function readUpload(deps: Deps, request: Request): Promise<Upload> {
  const { MEDIA_MAX_BYTES: fileLimit, MEDIA_VIDEO_MAX_BYTES: videoLimit } = deps.config;
  // Read up to the larger limit; what the bytes turn out to be says which limit applies.
  const { bytes, filename } = await readFilePart(request, Math.max(fileLimit, videoLimit));
  const contentType = sniffMediaType(bytes);
  if (!contentType.accepted) {
    throw new UnsupportedMediaType(
      `Only PNG, JPEG, WebP, GIF, PDF, MP4 and WebM files are accepted; ${contentType.description}.`,
      { accepted: MEDIA_TYPES },
    );
  }
  const video = contentType.type.startsWith("video/");
  const limit = video ? videoLimit : fileLimit;
  if (bytes.byteLength > limit) throw new PayloadTooLarge(limit, video ? "A video" : "The file");
  return { bytes, contentType: contentType.type, filename };
}

/**
 * Stores the bytes, then records the file (a private one with its name, through `insert`, which
 * may refuse it by throwing; the bytes are removed then); returns the row.
 */
export async function storeUpload(
  deps: Deps,
  ownerId: string,
  upload: Upload,
  privately?: { name: string; insert: (row: MediaRow) => Promise<MediaRow | null> },
): Promise<MediaRow> {
  const now = new Date(deps.clock.now());
  const row: MediaRow = {
    id: newId(now.getTime()),
    ownerId,
    contentType: upload.contentType,
    size: upload.bytes.byteLength,
    sha256: await sha256Hex(upload.bytes),
    createdAt: now,
    private: !!privately,
    name: privately?.name ?? null,
  };
  const key = blobKey(ownerId, row.id);
  // The blob first: a row always has its bytes. A blob left without a row (the insert failed,
  // the process died) is removed by the daily sweep once the grace period has passed.
  await deps.storage.put(key, upload.bytes, row.contentType).catch(storageDown(deps, "put"));
  const insert = privately?.insert ?? ((row: MediaRow) => insertMedia(deps.database.db, row));
  const inserted = await insert(row).catch(async (error) => {
    await deps.storage.delete(key).catch(() => {});
    throw error;
  });
  if (!inserted) {
    await deps.storage.delete(key);
    throw new Unauthorized("This account no longer exists.");
  }
  return inserted;
}

/** A storage outage is the client's 503 (try again), not a bug; the cause is logged. */
export function storageDown(deps: Deps, operation: string) {
  return (error: unknown): never => {
    deps.log({ level: "error", msg: "media storage failed", operation, error: String(error) });
    throw new Unavailable("File storage is unavailable right now; try again shortly.");
  };
}

async function readFilePart(
  request: Request,
  limit: number,
): Promise<{ bytes: Uint8Array; filename: string | undefined }> {
  const type = request.headers.get("content-type") ?? "";
  if (!/^multipart\/form-data\s*;.*boundary=/i.test(type)) {
    await request.body?.cancel();
    throw new UnsupportedMediaType(
      "Send the file as multipart/form-data, in a field named file.",
    );
  }
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > limit + FRAMING_BYTES) {
    await request.body?.cancel();
    throw new PayloadTooLarge(limit, "The file");
  }
  try {
    for await (
      const part of parseMultipartRequest(request, {
        maxFileSize: limit,
        maxTotalSize: limit + FRAMING_BYTES,
        maxParts: 20,
        maxHeaderSize: 8 * 1024,
      })
    ) {
      if (part.name !== "file") continue;
      if (!part.isFile) {
        throw new Invalid("The file field must be a file.", [
          { path: "file", message: "is a text field, not a file" },
        ]);
      }
      if (part.size === 0) {
        throw new Invalid("The file is empty.", [{ path: "file", message: "is empty" }]);
      }
      return { bytes: part.bytes, filename: part.filename };
    }
  } catch (error) {
    if (error instanceof MaxFileSizeExceededError || error instanceof MaxTotalSizeExceededError) {
      throw new PayloadTooLarge(limit, "The file");
    }
    if (error instanceof MaxPartsExceededError) {
      throw new Invalid("The upload has too many parts; send one field named file.");
    }
    if (error instanceof MultipartParseError) {
      throw new Invalid(`The multipart body is malformed: ${error.message}.`);
    }
    throw error;
  } finally {
    // Whatever was not read stays unread: the client is told now, not after sending it all.
    await request.body?.cancel().catch(() => {});
  }
  throw new Invalid("The upload has no file.", [{ path: "file", message: "is required" }]);
}

/** A file's row; 404 when there is none. */
export async function mediaFile(deps: Deps, id: string): Promise<MediaRow> {
  const row = await findMedia(deps.database.db, id);
  // A private file is not here: only its members reach it, through a signed URL.
  if (!row || row.private) throw new NotFound("No file has this id.");
  return row;
}

/** A file's bytes (or `range` of them) as a stream; 404 when the blob is missing. */
export async function mediaBytes(
  deps: Deps,
  file: { ownerId: string; id: string },
  range?: ByteRange,
): Promise<ReadableStream<Uint8Array>> {
  const blob = await deps.storage.get(blobKey(file.ownerId, file.id), range)
    .catch(storageDown(deps, "get"));
  if (!blob) {
    deps.log({ level: "warn", msg: "media row without its blob", mediaId: file.id });
    throw new NotFound("No file has this id.");
  }
  return blob.body;
}

/**
 * The owner's delete: the file leaves their posts and profile at once, and its bytes are removed
 * by the release job. A file submitted with an interview is kept (409).
 */
export async function deleteMedia(deps: Deps, id: string, userId: string) {
  const row = await findMedia(deps.database.db, id);
  if (!row) throw new NotFound("No file has this id.");
  if (row.ownerId !== userId) throw new Forbidden("Only the owner may delete this file.");
  // A sent message keeps its files; its history row may not have landed yet, so KV is asked.
  if (row.private && await attachmentSentTo(deps.kv, id)) throw sentInMessage();
  const result = await deleteMediaEverywhere(deps.database.db, id);
  if (result === "evidence") {
    throw row.private ? sentInMessage() : new Conflict(
      "This file was submitted with an interview and is kept as its evidence.",
      "media-in-use",
    );
  }
  if (row.private) await forgetAttachment(deps.kv, id);
  await releaseMedia(deps, userId, [id]);
  return result === "gone" ? { postIds: [] } : result;
}

function sentInMessage() {
  return new Conflict("This file was sent in a message and stays with it.", "media-in-use");
}

/**
 * Checks that every id is a file `ownerId` uploaded: 400 naming `field` for an unknown one, 403
 * for someone else's. Returns the rows in the order given.
 */
export async function ownMedia(deps: Deps, ownerId: string, ids: string[], field: string) {
  const rows = await findMediaMany(deps.database.db, ids);
  const byId = new Map(rows.map((row) => [row.id, row]));
  const unknown = ids.filter((id) => !byId.has(id));
  if (unknown.length > 0) {
    throw new Invalid("These media ids are unknown.", [
      { path: field, message: `no such media: ${unknown.join(", ")}` },
    ]);
  }
  if (rows.some((row) => row.ownerId !== ownerId)) {
    throw new Forbidden("You can attach only files you uploaded.");
  }
  const hidden = rows.filter((row) => row.private).map((row) => row.id);
  if (hidden.length > 0) {
    throw new Invalid("A message attachment stays private: upload the file to /api/media.", [
      { path: field, message: `private attachments: ${hidden.join(", ")}` },
    ]);
  }
  return ids.map((id) => byId.get(id)!);
}

/**
 * Hands files that may have lost their last use to the release job, durably (an outbox record).
 * The job removes only those nothing uses any more.
 */
export async function releaseMedia(deps: Deps, ownerId: string, ids: string[]) {
  if (ids.length === 0) return;
  await deps.outbox.send(jobRecord(deps.outbox, RELEASE_JOB, { ownerId, ids }));
}

/** The record of the job that purges a deleted account's blobs (written in the deleting commit). */
export function purgeOwnerRecord(outbox: Outbox, ownerId: string) {
  return jobRecord(outbox, PURGE_OWNER_JOB, { ownerId });
}

/**
 * Removes the row (if nothing uses it) and then the blob; a used file is left alone. A private
 * file is used once a message's commit carried it, before its history row says so, for as long as
 * both members' accounts last: the conversation goes with either (and its messages' hold on it).
 */
async function releaseOne(deps: Deps, ownerId: string, id: string) {
  const sentTo = await attachmentSentTo(deps.kv, id);
  if (sentTo) {
    const members = await Promise.all(
      sentTo.map((member) => findUserById(deps.database.db, member)),
    );
    if (members.every(Boolean)) return "used";
  }
  const outcome = await deleteUnusedMedia(deps.database.db, id);
  if (outcome !== "used") {
    await forgetAttachment(deps.kv, id);
    await deps.storage.delete(blobKey(ownerId, id));
  }
  return outcome;
}

/** The `mediaIds` of a post or an interview submission: up to 10 files, each once. */
export const distinctMediaIds = z.array(id).max(10)
  .refine((ids) => new Set(ids).size === ids.length, "each file may appear once")
  .default([]);

export function registerMedia(deps: Deps) {
  deps.registry.register(
    RELEASE_JOB,
    z.object({ ownerId: id, ids: z.array(id).max(100) }),
    async ({ ownerId, ids }) => {
      for (const mediaId of ids) await releaseOne(deps, ownerId, mediaId);
    },
  );
  deps.registry.register(PURGE_OWNER_JOB, z.object({ ownerId: id }), async ({ ownerId }) => {
    // Only once the account is gone: its rows went with it, so no blob under it is in use.
    if (await findUserById(deps.database.db, ownerId)) return;
    await forEachBlob(deps, `${ownerId}/`, async (keys) => {
      for (const key of keys) {
        await forgetAttachment(deps.kv, key.slice(key.indexOf("/") + 1));
        await deps.storage.delete(key);
      }
    });
  });
}

async function forEachBlob(
  deps: Deps,
  prefix: string,
  visit: (keys: string[], lastModified: Map<string, number>) => Promise<void>,
) {
  let after: string | undefined;
  do {
    const page = await deps.storage.list({ prefix, after, limit: 500 });
    await visit(
      page.items.map((blob) => blob.key),
      new Map(page.items.map((blob) => [blob.key, blob.lastModified])),
    );
    after = page.next ?? undefined;
  } while (after !== undefined);
}

/**
 * The daily sweep. Files nothing has used for the grace period go (row, then blob); so do blobs
 * older than the grace period that have no row (an upload whose insert failed, a release job
 * that died after the row went). Fresh uploads are never touched: the client is still attaching.
 */
export async function sweepMedia(deps: Deps) {
  const cutoff = deps.clock.now() - deps.config.MEDIA_ORPHAN_GRACE_SECONDS * 1000;
  let rows = 0;
  for (;;) {
    const batch = await listUnusedMedia(deps.database.db, new Date(cutoff), 200);
    let released = 0;
    for (const file of batch) {
      if (await releaseOne(deps, file.ownerId, file.id) !== "used") released++;
    }
    rows += released;
    if (batch.length < 200 || released === 0) break;
  }
  let blobs = 0;
  await forEachBlob(deps, "", async (keys, lastModified) => {
    const old = keys.filter((key) => lastModified.get(key)! < cutoff);
    const ids = old.map((key) => key.slice(key.indexOf("/") + 1));
    const known = new Set((await findMediaMany(deps.database.db, ids)).map((row) => row.id));
    for (const key of old) {
      if (known.has(key.slice(key.indexOf("/") + 1))) continue;
      await deps.storage.delete(key);
      blobs++;
    }
  });
  if (rows + blobs > 0) deps.log({ level: "info", msg: "media swept", rows, blobs });
  return { rows, blobs };
}
