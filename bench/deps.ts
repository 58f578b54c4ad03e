// The Deps a benchmark's app runs on: in-memory KV and queue, the wall clock, no logging, and
// media in a temporary directory (a benchmark never writes into the developer's DATA_DIR).
import { wireDeps } from "../app.ts";
import type { Deps } from "../deps.ts";
import { parseConfig } from "../config.ts";
import type { DatabaseHandle } from "../db/client.ts";
import type { Cache } from "../providers/cache.ts";
import { localStorage } from "../providers/storage.ts";

export const BENCH_CONFIG = parseConfig({ APP_ENV: "test", RATE_LIMIT_API: "1000000000/1h" });

/** Deps over `kv` and `database`; each call has its own registry and outbox (one app each). */
export function benchDeps(kv: Deno.Kv, database: DatabaseHandle, cache?: Cache): Deps {
  return wireDeps({
    config: BENCH_CONFIG,
    kv,
    database,
    clock: { now: Date.now },
    log: () => {},
    cache,
    storage: localStorage(Deno.makeTempDirSync({ prefix: "convene-bench-media-" })),
  });
}
