// Private files sent in messages: the upload records its file here, the send's commit marks it
// sent into one conversation (once), and every request for its bytes reads here who may see it.
// KV, not Postgres, answers these: a message is acknowledged before its history row lands.
import type { AttachmentRef } from "../db/schema.ts";
import { Forbidden, Invalid, NotFound } from "../errors.ts";
import { attachmentKey, blockKey } from "./keys.ts";

export interface AttachmentRecord extends AttachmentRef {
  ownerId: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** Set by the commit of the message that carried it. */
  sent?: { conversationId: string; messageId: string; memberIds: [string, string] };
}

/** Records an upload, once its row and bytes are stored. */
export async function recordAttachment(kv: Deno.Kv, record: AttachmentRecord) {
  await kv.set(attachmentKey(record.id), record);
}

/** Forgets a file whose row is gone (removed, or its owner's account deleted). */
export async function forgetAttachment(kv: Deno.Kv, mediaId: string) {
  await kv.delete(attachmentKey(mediaId));
}

/**
 * Where the file was sent, if it was: the two members (its commit may be ahead of its history
 * row); null for a file not sent, or not a message's.
 */
export async function attachmentSentTo(
  kv: Deno.Kv,
  mediaId: string,
): Promise<[string, string] | null> {
  return (await kv.get<AttachmentRecord>(attachmentKey(mediaId))).value?.sent?.memberIds ?? null;
}

/**
 * The files a send carries, as read in the send's own getMany: each must be the sender's and not
 * yet sent (a file goes into one message; upload it again to send it again).
 */
export function attachmentsToSend(
  entries: Deno.KvEntryMaybe<AttachmentRecord>[],
  senderId: string,
): Deno.KvEntry<AttachmentRecord>[] {
  const unknown = entries.filter((entry) => !entry.value).map((entry) => entry.key[1]);
  if (unknown.length > 0) {
    throw new Invalid("These attachments are unknown.", [
      { path: "attachmentIds", message: `no such attachment: ${unknown.join(", ")}` },
    ]);
  }
  const files = entries as Deno.KvEntry<AttachmentRecord>[];
  if (files.some((entry) => entry.value.ownerId !== senderId)) {
    throw new Forbidden("You can attach only files you uploaded.");
  }
  const sent = files.filter((entry) => entry.value.sent).map((entry) => entry.key[1]);
  if (sent.length > 0) {
    throw new Invalid("A file goes into one message; upload it again to send it again.", [
      { path: "attachmentIds", message: `already sent: ${sent.join(", ")}` },
    ]);
  }
  return files;
}

/**
 * The file, for `viewerId`: its owner before it is sent, the conversation's two members after,
 * unless either has blocked the other since. 404 for anyone else (its existence is not told), and
 * for a member after a block.
 */
export async function viewableAttachment(
  kv: Deno.Kv,
  mediaId: string,
  viewerId: string,
): Promise<AttachmentRecord> {
  const record = (await kv.get<AttachmentRecord>(attachmentKey(mediaId))).value;
  const members: string[] = record?.sent?.memberIds ?? (record ? [record.ownerId] : []);
  if (!record || !members.includes(viewerId)) {
    throw new NotFound("No attachment you may see has this id.");
  }
  const otherId = members.find((id) => id !== viewerId);
  if (otherId) {
    const blocks = await kv.getMany([blockKey(viewerId, otherId), blockKey(otherId, viewerId)]);
    // As everywhere, a block hides: the file is not found, for either side.
    if (blocks.some((entry) => entry.value !== null)) {
      throw new NotFound("No attachment you may see has this id.");
    }
  }
  return record;
}
