// The cache port: recomputable values and rate-limit windows. Upstash Redis in production, KV locally.
import { Redis } from "@upstash/redis";
import type { Rate } from "../config.ts";
import { TooManyRequests } from "../errors.ts";
import { cacheKey, KV_CHECK_LIMIT } from "../kv/keys.ts";
import { ofApp, Remembered } from "../kv/remembered.ts";
import { getAll } from "../kv/store.ts";
import { activeSpan, inSpan } from "../telemetry.ts";

export interface Counter {
  count: number;
  /** Seconds until the window closes and the count starts again from zero. */
  resetInSeconds: number;
}

export interface Increment {
  key: string;
  windowSeconds: number;
  by: number;
}

/** Counters one `incrementMany` settles at most (KV_CHECK_LIMIT, one check each). */
export const SETTLE_BATCH = KV_CHECK_LIMIT;

export interface Cache {
  readonly kind: "kv" | "upstash";
  get<T>(key: string): Promise<T | null>;
  /** Several values in one round trip (null where missing), in the order of `keys`. */
  getMany(keys: string[]): Promise<unknown[]>;
  set(key: string, value: unknown, ttlSeconds: number): Promise<void>;
  delete(...keys: string[]): Promise<void>;
  /** Adds `by` to a counter whose window of `windowSeconds` opens at its first increment. */
  increment(key: string, windowSeconds: number, by?: number): Promise<Counter>;
  /**
   * Several increments in one round trip, answered in order: at most SETTLE_BATCH distinct
   * counters (KV checks each in one commit, within its limit of checks per commit).
   */
  incrementMany(increments: Increment[]): Promise<Counter[]>;
  ping(): Promise<void>;
}

/**
 * Spends one write of `who`'s budget (RATE_LIMIT_API): HTTP writes and socket writes draw on the
 * same one. 429 once it is spent; otherwise what is left of it.
 *
 * The decision costs no round trip: each isolate counts the writes it accepted since its last
 * settlement with the shared counter (in the cache: Upstash Redis, or KV locally) and decides on
 * the shared count it last saw plus its own unsettled ones. Settling adds them to the shared
 * counters behind the request: one settlement at a time per isolate, carrying every member's
 * unsettled writes (up to SETTLE_BATCH members) in one round trip, so a busy isolate settles
 * thousands of members' writes in a few commits instead of one each. One isolate is exact. Across
 * isolates a member can exceed the limit by what the other isolates accepted in the time one
 * settlement takes (a cache round trip); a cache that cannot be reached leaves the writes
 * unsettled until the next one.
 */
export function spendWrite(cache: Cache, rate: Rate, who: string, now: number) {
  const settler = ofApp(settlers, cache, () => ({
    budgets: new Remembered<string, Budget>(REMEMBERED_BUDGETS),
    due: new Set<Budget>(),
    busy: false,
  }));
  const { budgets } = settler;
  let budget = budgets.get(who);
  if (budget && budget.resetAt <= now) {
    // A new window: a settlement still running finishes on the old budget, unread.
    budgets.delete(who);
    settler.due.delete(budget);
    budget = undefined;
  }
  if (!budget) {
    budget = {
      who,
      shared: 0,
      unsettled: 0,
      settling: 0,
      resetAt: now + rate.windowSeconds * 1000,
      writtenAt: now,
    };
    budgets.set(who, budget);
  }
  const count = budget.shared + budget.settling + budget.unsettled + 1;
  if (count > rate.limit) {
    throw new TooManyRequests(
      `More than ${rate.limit} writes in ${rate.windowSeconds} s. Slow down.`,
      Math.max(1, Math.ceil((budget.resetAt - now) / 1000)),
    );
  }
  budget.unsettled++;
  budget.writtenAt = now;
  settler.due.add(budget);
  if (!settler.busy) void settle(cache, rate, settler);
  return { limit: rate.limit, remaining: Math.max(0, rate.limit - count) };
}

/** Members whose budget an isolate remembers at most; the oldest are forgotten first. */
const REMEMBERED_BUDGETS = 100_000;

interface Budget {
  who: string;
  /** The shared counter as last seen (this isolate's settled writes included). */
  shared: number;
  /** Accepted here, not yet sent to the shared counter. */
  unsettled: number;
  /** Sent, not yet answered. */
  settling: number;
  /** When the window ends (ms). */
  resetAt: number;
  /** The clock at this member's latest write: a settlement's answer is timed from it. */
  writtenAt: number;
}

/** One isolate's budgets for one cache, and the members with writes to settle. */
interface Settler {
  budgets: Map<string, Budget>;
  due: Set<Budget>;
  /** A settlement is under way: writes accepted meanwhile go with the next one. */
  busy: boolean;
}

const settlers = new WeakMap<Cache, Settler>();

/** Adds the unsettled writes to the shared counters, a batch at a time, until none are left. */
async function settle(cache: Cache, rate: Rate, settler: Settler) {
  settler.busy = true;
  try {
    while (settler.due.size > 0) {
      const batch = [...settler.due].slice(0, SETTLE_BATCH);
      for (const budget of batch) {
        settler.due.delete(budget);
        budget.settling = budget.unsettled;
        budget.unsettled = 0;
      }
      try {
        const counters = await cache.incrementMany(batch.map((budget) => ({
          key: `api:${budget.who}`,
          windowSeconds: rate.windowSeconds,
          by: budget.settling,
        })));
        batch.forEach((budget, i) => {
          budget.shared = counters[i].count;
          // Timed from the member's latest write, not from when this loop began: under steady
          // load it never ends, and a window timed from its start would seem over at once.
          budget.resetAt = budget.writtenAt + counters[i].resetInSeconds * 1000;
        });
      } catch {
        // Unreachable, or closed at shutdown: they stay counted here and go with the next write.
        for (const budget of batch) budget.unsettled += budget.settling;
        return;
      } finally {
        for (const budget of batch) budget.settling = 0;
      }
    }
  } finally {
    settler.busy = false;
  }
}

interface Stored<T> {
  value: T;
  expiresAt: number;
}

/** KV-backed cache: expiry is checked on read (KV's own `expireIn` only cleans up later). */
export function kvCache(kv: Deno.Kv, now: () => number = Date.now): Cache {
  return {
    kind: "kv",
    async get<T>(key: string) {
      // What a cache holds may be a moment stale: the nearest replica answers.
      const entry = await kv.get<Stored<T>>(cacheKey(key), { consistency: "eventual" });
      return entry.value && entry.value.expiresAt > now() ? entry.value.value : null;
    },
    async getMany(keys) {
      const at = now();
      const entries = await kv.getMany<Stored<unknown>[]>(keys.map(cacheKey), {
        consistency: "eventual",
      });
      return entries.map((entry) =>
        entry.value && entry.value.expiresAt > at ? entry.value.value : null
      );
    },
    async set(key, value, ttlSeconds) {
      const expireIn = ttlSeconds * 1000;
      await kv.set(cacheKey(key), { value, expiresAt: now() + expireIn }, { expireIn });
    },
    async delete(...keys) {
      const atomic = kv.atomic();
      for (const key of keys) atomic.delete(cacheKey(key));
      await atomic.commit();
    },
    async increment(key, windowSeconds, by = 1) {
      return (await this.incrementMany([{ key, windowSeconds, by }]))[0];
    },
    async incrementMany(increments) {
      const keys = [...new Set(increments.map((increment) => increment.key))];
      if (keys.length > SETTLE_BATCH) throw new Error(`at most ${SETTLE_BATCH} counters at once`);
      for (;;) {
        // One strong read of every counter, one commit that checks and sets them all.
        const entries = await getAll<Stored<number>[]>(kv, keys.map(cacheKey));
        const at = now();
        const next = new Map(keys.map((key, i) => {
          const live = entries[i].value && entries[i].value.expiresAt > at
            ? entries[i].value
            : null;
          return [key, { value: live?.value ?? 0, expiresAt: live?.expiresAt }];
        }));
        // Every increment of a key adds to it; each is answered with the count it brought it to.
        const counts = increments.map(({ key, windowSeconds, by }) => {
          const counter = next.get(key)!;
          counter.value += by;
          counter.expiresAt ??= at + windowSeconds * 1000;
          return counter.value;
        });
        const atomic = kv.atomic().check(...entries);
        for (const [key, counter] of next) {
          const stored = { value: counter.value, expiresAt: counter.expiresAt! };
          atomic.set(cacheKey(key), stored, { expireIn: stored.expiresAt - at });
        }
        if ((await atomic.commit()).ok) {
          return increments.map(({ key }, i) => ({
            count: counts[i],
            resetInSeconds: Math.ceil((next.get(key)!.expiresAt! - at) / 1000),
          }));
        }
      }
    },
    async ping() {
      await kv.get(cacheKey("ping"));
    },
  };
}

/**
 * Upstash Redis over its REST API. Values are JSON-encoded here: the client's own automatic
 * deserialisation would turn a cached string such as "1234" into a number.
 */
export function upstashCache(options: { url: string; token: string }): Cache {
  const redis = new Redis({
    url: options.url,
    token: options.token,
    retry: { retries: 2 },
    automaticDeserialization: false,
  });
  return {
    kind: "upstash",
    async get<T>(key: string) {
      const text = await redis.get<string>(key);
      return text === null ? null : JSON.parse(text) as T;
    },
    async getMany(keys) {
      if (keys.length === 0) return [];
      const texts = await redis.mget<(string | null)[]>(...keys);
      return texts.map((text) => text === null ? null : JSON.parse(text));
    },
    async set(key, value, ttlSeconds) {
      await redis.set(key, JSON.stringify(value), { ex: ttlSeconds });
    },
    async delete(...keys) {
      if (keys.length > 0) await redis.del(...keys);
    },
    async increment(key, windowSeconds, by = 1) {
      return (await this.incrementMany([{ key, windowSeconds, by }]))[0];
    },
    async incrementMany(increments) {
      if (increments.length === 0) return [];
      // One transaction, one round trip: per counter its new count and time to live.
      const transaction = redis.multi();
      for (const { key, windowSeconds, by } of increments) {
        transaction.incrby(key, by).expire(key, windowSeconds, "NX").ttl(key);
      }
      const answers = await transaction.exec<number[]>();
      return increments.map(({ windowSeconds }, i) => {
        const [count, , ttl] = answers.slice(3 * i, 3 * i + 3);
        return { count, resetInSeconds: ttl > 0 ? ttl : windowSeconds };
      });
    },
    async ping() {
      await redis.ping();
    },
  };
}

export function openCache(
  config: { UPSTASH_REDIS_REST_URL?: string; UPSTASH_REDIS_REST_TOKEN?: string },
  kv: Deno.Kv,
  now: () => number = Date.now,
): Cache {
  return traced(
    config.UPSTASH_REDIS_REST_URL && config.UPSTASH_REDIS_REST_TOKEN
      ? upstashCache({ url: config.UPSTASH_REDIS_REST_URL, token: config.UPSTASH_REDIS_REST_TOKEN })
      : kvCache(kv, now),
  );
}

/**
 * `cache` with each call a `cache.<call>` span: which cache, how many keys, and for reads how many
 * were found (never the keys: they name members).
 */
export function traced(cache: Cache): Cache {
  const span = <T>(call: string, keys: number, work: () => Promise<T>) =>
    inSpan(`cache.${call}`, { "convene.cache.kind": cache.kind, "convene.cache.keys": keys }, work);
  return {
    kind: cache.kind,
    get: <T>(key: string) =>
      span("get", 1, async () => {
        const value = await cache.get<T>(key);
        activeSpan()?.setAttribute("convene.cache.hits", value === null ? 0 : 1);
        return value;
      }),
    getMany: (keys) =>
      span("getMany", keys.length, async () => {
        const values = await cache.getMany(keys);
        activeSpan()?.setAttribute(
          "convene.cache.hits",
          values.filter((value) => value !== null).length,
        );
        return values;
      }),
    set: (key, value, ttlSeconds) => span("set", 1, () => cache.set(key, value, ttlSeconds)),
    delete: (...keys) => span("delete", keys.length, () => cache.delete(...keys)),
    increment: (key, windowSeconds, by) =>
      span("increment", 1, () => cache.increment(key, windowSeconds, by)),
    incrementMany: (increments) =>
      span("incrementMany", increments.length, () => cache.incrementMany(increments)),
    ping: () => cache.ping(),
  };
}
