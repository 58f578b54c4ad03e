// The KV connection's retry of "database is locked" (kv/store.ts); tests/isolates_test.ts shows it
// at work on two real connections to one file. And getMany's limit of ten keys, and getAll past it.
import assert from "node:assert/strict";
import { Remembered } from "../kv/remembered.ts";
import { GET_MANY_LIMIT } from "../kv/keys.ts";
import { getAll, isLocked, openKv, StoreBusy, whileLocked } from "../kv/store.ts";
import { TripGate } from "./helpers/kv-trips.ts";

const locked = () => new TypeError("database is locked");

Deno.test("[store] a commit refused as locked is tried again until it goes through", async () => {
  let calls = 0;
  const result = await whileLocked(() => {
    calls++;
    return calls < 4 ? Promise.reject(locked()) : Promise.resolve("committed");
  });
  assert.deepEqual([result, calls], ["committed", 4]);
});

Deno.test("[store] other errors are not retried", async () => {
  let calls = 0;
  await assert.rejects(
    whileLocked(() => {
      calls++;
      return Promise.reject(new TypeError("Value too large"));
    }),
    /Value too large/,
  );
  assert.equal(calls, 1);
  assert.equal(isLocked(new Error("database is locked (not quite)")), false);
});

Deno.test("[store] still locked after the budget: 503 with Retry-After, never a 500", async () => {
  const started = performance.now();
  const error = await whileLocked(() => Promise.reject(locked()), 50).catch((error) => error);
  assert.ok(error instanceof StoreBusy);
  assert.equal(error.status, 503);
  assert.equal(error.headers["Retry-After"], "1");
  assert.ok(performance.now() - started >= 50, "it waited out its budget");
});

Deno.test("[store] two connections to one file: 600 contended checked increments, each applied once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "convene-store-" });
  const path = `${dir}/kv.sqlite3`;
  const connections = [await openKv(path), await openKv(path)];
  try {
    // Every increment reads a counter and commits only if nobody moved it since, as decisions do.
    const increments = await Promise.all(Array.from({ length: 600 }, async (_, i) => {
      const kv = connections[i % 2];
      const key = ["counter", i % 10];
      for (;;) {
        const current = await kv.get<number>(key);
        const done = await kv.atomic().check(current).set(key, (current.value ?? 0) + 1)
          .sum(["applied"], 1n).commit();
        if (done.ok) return 1;
      }
    }));
    assert.equal(increments.length, 600);
    const counters = await connections[0].getMany<number[]>(
      Array.from({ length: 10 }, (_, i) => ["counter", i]),
    );
    assert.deepEqual(counters.map((entry) => entry.value), Array(10).fill(60));
    assert.equal((await connections[1].get<Deno.KvU64>(["applied"])).value?.value, 600n);
  } finally {
    for (const kv of connections) kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[store] getMany stops at GET_MANY_LIMIT keys; getAll reads any number in one round trip, in order", async () => {
  const gate = new TripGate();
  using store = await openKv(":memory:");
  const kv = gate.wrap(store);
  const keys = Array.from({ length: 23 }, (_, i) => ["many", i]);
  for (const [i, key] of keys.entries()) if (i % 3 !== 0) await store.set(key, i);
  await assert.rejects(() => store.getMany(keys.slice(0, GET_MANY_LIMIT + 1)));
  const { value: entries, trips } = await gate.measure(() => getAll<number[]>(kv, keys));
  assert.equal(trips, 1);
  assert.deepEqual(
    entries.map((entry) => entry.value),
    keys.map((_, i) => i % 3 === 0 ? null : i),
  );
});

Deno.test("[store] what an isolate remembers is bounded: the entry set longest ago goes first", () => {
  const remembered = new Remembered<string, number>(3);
  for (const [key, value] of [["a", 1], ["b", 2], ["c", 3]] as const) remembered.set(key, value);
  remembered.set("a", 10); // set again: now the newest
  remembered.set("d", 4);
  assert.deepEqual([...remembered], [["c", 3], ["a", 10], ["d", 4]]);
});
