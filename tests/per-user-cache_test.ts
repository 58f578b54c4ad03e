import assert from "node:assert/strict";
import { openKv } from "../kv/store.ts";
import { kvCache } from "../providers/cache.ts";
import { PerUserCache } from "../providers/per-user-cache.ts";

Deno.test("[per-user-cache] through() computes once, and never serves what a write outdated", async (t) => {
  const kv = await openKv(":memory:");
  try {
    const cache = new PerUserCache<string>(kvCache(kv), "view", 60);
    let computed = 0;

    await t.step("50 concurrent misses of one entry share one computation", async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => release = resolve);
      const reads = Array.from({ length: 50 }, () =>
        cache.through("ada", "page", async () => {
          computed++;
          await gate;
          return "v1";
        }));
      release();
      const answers = await Promise.all(reads);
      assert.equal(computed, 1);
      assert.ok(answers.every((answer) => answer.value === "v1" && !answer.cached));
      assert.deepEqual(await cache.through("ada", "page", () => Promise.resolve("x")), {
        value: "v1",
        cached: true,
      });
    });

    await t.step("a value computed before an invalidation is not served after it", async () => {
      await cache.invalidate("bob");
      let release!: () => void;
      const gate = new Promise<void>((resolve) => release = resolve);
      // A slow reader starts from the old data…
      const slow = cache.through("bob", "page", async () => {
        await gate;
        return "stale";
      });
      // …a write lands and invalidates while it runs; then the slow reader stores its result.
      await cache.invalidate("bob");
      release();
      assert.equal((await slow).value, "stale");
      const next = await cache.through("bob", "page", () => Promise.resolve("fresh"));
      assert.deepEqual(next, { value: "fresh", cached: false });
      const again = await cache.through("bob", "page", () => Promise.resolve("unused"));
      assert.deepEqual(again, { value: "fresh", cached: true });
    });

    await t.step("invalidating one member leaves the others cached", async () => {
      await cache.invalidate("ada");
      assert.equal((await cache.through("bob", "page", () => Promise.resolve("x"))).cached, true);
      assert.equal((await cache.through("ada", "page", () => Promise.resolve("v2"))).value, "v2");
    });
  } finally {
    kv.close();
  }
});
