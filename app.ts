// createApp(deps): the middleware stack, the error mapper, and one chained tree of every router;
// wireDeps(parts): the one way its dependencies are built (main.ts, the tests and the benchmarks).
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { PayloadTooLarge } from "./errors.ts";
import { adminRoutes } from "./routes/admin.ts";
import { authRoutes } from "./routes/auth.ts";
import { healthRoutes } from "./routes/health.ts";
import { accessLog } from "./routes/middleware/access-log.ts";
import { jsonOnly } from "./routes/middleware/json-only.ts";
import { originCheck } from "./routes/middleware/origin-check.ts";
import { asError, errorHandler, notFoundHandler } from "./routes/middleware/problem.ts";
import { graphRoutes } from "./routes/graph.ts";
import { interviewRoutes } from "./routes/interviews.ts";
import { matchRoutes } from "./routes/matches.ts";
import { mediaRoutes } from "./routes/media.ts";
import { notificationRoutes } from "./routes/notifications.ts";
import { postRoutes } from "./routes/posts.ts";
import { profileRoutes } from "./routes/profiles.ts";
import { writeRateLimit } from "./routes/middleware/rate-limit.ts";
import { authenticate } from "./routes/middleware/session.ts";
import type { AppEnv } from "./routes/env.ts";
import type { Clock, Deps, Logger } from "./deps.ts";
import type { Config } from "./config.ts";
import type { DatabaseHandle } from "./db/client.ts";
import { SessionMemory } from "./kv/auth/sessions.ts";
import { BACKLOG_COUNT_LIMIT, Outbox, storeBacklog } from "./kv/outbox.ts";
import { type Cache, openCache } from "./providers/cache.ts";
import { type Mailer, openMailer } from "./providers/mail.ts";
import { openPayments, type PaymentProvider } from "./providers/payments.ts";
import { openStorage, type Storage } from "./providers/storage.ts";
import { Hub, type HubOptions } from "./realtime/hub.ts";
import { observeHistoryWriter, observeStoreBacklog, tracedLogger } from "./telemetry.ts";
import { JobRegistry, type Jobs } from "./workflows/jobs.ts";
import { kvQueueJobs } from "./workflows/kv-queue.ts";
import { qstashJobs, qstashVerifier } from "./workflows/qstash.ts";
import { chatRoutes } from "./routes/chat.ts";
import { realtimeRoutes } from "./routes/realtime.ts";
import { saleRoutes } from "./routes/sales.ts";
import { sandboxRoutes } from "./routes/sandbox.ts";
import { workflowRoutes } from "./routes/workflows.ts";
import { referenceRoutes } from "./routes/reference.ts";
import { webRoutes } from "./routes/web.ts";
import { registerWorkflows } from "./workflows/index.ts";

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
  // Hono hands only Errors to onError; anything else thrown becomes one here, logged and answered.
  app.use(async (c, next) => {
    try {
      await next();
    } catch (thrown) {
      c.res = await errorHandler(asError(thrown), c);
    }
  });
  // The console and the reference load only their own files; Swagger UI and the sandbox page set
  // inline styles, nothing runs inline script. Media are served from /media on this origin.
  const secure = secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'", "'unsafe-inline'"],
      imgSrc: ["'self'", "data:", "blob:"],
      mediaSrc: ["'self'", "blob:"],
      connectSrc: ["'self'"],
      objectSrc: ["'none'"],
      baseUri: ["'none'"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
    },
  });
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
  // A cross-site request is refused for where it comes from before anything about its body.
  app.use("/api/*", originCheck({ trusted }));
  app.use("/api/*", jsonOnly({ except: (request) => isUpload(request) || isWebhook(request) }));
  app.use("/api/*", authenticate(deps));
  app.use("/api/*", writeRateLimit(deps, { except: isWebhook }));

  if (deps.payments.name === "sandbox") app.route("/sandbox", sandboxRoutes(deps));
  return app
    .route("/", healthRoutes(deps))
    .route("/api/auth", authRoutes(deps))
    .route("/api/notifications", notificationRoutes(deps))
    .route("/api", profileRoutes(deps))
    .route("/api", graphRoutes(deps))
    .route("/api", postRoutes(deps))
    .route("/api", chatRoutes(deps))
    .route("/api", interviewRoutes(deps))
    .route("/api", matchRoutes(deps))
    .route("/api", saleRoutes(deps))
    .route("/", mediaRoutes(deps))
    .route("/", realtimeRoutes(deps))
    .route("/api/admin", adminRoutes(deps))
    .route("/workflows", workflowRoutes(deps))
    .route("/", referenceRoutes(deps, () => app.routes))
    .route("/", webRoutes());
}

/** The multipart routes: public files and private message attachments. */
function isUpload(request: { method: string; path: string }) {
  return request.method === "POST" &&
    (request.path === "/api/media" || request.path === "/api/attachments");
}

/**
 * Webhooks are verified on their raw bytes, whatever type the provider declares, and never
 * refused for volume.
 */
function isWebhook(request: { path: string }) {
  return request.path.startsWith("/api/payments/webhook/");
}

/** What every app is built from; the rest follows from `config` unless given. */
export interface DepsParts {
  config: Config;
  kv: Deno.Kv;
  database: DatabaseHandle;
  clock: Clock;
  /** Where log records go; wrapped so that records written inside a span carry its ids. */
  log: Logger;
  cache?: Cache;
  jobs?: Jobs;
  registry?: JobRegistry;
  mailer?: Mailer;
  payments?: PaymentProvider;
  storage?: Storage;
  hub?: Partial<HubOptions>;
  verifyDelivery?: Deps["verifyDelivery"];
}

/**
 * The app's dependencies, wired once: adapters chosen by `config` (QStash or the KV queue, Upstash
 * or the KV cache, Resend or the dev outbox, the payment provider, S3 or local media), with their
 * telemetry (traced cache, payments and mail; the history writer's gauges; trace ids in logs).
 */
export function wireDeps(parts: DepsParts): Deps {
  const { config, kv, clock } = parts;
  const log = tracedLogger(parts.log);
  const qstash = config.QSTASH_TOKEN
    ? {
      token: config.QSTASH_TOKEN,
      current: config.QSTASH_CURRENT_SIGNING_KEY!,
      next: config.QSTASH_NEXT_SIGNING_KEY!,
    }
    : null;
  const sessions = new SessionMemory();
  const outbox = new Outbox(kv, clock, log);
  observeHistoryWriter(outbox);
  observeStoreBacklog(() => storeBacklog(kv, clock.now(), BACKLOG_COUNT_LIMIT));
  return {
    config,
    kv,
    database: parts.database,
    cache: parts.cache ?? openCache(config, kv, clock.now),
    jobs: parts.jobs ??
      (qstash
        ? qstashJobs({
          token: qstash.token,
          baseUrl: config.QSTASH_URL,
          publicUrl: config.PUBLIC_URL,
        })
        : kvQueueJobs(kv)),
    registry: parts.registry ?? new JobRegistry(),
    outbox,
    mailer: parts.mailer ?? openMailer(config, kv, clock.now),
    payments: parts.payments ?? openPayments(config),
    storage: parts.storage ?? openStorage(config),
    sessions,
    hub: new Hub({ kv, sessions, clock, log }, {
      maxSocketsPerUser: config.WS_MAX_SOCKETS_PER_USER,
      ...parts.hub,
    }),
    verifyDelivery: parts.verifyDelivery ?? (qstash ? qstashVerifier(qstash) : undefined),
    clock,
    log,
  };
}

/** Every route of the API, with its inputs and answers: what a typed client (`hc<AppType>`) is typed by. */
export type AppType = ReturnType<typeof createApp>;
