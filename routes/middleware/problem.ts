// problem+json (RFC 9457): the one place errors become responses.
import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ZodError } from "zod";
import { DomainError, isUnreachable, Unavailable } from "../../errors.ts";
import { zodFieldErrors } from "../../input.ts";
import type { AppEnv } from "../env.ts";
import { instruments } from "../../telemetry.ts";

export interface Problem {
  type: string;
  code: string;
  title: string;
  status: number;
  detail: string;
  [extra: string]: unknown;
}

/** Built through the context so headers set earlier (request id, security) are kept. */
export function problemResponse(
  c: Context,
  problem: Problem,
  headers: Record<string, string> = {},
) {
  for (const [name, value] of Object.entries(headers)) c.header(name, value);
  c.header("content-type", "application/problem+json");
  return c.body(JSON.stringify(problem), problem.status as ContentfulStatusCode);
}

function problem(status: number, code: string, title: string, detail: string, extra = {}): Problem {
  return { ...extra, type: `/problems/${code}`, code, title, status, detail };
}

const HTTP_TITLES: Record<number, [string, string]> = {
  400: ["invalid-request", "Invalid request"], // malformed JSON: the same code as a bad field
  401: ["unauthorized", "Unauthorized"],
  403: ["forbidden", "Forbidden"],
  404: ["not-found", "Not found"],
  405: ["method-not-allowed", "Method not allowed"],
  413: ["payload-too-large", "Payload too large"],
  415: ["unsupported-media-type", "Unsupported media type"],
};

/**
 * Domain errors and zod errors → their 4xx; a dependency that cannot be reached → 503 with
 * Retry-After; anything else → 500 with a reference, logged.
 */
export const errorHandler: ErrorHandler<AppEnv> = (error, c) => {
  if (!(error instanceof DomainError) && isUnreachable(error)) {
    c.get("deps")?.log({
      level: "warn",
      msg: "dependency unreachable",
      method: c.req.method,
      path: c.req.path,
      requestId: c.get("requestId"),
      error: describeError(error),
    });
    error = new Unavailable(
      "A service this request needs cannot be reached right now; nothing was changed. Try again shortly.",
    );
  }
  if (isBodyCutOff(error)) {
    error = new Unavailable(
      "The request body stopped arriving before it was complete (the connection closed, or the server is restarting); nothing was changed. Send it again.",
      {},
      1,
    );
  }
  if (error instanceof DomainError) {
    if (error.status === 503) instruments.busyAnswers.add(1, { "convene.problem": error.type });
    const body = problem(error.status, error.type, error.title, error.message, error.extra);
    return problemResponse(c, body, error.headers);
  }
  if (error instanceof ZodError) {
    const body = problem(400, "invalid-request", "Invalid request", "The request is invalid.", {
      errors: zodFieldErrors(error),
    });
    return problemResponse(c, body);
  }
  if (error instanceof HTTPException && error.status < 500) {
    const [code, title] = HTTP_TITLES[error.status] ?? ["invalid-request", "Invalid request"];
    return problemResponse(c, problem(error.status, code, title, error.message || title));
  }
  return internalError(c, error);
};

/**
 * A request body the runtime can no longer read: the client went away mid-body, or the server is
 * stopping (Deno 2.9's graceful shutdown makes in-flight bodies unreadable, denoland/deno#36809).
 * Nothing was decided, so this is a 503 to retry, not a 500.
 */
function isBodyCutOff(error: unknown): boolean {
  return error instanceof Deno.errors.BadResource && /request body/i.test(error.message);
}

function internalError(c: Context<AppEnv>, error: unknown) {
  const ref = c.get("requestId") ?? crypto.randomUUID();
  c.get("deps")?.log({
    level: "error",
    msg: "unhandled error",
    ref,
    method: c.req.method,
    path: c.req.path,
    error: describeError(error, { stack: true }),
  });
  // Never the error itself, in any environment: a driver's message can quote a query and its
  // parameters (password hashes included). The log line with the same ref has the details.
  const detail = `Something went wrong on our side. Quote reference ${ref}.`;
  return problemResponse(
    c,
    problem(500, "internal-error", "Internal server error", detail, { ref }),
  );
}

/**
 * Anything thrown, as the Error that Hono's error handler expects: Hono passes only Errors to it
 * and lets anything else (Neon's driver rejects with an ErrorEvent) escape as a bare text 500.
 */
export function asError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(describeError(thrown), { cause: thrown });
}

/** One line about anything thrown: an Error's message (or stack), an Event's type and message. */
export function describeError(error: unknown, options: { stack?: boolean } = {}): string {
  if (error instanceof Error) {
    const text = options.stack ? (error.stack ?? error.message) : error.message;
    const cause = error.cause === undefined ? "" : ` (cause: ${describeError(error.cause)})`;
    return `${text}${cause}`;
  }
  if (typeof Event !== "undefined" && error instanceof Event) {
    const message = (error as Event & { message?: unknown }).message;
    return `${error.constructor.name} ${error.type}${message ? `: ${String(message)}` : ""}`;
  }
  try {
    return typeof error === "string" ? error : JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}

export const notFoundHandler: NotFoundHandler<AppEnv> = (c) =>
  problemResponse(
    c,
    problem(404, "not-found", "Not found", `There is no ${c.req.method} ${c.req.path}.`),
  );
