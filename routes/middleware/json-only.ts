// Bodies of the JSON API must say they are JSON: a form or text/plain body would otherwise be read
// as `{}` and answered 200 with nothing done.
import type { MiddlewareHandler } from "hono";
import { UnsupportedMediaType } from "../../errors.ts";

const JSON_TYPE = /^application\/([\w.-]+\+)?json$/i;

/** `except` says which requests read their body another way (multipart uploads, webhooks). */
export function jsonOnly(
  options: { except: (request: { method: string; path: string }) => boolean },
): MiddlewareHandler {
  return async function jsonOnly(c, next) {
    if (c.req.method !== "OPTIONS" && mayHaveBody(c.req.raw) && !options.except(c.req)) {
      const type = (c.req.header("content-type") ?? "").split(";")[0].trim();
      if (!JSON_TYPE.test(type)) {
        throw new UnsupportedMediaType(
          `Send the body as application/json${type ? `, not ${type}` : ""}.`,
          { accepted: ["application/json"] },
        );
      }
    }
    await next();
  };
}

/** A body by its framing, or a declared type (HTTP/2 may frame a body without a length). */
function mayHaveBody(request: Request): boolean {
  return hasBody(request) ||
    (request.headers.has("content-type") && request.headers.get("content-length") !== "0");
}

/**
 * Whether the request carries a body, by its framing: a positive `content-length` or a
 * `transfer-encoding`. Not by `request.body`, which Deno's server sets even when a client sent
 * neither (curl's bodyless `-X POST`, fetch's DELETE), nor by a `content-type` alone.
 */
export function hasBody(request: Request): boolean {
  if (request.headers.has("transfer-encoding")) return true;
  const length = request.headers.get("content-length");
  return length !== null && Number(length) > 0;
}
