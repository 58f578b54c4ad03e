// `deno task bench`: throughput of Convene's hot paths as ratios against raw baselines measured in
// the same run (raw Deno.serve for HTTP, raw KV commits for KV). Every loop is bounded in time.
import { createApp } from "../app.ts";
import { openPglite } from "../db/client.ts";
import { isTokenLive } from "../kv/auth/sessions.ts";
import { openKv } from "../kv/store.ts";
import { benchChat } from "./chat.ts";
import { benchDeps } from "./deps.ts";
import { benchFeed } from "./feed.ts";
import { benchJobs } from "./jobs.ts";
import { benchSales } from "./sales.ts";
import { benchMatchmaking } from "./matchmaking.ts";
import { benchesWanted, benchProfiles, reachablePostgres } from "./profiles.ts";
import { benchRoundTrips } from "./round-trips.ts";
import { benchScaleOut } from "./scale-out.ts";
import { benchTelemetry } from "./telemetry.ts";

const SECONDS = Number(Deno.env.get("BENCH_SECONDS") ?? 3);
const CONCURRENCY = Number(Deno.env.get("BENCH_CONCURRENCY") ?? 32);

/** Runs `op` from `concurrency` loops for `seconds`; returns completed operations per second. */
async function throughput(op: () => Promise<unknown>, concurrency: number, seconds = SECONDS) {
  const until = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      await op();
      done++;
    }
  }));
  return done / seconds;
}

function report(title: string, baseline: [string, number], rows: [string, number][]) {
  console.log(`\n${title}`);
  console.log(
    `  ${baseline[0].padEnd(48)} ${baseline[1].toFixed(0).padStart(8)} /s   1.00× (baseline)`,
  );
  for (const [name, rate] of rows) {
    const ratio = rate / baseline[1];
    console.log(`  ${name.padEnd(48)} ${rate.toFixed(0).padStart(8)} /s   ${ratio.toFixed(2)}×`);
  }
}

const kv = await openKv(":memory:");
const database = await openPglite();
const deps = benchDeps(kv, database);
const app = createApp(deps);

const raw = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen: () => {} },
  () => new Response("ok"),
);
const served = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
const rawUrl = `http://127.0.0.1:${raw.addr.port}`;
const appUrl = `http://127.0.0.1:${served.addr.port}`;

const signup = await fetch(`${appUrl}/api/auth/signup`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ name: "Bench", email: "bench@example.com", password: "benchmarking" }),
});
const { token } = await signup.json();
const get = (url: string, headers: Record<string, string> = {}) => async () => {
  const response = await fetch(url, { headers });
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`${url} → ${response.status}`);
};

console.log(
  `Convene benchmarks: ${SECONDS} s per case, ${CONCURRENCY} concurrent HTTP loops, ` +
    `client and server in one process on ${navigator.hardwareConcurrency} cores`,
);

const httpBaseline = await throughput(get(rawUrl), CONCURRENCY);
report("HTTP over loopback", ["raw Deno.serve, text response", httpBaseline], [
  ["GET /healthz (full middleware stack)", await throughput(get(`${appUrl}/healthz`), CONCURRENCY)],
  [
    "GET /api/auth/me (JWT + KV revocation + Postgres)",
    await throughput(
      get(`${appUrl}/api/auth/me`, { authorization: `Bearer ${token}` }),
      CONCURRENCY,
    ),
  ],
]);

let n = 0;
const kvBaseline = await throughput(() => kv.set(["bench", n++ % 1000], n), 8);
const cache = deps.cache;
const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
report("Deno KV (in memory)", ["raw kv.set commit", kvBaseline], [
  [
    "cache.increment (read + checked commit), 1000 keys",
    await throughput(() => cache.increment(`bench:${n++ % 1000}`, 60), 8),
  ],
  [
    "cache.increment, one hot key (contention)",
    await throughput(() => cache.increment("bench:hot", 60), 8),
  ],
  [
    "isTokenLive (remembered: no KV call)",
    await throughput(() => isTokenLive(kv, deps.sessions, claims, Date.now()), 8),
  ],
]);

await benchJobs(report);

// Edge latency: each hot operation's sequential strong KV round trips (every strong call held).
if (benchesWanted().has("trips")) await benchRoundTrips();

// The hot paths on each history database: PGlite, Postgres through Neon's driver, and the same
// 40 ms away (a Deploy region far from Neon's). Floors are measured again in each section.
const profiles = await benchProfiles();
for (const profile of profiles) {
  console.log(`\n=== History database: ${profile.name} ===`);
  await benchChat(profile);
  await benchMatchmaking(profile);
  await benchSales(profile);
  await benchFeed(profile);
}
for (const profile of profiles) await profile.close();

// One isolate against two, as `deno task start` runs them (needs a server Postgres).
if (benchesWanted().has("telemetry")) await benchTelemetry();

const postgres = benchesWanted().has("scale") ? await reachablePostgres() : null;
if (postgres) await benchScaleOut(postgres);

await raw.shutdown();
await served.shutdown();
await deps.hub.close();
deps.sessions.close();
kv.close();
await database.close();
