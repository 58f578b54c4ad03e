// What a route tells its reference: its summary, answers and errors, carried by a pass-through
// middleware in the route's own chain, so the OpenAPI document (routes/reference/openapi.ts) is
// read from the routes themselves and cannot list one that does not exist.
import type { MiddlewareHandler } from "hono";
import type { z } from "zod";

/** One answer of a route: a JSON schema, or another content type with a description. */
export type Answer =
  | z.ZodType
  | {
    description?: string;
    /** A JSON body; absent for bodies without one (204, 304) or that are not JSON. */
    schema?: z.ZodType;
    /** The content type when it is not JSON (`text/html`, `image/*`). */
    contentType?: string;
    headers?: Record<string, HeaderDoc>;
  };

export interface HeaderDoc {
  description: string;
  schema?: z.ZodType;
  required?: boolean;
}

export interface RouteDoc {
  summary: string;
  description?: string;
  /** Answers other than errors, by status. */
  answers: Record<number, Answer>;
  /** The problem `code`s this route answers, by status, beyond those every route shares. */
  errors?: Record<number, string[]>;
  /** A body read by the handler itself (optional JSON, multipart, a webhook's raw bytes). */
  body?: { schema: z.ZodType; contentType?: string; required?: boolean; description?: string };
  /** Request headers the handler reads. */
  headers?: Record<string, HeaderDoc>;
}

const ROUTE_DOC = Symbol("route doc");
const ROUTE_INPUT = Symbol("route input");
const ROUTE_GUARD = Symbol("route guard");

export type InputTarget = "json" | "query" | "param" | "header";

/** The pass-through middleware that carries `doc`. */
function carrying<K extends symbol, V>(key: K, value: V) {
  const middleware: MiddlewareHandler = async (_c, next) => {
    await next();
  };
  return Object.assign(middleware, { [key]: value });
}

/**
 * A router's `describe`: each route of the router names itself with it, and the reference groups
 * the router's routes under `tag`.
 */
export function documented(tag: string) {
  return (doc: RouteDoc) => carrying(ROUTE_DOC, { ...doc, tag });
}

/** Marks a validator with the schema it checks, so the reference shows it as the route's input. */
export function withInput<M extends object>(middleware: M, target: InputTarget, schema: z.ZodType) {
  return Object.assign(middleware, { [ROUTE_INPUT]: { target, schema } });
}

/** Marks a router's guard, so every route it guards is documented as needing a session. */
export function asGuard<M extends object>(middleware: M, kind: "signed-in" | "admin") {
  return Object.assign(middleware, { [ROUTE_GUARD]: kind });
}

type Documented = RouteDoc & { tag: string };

/** What the handlers of one route say about it. */
export function readRoute(handlers: unknown[]) {
  const inputs: { target: InputTarget; schema: z.ZodType }[] = [];
  let doc: Documented | undefined;
  let guard: "signed-in" | "admin" | undefined;
  for (const handler of handlers) {
    const marked = handler as Record<symbol, unknown>;
    if (marked[ROUTE_DOC]) doc = marked[ROUTE_DOC] as Documented;
    if (marked[ROUTE_INPUT]) inputs.push(marked[ROUTE_INPUT] as (typeof inputs)[number]);
    if (marked[ROUTE_GUARD]) guard = marked[ROUTE_GUARD] as typeof guard;
  }
  return { doc, inputs, guard };
}

/** The header a replayed idempotent write answers with. */
export const REPLAYED: Record<string, HeaderDoc> = {
  "Idempotent-Replayed": {
    description:
      "`true` when this answers a repeat of an earlier request (same key), not a new one.",
  },
};
