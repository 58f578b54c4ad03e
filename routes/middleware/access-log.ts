// One JSON line per request: method, path, route, status, duration, request id, user id. It also
// names the request's span by its route template (Deno's own HTTP span, when telemetry is on) and
// records the request's duration by route template, method and status, never by raw URL.
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../env.ts";
import type { Deps } from "../../deps.ts";
import { activeSpan, instruments, recent } from "../../telemetry.ts";

export function accessLog(deps: Deps): MiddlewareHandler<AppEnv> {
  return async function accessLog(c, next) {
    const started = performance.now();
    await next();
    const seconds = (performance.now() - started) / 1000;
    // The matched route's template ("/api/posts/:id"); unmatched paths share one name.
    const route = c.req.routePath === "/*" ? "(unmatched)" : c.req.routePath;
    const attributes = {
      "http.route": route,
      "http.request.method": c.req.method,
      "http.response.status_code": c.res.status,
    };
    instruments.httpDuration.record(seconds, attributes);
    recent.count("requests");
    if (c.res.status >= 500) recent.count("errors");
    const span = activeSpan();
    if (span?.isRecording()) {
      span.updateName(`${c.req.method} ${route}`);
      span.setAttribute("http.route", route);
    }
    deps.log({
      level: c.res.status >= 500 ? "error" : "info",
      msg: "request",
      method: c.req.method,
      path: c.req.path,
      route,
      status: c.res.status,
      ms: Math.round(seconds * 10_000) / 10,
      requestId: c.get("requestId"),
      userId: c.get("session")?.sub ?? null,
    });
  };
}
