// Scale-out on one machine: the server as `deno task start` runs it, once as `deno serve` (one
// isolate) and once as `deno serve --parallel` (one isolate per core), each on a fresh data
// directory (the embedded KV file the isolates share) and a fresh Postgres database through the
// WebSocket bridge. The load clients run in their own processes. Chat, reservations over HTTP, the
// sale's public page and matchmaking are measured on each, and the two-isolate figure is printed
// as a ratio of the one-isolate one; every answer other than the expected one is an error.
import { parseConfig } from "../config.ts";
import { type DatabaseHandle, openNeon, useWsProxy } from "../db/client.ts";
import { freshDatabase } from "../tests/helpers/integration.ts";
import { members } from "../tests/helpers/members.ts";
import { spawnProxy } from "../tests/helpers/proxy.ts";
import { freePort } from "../tests/helpers/server.ts";
import { pairUp, percentile, runLoadProcess } from "./chat.ts";
import { inOwnProcess } from "./load-process.ts";
import { reachablePostgres } from "./profiles.ts";
import type { ScaleLoadConfig, ScaleLoadResult } from "./scale-load.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const SECONDS = Number(Deno.env.get("BENCH_SECONDS") ?? 3);
const PAIRS = Number(Deno.env.get("BENCH_SCALE_PAIRS") ?? 200);
const BUYERS = Number(Deno.env.get("BENCH_SCALE_BUYERS") ?? 400);
const JOINERS = Number(Deno.env.get("BENCH_SCALE_JOINERS") ?? 400);
const ROUNDS = Number(Deno.env.get("BENCH_SCALE_ROUNDS") ?? 2);
const IN_FLIGHT = Number(Deno.env.get("BENCH_SCALE_IN_FLIGHT") ?? 64);
/** Which of chat, sale (reservations, then the sale page) and match to run (all by default). */
const CASES = new Set((Deno.env.get("BENCH_SCALE_CASES") ?? "chat,sale,match").split(","));
/** 1 and 2 by default; "2" measures the two-isolate server alone (for a profile, say). */
const ISOLATES = (Deno.env.get("BENCH_SCALE_ISOLATES") ?? "1,2").split(",").map(
  Number,
) as (1 | 2)[];

interface Figures {
  chat?: { rate: number; p99: number; sent: number; acked: number };
  reserve?: ScaleLoadResult;
  read?: ScaleLoadResult;
  match?: ScaleLoadResult;
}

function loadProcess(config: ScaleLoadConfig): Promise<ScaleLoadResult> {
  return inOwnProcess(new URL("./scale-load.ts", import.meta.url), config);
}

async function waitUntilReady(url: string) {
  for (let attempt = 0; attempt < 600; attempt++) {
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch { /* not listening yet */ }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the server at ${url} did not come up`);
}

interface Target {
  base: string;
  database: DatabaseHandle;
  jwtSecret: string;
  deps: Parameters<typeof members>[0];
}

/** Chat at saturation, each socket keeping one message in flight to its connected peer. */
async function chatCase({ base, database, jwtSecret }: Target): Promise<Figures["chat"]> {
  const people = await pairUp(base, database, jwtSecret, PAIRS);
  const chat = await runLoadProcess({
    kind: "chat",
    urls: people.map((who) => `${base.replace(/^http/, "ws")}/ws?token=${who.token}`),
    users: people.map((who) => who.user.id),
    peers: people.map((_, i) => people[i ^ 1].user.id),
    seconds: SECONDS,
    warmupSeconds: 1,
    offeredPerSecond: 500,
  });
  return {
    rate: chat.rate,
    p99: percentile(chat.offered, 0.99),
    sent: chat.sent,
    acked: chat.acked,
  };
}

/**
 * Reservations: one sale of a million units, many buyers, IN_FLIGHT requests at a time; then the
 * sale's public page read the same way (stock and definition from KV, no writes).
 */
async function saleCase({ base, deps }: Target): Promise<Pick<Figures, "reserve" | "read">> {
  const [shopAdmin] = await members(deps, 1, { role: "admin" });
  const buyers = await members(deps, BUYERS);
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${base}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${shopAdmin.token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (response.status !== 201) throw new Error(`${path}: ${await response.text()}`);
    return await response.json();
  };
  const product = await post("/api/products", {
    name: "Bench keyboard",
    priceCents: 2500,
    currency: "USD",
  });
  const sale = await post("/api/sales", {
    items: [{ productId: product.id, stock: 1_000_000, priceCents: 2000 }],
    startsAt: new Date(Date.now() - 60_000).toISOString(),
    endsAt: new Date(Date.now() + 3_600_000).toISOString(),
    perUserLimit: 1000,
  });
  const load = { baseUrl: base, seconds: SECONDS, concurrency: IN_FLIGHT, saleId: sale.id };
  return {
    reserve: await loadProcess({
      ...load,
      kind: "reserve",
      tokens: buyers.map((buyer) => buyer.token),
      productId: product.id,
    }),
    read: await loadProcess({ ...load, kind: "read", tokens: [] }),
  };
}

/** Matchmaking: every joiner has a socket; all join one intent at once. */
async function matchCase({ base, deps }: Target): Promise<ScaleLoadResult> {
  const joiners = await members(deps, JOINERS);
  return await loadProcess({
    kind: "match",
    baseUrl: base,
    tokens: joiners.map((joiner) => joiner.token),
    intent: "scale-bench",
  });
}

/** One server (one or two isolates) on a fresh database and data directory, measured. */
async function measure(
  isolates: 1 | 2,
  serverUrl: string,
  wsProxy: string,
): Promise<Figures> {
  const fresh = await freshDatabase(serverUrl, "convene_bench");
  const dbUrl = fresh.url;
  const dataDir = await Deno.makeTempDir({ prefix: "convene-bench-scale-" });
  const jwtSecret = crypto.randomUUID() + crypto.randomUUID();
  const port = freePort();
  const base = `http://127.0.0.1:${port}`;
  let database: DatabaseHandle | undefined;
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      "-A",
      ...(isolates === 2 ? ["--parallel"] : []),
      `--port=${port}`,
      `${ROOT}main.ts`,
    ],
    env: {
      APP_ENV: "development",
      DATA_DIR: dataDir,
      DATABASE_URL: dbUrl,
      DATABASE_WS_PROXY: wsProxy,
      JWT_SECRET: jwtSecret,
      RATE_LIMIT_API: "1000000000/1h",
      DENO_JOBS: "2", // --parallel's isolate count (it defaults to the cores)
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    database = await openNeon(dbUrl, { wsProxy }); // migrates before the server does
    await waitUntilReady(base);
    const config = parseConfig({ APP_ENV: "test", JWT_SECRET: jwtSecret });
    const deps = { config, database, clock: { now: Date.now } };

    const on = { base, database, jwtSecret, deps };
    return {
      chat: CASES.has("chat") ? await chatCase(on) : undefined,
      ...(CASES.has("sale") ? await saleCase(on) : {}),
      match: CASES.has("match") ? await matchCase(on) : undefined,
    };
  } finally {
    server.kill("SIGTERM");
    const killer = setTimeout(() => server.kill("SIGKILL"), 15_000);
    await server.status;
    clearTimeout(killer);
    await database?.close();
    await fresh.drop();
    await Deno.remove(dataDir, { recursive: true });
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];

function errorsOf(runs: Figures[]) {
  const errors: Record<string, number> = {};
  const add = (key: string, count: number) => errors[key] = (errors[key] ?? 0) + count;
  for (const run of runs) {
    for (const result of [run.reserve, run.read, run.match]) {
      for (const [key, count] of Object.entries(result?.errors ?? {})) add(key, count);
    }
    const unacked = run.chat ? run.chat.sent - run.chat.acked : 0;
    if (unacked > 0) add("chat messages not acknowledged", unacked);
  }
  return errors;
}

export async function benchScaleOut(serverUrl: string) {
  const server = new URL(serverUrl);
  const proxy = await spawnProxy(["0", `${server.hostname}:${server.port || 5432}`]);
  useWsProxy(proxy.address);
  console.log(
    `\nScale-out on this machine (${navigator.hardwareConcurrency} cores): deno serve, then ` +
      `deno serve --parallel; Postgres through db:proxy, load clients in their own processes; ` +
      `median of ${ROUNDS} round${ROUNDS > 1 ? "s" : ""}`,
  );
  const runs: Record<1 | 2, Figures[]> = { 1: [], 2: [] };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const isolates of ISOLATES) {
        runs[isolates].push(await measure(isolates, serverUrl, proxy.address));
      }
    }
  } finally {
    await proxy.close();
  }
  const rows: [string, (figures: Figures) => number | undefined, string][] = [
    [`chat, ${PAIRS * 2} sockets, saturation`, (f) => f.chat?.rate, "msgs/s"],
    [`reservations over HTTP, ${IN_FLIGHT} in flight`, (f) => f.reserve?.perSecond, "holds/s"],
    [`GET /api/sales/:id, ${IN_FLIGHT} in flight`, (f) => f.read?.perSecond, "reads/s"],
    [`matchmaking, ${JOINERS} joiners with sockets`, (f) => f.match?.perSecond, "matches/s"],
  ];
  const of = (isolates: 1 | 2, pick: (f: Figures) => number | undefined) => {
    const values = runs[isolates].map(pick).filter((value) => value !== undefined);
    return values.length ? median(values) : NaN;
  };
  const cell = (value: number) => (Number.isNaN(value) ? "–" : value.toFixed(0)).padStart(12);
  console.log(
    `  ${"".padEnd(44)} ${"1 isolate".padStart(12)} ${"2 isolates".padStart(12)}   ratio`,
  );
  for (const [name, pick, unit] of rows) {
    const [one, two] = [of(1, pick), of(2, pick)];
    if (Number.isNaN(one) && Number.isNaN(two)) continue;
    const ratio = Number.isNaN(one) || Number.isNaN(two) ? "  –  " : `${(two / one).toFixed(2)}×`;
    console.log(`  ${name.padEnd(44)} ${cell(one)} ${cell(two)}   ${ratio}  ${unit}`);
  }
  for (const isolates of ISOLATES) {
    const p99 = (pick: (f: Figures) => number | undefined) => cell(of(isolates, pick)).trim();
    console.log(
      `  ${isolates} isolate${isolates > 1 ? "s" : ""}: p99 chat ${p99((f) => f.chat?.p99)} ms ` +
        `(at 500 msgs/s offered), reservation ${
          p99((f) => f.reserve && percentile(f.reserve.latencies, 0.99))
        } ms, join → found-match ${
          p99((f) => f.match && percentile(f.match.latencies, 0.99))
        } ms; errors: ${JSON.stringify(errorsOf(runs[isolates]))}`,
    );
  }
}

if (import.meta.main) {
  const postgres = await reachablePostgres();
  if (postgres) await benchScaleOut(postgres);
}
