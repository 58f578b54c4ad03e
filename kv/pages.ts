// Keyset pages over one KV prefix whose last key part is a time-ordered string id.
import { z } from "zod";
import { decodeCursor, encodeCursor } from "../cursor.ts";

export interface PageOptions {
  cursor?: string;
  limit: number;
  /** Newest first. */
  reverse?: boolean;
}

export async function listPage<T>(
  kv: Deno.Kv,
  prefix: readonly Deno.KvKeyPart[],
  options: PageOptions,
): Promise<{ entries: Deno.KvEntry<T>[]; nextCursor: string | null }> {
  const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor, z.string());
  const selector: Deno.KvListSelector = after === undefined
    ? { prefix: [...prefix] }
    : options.reverse
    ? { prefix: [...prefix], end: [...prefix, after] }
    : { prefix: [...prefix], start: [...prefix, after] };
  const entries: Deno.KvEntry<T>[] = [];
  // One extra entry says whether another page exists; `start` is inclusive, so skip the cursor.
  for await (
    const entry of kv.list<T>(selector, { limit: options.limit + 2, reverse: options.reverse })
  ) {
    if (entry.key.at(-1) === after) continue;
    entries.push(entry);
  }
  const more = entries.length > options.limit;
  const page = entries.slice(0, options.limit);
  return {
    entries: page,
    nextCursor: more && page.length > 0 ? encodeCursor(page.at(-1)!.key.at(-1)) : null,
  };
}
