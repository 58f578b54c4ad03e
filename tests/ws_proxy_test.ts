// `deno task db:proxy --delay-ms N`: the bridge Neon's driver uses to reach a plain Postgres, with a
// delay each way that models a Deno Deploy region far from the database (the benchmarks' edge
// profile). What its user notices: every query still answers correctly, each round trip costs at
// least twice the delay, and a bad flag is refused with a clear line.
import assert from "node:assert/strict";
import { Pool } from "@neondatabase/serverless";
import { useWsProxy } from "../db/client.ts";
import { integrationTest } from "./helpers/integration.ts";
import { runProxy, spawnProxy } from "./helpers/proxy.ts";

/** Milliseconds for one query on a warm connection through `address`, and its answer. */
async function timedQuery(serverUrl: string, address: string) {
  useWsProxy(address);
  const pool = new Pool({ connectionString: serverUrl, max: 1 });
  pool.on("error", () => {});
  try {
    await pool.query("select 1"); // connect first: the handshake is several round trips
    const started = performance.now();
    const { rows } = await pool.query(
      "select sum(n)::int as total from generate_series(1, 10000) as n",
    );
    return { ms: performance.now() - started, total: rows[0].total };
  } finally {
    await pool.end();
  }
}

integrationTest(
  "TEST_DATABASE_URL",
  "[db:proxy] --delay-ms holds every query a round trip longer, and answers stay right",
  async (serverUrl) => {
    const server = new URL(serverUrl);
    const target = `${server.hostname}:${server.port || 5432}`;
    const delayMs = 30;
    const delayed = await spawnProxy(["0", target, "--delay-ms", String(delayMs)]);
    let slow;
    try {
      assert.match(delayed.line, /\(30 ms each way\)/);
      slow = await timedQuery(serverUrl, delayed.address);
    } finally {
      await delayed.close();
    }
    assert.equal(slow.total, 50_005_000, "the answer arrived whole and in order");
    assert.ok(slow.ms >= 2 * delayMs, `a query took ${slow.ms.toFixed(1)} ms`);

    const refused = await runProxy(["0", target, "--delay-ms", "soon"]);
    assert.equal(refused.code, 2);
    assert.match(new TextDecoder().decode(refused.stderr), /--delay-ms: "soon" is not a number/);
  },
);
