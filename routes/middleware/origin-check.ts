// CSRF defence: a browser's cookie-carrying unsafe request must come from a trusted origin.
import type { MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { AppEnv } from "../env.ts";
import { Forbidden } from "../../errors.ts";
import { SESSION_COOKIE } from "./session.ts";

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Requests with `Authorization` are exempt (browsers never attach it on their own). Others, of any
 * content type, pass when `Origin` is trusted, else when `Sec-Fetch-Site` says same-origin or
 * user-initiated; with neither header, only a request that carries no session cookie passes.
 */
export function originCheck(options: { trusted: string[] }): MiddlewareHandler<AppEnv> {
  const trusted = new Set(options.trusted.map((origin) => new URL(origin).origin));
  return async function originCheck(c, next) {
    if (SAFE.has(c.req.method) || c.req.header("authorization")) return await next();
    const origin = c.req.header("origin");
    const fetchSite = c.req.header("sec-fetch-site");
    const own = new URL(c.req.url).origin;
    const allowed = origin
      ? origin === own || trusted.has(origin)
      : fetchSite
      ? fetchSite === "same-origin" || fetchSite === "none"
      : getCookie(c, SESSION_COOKIE) === undefined;
    if (!allowed) {
      throw new Forbidden(
        "Cross-site request refused: send it from a trusted origin, or authenticate with a Bearer token.",
      );
    }
    await next();
  };
}
