import assert from "node:assert/strict";
import { openKv } from "../kv/store.ts";
import { type Cache, kvCache, SETTLE_BATCH, upstashCache } from "../providers/cache.ts";
import { testClock } from "./helpers/app.ts";
import { integrationTest } from "./helpers/integration.ts";
import { startUpstashBridge } from "./helpers/upstash-bridge.ts";

/** The behaviour every cache adapter must have. */
async function cacheContract(t: Deno.TestContext, cache: Cache, prefix: string) {
  const key = (name: string) => `${prefix}:${name}`;

  await t.step("set then get returns the value, with its JSON shape", async () => {
    await cache.set(key("page"), { items: [1, 2], nextCursor: null }, 60);
    assert.deepEqual(await cache.get(key("page")), { items: [1, 2], nextCursor: null });
    assert.equal(await cache.get(key("missing")), null);
  });

  await t.step("strings that look like base64 or numbers come back unchanged", async () => {
    for (const value of ["test", "1234", "PONG", "héllo wörld"]) {
      await cache.set(key("s"), value, 60);
      assert.equal(await cache.get(key("s")), value);
    }
  });

  await t.step("getMany answers every key in order, null where missing", async () => {
    await cache.set(key("m1"), { page: 1 }, 60);
    await cache.set(key("m2"), "1234", 60);
    assert.deepEqual(await cache.getMany([key("m1"), key("none"), key("m2")]), [
      { page: 1 },
      null,
      "1234",
    ]);
    assert.deepEqual(await cache.getMany([]), []);
  });

  await t.step("delete removes keys", async () => {
    await cache.set(key("a"), 1, 60);
    await cache.set(key("b"), 2, 60);
    await cache.delete(key("a"), key("b"));
    assert.equal(await cache.get(key("a")), null);
    assert.equal(await cache.get(key("b")), null);
  });

  await t.step("200 concurrent increments count exactly 200 in one window", async () => {
    const counters = await Promise.all(
      Array.from({ length: 200 }, () => cache.increment(key("hits"), 60)),
    );
    const counts = counters.map((counter) => counter.count).sort((a, b) => a - b);
    assert.deepEqual(counts, Array.from({ length: 200 }, (_, i) => i + 1));
    assert.ok(
      counters.every((counter) => counter.resetInSeconds > 0 && counter.resetInSeconds <= 60),
    );
    assert.equal((await cache.increment(key("hits"), 60, -1)).count, 199);
  });

  await t.step(
    "incrementMany: a full batch of counters at once, racing single increments, each counted once",
    async () => {
      const names = Array.from({ length: SETTLE_BATCH }, (_, i) => key(`many${i}`));
      // Forty batches over all the counters and forty single increments of the first one, at once.
      const [batches, singles] = await Promise.all([
        Promise.all(
          Array.from(
            { length: 40 },
            () =>
              cache.incrementMany(names.map((name) => ({ key: name, windowSeconds: 60, by: 2 }))),
          ),
        ),
        Promise.all(Array.from({ length: 40 }, () => cache.increment(names[0], 60))),
      ]);
      const last = await cache.incrementMany(
        names.map((name) => ({ key: name, windowSeconds: 60, by: 0 })),
      );
      assert.equal(last[0].count, 40 * 2 + 40, "the raced counter saw every increment");
      assert.ok(last.slice(1).every((counter) => counter.count === 80));
      // Within one batch each counter's answers are distinct: none was applied twice.
      const firstCounts = [
        ...batches.map((batch) => batch[0].count),
        ...singles.map((c) => c.count),
      ];
      assert.equal(new Set(firstCounts).size, 80);
      // The same key twice in one call adds both, each answered with the count it reached.
      const twice = await cache.incrementMany([
        { key: key("twice"), windowSeconds: 60, by: 1 },
        { key: key("twice"), windowSeconds: 60, by: 3 },
      ]);
      assert.deepEqual(twice.map((counter) => counter.count), [1, 4]);
    },
  );

  await t.step("ping answers", async () => {
    await cache.ping();
  });
}

Deno.test("[cache] KV adapter keeps the cache contract and expires by the clock", async (t) => {
  const kv = await openKv(":memory:");
  const clock = testClock();
  const cache = kvCache(kv, clock.now);
  await cacheContract(t, cache, "kv");

  await t.step("values and counter windows expire", async () => {
    await cache.set("short", "lived", 10);
    await cache.increment("window", 10);
    clock.advance(10_001);
    assert.equal(await cache.get("short"), null);
    assert.equal((await cache.increment("window", 10)).count, 1, "a new window starts");
  });
  kv.close();
});

integrationTest(
  "TEST_REDIS_URL",
  "[cache] Upstash adapter keeps the cache contract against a real Redis",
  async (redisUrl, t) => {
    const bridge = await startUpstashBridge(redisUrl);
    const prefix = `test:${crypto.randomUUID()}`;
    try {
      const cache = upstashCache({ url: bridge.url, token: bridge.token });
      await cacheContract(t, cache, prefix);
      await t.step("TTLs are set in Redis", async () => {
        await cache.set(`${prefix}:ttl`, "x", 30);
        const ttl = Number(await bridge.redis.sendCommand(["TTL", `${prefix}:ttl`]));
        assert.ok(ttl > 0 && ttl <= 30, `ttl ${ttl}`);
        const window = Number(await bridge.redis.sendCommand(["TTL", `${prefix}:hits`]));
        assert.ok(window > 0 && window <= 60, "the increment window has an expiry");
      });
      await t.step("a wrong token is refused", async () => {
        const wrong = upstashCache({ url: bridge.url, token: "wrong" });
        await assert.rejects(() => wrong.get(`${prefix}:page`));
      });
    } finally {
      const keys = await bridge.redis.sendCommand(["KEYS", `${prefix}:*`]) as string[];
      if (keys.length) await bridge.redis.sendCommand(["DEL", ...keys]);
      await bridge.close();
    }
  },
);
