// Feed latency: a member following 100 of 10,000 members with 200,000 posts, cache cold and warm,
// at concurrency 1 and 50, next to raw Deno.serve answering the same page as fixed JSON (the floor).
// Run alone with `deno run -A bench/feed.ts`, or as part of `deno task bench`.
import { sql } from "drizzle-orm";
import { createApp } from "../app.ts";
import type { Deps } from "../deps.ts";
import { Pool } from "@neondatabase/serverless";
import { type DatabaseHandle, openNeon, openPglite, useWsProxy } from "../db/client.ts";
import { serveWsProxy } from "../db/ws-proxy.ts";
import { openKv } from "../kv/store.ts";
import { BENCH_CONFIG, benchDeps } from "./deps.ts";
import type { Profile } from "./profiles.ts";
import { issueToken, signingKey } from "../kv/auth/tokens.ts";
import { type Cache, kvCache } from "../providers/cache.ts";

const USERS = Number(Deno.env.get("BENCH_FEED_USERS") ?? 10_000);
const POSTS = Number(Deno.env.get("BENCH_FEED_POSTS") ?? 200_000);
const FOLLOWING = 100;
/** Distinct readers, for the cold case where concurrent requests cannot share a computation. */
const READERS = 50;
const REQUESTS = Number(Deno.env.get("BENCH_FEED_REQUESTS") ?? 1000);

/**
 * Every feed read misses, so each request computes its page; concurrent misses of one reader's
 * page still share one computation (as they do in production when a cold page is hot).
 */
function coldFeeds(cache: Cache): Cache {
  return {
    ...cache,
    getMany: async (keys) => {
      const values = await cache.getMany(keys);
      return values.map((value, i) => keys[i].startsWith("feed:") ? null : value);
    },
  };
}

function percentile(sorted: number[], p: number) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

type Headers = Record<string, string>;

/** Latencies (ms) of `total` requests issued from `concurrency` loops; loop i sends headers[i]. */
async function latencies(url: string, headers: Headers | Headers[], concurrency: number) {
  const total = Math.max(REQUESTS, concurrency * 10);
  const times: number[] = [];
  let issued = 0;
  await Promise.all(Array.from({ length: concurrency }, async (_, loop) => {
    const sent = Array.isArray(headers) ? headers[loop % headers.length] : headers;
    while (issued++ < total) {
      const start = performance.now();
      const response = await fetch(url, { headers: sent });
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`${url} → ${response.status}`);
      times.push(performance.now() - start);
    }
  }));
  return times.sort((a, b) => a - b);
}

async function seed(deps: Deps) {
  const db = deps.database.db;
  const started = performance.now();
  await db.execute(sql`
    insert into users (id, email, name, password_hash, created_at, updated_at, last_active_at)
    select 'u' || lpad(i::text, 6, '0'), 'u' || i || '@bench.test', 'Member ' || i, 'x',
      now(), now(), now()
    from generate_series(1, ${USERS}::int) as i`);
  await db.execute(sql`
    insert into posts (id, author_id, text, created_at, updated_at)
    select 'p' || lpad(i::text, 8, '0'), 'u' || lpad((1 + i % ${USERS}::int)::text, 6, '0'),
      'Post number ' || i || ' about something a developer would share.',
      now() - make_interval(secs => i), now() - make_interval(secs => i)
    from generate_series(1, ${POSTS}::int) as i`);
  // Readers u000001…u000050 each follow 100 members spread over the whole range.
  await db.execute(sql`
    insert into follows (follower_id, followee_id, created_at)
    select 'u' || lpad(r::text, 6, '0'),
      'u' || lpad((100 + r + i * (${USERS}::int / ${FOLLOWING}::int - 1))::text, 6, '0'), now()
    from generate_series(1, ${READERS}::int) as r, generate_series(0, ${FOLLOWING - 1}::int) as i`);
  await db.execute(sql`analyze`);
  return performance.now() - started;
}

/** `label` names the database; `open` gives an empty, migrated one. */
async function benchFeedOn(label: string, open: () => Promise<DatabaseHandle>) {
  const kv = await openKv(":memory:");
  const database = await open();
  const warmDeps = benchDeps(kv, database);
  const coldDeps = benchDeps(kv, database, coldFeeds(kvCache(kv)));
  const seconds = await seed(warmDeps);
  // What the "history maintenance" cron does within ten minutes of start (PGlite has no autovacuum).
  await database.maintain();
  const key = await signingKey(BENCH_CONFIG.JWT_SECRET);
  const readers = await Promise.all(Array.from({ length: READERS }, async (_, i) => {
    const userId = `u${String(i + 1).padStart(6, "0")}`;
    const { token } = await issueToken(key, { userId, generation: 0 }, Date.now(), 3600);
    return { authorization: `Bearer ${token}` };
  }));
  const [headers] = readers;
  const listen = { hostname: "127.0.0.1", port: 0, onListen: () => {} };
  const warm = Deno.serve(listen, createApp(warmDeps).fetch);
  const cold = Deno.serve(listen, createApp(coldDeps).fetch);
  const page = await (await fetch(`http://127.0.0.1:${warm.addr.port}/api/feed`, { headers }))
    .text();
  const items = JSON.parse(page).items.length;
  const floor = Deno.serve(
    listen,
    () => new Response(page, { headers: { "content-type": "application/json" } }),
  );

  console.log(
    `\nGET /api/feed on ${label} (page of ${items}, ${page.length} bytes): ${USERS} members, ${POSTS} posts, ` +
      `reader follows ${FOLLOWING}; seeded in ${(seconds / 1000).toFixed(1)} s; ` +
      `≥ ${REQUESTS} requests per row; latency in ms`,
  );
  console.log(
    `  ${"".padEnd(46)} ${"p50".padStart(7)} ${"p95".padStart(7)} ${
      "p99".padStart(7)
    }   p95 vs floor`,
  );
  for (const concurrency of [1, 50]) {
    const rows: [string, number[]][] = [
      [
        `raw Deno.serve, fixed page (floor), c=${concurrency}`,
        await latencies(`http://127.0.0.1:${floor.addr.port}/`, {}, concurrency),
      ],
      [
        `feed, cache warm, c=${concurrency}`,
        await latencies(`http://127.0.0.1:${warm.addr.port}/api/feed`, headers, concurrency),
      ],
      [
        `feed, cache cold, one reader, c=${concurrency}`,
        await latencies(`http://127.0.0.1:${cold.addr.port}/api/feed`, headers, concurrency),
      ],
    ];
    if (concurrency > 1) {
      rows.push([
        `feed, cache cold, ${concurrency} readers, c=${concurrency}`,
        await latencies(
          `http://127.0.0.1:${cold.addr.port}/api/feed`,
          readers.slice(0, concurrency),
          concurrency,
        ),
      ]);
    }
    const floorP95 = percentile(rows[0][1], 0.95);
    for (const [name, times] of rows) {
      const [p50, p95, p99] = [0.5, 0.95, 0.99].map((p) => percentile(times, p));
      console.log(
        `  ${name.padEnd(46)} ${p50.toFixed(2).padStart(7)} ${p95.toFixed(2).padStart(7)} ${
          p99.toFixed(2).padStart(7)
        }   ${(p95 / floorP95).toFixed(1)}×`,
      );
    }
  }
  await Promise.all([warm.shutdown(), cold.shutdown(), floor.shutdown()]);
  // A hub's heartbeat and channel keep the process alive: the benchmark must end when it is done.
  await Promise.all([warmDeps.hub.close(), coldDeps.hub.close()]);
  warmDeps.sessions.close();
  coldDeps.sessions.close();
  kv.close();
  await database.close();
}

/**
 * PGlite (the embedded default), and a server Postgres through Neon's driver when
 * BENCH_DATABASE_URL names one (the production path, with a pool that runs queries in parallel).
 */
export async function benchFeed(profile?: Profile) {
  if (profile) return await benchFeedOn(profile.name, () => profile.open());
  await benchFeedOn("PGlite", () => openPglite());
  const serverUrl = Deno.env.get("BENCH_DATABASE_URL");
  if (!serverUrl) {
    console.log(
      "\n(set BENCH_DATABASE_URL to a Postgres server to bench the feed through Neon's driver too)",
    );
    return;
  }
  const server = new URL(serverUrl);
  const proxy = serveWsProxy({ allow: [`${server.hostname}:${server.port || 5432}`] });
  useWsProxy(proxy.address);
  const admin = new Pool({ connectionString: serverUrl });
  admin.on("error", () => {});
  const name = `convene_bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  await admin.query(`create database ${name}`);
  try {
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    // Through this repository's WebSocket bridge, not Neon's proxy: cold figures include its
    // transport stalls (see README), so read them as an upper bound.
    await benchFeedOn("Postgres via Neon's driver and the local bridge", () => openNeon(url.href));
  } finally {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.end();
    await proxy.close();
  }
}

if (import.meta.main) await benchFeed();
