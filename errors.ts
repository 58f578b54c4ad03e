// The one error vocabulary: thrown anywhere, turned into problem+json once, in app.ts.
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

export class Unauthorized extends DomainError {
  constructor(detail = "Sign in to continue.") {
    super(401, "unauthorized", "Unauthorized", detail);
  }
}

export class Forbidden extends DomainError {
  constructor(detail: string, type = "forbidden") {
    super(403, type, "Forbidden", detail);
  }
}

export class NotFound extends DomainError {
  constructor(detail = "Nothing is here.") {
    super(404, "not-found", "Not found", detail);
  }
}

export class Conflict extends DomainError {
  constructor(type: string, detail: string, extra: Record<string, unknown> = {}) {
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

export class Unavailable extends DomainError {
  constructor(
    detail: string,
    extra: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) {
    super(503, "unavailable", "Service unavailable", detail, extra, headers);
  }
}

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
