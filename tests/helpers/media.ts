// Files for upload tests: bytes that start with each accepted signature, and a multipart upload.
import assert from "node:assert/strict";
import type { AppType } from "../../app.ts";
import type { Deps } from "../../deps.ts";
import type { Answer, HttpClient } from "./app.ts";
import type { HeldJob } from "./held-jobs.ts";

const ascii = (text: string) => Array.from(text, (char) => char.charCodeAt(0));

/** `size` bytes: the signature, then random bytes (a sniffer must judge by the signature alone). */
export function fileOf(signature: number[], size = 2048): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  crypto.getRandomValues(bytes.subarray(0, Math.min(size, 65536)));
  bytes.set(signature);
  return bytes;
}

export const SIGNATURES = {
  png: [0x89, ...ascii("PNG\r\n\x1a\n")],
  jpeg: [0xff, 0xd8, 0xff, 0xe0],
  gif87: ascii("GIF87a"),
  gif89: ascii("GIF89a"),
  webp: [...ascii("RIFF"), 0x24, 0x08, 0, 0, ...ascii("WEBPVP8 ")],
  pdf: ascii("%PDF-1.7\n"),
  elf: [0x7f, ...ascii("ELF"), 2, 1, 1, 0],
  windowsExe: ascii("MZ\x90\x00"),
  wav: [...ascii("RIFF"), 0x24, 0x08, 0, 0, ...ascii("WAVEfmt ")],
  mp4: [0, 0, 0, 0x20, ...ascii("ftypisom"), 0, 0, 2, 0, ...ascii("isomiso2avc1mp41")],
  mov: [0, 0, 0, 0x14, ...ascii("ftypqt  "), 0, 0, 2, 0, ...ascii("qt  ")],
  webm: [0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81, 0x01, 0x42, 0x82, 0x84, ...ascii("webm")],
  mkv: [
    0x1a,
    0x45,
    0xdf,
    0xa3,
    0xa3,
    0x42,
    0x86,
    0x81,
    0x01,
    0x42,
    0x82,
    0x88,
    ...ascii("matroska"),
  ],
};

export const png = (size?: number) => fileOf(SIGNATURES.png, size);
export const pdf = (size?: number) => fileOf(SIGNATURES.pdf, size);
export const mp4 = (size?: number) => fileOf(SIGNATURES.mp4, size);
export const webm = (size?: number) => fileOf(SIGNATURES.webm, size);

/**
 * POST /api/media (or `claimed.to`, e.g. /api/attachments) with `bytes` as the `file` field, named
 * and typed as the client claims.
 */
export async function upload(
  app: AppType,
  token: string,
  bytes: Uint8Array<ArrayBuffer>,
  claimed: { name?: string; type?: string; to?: string } = {},
): Promise<Answer> {
  const form = new FormData();
  form.append("caption", "ignored");
  form.append(
    "file",
    new Blob([bytes], { type: claimed.type ?? "application/octet-stream" }),
    claimed.name ?? "upload.bin",
  );
  const response = await app.request(claimed.to ?? "/api/media", {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: form,
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text ? JSON.parse(text) : null,
  };
}

/** Uploads and expects 201; the media view. */
export async function uploaded(app: AppType, token: string, bytes: Uint8Array<ArrayBuffer>) {
  const answer = await upload(app, token, bytes);
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  return answer.body as { id: string; url: string; contentType: string; size: number };
}

/** GET of a file's bytes. */
export async function fetchMedia(app: AppType, id: string, headers: Record<string, string> = {}) {
  const response = await app.request(`/media/${id}`, { headers });
  return { response, bytes: new Uint8Array(await response.arrayBuffer()) };
}

export async function sha256Hex(bytes: Uint8Array<ArrayBuffer>) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * 20 concurrent photo changes, each to a different new image: each replaced photo must be handed
 * to the release job exactly once, and the photo that won never. `held` are the app's held
 * `media-release` jobs (so the handoff is counted, not raced by the removal itself).
 */
export async function concurrentPhotoChanges(
  app: AppType,
  http: HttpClient,
  member: { token: string; user: { id: string } },
  held: HeldJob[],
) {
  const files = await Promise.all(
    Array.from({ length: 20 }, () => uploaded(app, member.token, png())),
  );
  const before = held.length;
  const answers = await Promise.all(
    files.map((file) =>
      http("PATCH", "/api/profile", { token: member.token, body: { avatarMediaId: file.id } })
    ),
  );
  assert.ok(answers.every((answer) => answer.status === 200), JSON.stringify(answers[0].body));
  const me = await http("GET", "/api/auth/me", { token: member.token });
  const winner = me.body.user.avatarMediaId as string;
  const handed = held.slice(before).flatMap((job) => (job.payload as { ids: string[] }).ids);
  const replaced = files.map((file) => file.id).filter((id) => id !== winner);
  assert.deepEqual(handed.toSorted(), replaced.toSorted(), "each replaced photo, once");
}

/**
 * What a player seeking in a video sends, against `get` (a GET of the file with extra headers):
 * one range in each form, one past the end (416), several (the whole file), and none.
 */
export async function assertRanges(
  get: (headers: Record<string, string>) => Response | Promise<Response>,
  bytes: Uint8Array<ArrayBuffer>,
) {
  const size = bytes.byteLength;
  const cases: [string, number, number][] = [
    ["bytes=0-99", 0, 99],
    ["bytes=100-", 100, size - 1],
    ["bytes=-10", size - 10, size - 1],
    [`bytes=${size - 5}-${size + 100}`, size - 5, size - 1],
  ];
  for (const [range, first, last] of cases) {
    const response = await get({ range });
    assert.equal(response.status, 206, range);
    assert.equal(response.headers.get("content-range"), `bytes ${first}-${last}/${size}`, range);
    assert.equal(response.headers.get("content-length"), String(last - first + 1), range);
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), bytes.slice(first, last + 1));
  }
  const past = await get({ range: `bytes=${size}-` });
  await past.body?.cancel();
  assert.equal(past.status, 416);
  assert.equal(past.headers.get("content-range"), `bytes */${size}`);
  const wholes: Record<string, string>[] = [{ range: "bytes=0-1,5-6" }, { range: "items=0-1" }, {}];
  for (const whole of wholes) {
    const response = await get(whole);
    assert.equal(response.status, 200, JSON.stringify(whole));
    assert.equal(response.headers.get("accept-ranges"), "bytes");
    assert.deepEqual(new Uint8Array(await response.arrayBuffer()), bytes);
  }
}

/**
 * Ten attachment uploads of 3,000 bytes at once by `member`, whose app allows 10,000 bytes a day
 * (`ATTACHMENT_BYTES_PER_DAY`): three are stored, seven refused with 429, and only the three
 * stored files' bytes remain.
 */
export async function concurrentAttachmentUploads(
  app: AppType,
  deps: Pick<Deps, "storage" | "config">,
  member: { token: string; user: { id: string } },
) {
  assert.equal(deps.config.ATTACHMENT_BYTES_PER_DAY, 10_000);
  const answers = await Promise.all(
    Array.from(
      { length: 10 },
      () => upload(app, member.token, png(3000), { to: "/api/attachments" }),
    ),
  );
  assert.deepEqual(answers.map((answer) => answer.status).toSorted(), [
    ...Array(3).fill(201),
    ...Array(7).fill(429),
  ]);
  // A refused upload's bytes are removed again: only the three stored files remain.
  const blobs = await deps.storage.list({ prefix: `${member.user.id}/`, limit: 20 });
  assert.deepEqual(
    blobs.items.map((blob) => blob.key.split("/")[1]).toSorted(),
    answers.filter((answer) => answer.status === 201).map((answer) => answer.body.id).toSorted(),
  );
}
