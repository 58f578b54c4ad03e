// Opaque list cursors: a keyset position, base64url-encoded JSON, validated when read back.
import { z } from "zod";
import { Invalid } from "./errors.ts";
import { storableTime, unstorableField } from "./input.ts";

/** The position of a "newest first" list: [the row's time, its tie-breaking id]. */
export const timeCursor = z.tuple([storableTime, z.string().max(200)]);

export function encodeCursor(position: unknown): string {
  const bytes = new TextEncoder().encode(JSON.stringify(position));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * One list page from `rows` fetched with `limit + 1`: the extra row only says another page exists.
 * The cursor is the keyset `position` of the page's last row.
 */
export function keysetPage<R, I>(
  rows: R[],
  limit: number,
  toItem: (row: R) => I,
  position: (row: R) => unknown,
): { items: I[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  return {
    items: page.map(toItem),
    nextCursor: rows.length > limit ? encodeCursor(position(page[page.length - 1])) : null,
  };
}

/** Reads a cursor this server issued; anything else is a 400 naming `cursor`. */
export function decodeCursor<S extends z.ZodType>(cursor: string, shape: S): z.infer<S> {
  try {
    const binary = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    const text = new TextDecoder().decode(Uint8Array.from(binary, (char) => char.charCodeAt(0)));
    const value = JSON.parse(text);
    const parsed = unstorableField(value) ? null : shape.safeParse(value);
    if (parsed?.success) return parsed.data;
  } catch {
    // fall through: not base64 or not JSON
  }
  throw new Invalid("The cursor is not one this server issued.", [
    { path: "cursor", message: "unknown cursor" },
  ]);
}
