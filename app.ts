// createApp(deps): the middleware stack, the error mapper, and every router.
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import type { Config } from "./config.ts";
import type { DatabaseHandle } from "./db/client.ts";
import { PayloadTooLarge } from "./errors.ts";
import type { Outbox } from "./kv/outbox.ts";
import type { Cache } from "./providers/cache.ts";
import type { Mailer } from "./providers/mail.ts";
import type { PaymentProvider } from "./providers/payments.ts";
import type { Storage } from "./providers/storage.ts";
import type { Hub } from "./realtime/hub.ts";
import { adminRoutes } from "./routes/admin.ts";
import { authRoutes } from "./routes/auth.ts";
import { healthRoutes } from "./routes/health.ts";
import { accessLog } from "./routes/middleware/access-log.ts";
import { jsonOnly } from "./routes/middleware/json-only.ts";
import { originCheck } from "./routes/middleware/origin-check.ts";
import { errorHandler, notFoundHandler } from "./routes/middleware/problem.ts";
import { graphRoutes } from "./routes/graph.ts";
import { interviewRoutes } from "./routes/interviews.ts";
import { matchRoutes } from "./routes/matches.ts";
import { mediaRoutes } from "./routes/media.ts";
import { notificationRoutes } from "./routes/notifications.ts";
import { postRoutes } from "./routes/posts.ts";
import { profileRoutes } from "./routes/profiles.ts";
import { writeRateLimit } from "./routes/middleware/rate-limit.ts";
import { authenticate, type Session } from "./routes/middleware/session.ts";
import { chatRoutes } from "./routes/chat.ts";
import { realtimeRoutes } from "./routes/realtime.ts";
import { saleRoutes } from "./routes/sales.ts";
import { sandboxRoutes } from "./routes/sales.ts";
import { workflowRoutes } from "./routes/workflows.ts";
import { registerWorkflows } from "./workflows/index.ts";
import type { JobRegistry, Jobs } from "./workflows/jobs.ts";
import type { DeliveryVerifier } from "./workflows/qstash.ts";

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export type Logger = (record: Record<string, unknown>) => void;

export interface Deps {
  config: Config;
  kv: Deno.Kv;
  database: DatabaseHandle;
  cache: Cache;
  jobs: Jobs;
  /** Job handlers, filled by createApp; both job adapters deliver to it. */
  registry: JobRegistry;
  /** Side effects written into KV commits, applied after them or by the sweep. */
  outbox: Outbox;
  mailer: Mailer;
  /** The payment provider orders are paid through (sandbox or Paystack). */
  payments: PaymentProvider;
  /** Where uploaded files' bytes live (local directory or S3-compatible bucket). */
  storage: Storage;
  /** This isolate's WebSocket hub: sockets, event-log fan-out, ephemeral signals. */
  hub: Hub;
  /** Checks QStash signatures; absent when QStash is not configured (deliveries get 401). */
  verifyDelivery?: DeliveryVerifier;
  clock: Clock;
  log: Logger;
}

export interface AppEnv {
  Variables: { deps: Deps; requestId: string; session: Session | null };
}

export const JSON_BODY_LIMIT = 1024 * 1024;

export function createApp(deps: Deps) {
  registerWorkflows(deps);
  const app = new Hono<AppEnv>();
  const trusted = [deps.config.PUBLIC_URL, ...deps.config.CORS_ORIGINS];

  app.onError(errorHandler);
  app.notFound(notFoundHandler);

  app.use(requestId({ limitLength: 100 }));
  app.use(async (c, next) => {
    c.set("deps", deps);
    await next();
  });
  app.use(accessLog(deps));
  const secure = secureHeaders();
  // Files at /media/:id set their own headers (they are embedded by other origins).
  app.use((c, next) => c.req.path.startsWith("/media/") ? next() : secure(c, next));
  if (deps.config.CORS_ORIGINS.length > 0) {
    app.use(cors({ origin: deps.config.CORS_ORIGINS, credentials: true, maxAge: 600 }));
  }
  const limitBody = bodyLimit({
    maxSize: JSON_BODY_LIMIT,
    onError: () => {
      throw new PayloadTooLarge(JSON_BODY_LIMIT);
    },
  });
  // Uploads stream through their own, larger limit (workflows/media/uploads.ts).
  app.use("/api/*", (c, next) => isUpload(c.req) ? next() : limitBody(c, next));
  app.use("/workflows/*", limitBody);
  app.use("/sandbox/*", limitBody);
  app.use("/api/*", jsonOnly({ except: (request) => isUpload(request) || isWebhook(request) }));
  app.use("/api/*", originCheck({ trusted }));
  app.use("/api/*", authenticate(deps));
  app.use("/api/*", writeRateLimit(deps, { except: isWebhook }));

  app.route("/", healthRoutes(deps));
  app.route("/api/auth", authRoutes(deps));
  app.route("/api/notifications", notificationRoutes(deps));
  app.route("/api", profileRoutes(deps));
  app.route("/api", graphRoutes(deps));
  app.route("/api", postRoutes(deps));
  app.route("/api", chatRoutes(deps));
  app.route("/api", interviewRoutes(deps));
  app.route("/api", matchRoutes(deps));
  app.route("/api", saleRoutes(deps));
  app.route("/", mediaRoutes(deps));
  if (deps.payments.name === "sandbox") app.route("/sandbox", sandboxRoutes(deps));
  app.route("/", realtimeRoutes(deps));
  app.route("/api/admin", adminRoutes(deps));
  app.route("/workflows", workflowRoutes(deps));
  return app;
}

function isUpload(request: { method: string; path: string }) {
  return request.method === "POST" && request.path === "/api/media";
}

/**
 * Webhooks are verified on their raw bytes, whatever type the provider declares, and never
 * refused for volume.
 */
function isWebhook(request: { path: string }) {
  return request.path.startsWith("/api/payments/webhook/");
}

export type App = ReturnType<typeof createApp>;
