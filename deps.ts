// What every layer is handed: the app's dependencies, the clock and the logger. Everything may
// import this module; it imports only the types of the adapters it lists, and none of those
// import it back (tests/architecture_test.ts fails on any import cycle).
import type { Config } from "./config.ts";
import type { DatabaseHandle } from "./db/client.ts";
import type { Outbox } from "./kv/outbox.ts";
import type { Cache } from "./providers/cache.ts";
import type { Mailer } from "./providers/mail.ts";
import type { PaymentProvider } from "./providers/payments.ts";
import type { Storage } from "./providers/storage.ts";
import type { Hub } from "./realtime/hub.ts";
import type { SessionMemory } from "./kv/auth/sessions.ts";
import type { JobRegistry, Jobs } from "./workflows/jobs.ts";
import type { DeliveryVerifier } from "./workflows/qstash.ts";

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

export type Logger = (record: Record<string, unknown>) => void;

export interface Deps {
  config: Config;
  kv: Deno.Kv;
  database: DatabaseHandle;
  cache: Cache;
  jobs: Jobs;
  /** Job handlers, filled by createApp; both job adapters deliver to it. */
  registry: JobRegistry;
  /** Side effects written into KV commits, applied after them or by the sweep. */
  outbox: Outbox;
  mailer: Mailer;
  /** The payment provider orders are paid through (sandbox or Paystack). */
  payments: PaymentProvider;
  /** Where uploaded files' bytes live (local directory or S3-compatible bucket). */
  storage: Storage;
  /** What this isolate knows of sessions: revocations reach it over BroadcastChannel. */
  sessions: SessionMemory;
  /** This isolate's WebSocket hub: sockets, event-log fan-out, ephemeral signals. */
  hub: Hub;
  /** Checks QStash signatures; absent when QStash is not configured (deliveries get 401). */
  verifyDelivery?: DeliveryVerifier;
  clock: Clock;
  log: Logger;
}
