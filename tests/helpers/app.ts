// A complete app in memory: `:memory:` KV, a migrated PGlite lent for the test, KV cache and queue.
import { PGlite } from "@electric-sql/pglite";
import { createApp, wireDeps } from "../../app.ts";
import type { Deps } from "../../deps.ts";
import { parseConfig } from "../../config.ts";
import { type DatabaseHandle, wrapPglite } from "../../db/client.ts";
import { openKv } from "../../kv/store.ts";
import type { Cache } from "../../providers/cache.ts";
import type { Mailer } from "../../providers/mail.ts";
import { localStorage, type Storage } from "../../providers/storage.ts";
import type { HubOptions } from "../../realtime/hub.ts";
import type { JobRegistry, Jobs } from "../../workflows/jobs.ts";
import { kvQueueJobs, listenForJobs } from "../../workflows/kv-queue.ts";
import { type Contract, contractOf } from "./contract.ts";

/** This worker's PGlite instances that no app holds: each migrated and empty. */
const idle: PGlite[] = [];
/**
 * An instance no app takes back within this long is closed: an open PGlite keeps the process
 * alive, and a script (a benchmark) must end when its work does.
 */
const IDLE_CLOSE_MS = 2_000;
const closing = new Map<PGlite, ReturnType<typeof setTimeout>>();

/**
 * A migrated, empty PGlite for one app, as a handle whose `close` gives it back: emptied, to be
 * lent again, so a worker holds only as many instances as it runs apps at once (each costs
 * ~350 MB that the process does not get back). An instance loads a dump of a migrated data
 * directory, which the first worker to need it writes, so none starts from scratch or migrates.
 * Once closed, the handle refuses every query: nothing late from one test reaches the next.
 */
async function lendDatabase(): Promise<DatabaseHandle> {
  const reused = idle.pop();
  if (reused) {
    clearTimeout(closing.get(reused));
    closing.delete(reused);
  }
  const client = reused ?? await PGlite.create({
    loadDataDir: await templateDump(),
    // Test databases are tiny: 16 MB of buffers instead of 128 MB saves ~200 MB per instance.
    startParams: [...PGlite.defaultStartParams, "-c", "shared_buffers=16MB"],
  });
  let lent = true;
  const gate = new PostgresGate();
  const guarded = new Proxy(client, {
    get(target, key) {
      const value = Reflect.get(target, key);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if (!lent) throw new Error("this test database was closed");
        return gate.pass(() => value.apply(target, args));
      };
    },
  });
  // The dump is keyed by the migrations, so what it loads is migrated already.
  const handle = await wrapPglite(guarded, "pglite:test", { migrated: true });
  const lentHandle = {
    ...handle,
    async close() {
      if (!lent) return;
      lent = false;
      await emptyTables(client);
      idle.push(client);
      const timer = setTimeout(() => {
        idle.splice(idle.indexOf(client), 1);
        closing.delete(client);
        void client.close();
      }, IDLE_CLOSE_MS);
      Deno.unrefTimer(timer);
      closing.set(client, timer);
    },
  };
  gates.set(lentHandle, gate);
  return lentHandle;
}

/**
 * Holds every query of a test database until released: what answers while Postgres is held
 * asked it nothing on the way (a query would wait, and the answer with it).
 */
class PostgresGate {
  #held: PromiseWithResolvers<void> | null = null;
  #failing: (() => unknown) | null = null;
  /** Queries that arrived while held. */
  asked = 0;

  /** Every query rejects with what `reason` makes (the database down) until `restore`. */
  fail(reason: () => unknown) {
    this.#failing = reason;
  }

  restore() {
    this.#failing = null;
  }

  hold() {
    this.#held ??= Promise.withResolvers();
    this.asked = 0;
  }

  release() {
    this.#held?.resolve();
    this.#held = null;
  }

  pass<T>(query: () => T): T | Promise<Awaited<T>> {
    if (this.#failing) return Promise.reject(this.#failing());
    if (!this.#held) return query();
    this.asked++;
    return this.#held.promise.then(() => query() as Awaited<T>);
  }
}

const gates = new WeakMap<DatabaseHandle, PostgresGate>();

/** The gate of a lent test database (see PostgresGate). */
export function postgresGate(database: DatabaseHandle): PostgresGate {
  const gate = gates.get(database);
  if (!gate) throw new Error("only a lent test database has a gate");
  return gate;
}

async function emptyTables(client: PGlite) {
  const { rows } = await client.query<{ name: string }>(
    "select quote_ident(tablename) as name from pg_tables where schemaname = 'public'",
  );
  if (rows.length === 0) return;
  await client.exec(`truncate ${rows.map((row) => row.name).join(", ")} restart identity cascade`);
}

async function templateDump(): Promise<Blob> {
  const path = `${Deno.env.get("TMPDIR") ?? "/tmp"}/convene-pglite-${await templateKey()}.tar`;
  try {
    return new Blob([await Deno.readFile(path)]);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const fresh = await PGlite.create();
  await wrapPglite(fresh, "template");
  const dump = await fresh.dumpDataDir("none");
  await fresh.close();
  // Written aside and renamed, so a worker never reads half a dump.
  const partial = `${path}.${crypto.randomUUID()}`;
  await Deno.writeFile(partial, new Uint8Array(await dump.arrayBuffer()));
  await Deno.rename(partial, path);
  return dump;
}

async function templateKey(): Promise<string> {
  const migrations = new URL("../../db/migrations/", import.meta.url);
  const parts = [import.meta.resolve("@electric-sql/pglite")];
  for await (const file of walkFiles(migrations)) {
    parts.push(file.pathname, await Deno.readTextFile(file));
  }
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(parts.join("\0")));
  return Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

async function* walkFiles(dir: URL): AsyncGenerator<URL> {
  const entries = [];
  for await (const entry of Deno.readDir(dir)) entries.push(entry);
  for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.isDirectory) yield* walkFiles(new URL(`${entry.name}/`, dir));
    else yield new URL(entry.name, dir);
  }
}

export interface TestClock {
  now(): number;
  advance(ms: number): void;
}

export function testClock(start = Date.now()): TestClock {
  let now = start;
  return { now: () => now, advance: (ms) => void (now += ms) };
}

export interface TestAppOptions {
  env?: Record<string, string>;
  database?: DatabaseHandle;
  cache?: (kv: Deno.Kv, clock: TestClock) => Cache;
  jobs?: (kv: Deno.Kv) => Jobs;
  registry?: JobRegistry;
  mailer?: (kv: Deno.Kv, clock: TestClock) => Mailer;
  hub?: Partial<HubOptions>;
  /** A KV store shared with another app (as two isolates share one); not closed by this app. */
  kv?: Deno.Kv;
  verifyDelivery?: Deps["verifyDelivery"];
  /** Media storage (default: a fresh temporary directory, removed with the app). */
  storage?: Storage;
  /** The wall clock instead of a frozen one (benchmarks); `advance` is then refused. */
  realClock?: boolean;
}

export const TEST_ENV = {
  APP_ENV: "test",
  BCRYPT_COST: "10",
  RATE_LIMIT_API: "100000/15m",
  PUBLIC_URL: "http://convene.test",
} as const;

/** Fast retries, so a failing job reaches its dead letter in well under a second. */
export const TEST_BACKOFF_MS = [20, 40, 80];

export async function createTestApp(options: TestAppOptions = {}) {
  const config = parseConfig({ ...TEST_ENV, ...options.env });
  const kv = options.kv ?? await openKv(":memory:");
  const clock: TestClock = options.realClock
    ? {
      now: Date.now,
      advance: () => {
        throw new Error("this app runs on the wall clock");
      },
    }
    : testClock();
  const database = options.database ?? await lendDatabase();
  const logs = logBook();
  const jobs = options.jobs ? options.jobs(kv) : kvQueueJobs(kv, { backoffMs: TEST_BACKOFF_MS });
  const mediaDir = options.storage ? null : await Deno.makeTempDir({ prefix: "convene-media-" });
  const deps = wireDeps({
    config,
    kv,
    database,
    clock,
    log: logs.log,
    cache: options.cache ? options.cache(kv, clock) : undefined,
    jobs,
    registry: options.registry,
    mailer: options.mailer ? options.mailer(kv, clock) : undefined,
    storage: options.storage ?? localStorage(mediaDir!),
    hub: options.hub,
    verifyDelivery: options.verifyDelivery,
  });
  const app = createApp(deps);
  const listening = jobs.kind === "kv-queue" ? listenForJobs(deps) : Promise.resolve();
  return {
    app,
    deps,
    clock,
    logs: logs.records,
    /** Resolves with the first log record (past or future) that matches. */
    waitForLog: logs.waitFor,
    /** Resolves when `count` jobs called `name` have finished (done or dead-lettered). */
    jobsSettled: (name: string, count = 1) =>
      logs.waitFor(
        (record) =>
          record.job === name && (record.msg === "job done" || record.msg === "job dead-lettered"),
        count,
      ),
    http: httpClient(app),
    async [Symbol.asyncDispose]() {
      await deps.outbox.close();
      await deps.hub.close();
      deps.sessions.close();
      // A shared KV outlives this app: its owner closes it, which also ends this job listener.
      if (!options.kv) {
        kv.close();
        await listening;
      }
      if (!options.database) await database.close();
      if (mediaDir) await Deno.remove(mediaDir, { recursive: true });
    },
  };
}

type LogRecord = Record<string, unknown>;

const LOG_DEADLINE_MS = 20_000;

/** Collected log records, and promises that resolve when matching records arrive (no sleeps). */
export function logBook() {
  const records: LogRecord[] = [];
  const waiters = new Set<() => void>();
  return {
    records,
    log(record: LogRecord) {
      records.push(record);
      for (const wake of waiters) wake();
    },
    /** Fails after a deadline instead of hanging the test when the records never come. */
    waitFor(match: (record: LogRecord) => boolean, count = 1): Promise<LogRecord[]> {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(wake);
          reject(new Error(`waited ${LOG_DEADLINE_MS} ms for ${count} log records: ${match}`));
        }, LOG_DEADLINE_MS);
        const wake = () => {
          const found = records.filter(match);
          if (found.length < count) return;
          clearTimeout(timer);
          waiters.delete(wake);
          resolve(found);
        };
        waiters.add(wake);
        wake();
      });
    },
  };
}

// deno-lint-ignore no-explicit-any
export interface Answer<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface Call {
  body?: unknown;
  /** Sent as-is (for malformed bodies). */
  raw?: BodyInit;
  token?: string;
  cookie?: string;
  headers?: Record<string, string>;
  ip?: string;
}

type Fetcher = {
  request(input: string, init: RequestInit, env?: unknown): Response | Promise<Response>;
};

/**
 * JSON requests against an in-memory app (or anything with Hono's `request`). Every answer is
 * checked against the OpenAPI document the app serves (tests/helpers/contract.ts).
 */
export function httpClient(app: Fetcher) {
  let contract: Promise<Contract | null> | undefined;
  // deno-lint-ignore no-explicit-any
  return async function call<T = any>(method: string, path: string, options: Call = {}) {
    const headers: Record<string, string> = { ...options.headers };
    if (options.body !== undefined) headers["content-type"] ??= "application/json";
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.cookie) headers.cookie = options.cookie;
    const response = await app.request(path, {
      method,
      headers,
      body: options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
    }, { remoteAddr: { hostname: options.ip ?? "203.0.113.7", port: 40000, transport: "tcp" } });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch { /* not JSON: keep the text */ }
    contract ??= contractOf((at) => app.request(at, {}));
    const checked = await contract;
    if (!checked) contract = undefined; // try again on the next answer
    checked?.check(method, path, response.status, response.headers, body);
    return { status: response.status, headers: response.headers, body: body as T } as Answer<T>;
  };
}

export type HttpClient = ReturnType<typeof httpClient>;

let counter = 0;

export function randomEmail(prefix = "dev"): string {
  return `${prefix}.${crypto.randomUUID().slice(0, 8)}.${++counter}@example.com`;
}

export async function signUp(
  http: HttpClient,
  overrides: Partial<{ name: string; email: string; password: string; gender: string }> = {},
) {
  const input = {
    name: "Ada Lovelace",
    email: randomEmail(),
    password: "analytical-engine",
    ...overrides,
  };
  const answer = await http("POST", "/api/auth/signup", { body: input });
  if (answer.status !== 201) {
    throw new Error(`signup failed: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  return { ...input, user: answer.body.user, token: answer.body.token as string, answer };
}

/** The `session=…` pair of a Set-Cookie header, ready to send back as `Cookie`. */
export function sessionCookie(headers: Headers): string {
  const cookie = headers.getSetCookie().find((line) => line.startsWith("session="));
  if (!cookie) throw new Error("no session cookie was set");
  return cookie.split(";")[0];
}

/** Asserts the answer is problem+json with the given status, and returns its body. */
export function assertProblem(answer: Answer, status: number) {
  const type = answer.headers.get("content-type") ?? "";
  if (answer.status !== status || !type.startsWith("application/problem+json")) {
    throw new Error(
      `expected ${status} problem+json, got ${answer.status} ${type}: ${
        JSON.stringify(answer.body)
      }`,
    );
  }
  for (const field of ["type", "title", "status", "detail"]) {
    if (!(field in answer.body)) throw new Error(`problem lacks "${field}"`);
  }
  return answer.body;
}
