// What a client may send that storage can hold, checked once where input enters (HTTP validators,
// socket frames): Postgres `text` refuses U+0000, and an unpaired UTF-16 surrogate has no UTF-8
// form, so a string with either would be acknowledged and then fail to reach history forever.
import { z } from "zod";
import { type FieldError, Invalid } from "./errors.ts";

/** Ids the server issues (UUIDv7, `evt_…`) and the slugs clients choose all fit this. */
const ID_PATTERN = /^[A-Za-z0-9_-]{1,100}$/;

/** Any id a client names: in a path, a query, a body or a frame. Checked before any lookup. */
export const id = z.string().regex(ID_PATTERN, "not an id (1–100 of A–Z, a–z, 0–9, '-', '_')");

/** The years both Postgres `timestamptz` and JavaScript's Date hold, and that mean something here. */
export const FIRST_YEAR = 1970;
export const LAST_YEAR = 9999;

/**
 * An ISO 8601 instant (with offset) within FIRST_YEAR..LAST_YEAR: `0000-01-01T00:00:00Z` passes a
 * date-time check but Postgres refuses it, so it is refused here, naming the field.
 */
export const storableTime = z.iso.datetime({ offset: true }).refine((text) => {
  const year = new Date(text).getUTCFullYear();
  return year >= FIRST_YEAR && year <= LAST_YEAR;
}, `must be between ${FIRST_YEAR} and ${LAST_YEAR}`);

/** Postgres `integer`: what an int column (a message's position) can hold. */
export const INT4_MAX = 2_147_483_647;

const UNSTORABLE = "contains U+0000 or an unpaired surrogate, which cannot be stored";
/** Deeper input is refused by its schema anyway; the walk need not follow it. */
const MAX_DEPTH = 32;

/**
 * The first string (value or object key) in `value` that storage cannot hold, as a field error
 * whose path is dotted like zod's (`rubric.0.criterion`); null when every string is storable.
 */
export function unstorableField(value: unknown, path: string[] = []): FieldError | null {
  if (typeof value === "string") {
    return storable(value) ? null : { path: path.join(".") || "(body)", message: UNSTORABLE };
  }
  if (typeof value !== "object" || value === null || path.length >= MAX_DEPTH) return null;
  for (const [key, item] of Object.entries(value)) {
    const at = [...path, key];
    if (!storable(key)) return { path: at.join("."), message: `its name ${UNSTORABLE}` };
    const found = unstorableField(item, at);
    if (found) return found;
  }
  return null;
}

function storable(text: string): boolean {
  return text.isWellFormed() && !text.includes("\u0000");
}

/** Parses `value` with `schema`, refusing unstorable strings first; a failure is a 400. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, part = "body") {
  const unstorable = unstorableField(value);
  if (unstorable) throw new Invalid(`The ${part} is invalid.`, [unstorable]);
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new Invalid(`The ${part} is invalid.`, zodFieldErrors(result.error));
  }
  return result.data as z.infer<S>;
}

interface Issue {
  path: readonly PropertyKey[];
  message: string;
  code?: string;
  keys?: readonly string[];
}

/** zod's issues as field errors, each path dotted (`rubric.0.criterion`), unknown keys by name. */
export function zodFieldErrors(error: { issues: readonly Issue[] }): FieldError[] {
  return error.issues.flatMap((issue) =>
    issue.code === "unrecognized_keys" && issue.keys
      ? issue.keys.map((key) => fieldError([...issue.path, key], "is not a field of this request"))
      : [fieldError(issue.path, issue.message)]
  );
}

function fieldError(path: readonly PropertyKey[], message: string): FieldError {
  return { path: path.map(String).join(".") || "(body)", message };
}
