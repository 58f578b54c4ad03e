// The Deps a benchmark's app runs on: in-memory KV and queue, the wall clock, no logging, and
// media in a temporary directory (a benchmark never writes into the developer's DATA_DIR).
import { SessionMemory } from "../kv/auth/sessions.ts";
import type { Deps } from "../deps.ts";
import { parseConfig } from "../config.ts";
import type { DatabaseHandle } from "../db/client.ts";
import { Outbox } from "../kv/outbox.ts";
import { type Cache, kvCache } from "../providers/cache.ts";
import { devOutboxMailer } from "../providers/mail.ts";
import { openPayments } from "../providers/payments.ts";
import { localStorage } from "../providers/storage.ts";
import { Hub } from "../realtime/hub.ts";
import { JobRegistry } from "../workflows/jobs.ts";
import { kvQueueJobs } from "../workflows/kv-queue.ts";

export const BENCH_CONFIG = parseConfig({ APP_ENV: "test", RATE_LIMIT_API: "1000000000/1h" });

/** Deps over `kv` and `database`; each call has its own registry and outbox (one app each). */
export function benchDeps(
  kv: Deno.Kv,
  database: DatabaseHandle,
  cache: Cache = kvCache(kv),
): Deps {
  const clock = { now: Date.now };
  const sessions = new SessionMemory();
  return {
    config: BENCH_CONFIG,
    kv,
    database,
    cache,
    jobs: kvQueueJobs(kv),
    registry: new JobRegistry(),
    outbox: new Outbox(kv, clock, () => {}),
    mailer: devOutboxMailer(kv, Date.now),
    payments: openPayments(BENCH_CONFIG),
    storage: localStorage(Deno.makeTempDirSync({ prefix: "convene-bench-media-" })),
    sessions,
    hub: new Hub({ kv, sessions, clock, log: () => {} }),
    clock,
    log: () => {},
  };
}
