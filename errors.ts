// The one error vocabulary: thrown anywhere, turned into problem+json once, in app.ts. Every class
// takes the same order: the detail (for people), then the code (for programs) where a status has
// several, then extra fields of the problem.
import { ZodError } from "zod";

export interface FieldError {
  path: string;
  message: string;
}

/** A failure the client can act on; `status` is its HTTP status, `type` its problem slug. */
export class DomainError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly title: string,
    detail: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}

export class Invalid extends DomainError {
  constructor(detail: string, errors: FieldError[] = []) {
    super(400, "invalid-request", "Invalid request", detail, { errors });
  }
}

/** 400 on the socket: a frame refused (its shape, its type, the frame budget), with its code. */
export class RefusedFrame extends DomainError {
  constructor(detail: string, type: string, extra: Record<string, unknown> = {}) {
    super(400, type, "Refused frame", detail, extra);
  }
}

export class Unauthorized extends DomainError {
  constructor(detail = "Sign in to continue.") {
    super(401, "unauthorized", "Unauthorized", detail);
  }
}

export class Forbidden extends DomainError {
  constructor(detail: string, type = "forbidden", extra: Record<string, unknown> = {}) {
    super(403, type, "Forbidden", detail, extra);
  }
}

export class NotFound extends DomainError {
  constructor(detail = "Nothing is here.") {
    super(404, "not-found", "Not found", detail);
  }
}

export class Conflict extends DomainError {
  constructor(detail: string, type: string, extra: Record<string, unknown> = {}) {
    super(409, type, "Conflict", detail, extra);
  }
}

export class TooManyRequests extends DomainError {
  constructor(detail: string, retryAfterSeconds: number) {
    const retryAfter = Math.max(1, Math.ceil(retryAfterSeconds));
    super(429, "rate-limited", "Too many requests", detail, { retryAfter }, {
      "Retry-After": String(retryAfter),
    });
  }
}

export class PayloadTooLarge extends DomainError {
  constructor(limitBytes: number, what = "The request body") {
    super(
      413,
      "payload-too-large",
      "Payload too large",
      `${what} exceeds ${limitBytes} bytes.`,
      { limitBytes },
    );
  }
}

export class UnsupportedMediaType extends DomainError {
  constructor(detail: string, extra: Record<string, unknown> = {}) {
    super(415, "unsupported-media-type", "Unsupported media type", detail, extra);
  }
}

/** 410: what was asked for existed and is over (an expired reservation, an ended sale). */
export class Gone extends DomainError {
  constructor(detail: string, type = "gone", extra: Record<string, unknown> = {}) {
    super(410, type, "Gone", detail, extra);
  }
}

/** 422: well-formed, but it contradicts what the server already holds (a reused key). */
export class Unprocessable extends DomainError {
  constructor(detail: string, type = "unprocessable", extra: Record<string, unknown> = {}) {
    super(422, type, "Unprocessable", detail, extra);
  }
}

/** 425: not yet (a sale that has not started); Retry-After says when. */
export class TooEarly extends DomainError {
  constructor(detail: string, type: string, retryAfterSeconds: number, extra = {}) {
    const retryAfter = Math.max(1, Math.ceil(retryAfterSeconds));
    super(425, type, "Too early", detail, extra, { "Retry-After": String(retryAfter) });
  }
}

/** 426: the endpoint speaks another protocol (GET /ws without the WebSocket handshake). */
export class UpgradeRequired extends DomainError {
  constructor(detail: string, protocol: string) {
    super(426, "upgrade-required", "Upgrade required", detail, {}, { Upgrade: protocol });
  }
}

/** 502: a provider the request needed answered with a refusal we cannot pass on as our own. */
export class BadGateway extends DomainError {
  constructor(detail: string, type = "bad-gateway", extra: Record<string, unknown> = {}) {
    super(502, type, "Bad gateway", detail, extra);
  }
}

/** Seconds a client is told to wait when a dependency is unreachable. */
export const UNAVAILABLE_RETRY_SECONDS = 5;

/** 503: something the request needs cannot be reached now; always says when to try again. */
export class Unavailable extends DomainError {
  constructor(
    detail: string,
    extra: Record<string, unknown> = {},
    retryAfterSeconds = UNAVAILABLE_RETRY_SECONDS,
    type = "unavailable",
  ) {
    const retryAfter = Math.max(1, Math.ceil(retryAfterSeconds));
    super(503, type, "Service unavailable", detail, { retryAfter, ...extra }, {
      "Retry-After": String(retryAfter),
    });
  }
}

/**
 * 503 `busy`: a decision kept losing races on one record (or the store stayed locked) for its
 * whole retry budget. Nothing was decided; the same request shortly after will be.
 */
export class Busy extends Unavailable {
  constructor(what: string) {
    super(`${what} changed too often at once; try again.`, {}, 1, "busy");
  }
}

/**
 * Whether `error` says a dependency (Postgres, Redis, a provider) could not be reached or went
 * away, rather than that it refused what it was asked: a connection refused, reset or timed out,
 * a WebSocket that failed (Neon's driver rejects with an `ErrorEvent`, not an Error), SQLSTATE
 * class 08 (connection exception), 57P01-57P03 (the server shutting down or starting), or 53300
 * (too many connections), anywhere in its causes. Such a failure is no fault of the work: it is
 * never counted against a record or a job, and a request that meets it answers 503.
 */
export function isUnreachable(error: unknown): boolean {
  for (let cause = error, depth = 0; cause != null && depth < 6; depth++) {
    if (cause instanceof Unavailable) return true;
    if (typeof Event !== "undefined" && cause instanceof Event) return true; // ErrorEvent, CloseEvent
    if (UNREACHABLE_ERRORS.some((type) => cause instanceof type)) return true;
    if (typeof cause !== "object") return false;
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && UNREACHABLE_CODE.test(code)) return true;
    const message = (cause as { message?: unknown }).message;
    if (typeof message === "string" && UNREACHABLE_MESSAGE.test(message)) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}

const UNREACHABLE_ERRORS = [
  Deno.errors.ConnectionRefused,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.NotConnected,
  Deno.errors.BrokenPipe,
  Deno.errors.TimedOut,
  Deno.errors.AddrNotAvailable,
];
const UNREACHABLE_CODE =
  /^(08[0-9A-Z]{3}|57P0[123]|53300|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|UND_ERR_SOCKET|UND_ERR_CONNECT_TIMEOUT)$/;
/** Drivers that lose a connection say so only in words (pg's "Connection terminated", fetch's). */
const UNREACHABLE_MESSAGE =
  /connection terminated|terminating connection|connection (?:timeout|refused|reset|closed)|timeout exceeded when trying to connect|client has encountered a connection error|error sending request|websocket (?:closed|error)|network error|ECONNREFUSED|ECONNRESET/i;

/** A failure no retry can fix (a payload of the wrong shape, a value storage refuses). */
export class PermanentFailure extends Error {
  override name = "PermanentFailure";
}

/**
 * Whether retrying `error` is pointless: a PermanentFailure, a payload that fails its schema, or a
 * Postgres data exception (SQLSTATE class 22: a NUL byte, a value out of range) anywhere in its
 * causes.
 */
export function isPermanentFailure(error: unknown): boolean {
  for (let cause = error, depth = 0; cause && depth < 5; depth++) {
    if (cause instanceof PermanentFailure || cause instanceof ZodError) return true;
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && /^22[0-9A-Z]{3}$/.test(code)) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}
