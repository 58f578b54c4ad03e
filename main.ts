// Entry: read config, open KV, database, cache and jobs, build the app; `deno serve` serves the default
// export. SIGTERM or SIGINT drains it: in-flight work finishes (bounded), then sockets, jobs, KV and
// the database close, and the process ends by itself.
import { createApp, wireDeps } from "./app.ts";
import type { Logger } from "./deps.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { openDatabase } from "./db/client.ts";
import { openKv } from "./kv/store.ts";
import { InFlight, tellLauncher } from "./scripts/lifecycle.ts";
import { indexExistingConnections } from "./workflows/graph.ts";
import { scheduleSweeps } from "./workflows/index.ts";
import { listenForJobs } from "./workflows/kv-queue.ts";

/** In-flight requests, job runs and sweeps get this long to finish once a stop is asked for. */
const DRAIN_MS = 10_000;
/** After this, a stop that is still waiting on something ends the process anyway. */
const STOP_DEADLINE_MS = DRAIN_MS + 5_000;

/** One JSON object a line; the app's own (deps.log) also carries trace ids inside spans. */
const log: Logger = (record) =>
  console.log(JSON.stringify({ time: new Date().toISOString(), ...record }));

/** A start that cannot succeed says why in one line and exits non-zero, also under `--watch`. */
function startFailed(message: string): never {
  console.error(message);
  tellLauncher();
  Deno.exit(1);
}

const config = await loadConfig().catch((error) => {
  if (!(error instanceof ConfigError)) throw error;
  startFailed(`Configuration error: ${error.message}`);
});

const onDeploy = Deno.env.get("DENO_DEPLOYMENT_ID") !== undefined;
const kvPath = config.DENO_KV_PATH ?? (onDeploy ? undefined : `${config.DATA_DIR}/kv.sqlite3`);
const inFlight = new InFlight();
const stopping = new AbortController();

const { deps, pgliteLock } = await open().catch((error) =>
  startFailed(`Start-up failed: ${error instanceof Error ? error.message : String(error)}`)
);
const app = createApp(deps);
const listening = deps.jobs.kind === "kv-queue"
  ? listenForJobs(deps, (work) => inFlight.track(work)).catch((error) =>
    log({ level: "error", msg: "job listener stopped", error: String(error) })
  )
  : Promise.resolve();
scheduleSweeps(deps, { signal: stopping.signal, track: (work) => inFlight.track(work) });
void inFlight.track(async () => {
  const indexed = await indexExistingConnections(deps);
  if (indexed > 0) log({ level: "info", msg: "connection index filled", connections: indexed });
}).catch((error) =>
  log({ level: "error", msg: "connection index migration failed", error: String(error) })
);
// What a crashed predecessor committed but never applied is applied now, not a sweep later.
void inFlight.track(async () => {
  const swept = await deps.outbox.sweep({ graceMs: 0 });
  log({ level: "info", msg: "start-up outbox sweep", ...swept });
}).catch((error) =>
  log({ level: "error", msg: "start-up outbox sweep failed", error: String(error) })
);

log({
  level: "info",
  msg: "convene ready",
  env: config.APP_ENV,
  publicUrl: config.PUBLIC_URL,
  adapters: {
    kv: kvPath ? `sqlite:${kvPath}` : "deno-deploy",
    database: deps.database.description,
    cache: deps.cache.kind === "kv" ? "kv" : "upstash-redis",
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

async function open() {
  if (kvPath && kvPath !== ":memory:") await Deno.mkdir(config.DATA_DIR, { recursive: true });
  /** Held open for the life of the process: closing it would release the PGlite lock. */
  const pgliteLock = config.DATABASE_URL ? null : await holdPgliteLock(config.DATA_DIR);
  const kv = await openKv(kvPath);
  const database = await openDatabase(config);
  const deps = wireDeps({ config, kv, database, clock: { now: Date.now }, log });
  return { deps, pgliteLock };
}

/**
 * PGlite is one process with one connection: a second isolate (deno serve --parallel) or a second
 * server on the same DATA_DIR must not open it. The lock is released when the process exits.
 */
async function holdPgliteLock(dataDir: string) {
  await Deno.mkdir(dataDir, { recursive: true });
  const file = await Deno.open(`${dataDir}/pg.lock`, { create: true, write: true });
  if (!await file.tryLock(true)) {
    startFailed(
      `Configuration error: DATABASE_URL: unset, and the embedded PGlite database in ${dataDir}/pg ` +
        "is already open in another isolate or process. Run a single isolate (deno task dev), " +
        "or set DATABASE_URL to a server Postgres to run in parallel.",
    );
  }
  return file;
}

/**
 * `deno serve` stops listening and closes upgraded sockets (1001) on the signal itself; this lets
 * requests, job runs and sweeps under way finish, then closes everything else. Nothing is left to
 * keep the event loop alive, so each isolate ends by itself and the process exits 0.
 */
async function shutdown(signal: string) {
  if (stopping.signal.aborted) return;
  stopping.abort();
  const started = performance.now();
  log({ level: "info", msg: "shutting down", signal, inFlight: inFlight.count });
  const deadline = setTimeout(() => {
    log({ level: "error", msg: "shutdown overran its deadline; exiting" });
    Deno.exit(1);
  }, STOP_DEADLINE_MS);
  Deno.unrefTimer(deadline);
  const drained = await inFlight.idle(DRAIN_MS);
  await deps.hub.close();
  deps.sessions.close();
  // What this isolate's history writer still holds (the sweep would find it; this is sooner).
  await deps.outbox.close();
  deps.kv.close(); // ends the job listener too
  await listening;
  await deps.database.close();
  pgliteLock?.close();
  clearTimeout(deadline);
  log({
    level: drained ? "info" : "warn",
    msg: "stopped",
    drained,
    abandoned: inFlight.count,
    ms: Math.round(performance.now() - started),
  });
  tellLauncher();
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  try {
    Deno.addSignalListener(signal, () => void shutdown(signal));
  } catch {
    // Signal listeners are unavailable on some platforms (e.g. Windows): the default applies.
  }
}

/** Every request counts as in flight until its response is fully sent (sockets excepted). */
function fetch(request: Request, info: Deno.ServeHandlerInfo): Promise<Response> {
  if (request.headers.get("upgrade")?.toLowerCase() === "websocket") {
    return Promise.resolve(app.fetch(request, info));
  }
  const done = inFlight.begin();
  const answer = Promise.resolve(app.fetch(request, info));
  answer.then(() => info.completed).catch(() => {}).finally(done);
  return answer;
}

export default { fetch } satisfies Deno.ServeDefaultExport;
