// RATE_LIMIT_API: writes per user (or per IP when anonymous) in a fixed window; socket writes
// spend from the same budget (realtime/frames.ts).
import type { MiddlewareHandler } from "hono";
import type { AppEnv, Deps } from "../../app.ts";
import { spendWrite } from "../../providers/cache.ts";
import { clientIp } from "./client-ip.ts";

const WRITES = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const WEBHOOKS = "/api/payments/webhook/";

export function writeRateLimit(deps: Deps): MiddlewareHandler<AppEnv> {
  return async function writeRateLimit(c, next) {
    // Webhooks are authenticated by their signature and must never be refused for volume.
    if (!WRITES.has(c.req.method) || c.req.path.startsWith(WEBHOOKS)) return await next();
    const who = c.get("session")?.sub ?? `ip:${clientIp(c)}`;
    const budget = await spendWrite(deps.cache, deps.config.RATE_LIMIT_API, who);
    c.header("RateLimit-Limit", String(budget.limit));
    c.header("RateLimit-Remaining", String(budget.remaining));
    await next();
  };
}
