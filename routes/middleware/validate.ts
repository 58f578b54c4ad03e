// zod validation for request parts: a failure is a 400 problem listing every field at fault.
import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import { z } from "zod";
import { Invalid } from "../../errors.ts";
import { zodFieldErrors } from "./problem.ts";

function validate<T extends keyof ValidationTargets, S extends z.ZodType>(target: T, schema: S) {
  return zValidator(target, schema, (result) => {
    if (!result.success) {
      throw new Invalid(
        `The ${target === "json" ? "body" : target} is invalid.`,
        zodFieldErrors(result.error),
      );
    }
  });
}

export const body = <S extends z.ZodType>(schema: S) => validate("json", schema);
export const query = <S extends z.ZodType>(schema: S) => validate("query", schema);
export const params = <S extends z.ZodType>(schema: S) => validate("param", schema);

/** `?cursor=&limit=` of every list (limit ≤ 100). */
export const pageQuery = z.object({
  cursor: z.string().min(1).max(1000).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});

/** Validates a body that may be empty (empty reads as `{}`), for endpoints whose body is optional. */
export function optionalJsonBody<S extends z.ZodType>(schema: S, raw: string): z.infer<S> {
  let value: unknown = {};
  if (raw.trim() !== "") {
    try {
      value = JSON.parse(raw);
    } catch {
      throw new Invalid("The body is not valid JSON.");
    }
  }
  const result = schema.safeParse(value);
  if (!result.success) throw new Invalid("The body is invalid.", zodFieldErrors(result.error));
  return result.data;
}
