// Edge latency is the number of strong KV round trips a request waits for one after another
// (docs/performance.md). Each hot operation is counted here against its budget: every strong KV
// call is held and the calls are let go a round at a time (tests/helpers/kv-trips.ts), so this is
// a count, not a timing. A failure names each round's calls.
import assert from "node:assert/strict";
import { openKv } from "../kv/store.ts";
import { hotOperations } from "./helpers/hot-operations.ts";
import { TripGate } from "./helpers/kv-trips.ts";
import { servedTestApp } from "./helpers/sockets.ts";

Deno.test("[round trips] every hot operation waits for at most its budget of strong KV round trips", async (t) => {
  const gate = new TripGate();
  using store = await openKv(":memory:");
  await using t0 = await servedTestApp({ kv: gate.wrap(store) });
  await using operations = await hotOperations(t0);
  for (const operation of operations) {
    await t.step(`${operation.name}: at most ${operation.budget}`, async () => {
      const run = await operation.prepare();
      const { trips, rounds } = await gate.measure(run);
      assert.ok(
        trips <= operation.budget,
        `${trips} round trips (budget ${operation.budget}):\n  ${
          rounds.map((round) => round.join(" | ")).join("\n  ")
        }`,
      );
    });
  }
});
