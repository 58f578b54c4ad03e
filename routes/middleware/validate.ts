// zod validation for request parts: a failure is a 400 problem listing every field at fault. Every
// part is first checked for strings storage cannot hold (input.ts), whatever its schema says.
import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import { z } from "zod";
import { Invalid } from "../../errors.ts";
import { id, parseInput } from "../../input.ts";
import { type InputTarget, withInput } from "./describe.ts";

const PARTS: Partial<Record<keyof ValidationTargets, string>> = {
  json: "body",
  param: "path",
};

function validate<T extends keyof ValidationTargets & InputTarget, S extends z.ZodType>(
  target: T,
  schema: S,
) {
  const part = PARTS[target] ?? target;
  // The hook answers nothing: failures never reach it (parseInput throws), so the typed client
  // (hc<AppType>) sees each route's own answers, not a validator's 400 body.
  const validator = zValidator(target, schema, () => undefined, {
    validationFunction: (schema, value) => {
      // parseInput throws the 400 itself; a success is handed back in zod's shape.
      return { success: true, data: parseInput(schema as S, value, part) } as never;
    },
  });
  return withInput(validator, target, schema);
}

export const body = <S extends z.ZodType>(schema: S) => validate("json", schema);
export const query = <S extends z.ZodType>(schema: S) => validate("query", schema);
export const params = <S extends z.ZodType>(schema: S) => validate("param", schema);

/** `:id` of every item path. */
export const idParam = z.object({ id });

/** `?cursor=&limit=` of every list (limit ≤ 100). */
export const pageQuery = z.object({
  cursor: z.string().min(1).max(1000).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});

/** Parses JSON text, or throws a 400 saying the body is not JSON. */
export function parseJson(raw: string, what = "The body"): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new Invalid(`${what} is not valid JSON.`);
  }
}

/** Validates a body that may be empty (empty reads as `{}`), for endpoints whose body is optional. */
export function optionalJsonBody<S extends z.ZodType>(schema: S, raw: string): z.infer<S> {
  return parseInput(schema, raw.trim() === "" ? {} : parseJson(raw));
}
