// Edge latency, measured: every strong KV call (reads that must reach the primary region, and
// commits) is held D ms, as a Deno Deploy region far from KV's primary would see it; eventual
// reads pass at once, as a nearby replica serves them. Each hot operation (the same list the
// round-trips test budgets, tests/helpers/hot-operations.ts) runs one at a time, at D = 0 and at
// D = BENCH_TRIP_DELAY_MS (50), and prints its KV calls, its sequential round trips
// ((p50 at D − p50 at 0) / D) and both p50s.
import { openKv } from "../kv/store.ts";
import { hotOperations } from "../tests/helpers/hot-operations.ts";
import { holdingKv } from "../tests/helpers/kv-trips.ts";
import { servedTestApp } from "../tests/helpers/sockets.ts";

const DELAY_MS = Number(Deno.env.get("BENCH_TRIP_DELAY_MS") ?? 50);
const SAMPLES = Number(Deno.env.get("BENCH_TRIP_SAMPLES") ?? 7);

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};

export async function benchRoundTrips() {
  let delay = 0;
  let calls = 0;
  const hold = () => {
    calls++;
    if (delay > 0) return new Promise<void>((resolve) => setTimeout(resolve, delay));
  };
  using store = await openKv(":memory:");
  await using t0 = await servedTestApp({ kv: holdingKv(store, hold), realClock: true });
  await using operations = await hotOperations(t0);

  /** One run's time and strong KV calls, with every strong call held `held` ms. */
  async function sample(prepare: () => Promise<() => Promise<unknown>>, held: number) {
    const run = await prepare();
    await new Promise((resolve) => setTimeout(resolve, 20)); // let what prepare left behind end
    calls = 0;
    delay = held;
    const started = performance.now();
    try {
      await run();
      return { ms: performance.now() - started, calls };
    } finally {
      delay = 0;
    }
  }

  console.log(
    `\nRound trips: every strong KV call held ${DELAY_MS} ms (eventual reads not), one request ` +
      `at a time, p50 of ${SAMPLES}`,
  );
  console.log(
    `  ${"operation".padEnd(44)} ${"budget".padStart(6)} ${"KV calls".padStart(9)} ` +
      `${"trips".padStart(6)} ${"p50 at 0".padStart(10)} ${`p50 at ${DELAY_MS}`.padStart(10)}`,
  );
  for (const operation of operations) {
    const at0 = [];
    const atDelay = [];
    for (let i = 0; i < SAMPLES; i++) {
      at0.push(await sample(operation.prepare, 0));
      atDelay.push(await sample(operation.prepare, DELAY_MS));
    }
    const p0 = median(at0.map((s) => s.ms));
    const pd = median(atDelay.map((s) => s.ms));
    const trips = (pd - p0) / DELAY_MS;
    const over = trips > operation.budget + 0.5 ? "  over budget" : "";
    console.log(
      `  ${operation.name.padEnd(44)} ${String(operation.budget).padStart(6)} ` +
        `${median(at0.map((s) => s.calls)).toFixed(0).padStart(9)} ${
          trips.toFixed(1).padStart(6)
        } ` +
        `${p0.toFixed(1).padStart(7)} ms ${pd.toFixed(1).padStart(7)} ms${over}`,
    );
  }
}

if (import.meta.main) await benchRoundTrips();
