// Flash-sale reservations: 500 concurrent buyers on one hot item, next to the floor for this design
// measured the same way in the same run, and (with BENCH_DATABASE_URL) the classic Postgres row.
//
// Every case sells STOCK units to BUYERS concurrent loops of ATTEMPTS tries each, so the last tries
// meet a sold-out item; each checks afterwards that exactly STOCK units went (zero oversell).
// 1. Floor: raw KV read → check → set(stock − 1) commits on one key, retried on conflict.
// 2. `reserveStock` in KV alone (no HTTP, no Postgres), with 1, 4 and 8 stock shards; and with one
//    shard and every strong KV call held EDGE_HOLD_MS, as from a Deno Deploy region far from KV's
//    primary (fewer buyers: EDGE_BUYERS × 1 try).
// 3. End to end: POST /api/sales/:id/reservations over HTTP from a process of its own (session,
//    validation, KV commit,
//    outbox apply: the reservation row in PGlite and the expiry job).
// 4. Postgres: `UPDATE … SET stock = stock - 1 WHERE id = $1 AND stock > 0` through Neon's driver.
import { Pool } from "@neondatabase/serverless";
import { z } from "zod";
import { useWsProxy } from "../db/client.ts";
import { serveWsProxy } from "../db/ws-proxy.ts";
import { KeyedLock } from "../kv/keyed-lock.ts";
import { Outbox } from "../kv/outbox.ts";
import { createSaleStock, reserveStock, stockRemaining } from "../kv/sales/stock.ts";
import type { Sale } from "../db/records.ts";
import { createTestApp } from "../tests/helpers/app.ts";
import { holdingKv } from "../tests/helpers/kv-trips.ts";
import { members } from "../tests/helpers/members.ts";
import { PGLITE, type Profile } from "./profiles.ts";
import { inOwnProcess, withCpu } from "./load-process.ts";
import { type HttpBuyers, type Load, load as buyerLoops } from "./sales-load.ts";

const BUYERS = Number(Deno.env.get("BENCH_SALE_BUYERS") ?? 500);
const ATTEMPTS = 5;
/** A fifth of the tries find the item sold out. */
const STOCK = BUYERS * (ATTEMPTS - 1);
/** The edge case: each strong KV call held this long; this many buyers, one try each. */
const EDGE_HOLD_MS = 50;
const EDGE_BUYERS = 200;

/** How many buyers try how often, for how many units. */
interface Shape {
  buyers: number;
  attempts: number;
  stock: number;
}

const FULL: Shape = { buyers: BUYERS, attempts: ATTEMPTS, stock: STOCK };
/** Four fifths of the edge buyers get a unit. */
const EDGE: Shape = { buyers: EDGE_BUYERS, attempts: 1, stock: EDGE_BUYERS * 4 / 5 };

interface Run {
  perSecond: number;
  latencies: number[];
  sold: number;
  oversold: number;
  /** The server process's CPU per try (µs), where measured. */
  cpuUs?: number;
}

/** BUYERS loops of ATTEMPTS tries; `attempt` resolves true when it took a unit. */
const load = (attempt: (buyer: number, round: number) => Promise<boolean>) =>
  buyerLoops(BUYERS, ATTEMPTS, attempt);

/**
 * The floor: get → check → set(stock − 1) on one key. `queued`: the loops take turns through an
 * in-process lock (the best one key allows); otherwise all race and retry on conflict.
 */
async function floor(kv: Deno.Kv, run: number, queued: boolean): Promise<Run> {
  const key = ["bench_floor", run, queued];
  await kv.set(key, STOCK);
  const lock = new KeyedLock();
  const result = await load(() => queued ? lock.run("floor", sell) : sell());
  async function sell() {
    for (;;) {
      const entry = await kv.get<number>(key);
      if (entry.value! <= 0) return false;
      if ((await kv.atomic().check(entry).set(key, entry.value! - 1).commit()).ok) return true;
    }
  }
  const left = (await kv.get<number>(key)).value!;
  return { ...result, oversold: result.sold + left - STOCK };
}

async function inKv(kv: Deno.Kv, shards: number, run: number, shape = FULL): Promise<Run> {
  const outbox = new Outbox(kv, { now: Date.now }, () => {});
  outbox.register("bench-hold", z.unknown(), async () => {});
  const sale: Sale = {
    id: `bench-${shards}-${run}-${shape.buyers}`,
    startsAt: 0,
    endsAt: Date.now() + 3_600_000,
    perUserLimit: shape.attempts,
    shards,
    items: [{
      productId: "hot",
      name: "Hot item",
      priceCents: 100,
      currency: "USD",
      stock: shape.stock,
    }],
    createdAt: Date.now(),
  };
  await createSaleStock({ kv, outbox, now: Date.now }, sale);
  const deps = { kv, outbox, now: Date.now };
  const result = await buyerLoops(shape.buyers, shape.attempts, async (buyer) => {
    try {
      await reserveStock(deps, {
        sale,
        userId: `u${buyer}`,
        productId: "hot",
        quantity: 1,
        ttlMs: 600_000,
      }, (reservation) => [outbox.record("bench-hold", reservation.id)]);
      return true;
    } catch (error) {
      if ((error as { type?: string }).type === "sold-out") return false;
      throw error;
    }
  });
  const left = (await stockRemaining(kv, sale)).get("hot")!;
  return { ...result, oversold: result.sold + left - shape.stock };
}

/** Reservations over HTTP against the app in this process, with this process's CPU per try. */
export async function overHttp(profile: Profile): Promise<Run> {
  const database = await profile.open();
  const t0 = await createTestApp({
    env: { RATE_LIMIT_API: "1000000000/1h", ADMIN_EMAILS: "" },
    realClock: true,
    database,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, t0.app.fetch);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const [admin] = await members(t0.deps, 1, { role: "admin" });
  const buyers = await members(t0.deps, BUYERS);
  const post = async (path: string, token: string, body: unknown) => {
    const response = await fetch(`${base}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
  const product = await post("/api/products", admin.token, {
    name: "Hot item",
    priceCents: 100,
    currency: "USD",
  });
  const sale = await post("/api/sales", admin.token, {
    items: [{ productId: product.body.id, stock: STOCK, priceCents: 100 }],
    startsAt: new Date(Date.now() - 1000).toISOString(),
    endsAt: new Date(Date.now() + 3_600_000).toISOString(),
    perUserLimit: ATTEMPTS,
  });
  // The buyers run in a process of their own (bench/sales-load.ts), as chat's clients do.
  const { refused, ...result } = await withCpu(
    () =>
      inOwnProcess<HttpBuyers, Load & { refused: number[] }>(
        new URL("./sales-load.ts", import.meta.url),
        {
          url: `${base}/api/sales/${sale.body.id}/reservations`,
          productId: product.body.id,
          tokens: buyers.map((buyer) => buyer.token),
          attempts: ATTEMPTS,
        },
      ),
    () => BUYERS * ATTEMPTS,
  );
  if (refused.length > 0) throw new Error(`unexpected answers: ${refused.slice(0, 5)}`);
  const left = await fetch(`${base}/api/sales/${sale.body.id}`).then((r) => r.json());
  await t0.deps.hub.close();
  await server.shutdown();
  await t0[Symbol.asyncDispose](); // its jobs stop before the database closes
  await database.close();
  return { ...result, oversold: result.sold + left.items[0].stockRemaining - STOCK };
}

async function postgres(url: string): Promise<Run> {
  const server = new URL(url);
  const proxy = serveWsProxy({ allow: [`${server.hostname}:${server.port || 5432}`] });
  useWsProxy(proxy.address);
  const pool = new Pool({ connectionString: url, max: 20 });
  pool.on("error", () => {});
  const table = `bench_stock_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
  try {
    await pool.query(`create table ${table} (id int primary key, stock int not null)`);
    await pool.query(`insert into ${table} values (1, $1)`, [STOCK]);
    const result = await load(async () => {
      const answer = await pool.query(
        `update ${table} set stock = stock - 1 where id = 1 and stock > 0`,
      );
      return answer.rowCount === 1;
    });
    const { rows } = await pool.query(`select stock from ${table} where id = 1`);
    return { ...result, oversold: result.sold + rows[0].stock - STOCK };
  } finally {
    await pool.query(`drop table if exists ${table}`);
    await pool.end();
    await proxy.close();
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

function line(label: string, runs: Run[], base: number) {
  const best = runs.toSorted((a, b) => a.perSecond - b.perSecond)[runs.length >> 1];
  const rate = median(runs.map((run) => run.perSecond));
  const oversold = runs.reduce((sum, run) => sum + run.oversold, 0);
  console.log(
    `  ${label.padEnd(50)} ${rate.toFixed(0).padStart(6)} /s  ${(rate / base).toFixed(2)}×  ` +
      `p50 ${percentile(best.latencies, 0.5).toFixed(1).padStart(6)} ms  p99 ${
        percentile(best.latencies, 0.99).toFixed(1).padStart(6)
      } ms  oversold ${oversold}${
        best.cpuUs === undefined ? "" : `  ${best.cpuUs.toFixed(0)} µs CPU/try`
      }`,
  );
  return rate;
}

export async function benchSales(profile: Profile = PGLITE) {
  console.log(
    `\nFlash sale on ${profile.name}: ${BUYERS} concurrent buyers × ${ATTEMPTS} tries on one hot item of ${STOCK} ` +
      `units (median of 3 runs; latency of successful reservations)`,
  );
  const kv = await Deno.openKv(":memory:"); // the KV-alone floors: one connection, as measured
  const floors: Run[] = [];
  const racing: Run[] = [];
  const sharded = new Map<number, Run[]>([[1, []], [4, []], [8, []]]);
  for (let run = 0; run < 3; run++) {
    floors.push(await withCpu(() => floor(kv, run, true), () => BUYERS * ATTEMPTS));
    racing.push(await floor(kv, run, false));
    for (const [shards, runs] of sharded) {
      runs.push(await withCpu(() => inKv(kv, shards, run), () => BUYERS * ATTEMPTS));
    }
  }
  const far = holdingKv(kv, () => new Promise((resolve) => setTimeout(resolve, EDGE_HOLD_MS)));
  const edge = [await inKv(far, 1, 0, EDGE)];
  kv.close();
  const base = median(floors.map((run) => run.perSecond));
  line("raw KV get → check → set on one key, queued (floor)", floors, base);
  line("raw KV get → check → set on one key, all racing", racing, base);
  for (const [shards, runs] of sharded) {
    line(`reserveStock in KV, ${shards} shard${shards > 1 ? "s" : ""}`, runs, base);
  }
  line(
    `reserveStock in KV, 1 shard, strong calls held ${EDGE_HOLD_MS} ms (${EDGE_BUYERS} buyers)`,
    edge,
    base,
  );
  line("POST /api/sales/:id/reservations (HTTP)", [await overHttp(profile)], base);
  const url = Deno.env.get("BENCH_DATABASE_URL");
  if (url && profile === PGLITE) {
    line("Postgres UPDATE … WHERE stock > 0 (Neon driver)", [await postgres(url)], base);
  }
}

if (import.meta.main) await benchSales();
