// Private files sent in messages. The upload is stored like any file, but marked private and
// recorded in KV (kv/attachments.ts); its bytes are never at /media/:id. A member asks for them
// at /api/attachments/:id/content and is redirected to a URL that works for a few minutes: S3's
// presigned URL in production, or, with local storage, this server's own URL signed with its key.
import type { Deps } from "../../deps.ts";
import { attachmentPath, insertPrivateMedia } from "../../db/media.ts";
import { Forbidden, TooManyRequests } from "../../errors.ts";
import { hmacHex, sameSecret } from "../../hashes.ts";
import {
  type AttachmentRecord,
  recordAttachment,
  viewableAttachment,
} from "../../kv/attachments.ts";
import { blobKey, readUpload, storageDown, storeUpload } from "./uploads.ts";

const DAY_MS = 86_400_000;

export interface AttachmentUpload {
  id: string;
  name: string;
  contentType: string;
  size: number;
  createdAt: string;
  /** Where the uploader (and, once sent, the other member) asks for the bytes. */
  url: string;
}

/**
 * Uploads a file to send in a message: the type sniffed and the size limited as for any file,
 * and counted in the sender's daily attachment budget (429 past it).
 */
export async function uploadAttachment(
  deps: Deps,
  ownerId: string,
  request: Request,
): Promise<AttachmentUpload> {
  const upload = await readUpload(deps, request);
  const now = deps.clock.now();
  const budget = deps.config.ATTACHMENT_BYTES_PER_DAY;
  const name = fileName(upload.filename, upload.contentType);
  const row = await storeUpload(deps, ownerId, upload, {
    name,
    // The budget is checked and spent in one transaction (see insertPrivateMedia).
    async insert(row) {
      const since = new Date(now - DAY_MS);
      const outcome = await insertPrivateMedia(deps.database.db, row, { bytes: budget, since });
      if (outcome && "over" in outcome) {
        const { bytes, oldest } = outcome.over;
        throw new TooManyRequests(
          `Attachments are limited to ${budget} bytes a day; ${bytes} were sent in the last 24 hours.`,
          ((oldest?.getTime() ?? now) + DAY_MS - now) / 1000,
        );
      }
      return outcome?.inserted ?? null;
    },
  });
  await recordAttachment(deps.kv, {
    id: row.id,
    ownerId,
    name,
    contentType: row.contentType,
    size: row.size,
    createdAt: row.createdAt.getTime(),
  });
  return {
    id: row.id,
    name,
    contentType: row.contentType,
    size: row.size,
    createdAt: row.createdAt.toISOString(),
    url: attachmentPath(row.id),
  };
}

/** The client's name for the file without paths or control characters, or one made up. */
function fileName(given: string | undefined, contentType: string): string {
  const base = (given ?? "").split(/[\\/]/).pop()!
    .replace(/[\p{Cc}\p{Cf}"]/gu, "").trim().slice(0, 200);
  return base || `file.${contentType.split("/")[1]}`;
}

/** A signed URL of the file for `viewerId`, once they may see it, and when it stops working. */
export async function attachmentLink(deps: Deps, mediaId: string, viewerId: string) {
  const file = await viewableAttachment(deps.kv, mediaId, viewerId);
  const seconds = deps.config.ATTACHMENT_URL_SECONDS;
  const expires = Math.floor(deps.clock.now() / 1000) + seconds;
  const presigned = await deps.storage.presign(blobKey(file.ownerId, file.id), {
    seconds,
    disposition: disposition(file),
  }).catch(storageDown(deps, "presign"));
  const url = presigned ?? `/media/private/${encodeURIComponent(file.id)}?${new URLSearchParams({
    viewer: viewerId,
    expires: String(expires),
    signature: await linkSignature(deps, file.id, viewerId, expires),
  })}`;
  return { file, url, expiresAt: new Date(expires * 1000).toISOString() };
}

/** Images and videos show in the page; anything else is saved under its name. */
export function disposition(file: AttachmentRecord): string {
  const inline = /^(image|video)\//.test(file.contentType);
  return `${inline ? "inline" : "attachment"}; filename*=UTF-8''${encodeURIComponent(file.name)}`;
}

function linkSignature(deps: Deps, mediaId: string, viewerId: string, expires: number) {
  return hmacHex(deps.config.JWT_SECRET, `attachment:${mediaId}:${viewerId}:${expires}`);
}

/**
 * The file behind a signed local URL: the signature must be the server's, the time not past, and
 * the viewer still allowed (a block after the link was made ends it too).
 */
export async function signedAttachment(
  deps: Deps,
  mediaId: string,
  link: { viewer: string; expires: number; signature: string },
) {
  const expected = await linkSignature(deps, mediaId, link.viewer, link.expires);
  if (!await sameSecret(link.signature, expected)) {
    throw new Forbidden("This link is not one this server made.");
  }
  const left = link.expires - deps.clock.now() / 1000;
  if (left <= 0) {
    throw new Forbidden("This link has expired; ask for the file again.", "link-expired");
  }
  const file = await viewableAttachment(deps.kv, mediaId, link.viewer);
  return { file, secondsLeft: Math.floor(left) };
}
