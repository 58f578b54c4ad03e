// Load clients of the scale-out benchmark (bench/scale-out.ts), run in their own process (config as
// JSON on stdin, result as JSON on stdout) so the server's isolates have the cores to themselves.
//
// `reserve`: `concurrency` loops POST a reservation each, buyer after buyer, for `seconds`.
// `read`: the same loops GET the sale's public page (what every buyer's page polls).
// `match`: every member opens a socket (and is known to the hub: a ping's pong came back), then all
// POST /api/match/queue at once; latency is from a member's join to its socket's `found-match`.

import { type Http1Answer, Http1Connection } from "./http1.ts";

export interface ScaleLoadConfig {
  kind: "reserve" | "read" | "match";
  baseUrl: string;
  tokens: string[];
  seconds?: number;
  concurrency?: number;
  saleId?: string;
  productId?: string;
  intent?: string;
}

export interface ScaleLoadResult {
  /** Reservations held, or members who got `found-match`. */
  done: number;
  perSecond: number;
  /** Milliseconds, sorted: per reservation, or join → found-match per member. */
  latencies: number[];
  /** Anything else, by status (and problem code): any entry is an error. */
  errors: Record<string, number>;
}

/** `concurrency` keep-alive connections, each sending one request after another for `seconds`. */
async function loop(
  config: ScaleLoadConfig,
  expected: number,
  request: (connection: Http1Connection, round: number, loop: number) => Promise<Http1Answer>,
): Promise<ScaleLoadResult> {
  const errors: Record<string, number> = {};
  const latencies: number[] = [];
  const concurrency = config.concurrency ?? 64;
  const connections = await Promise.all(
    Array.from({ length: concurrency }, () => Http1Connection.open(config.baseUrl)),
  );
  const started = performance.now();
  const until = started + (config.seconds ?? 3) * 1000;
  await Promise.all(connections.map(async (connection, index) => {
    for (let round = 0; performance.now() < until; round++) {
      const at = performance.now();
      const answer = await request(connection, round, index);
      if (answer.status === expected) latencies.push(performance.now() - at);
      else {
        const code = answer.body.startsWith("{") ? JSON.parse(answer.body).code : "";
        const key = `${answer.status} ${code ?? ""}`.trim();
        errors[key] = (errors[key] ?? 0) + 1;
      }
    }
    connection.close();
  }));
  const seconds = (performance.now() - started) / 1000;
  return {
    done: latencies.length,
    perSecond: latencies.length / seconds,
    latencies: latencies.sort((a, b) => a - b),
    errors,
  };
}

function reserve(config: ScaleLoadConfig): Promise<ScaleLoadResult> {
  const path = `/api/sales/${config.saleId}/reservations`;
  const body = JSON.stringify({ productId: config.productId, quantity: 1 });
  const concurrency = config.concurrency ?? 64;
  return loop(config, 201, (connection, round, index) => {
    const token = config.tokens[(index + round * concurrency) % config.tokens.length];
    return connection.request("POST", path, {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
    }, body);
  });
}

function read(config: ScaleLoadConfig): Promise<ScaleLoadResult> {
  return loop(
    config,
    200,
    (connection) => connection.request("GET", `/api/sales/${config.saleId}`),
  );
}

async function match(config: ScaleLoadConfig): Promise<ScaleLoadResult> {
  const errors: Record<string, number> = {};
  const note = (key: string) => errors[key] = (errors[key] ?? 0) + 1;
  const joinedAt: number[] = [];
  const foundAt: number[] = [];
  const sockets: WebSocket[] = [];
  const wsBase = config.baseUrl.replace(/^http/, "ws");
  for (let start = 0; start < config.tokens.length; start += 100) {
    await Promise.all(
      config.tokens.slice(start, start + 100).map((token, offset) => {
        const index = start + offset;
        const socket = new WebSocket(`${wsBase}/ws?token=${token}`);
        sockets[index] = socket;
        return new Promise<void>((resolve, reject) => {
          socket.onmessage = (event) => {
            const frame = JSON.parse(event.data);
            if (frame.type === "pong") resolve();
            else if (frame.type === "found-match") foundAt[index] ??= performance.now();
            else if (frame.type === "error") note(`frame ${frame.data.code}`);
          };
          socket.onopen = () => socket.send(JSON.stringify({ type: "ping", data: {} }));
          socket.onerror = () => reject(new Error(`socket ${index} was refused`));
        });
      }),
    );
  }
  const started = performance.now();
  await Promise.all(config.tokens.map(async (token, index) => {
    joinedAt[index] = performance.now();
    const response = await fetch(`${config.baseUrl}/api/match/queue`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ intent: config.intent ?? "bench" }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.status !== 202) note(`${response.status} ${body.code ?? ""}`.trim());
  }));
  const everyone = () => foundAt.filter((at) => at !== undefined).length === config.tokens.length;
  for (const deadline = performance.now() + 30_000; !everyone() && performance.now() < deadline;) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const latencies = foundAt.flatMap((at, i) => at === undefined ? [] : [at - joinedAt[i]]);
  const missing = config.tokens.length - latencies.length;
  if (missing > 0) errors["no found-match within 30 s"] = missing;
  const last = Math.max(...foundAt.filter((at) => at !== undefined));
  for (const socket of sockets) socket.close();
  return {
    done: latencies.length,
    perSecond: latencies.length / 2 / ((last - started) / 1000),
    latencies: latencies.sort((a, b) => a - b),
    errors,
  };
}

if (import.meta.main) {
  const config: ScaleLoadConfig = JSON.parse(await new Response(Deno.stdin.readable).text());
  const run = { reserve, read, match }[config.kind];
  console.log(JSON.stringify(await run(config)));
}
