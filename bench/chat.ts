// Chat over real WebSockets: 1,000 sockets, 500 connected pairs. End-to-end latency (send → the
// peer's socket receives `incoming-message`) at an offered 1,000 msgs/s after a warm-up second at
// that rate (whose own p99 is shown apart), and messages per second at saturation (each socket
// keeps one message in flight; each is acked only once stored), next to a raw Deno.serve
// WebSocket echo measured the same way in the same run (the floor) and the seed design's Socket.IO
// server (bench/socketio-seed.ts) on the same database, driven by the same load client. Each row
// also gives the server process's CPU per message, which the machine's noise moves least.
//
// The app is one in-process isolate on the profile's history database; bench/scale-out.ts runs it
// as `deno task start` does, on one isolate and on two.
import { parseConfig } from "../config.ts";
import type { DatabaseHandle } from "../db/client.ts";
import { PGLITE, type Profile } from "./profiles.ts";
import { members } from "../tests/helpers/members.ts";
import type { LoadConfig, LoadResult } from "./chat-load.ts";
import { inOwnProcess, withCpu } from "./load-process.ts";
import { startSocketIoSeed } from "./socketio-seed.ts";

/**
 * Runs the load clients in their own process (bench/chat-load.ts), so the app's isolate (or the
 * echo server, the floor) has this process's core to itself and the clients the other.
 */
export function runLoadProcess(config: LoadConfig): Promise<LoadResult> {
  return inOwnProcess(new URL("./chat-load.ts", import.meta.url), config);
}

const PAIRS = Number(Deno.env.get("BENCH_CHAT_PAIRS") ?? 500);
const SECONDS = Number(Deno.env.get("BENCH_SECONDS") ?? 3);
const WARMUP_SECONDS = Number(Deno.env.get("BENCH_WARMUP_SECONDS") ?? 1);
const OFFERED_PER_SECOND = 1000;

export function percentile(sorted: number[], p: number) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : NaN;
}

/** `run`'s result with the server process's CPU per message sent. */
const cpuPerMessage = <T extends { sent: number }>(run: () => Promise<T>) =>
  withCpu(run, (result) => result.sent);

function row(
  name: string,
  result: { offered: number[]; warmup: number[]; rate: number; sent: number; cpuUs?: number },
  floor?: number,
) {
  const [p50, p95, p99] = [0.5, 0.95, 0.99].map((p) => percentile(result.offered, p).toFixed(1));
  const warm = percentile(result.warmup, 0.99).toFixed(0);
  const ratio = floor ? `${(result.rate / floor).toFixed(2)}×` : "1.00× (floor)";
  console.log(
    `  ${name.padEnd(44)} ${p50.padStart(6)} ${p95.padStart(6)} ${p99.padStart(6)} ${
      warm.padStart(7)
    }   ${result.rate.toFixed(0).padStart(6)} msgs/s  ${ratio.padEnd(13)} ${
      result.cpuUs === undefined ? "" : `${result.cpuUs.toFixed(0).padStart(4)} µs CPU/msg`
    }`,
  );
}

async function benchEcho(count: number) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => socket.send(event.data);
    return response;
  });
  const result = await runLoadProcess({
    kind: "echo",
    urls: Array.from({ length: count }, () => `ws://127.0.0.1:${server.addr.port}/`),
    seconds: SECONDS,
    warmupSeconds: WARMUP_SECONDS,
    offeredPerSecond: OFFERED_PER_SECOND,
  });
  await server.shutdown();
  return result;
}

/** Connected pairs (2k, 2k+1) with tokens, made through the app's own HTTP API. */
export async function pairUp(
  baseUrl: string,
  database: DatabaseHandle,
  jwtSecret: string,
  pairs = PAIRS,
) {
  const config = parseConfig({ APP_ENV: "test", JWT_SECRET: jwtSecret });
  const people = await members({ config, database, clock: { now: Date.now } }, pairs * 2);
  const call = async (method: string, path: string, token: string, body: unknown) => {
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    }
    return await response.json();
  };
  for (let start = 0; start < pairs; start += 25) {
    await Promise.all(Array.from({ length: Math.min(25, pairs - start) }, async (_, offset) => {
      const [a, b] = [people[2 * (start + offset)], people[2 * (start + offset) + 1]];
      const request = await call("POST", "/api/connections", a.token, { toUserId: b.user.id });
      await call("PATCH", `/api/connections/${request.id}`, b.token, { status: "accepted" });
    }));
  }
  return people;
}

async function benchApp(
  baseUrl: string,
  database: DatabaseHandle,
  jwtSecret: string,
  settle: () => Promise<void> = () => Promise.resolve(),
) {
  const people = await pairUp(baseUrl, database, jwtSecret);
  // The set-up's own history (1,000 connection decisions) is written before the measuring starts.
  await settle();
  const wsUrl = baseUrl.replace(/^http/, "ws") + "/ws";
  // CPU until every message is stored: the history writer's work counts.
  const result = await cpuPerMessage(async () => {
    const load = await runLoadProcess({
      kind: "chat",
      urls: people.map((who) => `${wsUrl}?token=${who.token}`),
      users: people.map((who) => who.user.id),
      peers: people.map((_, i) => people[i ^ 1].user.id),
      seconds: SECONDS,
      warmupSeconds: WARMUP_SECONDS,
      offeredPerSecond: OFFERED_PER_SECOND,
    });
    // The load has stopped: how long until every sent message is in Postgres (the writer's lag)?
    const stopped = performance.now();
    let stored = 0;
    while (performance.now() - stopped < 10_000) {
      const counted = await database.db.execute("select count(*)::int as n from messages");
      stored = (counted as unknown as { rows: { n: number }[] }).rows[0].n;
      if (stored >= load.sent) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return { ...load, stored, storedAfterMs: Math.round(performance.now() - stopped) };
  });
  return { ...result, tempId: result.sent, people };
}

/**
 * The app in this process on `profile`'s database, its chat measured once at saturation (with this
 * process's CPU per message); `close` stops serving, and `dispose` ends the app and its database.
 */
export async function chatInProcess(profile: Profile) {
  const jwtSecret = crypto.randomUUID() + crypto.randomUUID();
  const { createTestApp } = await import("../tests/helpers/app.ts");
  const database = await profile.open();
  const t0 = await createTestApp({
    env: { JWT_SECRET: jwtSecret, RATE_LIMIT_API: "1000000000/1h" },
    database,
    realClock: true,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, t0.app.fetch);
  const result = await benchApp(
    `http://127.0.0.1:${server.addr.port}`,
    t0.deps.database,
    jwtSecret,
    () => t0.deps.outbox.flush(),
  );
  return {
    result,
    database,
    t0,
    close: () => server.shutdown(),
    async dispose() {
      await t0[Symbol.asyncDispose](); // its jobs stop before the database closes
      await database.close();
    },
  };
}

export async function benchChat(profile: Profile = PGLITE) {
  const count = PAIRS * 2;
  console.log(
    `\nChat over WebSockets: ${count} sockets, ${PAIRS} pairs; latency (ms) at an offered ${OFFERED_PER_SECOND} msgs/s, then saturation`,
  );
  console.log(
    `  ${"".padEnd(44)} ${"p50".padStart(6)} ${"p95".padStart(6)} ${"p99".padStart(6)} ${
      "warm-up".padStart(7)
    }   (warm-up: the p99 of the first ${WARMUP_SECONDS} s)`,
  );
  const floor = await cpuPerMessage(() => benchEcho(count));
  row("raw Deno.serve WebSocket echo (floor)", floor);

  const { result, t0, close, dispose } = await chatInProcess(profile);
  row(`chat, one isolate, ${profile.name}`, result, floor.rate);
  console.log(
    `  ${result.stored} of ${result.tempId} sent messages stored ${result.storedAfterMs} ms ` +
      `after the load stopped; ${result.acked} acknowledged`,
  );
  const failures = t0.logs.filter((line) => String(line.msg).startsWith("outbox"));
  if (failures.length > 0) {
    console.log(`  history writer: ${failures.length} failures, first: ${failures[0].error}`);
  }
  await close();

  // The seed design's Socket.IO server, on the same database, with the same members and tokens.
  const seed = await startSocketIoSeed(t0.deps.database, t0.deps.config.JWT_SECRET);
  const { people } = result;
  const baseline = await cpuPerMessage(() =>
    runLoadProcess({
      kind: "socketio",
      urls: people.map(() => seed.url),
      tokens: people.map((who) => who.token),
      users: people.map((who) => who.user.id),
      peers: people.map((_, i) => people[i ^ 1].user.id),
      seconds: SECONDS,
      warmupSeconds: WARMUP_SECONDS,
      offeredPerSecond: OFFERED_PER_SECOND,
    })
  );
  row(`Socket.IO 4 seed server, ${profile.name}`, baseline, floor.rate);
  console.log(
    `  ${await seed.stored()} of ${baseline.sent} sent messages stored; ${baseline.acked} ` +
      `acknowledged (it checks no permission, block, duplicate or budget)`,
  );
  await seed.close();
  await dispose();
}

if (import.meta.main) await benchChat();
