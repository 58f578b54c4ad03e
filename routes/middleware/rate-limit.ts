// RATE_LIMIT_API: writes per user (or per IP when anonymous) in a fixed window.
import type { MiddlewareHandler } from "hono";
import type { AppEnv, Deps } from "../../app.ts";
import { TooManyRequests } from "../../errors.ts";
import { clientIp } from "./client-ip.ts";

const WRITES = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const WEBHOOKS = "/api/payments/webhook/";

export function writeRateLimit(deps: Deps): MiddlewareHandler<AppEnv> {
  const { limit, windowSeconds } = deps.config.RATE_LIMIT_API;
  return async function writeRateLimit(c, next) {
    // Webhooks are authenticated by their signature and must never be refused for volume.
    if (!WRITES.has(c.req.method) || c.req.path.startsWith(WEBHOOKS)) return await next();
    const who = c.get("session")?.sub ?? `ip:${clientIp(c)}`;
    const counter = await deps.cache.increment(`api:${who}`, windowSeconds);
    if (counter.count > limit) {
      throw new TooManyRequests(
        `More than ${limit} writes in ${windowSeconds} s. Slow down.`,
        counter.resetInSeconds,
      );
    }
    c.header("RateLimit-Limit", String(limit));
    c.header("RateLimit-Remaining", String(Math.max(0, limit - counter.count)));
    await next();
  };
}
