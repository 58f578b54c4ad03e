// RATE_LIMIT_API: writes per user (or per IP when anonymous) in a fixed window; socket writes
// spend from the same budget (realtime/frames.ts).
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env.ts";
import type { Deps } from "../../deps.ts";
import { spendWrite } from "../../providers/cache.ts";
import { clientIp } from "./client-ip.ts";

const WRITES = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** `except` says which writes are never counted (webhooks, authenticated by their signature). */
export function writeRateLimit(
  deps: Deps,
  options: { except: (request: { path: string }) => boolean },
): MiddlewareHandler<AppEnv> {
  return async function writeRateLimit(c, next) {
    if (!WRITES.has(c.req.method) || options.except(c.req)) return await next();
    const who = c.get("session")?.sub ?? `ip:${clientIp(c)}`;
    const budget = spendWrite(deps.cache, deps.config.RATE_LIMIT_API, who, deps.clock.now());
    c.header("RateLimit-Limit", String(budget.limit));
    c.header("RateLimit-Remaining", String(budget.remaining));
    await next();
  };
}
