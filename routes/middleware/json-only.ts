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
    if (hasBody(c.req.raw) && !options.except(c.req)) {
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

function hasBody(request: Request): boolean {
  const length = request.headers.get("content-length");
  return length === null ? request.body !== null : Number(length) > 0;
}
