// Entry: read config, open KV, database, cache and jobs, build the app; `deno serve` serves the default export.
import { createApp, type Deps, type Logger } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { openDatabase } from "./db/client.ts";
import { Outbox } from "./kv/outbox.ts";
import { openCache } from "./providers/cache.ts";
import { openMailer } from "./providers/mail.ts";
import { openPayments } from "./providers/payments.ts";
import { openStorage } from "./providers/storage.ts";
import { Hub } from "./realtime/hub.ts";
import { scheduleSweeps } from "./workflows/index.ts";
import { JobRegistry } from "./workflows/jobs.ts";
import { kvQueueJobs, listenForJobs } from "./workflows/kv-queue.ts";
import { qstashJobs, qstashVerifier } from "./workflows/qstash.ts";

const log: Logger = (record) =>
  console.log(JSON.stringify({ time: new Date().toISOString(), ...record }));

const config = await loadConfig().catch((error) => {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`Configuration error: ${error.message}`);
  Deno.exit(1);
});

const onDeploy = Deno.env.get("DENO_DEPLOYMENT_ID") !== undefined;
const kvPath = config.DENO_KV_PATH ?? (onDeploy ? undefined : `${config.DATA_DIR}/kv.sqlite3`);
if (kvPath && kvPath !== ":memory:") await Deno.mkdir(config.DATA_DIR, { recursive: true });
/** Held open for the life of the process: closing it would release the PGlite lock. */
const pgliteLock = config.DATABASE_URL ? null : await holdPgliteLock(config.DATA_DIR);

const kv = await Deno.openKv(kvPath);
const database = await openDatabase(config);
const cache = openCache(config, kv);
const clock = { now: Date.now };
const qstash = config.QSTASH_TOKEN && config.QSTASH_CURRENT_SIGNING_KEY &&
    config.QSTASH_NEXT_SIGNING_KEY
  ? {
    token: config.QSTASH_TOKEN,
    current: config.QSTASH_CURRENT_SIGNING_KEY,
    next: config.QSTASH_NEXT_SIGNING_KEY,
  }
  : null;

const deps: Deps = {
  config,
  kv,
  database,
  cache,
  jobs: qstash
    ? qstashJobs({ token: qstash.token, baseUrl: config.QSTASH_URL, publicUrl: config.PUBLIC_URL })
    : kvQueueJobs(kv),
  registry: new JobRegistry(),
  outbox: new Outbox(kv, clock, log),
  mailer: openMailer(config, kv, clock.now),
  payments: openPayments(config),
  storage: openStorage(config),
  hub: new Hub({ kv, database, clock, log }),
  verifyDelivery: qstash ? qstashVerifier(qstash) : undefined,
  clock,
  log,
};
const app = createApp(deps);
if (!qstash) {
  listenForJobs(deps).catch((error) =>
    log({ level: "error", msg: "job listener stopped", error: String(error) })
  );
}
scheduleSweeps(deps);

log({
  level: "info",
  msg: "convene ready",
  env: config.APP_ENV,
  publicUrl: config.PUBLIC_URL,
  adapters: {
    kv: kvPath ? `sqlite:${kvPath}` : "deno-deploy",
    database: database.description,
    cache: cache.kind === "kv" ? "kv" : "upstash-redis",
    jobs: deps.jobs.kind,
    mail: deps.mailer.kind,
    payments: deps.payments.name,
    storage: deps.storage.kind,
  },
});

if (config.production && deps.mailer.kind === "dev-outbox") {
  log({
    level: "warn",
    msg: "RESEND_API_KEY is unset: emails are kept in KV and never sent",
  });
}

/** Closes KV and the database so container platforms can stop the process with SIGTERM. */
async function shutdown(signal: string) {
  log({ level: "info", msg: "shutting down", signal });
  try {
    await deps.hub.close();
    kv.close();
    await database.close();
    pgliteLock?.close();
  } finally {
    Deno.exit(0);
  }
}
try {
  Deno.addSignalListener("SIGTERM", () => void shutdown("SIGTERM"));
} catch {
  // Signal listeners are unavailable on some platforms (e.g. Windows): the default applies.
}

/**
 * PGlite is one process with one connection: a second isolate (deno serve --parallel) or a second
 * server on the same DATA_DIR must not open it. The lock is released when the process exits.
 */
async function holdPgliteLock(dataDir: string) {
  await Deno.mkdir(dataDir, { recursive: true });
  const file = await Deno.open(`${dataDir}/pg.lock`, { create: true, write: true });
  if (!await file.tryLock(true)) {
    console.error(
      `Configuration error: DATABASE_URL: unset, and the embedded PGlite database in ${dataDir}/pg ` +
        "is already open in another isolate or process. Run a single isolate (deno task dev), " +
        "or set DATABASE_URL to a server Postgres to run in parallel.",
    );
    Deno.exit(1);
  }
  return file;
}

export default { fetch: app.fetch } satisfies Deno.ServeDefaultExport;
