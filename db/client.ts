// The relational store: PGlite (embedded, file or memory) or Neon's serverless Pool, chosen by DATABASE_URL.
import type { PGlite } from "@electric-sql/pglite";
import { neonConfig, Pool } from "@neondatabase/serverless";
import { drizzle as drizzleNeon } from "drizzle-orm/neon-serverless";
import { migrate as migrateNeon } from "drizzle-orm/neon-serverless/migrator";
import { type Column, getTableColumns, type InferInsertModel, sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT, PgTable } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import type { WorkerAnswer, WorkerRequest } from "./pglite-worker.ts";
import * as schema from "./schema.ts";
import { queried } from "../telemetry.ts";

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface DatabaseHandle {
  db: Database;
  kind: "pglite" | "neon";
  /** Where it points, without credentials (for the start-up log). */
  description: string;
  ping(): Promise<void>;
  /**
   * Housekeeping Postgres servers do by themselves (autovacuum) and PGlite, one process without
   * background workers, does not: marks pages all-visible (so index-only scans stay index-only)
   * and refreshes the planner's statistics. A cron runs it.
   */
  maintain(): Promise<void>;
  close(): Promise<void>;
}

const MIGRATIONS = new URL("./migrations", import.meta.url).pathname;
/** Arbitrary constant: serialises migrations when several isolates start against one Postgres. */
const MIGRATION_LOCK = 472_915_301;

/**
 * PGlite in `dir`, or in memory when `dir` is undefined, in a worker of its own (PGlite runs its
 * statements in WASM on the calling thread: in the server's isolate, the history writer's batches
 * paused every socket and request); migrated before it is returned.
 */
export async function openPglite(dir?: string): Promise<DatabaseHandle> {
  if (dir) await Deno.mkdir(dir, { recursive: true });
  const client = await pgliteWorker(dir);
  return await wrapPglite(client, dir ? `pglite:${dir}` : "pglite:memory");
}

type QueryOptions = { rowMode?: "array" | "object"; parsers?: Record<number, unknown> };

/**
 * The part of PGlite's API that drizzle and this module use (`query`, `exec`, `transaction`,
 * `close`, `closed`), answered by PGlite in db/pglite-worker.ts. PGlite has one connection: a
 * transaction holds it from its BEGIN to its COMMIT or ROLLBACK, and every other statement waits
 * for its turn, as they do inside PGlite itself.
 */
async function pgliteWorker(dir?: string): Promise<PGlite> {
  const worker = new Worker(new URL("./pglite-worker.ts", import.meta.url), { type: "module" });
  const waiting = new Map<number, PromiseWithResolvers<unknown>>();
  let next = 0;
  let terminated = false;
  worker.onmessage = ({ data: answer }: MessageEvent<WorkerAnswer>) => {
    const pending = waiting.get(answer.id)!;
    waiting.delete(answer.id);
    if (answer.ok) pending.resolve(answer.result);
    else pending.reject(Object.assign(new Error(answer.error.message), answer.error.fields));
  };
  worker.onerror = (event) => {
    // A worker that threw is gone: what waits and whatever comes later is refused, never hangs.
    event.preventDefault();
    terminated = true;
    for (const pending of waiting.values()) pending.reject(new Error(`PGlite: ${event.message}`));
    waiting.clear();
  };
  // deno-lint-ignore no-explicit-any
  const ask = <T = any>(request: DistributiveOmit<WorkerRequest, "id">): Promise<T> => {
    if (terminated) return Promise.reject(new Error("PGlite is closed"));
    const id = next++;
    const pending = Promise.withResolvers<unknown>();
    waiting.set(id, pending);
    worker.postMessage({ ...request, id });
    return pending.promise as Promise<T>;
  };
  const query = (sql: string, params: unknown[] = [], options: QueryOptions = {}) =>
    ask({
      op: "query",
      sql,
      params,
      rowMode: options.rowMode ?? "object",
      asText: Object.keys(options.parsers ?? {}).map(Number),
    });
  const exec = (sql: string) => ask({ op: "exec", sql });
  // Statements are sent as soon as no transaction holds the connection, without waiting for each
  // other's answers (PGlite runs them one after another in the worker, never idle between them);
  // a transaction waits for those in flight, then holds the connection until it ends.
  let turn: Promise<unknown> = Promise.resolve();
  const inFlight = new Set<Promise<unknown>>();
  const shared = <T>(work: () => Promise<T>): Promise<T> => {
    const run = turn.then(work);
    const settled = run.catch(() => {});
    inFlight.add(settled);
    settled.then(() => inFlight.delete(settled));
    return run;
  };
  const alone = <T>(work: () => Promise<T>): Promise<T> => {
    const sentBefore = [...inFlight]; // not those sent later: they wait for this one
    const run = turn.then(() => Promise.all(sentBefore)).then(work);
    turn = run.catch(() => {});
    return run;
  };
  await ask({ op: "open", dir });
  let closed = false;
  const client = {
    get closed() {
      return closed;
    },
    query: (sql: string, params?: unknown[], options?: QueryOptions) =>
      queried("postgresql", sql, () => shared(() => query(sql, params, options))),
    exec: (sql: string) => shared(() => exec(sql)),
    transaction: <T>(work: (tx: unknown) => Promise<T>) =>
      alone(async () => {
        await exec("begin");
        try {
          const result = await work({ query, exec, closed: false });
          await exec("commit");
          return result;
        } catch (error) {
          await exec("rollback").catch(() => {});
          throw error;
        }
      }),
    close: async () => {
      if (closed) return;
      closed = true;
      await alone(() => ask({ op: "close" })).catch(() => {});
      terminated = true;
      worker.terminate();
    },
  };
  return client as unknown as PGlite;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * Wraps an already created PGlite instance, migrating it first unless it is known to be migrated
 * (tests lend instances loaded from a dump of a migrated database).
 */
export async function wrapPglite(
  client: PGlite,
  description: string,
  { migrated = false } = {},
): Promise<DatabaseHandle> {
  const db = drizzlePglite({ client, schema });
  if (!migrated) await migratePglite(db, { migrationsFolder: MIGRATIONS });
  return {
    db: db as unknown as Database,
    kind: "pglite",
    description,
    ping: async () => void await client.query("select 1"),
    maintain: async () => void await client.exec("vacuum (analyze)"),
    close: async () => {
      if (!client.closed) await client.close();
    },
  };
}

export interface NeonOptions {
  /** `host:port/path` of a WebSocket→TCP proxy, for Postgres servers that are not Neon. */
  wsProxy?: string;
}

/** Routes Neon's driver through a WebSocket→TCP proxy (`host:port/path`, `ws://` by default). */
export function useWsProxy(wsProxy: string) {
  const proxy = wsProxy.replace(/^wss?:\/\//, "");
  neonConfig.wsProxy = (host, port) => `${proxy}?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = wsProxy.startsWith("wss://");
  // Pipelining the startup packets only works with Neon's own cleartext-password flow.
  neonConfig.pipelineConnect = false;
}

type Queryable = { query: (...args: unknown[]) => Promise<unknown> };

/** `target.query`, with each statement (text or `{ text }`) a `db.query` span. */
function tracedQuery(target: Queryable): Queryable["query"] {
  const query = target.query.bind(target);
  return (...args: unknown[]) => {
    const text = typeof args[0] === "string" ? args[0] : (args[0] as { text?: string })?.text;
    return text === undefined ? query(...args) : queried("postgresql", text, () => query(...args));
  };
}

/** Neon's serverless driver over WebSockets (interactive transactions work through its Pool). */
export async function openNeon(url: string, options: NeonOptions = {}): Promise<DatabaseHandle> {
  if (options.wsProxy) useWsProxy(options.wsProxy);
  // A connect that hangs (a database host that accepts and never answers) fails after 5 s as
  // unreachable, so the request answers 503 and the history writer pauses, rather than waiting.
  const pool = new Pool({ connectionString: url, max: 10, connectionTimeoutMillis: 5_000 });
  let closed = false;
  pool.on("error", (error: Error) => {
    // A connection ended after close (the database dropped, the server stopping) is not news.
    if (!closed) {
      console.error(JSON.stringify({
        time: new Date().toISOString(),
        level: "warn",
        msg: "db pool error",
        error: error instanceof Error ? error.message : String(error),
      }));
    }
  });
  try {
    const client = await pool.connect();
    try {
      await client.query("select pg_advisory_lock($1)", [MIGRATION_LOCK]);
      await migrateNeon(drizzleNeon({ client, schema }), { migrationsFolder: MIGRATIONS });
    } finally {
      await client.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK]).catch(() => {});
      client.release();
    }
  } catch (error) {
    await pool.end();
    throw error;
  }
  const target = new URL(url);
  // Each statement is a `db.query` span: those the pool runs, and those of a transaction on a
  // connection it lends (drizzle asks for one with `connect()`). The lent connection is traced
  // through a view of it, not changed: back in the pool, the pool's own `query` may use it.
  const pooled = pool as unknown as Queryable & { connect: (...args: unknown[]) => unknown };
  const poolQuery = tracedQuery(pooled);
  const connect = pooled.connect.bind(pool);
  pooled.query = poolQuery;
  pooled.connect = (...args: unknown[]) => {
    if (args.length > 0) return connect(...args); // the pool's own, for its `query`
    return (connect() as Promise<Queryable>).then((client) => {
      const query = tracedQuery(client);
      return new Proxy(client, {
        get(target, key) {
          if (key === "query") return query;
          const value = Reflect.get(target, key);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    });
  };
  return {
    db: drizzleNeon({ client: pool, schema }) as unknown as Database,
    kind: "neon",
    description: `neon:${target.hostname}${target.port ? `:${target.port}` : ""}${target.pathname}`,
    ping: async () => void await pool.query("select 1"),
    maintain: () => Promise.resolve(), // the server's autovacuum does it
    close: () => {
      closed = true;
      return pool.end();
    },
  };
}

export function openDatabase(
  config: { DATABASE_URL?: string; DATABASE_WS_PROXY?: string; DATA_DIR: string },
): Promise<DatabaseHandle> {
  return config.DATABASE_URL
    ? openNeon(config.DATABASE_URL, { wsProxy: config.DATABASE_WS_PROXY })
    : openPglite(`${config.DATA_DIR}/pg`);
}

/** Rows of `db.execute` from either driver (both answer `{ rows }`). */
export function rowsOf<T>(result: unknown): T[] {
  return (result as { rows: T[] }).rows;
}

/** How often a transaction Postgres aborted as a deadlock victim (or a serialisation failure) runs. */
const TRANSACTION_ATTEMPTS = 4;

/**
 * `db.transaction(work)`, run again when Postgres aborts it as a deadlock victim (40P01) or for a
 * serialisation failure (40001): such a transaction was rolled back whole, so running it again is
 * what the request meant, where answering 500 is not. `work` must only touch the database.
 */
export async function inTransaction<T>(
  db: Database,
  work: Parameters<Database["transaction"]>[0] extends (tx: infer Tx) => unknown
    ? (tx: Tx) => Promise<T>
    : never,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await db.transaction(work);
    } catch (error) {
      const retryable = hasSqlState(error, "40P01") || hasSqlState(error, "40001");
      if (!retryable || attempt >= TRANSACTION_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 10 * attempt));
    }
  }
}

/** True when `error` is Postgres' unique_violation (from either driver). */
export function isUniqueViolation(error: unknown): boolean {
  return hasSqlState(error, "23505");
}

/** A row refers to one that does not exist (any more). */
export function isForeignKeyViolation(error: unknown): boolean {
  return hasSqlState(error, "23503");
}

/** True when the error, or one it wraps (drizzle wraps driver errors), has this SQLSTATE. */
function hasSqlState(error: unknown, code: string): boolean {
  for (let cause = error; cause; cause = (cause as { cause?: unknown }).cause) {
    if ((cause as { code?: string }).code === code) return true;
  }
  return false;
}

/**
 * Writes records as KV decided them, in one statement, never over a newer version: each row is
 * inserted, or, where its `id` exists with an older `version`, updated in `columns`. Only the
 * newest version of each id is sent. The rows travel as one JSON parameter, read back as rows of
 * `table` by `json_populate_recordset`: drizzle building a parameter per value cost more CPU than
 * the statement itself (about a tenth of a reservation's CPU in a burst).
 */
export function upsertVersions<T extends PgTable, K extends keyof T["_"]["columns"] & string>(
  db: Database,
  table: T,
  records: ({ id: string; version: number } & InferInsertModel<T>)[],
  columns: K[],
) {
  const all = getTableColumns(table) as Record<string, Column>;
  const rows = newestVersions(records) as Record<string, unknown>[];
  const keys = Object.keys(rows[0] ?? {}).filter((key) => key in all);
  const name = (key: string) => `"${all[key].name}"`;
  const list = sql.raw(keys.map(name).join(", "));
  const json = JSON.stringify(
    rows.map((row) => Object.fromEntries(keys.map((key) => [all[key].name, row[key] ?? null]))),
  );
  const set = sql.raw(columns.map((key) => `${name(key)} = excluded.${name(key)}`).join(", "));
  return db.execute(sql`insert into ${table} (${list})
    select ${list} from json_populate_recordset(null::${table}, ${json}::json)
    on conflict ("id") do update set ${set} where ${table}."version" < excluded."version"`);
}

/**
 * One version per id, the newest: a multi-row upsert may touch each row once, and an older
 * version would lose to the newer one anyway.
 */
export function newestVersions<T extends { id: string; version: number }>(records: T[]): T[] {
  const newest = new Map<string, T>();
  for (const record of records) {
    const seen = newest.get(record.id);
    if (!seen || seen.version < record.version) newest.set(record.id, record);
  }
  return [...newest.values()];
}
