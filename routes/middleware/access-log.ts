// One JSON line per request: method, path, status, duration, request id, user id.
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env.ts";
import type { Deps } from "../../deps.ts";

export function accessLog(deps: Deps): MiddlewareHandler<AppEnv> {
  return async function accessLog(c, next) {
    const started = performance.now();
    await next();
    deps.log({
      level: c.res.status >= 500 ? "error" : "info",
      msg: "request",
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round((performance.now() - started) * 10) / 10,
      requestId: c.get("requestId"),
      userId: c.get("session")?.sub ?? null,
    });
  };
}
