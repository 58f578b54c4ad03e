// zod validation for request parts: a failure is a 400 problem listing every field at fault.
import { zValidator } from "@hono/zod-validator";
import type { ValidationTargets } from "hono";
import type { z } from "zod";
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
