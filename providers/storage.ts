// Blob storage for media: the local filesystem by default, any S3-compatible service (S3, R2,
// MinIO) when S3_BUCKET is set. Requests to S3 are signed with AWS Signature V4 by aws4fetch.
import { AwsClient } from "aws4fetch";
import type { Config } from "../config.ts";

export interface StoredBlob {
  key: string;
  size: number;
  /** Milliseconds since the epoch. */
  lastModified: number;
}

/** Bytes `start` to `end` of a blob, both included (as HTTP's Range counts them). */
export interface ByteRange {
  start: number;
  end: number;
}

export interface BlobPage {
  items: StoredBlob[];
  /** Pass as `after` for the next page; null on the last page. */
  next: string | null;
}

export interface Storage {
  readonly kind: "local" | "s3";
  /** Stores the bytes under `key`, replacing what was there. */
  put(key: string, bytes: Uint8Array, contentType: string): Promise<void>;
  /**
   * The bytes as a stream (only `range`'s, inclusive, when given), or null when nothing is stored
   * under `key`. `size` is the length of what the stream holds.
   */
  get(
    key: string,
    range?: ByteRange,
  ): Promise<{ body: ReadableStream<Uint8Array>; size: number } | null>;
  /** Removes `key`; removing what is not there succeeds. */
  delete(key: string): Promise<void>;
  /** Keys under `prefix` in ascending order, after `after` (exclusive). */
  list(options: { prefix?: string; after?: string; limit: number }): Promise<BlobPage>;
  /**
   * A URL that reads `key` without credentials for `seconds` (S3's presigned GET, answered with
   * `disposition` as its Content-Disposition); null when the store cannot make one (the local
   * store: the server signs its own URL and serves the bytes itself).
   */
  presign(key: string, options: { seconds: number; disposition: string }): Promise<string | null>;
}

/** Passes the first `length` bytes of a stream on, then ends it (and stops reading the rest). */
function firstBytes(length: number): TransformStream<Uint8Array, Uint8Array> {
  let left = length;
  return new TransformStream({
    transform(chunk, controller) {
      if (left > 0) controller.enqueue(chunk.subarray(0, left));
      left -= chunk.byteLength;
      if (left <= 0) controller.terminate();
    },
  });
}

/** Keys are ours (`<owner id>/<media id>`), but a key must never climb out of the store. */
const SAFE_KEY = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;

function checkKey(key: string) {
  if (!SAFE_KEY.test(key)) throw new Error(`storage key ${JSON.stringify(key)} is not allowed`);
  return key;
}

/** Files under `root`; each write lands in a temporary file first and is renamed into place. */
export function localStorage(root: string): Storage {
  const path = (key: string) => `${root}/${checkKey(key)}`;
  return {
    kind: "local",
    async put(key, bytes) {
      const target = path(key);
      await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), { recursive: true });
      const temporary = `${target}.${crypto.randomUUID()}.partial`;
      try {
        await Deno.writeFile(temporary, bytes);
        await Deno.rename(temporary, target);
      } catch (error) {
        await Deno.remove(temporary).catch(() => {});
        throw error;
      }
    },
    async get(key, range) {
      try {
        const file = await Deno.open(path(key), { read: true });
        const { size } = await file.stat();
        if (!range) return { body: file.readable, size };
        await file.seek(range.start, Deno.SeekMode.Start);
        const length = range.end - range.start + 1;
        return { body: file.readable.pipeThrough(firstBytes(length)), size: length };
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return null;
        throw error;
      }
    },
    async delete(key) {
      await Deno.remove(path(key)).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    },
    presign() {
      return Promise.resolve(null);
    },
    async list({ prefix = "", after, limit }) {
      const items: StoredBlob[] = [];
      await walk(root, "", { prefix, after, want: limit + 1 }, items);
      const more = items.length > limit;
      if (more) items.pop();
      return { items, next: more ? items.at(-1)!.key : null };
    },
  };
}

/**
 * Collects files in key order, from after `after`, until `want` are found. Siblings are ordered
 * as their keys sort (a directory `d` as `d/`), and a directory wholly before `after` or outside
 * `prefix` is not entered.
 */
async function walk(
  root: string,
  dir: string,
  range: { prefix: string; after?: string; want: number },
  into: StoredBlob[],
) {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir ? `${root}/${dir}` : root));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  const sortKey = (entry: Deno.DirEntry) => entry.name + (entry.isDirectory ? "/" : "");
  entries.sort((a, b) => sortKey(a) < sortKey(b) ? -1 : sortKey(a) > sortKey(b) ? 1 : 0);
  for (const entry of entries) {
    if (into.length >= range.want) return;
    const key = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory) {
      const under = `${key}/`;
      const inPrefix = under.startsWith(range.prefix) || range.prefix.startsWith(under);
      // Every key under `d/` sorts below `d0` ("0" follows "/").
      const passed = range.after !== undefined && range.after >= `${key}0`;
      if (inPrefix && !passed) await walk(root, key, range, into);
    } else if (
      entry.isFile && !entry.name.endsWith(".partial") && key.startsWith(range.prefix) &&
      (range.after === undefined || key > range.after)
    ) {
      // Removed between the listing and now (a release job racing a sweep): not there, so not listed.
      const info = await Deno.stat(`${root}/${key}`).catch((error) => {
        if (error instanceof Deno.errors.NotFound) return null;
        throw error;
      });
      if (info) into.push({ key, size: info.size, lastModified: info.mtime?.getTime() ?? 0 });
    }
  }
}

export interface S3Options {
  /** e.g. `https://s3.eu-west-1.amazonaws.com`, `https://<account>.r2.cloudflarestorage.com`. */
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Prepended to every key, so the bucket can hold other things too. */
  prefix?: string;
}

/** An S3 answer other than the ones a caller expects; 5xx and 429 are worth retrying. */
export class StorageError extends Error {
  override name = "StorageError";
  constructor(readonly status: number, detail: string) {
    super(`object storage answered ${status}: ${detail}`);
  }
}

/** The signer S3 requests go through (exported so the signing can be checked against AWS's vectors). */
export function s3Signer(options: Pick<S3Options, "region" | "accessKeyId" | "secretAccessKey">) {
  return new AwsClient({
    accessKeyId: options.accessKeyId,
    secretAccessKey: options.secretAccessKey,
    service: "s3",
    region: options.region,
    // A failed job is retried by the jobs port; here only a brief hiccup is smoothed over.
    retries: 2,
  });
}

/** Path-style requests (`<endpoint>/<bucket>/<key>`), which S3, R2 and MinIO all accept. */
export function s3Storage(options: S3Options): Storage {
  const client = s3Signer(options);
  const bucketUrl = `${options.endpoint.replace(/\/+$/, "")}/${encodeURIComponent(options.bucket)}`;
  const prefix = options.prefix ?? "";
  const objectUrl = (key: string) => `${bucketUrl}/${prefix}${checkKey(key)}`;
  const timeout = () => AbortSignal.timeout(30_000);

  async function failure(response: Response): Promise<never> {
    const text = (await response.text()).slice(0, 500);
    const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
    throw new StorageError(response.status, code ?? text);
  }

  return {
    kind: "s3",
    async put(key, bytes, contentType) {
      const response = await client.fetch(objectUrl(key), {
        method: "PUT",
        body: bytes as Uint8Array<ArrayBuffer>,
        headers: { "content-type": contentType },
        signal: timeout(),
      });
      if (!response.ok) await failure(response);
      await response.body?.cancel();
    },
    async get(key, range) {
      const response = await client.fetch(objectUrl(key), {
        signal: timeout(),
        ...(range && { headers: { range: `bytes=${range.start}-${range.end}` } }),
      });
      if (response.status === 404) {
        await response.body?.cancel();
        return null;
      }
      if (!response.ok || !response.body) await failure(response);
      return { body: response.body!, size: Number(response.headers.get("content-length") ?? 0) };
    },
    async delete(key) {
      const response = await client.fetch(objectUrl(key), { method: "DELETE", signal: timeout() });
      if (!response.ok && response.status !== 404) await failure(response);
      await response.body?.cancel();
    },
    async presign(key, { seconds, disposition }) {
      const url = new URL(objectUrl(key));
      url.searchParams.set("X-Amz-Expires", String(seconds));
      url.searchParams.set("response-content-disposition", disposition);
      const signed = await client.sign(url.href, { method: "GET", aws: { signQuery: true } });
      return signed.url;
    },
    async list({ prefix: under = "", after, limit }) {
      const query = new URLSearchParams({
        "list-type": "2",
        prefix: prefix + under,
        "max-keys": String(limit),
      });
      if (after !== undefined) query.set("start-after", prefix + after);
      const response = await client.fetch(`${bucketUrl}?${query}`, { signal: timeout() });
      if (!response.ok) await failure(response);
      const xml = await response.text();
      const items = [...xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)].map(([, entry]) => ({
        key: unescapeXml(tag(entry, "Key")).slice(prefix.length),
        size: Number(tag(entry, "Size")),
        lastModified: Date.parse(tag(entry, "LastModified")),
      }));
      const truncated = tag(xml, "IsTruncated") === "true";
      return { items, next: truncated && items.length > 0 ? items.at(-1)!.key : null };
    },
  };
}

function tag(xml: string, name: string): string {
  return new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1] ?? "";
}

function unescapeXml(text: string): string {
  return text.replace(
    /&(lt|gt|quot|apos|amp);/g,
    (_, entity: string) => ({ lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" })[entity]!,
  );
}

/** S3 when S3_BUCKET is set (config.ts requires its keys with it), else `$DATA_DIR/media`. */
export function openStorage(config: Config): Storage {
  if (!config.S3_BUCKET) return localStorage(`${config.DATA_DIR}/media`);
  const region = config.S3_REGION ?? "us-east-1";
  return s3Storage({
    endpoint: config.S3_ENDPOINT ?? `https://s3.${region}.amazonaws.com`,
    bucket: config.S3_BUCKET,
    region,
    accessKeyId: config.S3_ACCESS_KEY_ID!,
    secretAccessKey: config.S3_SECRET_ACCESS_KEY!,
    prefix: "media/",
  });
}
