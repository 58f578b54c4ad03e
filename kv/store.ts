// The KV connection every layer is handed: main.ts, the tests and the benchmarks open it here.
//
// On the embedded SQLite store each isolate of `deno serve --parallel` holds its own connection to
// one file. A commit with versionstamp checks reads them first and asks for the write lock after;
// when another connection has written since that read, SQLite refuses the commit at once with
// SQLITE_BUSY ("database is locked"). Waiting (the busy timeout) cannot help a stale snapshot, and
// Deno passes the error on: on two isolates 7–13 % of requests answered 500. Reads and `list` never
// need the write lock, and `set`, `enqueue` and commits without checks wait for it: 40 loops of them
// beside 6,000 contended checked commits on two connections never failed, while 1,128 of the
// commits did (tests/store_test.ts keeps the commit case).
//
// So every atomic commit is retried on that one error, with jittered backoff, for up to
// LOCKED_BUDGET_MS. A refused commit wrote nothing (SQLite rolls the transaction back), so a retry
// cannot apply it twice, and its checks are evaluated afresh. A commit still refused after the
// budget is a StoreBusy: 503 with Retry-After, never a 500.
import { Busy } from "../errors.ts";
import { backoff } from "./backoff.ts";
import { commitAnnounced } from "./events.ts";
import { GET_MANY_LIMIT } from "./keys.ts";
import { instruments } from "../telemetry.ts";

/** How long one commit keeps retrying "database is locked" before answering StoreBusy. */
export const LOCKED_BUDGET_MS = 3_000;
/** The backoff between retries grows to at most this (ms). */
const LOCKED_CAP_MS = 20;

/** 503 `busy`: the KV store stayed locked by other isolates for the whole retry budget. */
export class StoreBusy extends Busy {
  constructor() {
    super("The store");
  }
}

/** Opens KV at `path` (Deploy's managed KV when undefined) with locked commits retried. */
export async function openKv(path?: string): Promise<Deno.Kv> {
  return retryingLocked(await Deno.openKv(path));
}

/** `kv`, whose atomic commits (and only those) retry "database is locked". */
export function retryingLocked(kv: Deno.Kv): Deno.Kv {
  const atomic = () => {
    const operation = kv.atomic();
    const commit = operation.commit.bind(operation);
    operation.commit = () => commitAnnounced(operation, () => whileLocked(commit));
    return operation;
  };
  // Deno.Kv's methods read private fields: they must run on the real connection. Bound once each.
  const bound = new Map<PropertyKey, unknown>([["atomic", atomic]]);
  return new Proxy(kv, {
    get(target, property) {
      if (bound.has(property)) return bound.get(property);
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      const method = value.bind(target);
      bound.set(property, method);
      return method;
    },
  });
}

export function isLocked(error: unknown): boolean {
  return error instanceof Error && error.message === "database is locked";
}

/** Runs `attempt` again while it fails with "database is locked", within LOCKED_BUDGET_MS. */
export async function whileLocked<T>(
  attempt: () => Promise<T>,
  budgetMs = LOCKED_BUDGET_MS,
): Promise<T> {
  const deadline = performance.now() + budgetMs;
  for (let tries = 0;; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (!isLocked(error)) throw error;
      if (performance.now() >= deadline) throw new StoreBusy();
      instruments.lockedRetries.add(1);
    }
    await backoff(tries, LOCKED_CAP_MS);
  }
}

/**
 * `kv.getMany` for any number of keys: Deno KV reads at most GET_MANY_LIMIT in one call, so more
 * go in batches sent at once (still one round trip), answered in the order of `keys`.
 */
export async function getAll<T extends readonly unknown[]>(
  kv: Deno.Kv,
  keys: Deno.KvKey[],
  options?: { consistency?: Deno.KvConsistencyLevel },
): Promise<{ [K in keyof T]: Deno.KvEntryMaybe<T[K]> }> {
  type Entries = { [K in keyof T]: Deno.KvEntryMaybe<T[K]> };
  if (keys.length <= GET_MANY_LIMIT) return await kv.getMany(keys, options) as Entries;
  const batches = [];
  for (let start = 0; start < keys.length; start += GET_MANY_LIMIT) {
    batches.push(kv.getMany(keys.slice(start, start + GET_MANY_LIMIT), options));
  }
  return (await Promise.all(batches)).flat() as unknown as Entries;
}
