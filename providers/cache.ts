// The cache port: recomputable values and rate-limit windows. Upstash Redis in production, KV locally.
import { Redis } from "@upstash/redis";
import type { Rate } from "../config.ts";
import { TooManyRequests } from "../errors.ts";
import { cacheKey } from "../kv/keys.ts";

export interface Counter {
  count: number;
  /** Seconds until the window closes and the count starts again from zero. */
  resetInSeconds: number;
}

export interface Cache {
  readonly kind: "kv" | "upstash";
  get<T>(key: string): Promise<T | null>;
  /** Several values in one round trip (null where missing), in the order of `keys`. */
  getMany(keys: string[]): Promise<unknown[]>;
  set(key: string, value: unknown, ttlSeconds: number): Promise<void>;
  delete(...keys: string[]): Promise<void>;
  /** Adds `by` to a counter whose window of `windowSeconds` opens at its first increment. */
  increment(key: string, windowSeconds: number, by?: number): Promise<Counter>;
  ping(): Promise<void>;
}

/**
 * Spends one write of `who`'s budget (RATE_LIMIT_API): HTTP writes and socket writes draw on the
 * same one. 429 once it is spent; otherwise what is left of it.
 *
 * The decision costs no round trip: each isolate counts the writes it accepted since its last
 * settlement with the shared counter (in the cache: Upstash Redis, or KV locally) and decides on
 * the shared count it last saw plus its own unsettled ones. Settling adds them to the shared
 * counter behind the request, one increment at a time per member, so one isolate is exact. Across
 * isolates a member can exceed the limit by what the other isolates accepted in the time one
 * settlement takes (a cache round trip); a cache that cannot be reached leaves the writes
 * unsettled until the next one.
 */
export function spendWrite(cache: Cache, rate: Rate, who: string, now: number) {
  let budgets = spent.get(cache);
  if (!budgets) spent.set(cache, budgets = new Map());
  let budget = budgets.get(who);
  if (budget && budget.resetAt <= now) {
    // A new window: a settlement still running finishes on the old budget, unread.
    budgets.delete(who);
    budget = undefined;
  }
  if (!budget) {
    budget = { shared: 0, unsettled: 0, settling: 0, resetAt: now + rate.windowSeconds * 1000 };
    budgets.set(who, budget);
    if (budgets.size > REMEMBERED_BUDGETS) budgets.delete(budgets.keys().next().value!);
  }
  const count = budget.shared + budget.settling + budget.unsettled + 1;
  if (count > rate.limit) {
    throw new TooManyRequests(
      `More than ${rate.limit} writes in ${rate.windowSeconds} s. Slow down.`,
      Math.max(1, Math.ceil((budget.resetAt - now) / 1000)),
    );
  }
  budget.unsettled++;
  if (budget.settling === 0) void settle(cache, rate, who, budget, now);
  return { limit: rate.limit, remaining: Math.max(0, rate.limit - count) };
}

/** Members whose budget an isolate remembers at most; the oldest are forgotten first. */
const REMEMBERED_BUDGETS = 100_000;

interface Budget {
  /** The shared counter as last seen (this isolate's settled writes included). */
  shared: number;
  /** Accepted here, not yet sent to the shared counter. */
  unsettled: number;
  /** Sent, not yet answered. */
  settling: number;
  /** When the window ends (ms). */
  resetAt: number;
}

const spent = new WeakMap<Cache, Map<string, Budget>>();

/** Adds this isolate's unsettled writes to the shared counter, until none are left. */
async function settle(cache: Cache, rate: Rate, who: string, budget: Budget, now: number) {
  while (budget.unsettled > 0) {
    const by = budget.unsettled;
    budget.unsettled = 0;
    budget.settling = by;
    try {
      const counter = await cache.increment(`api:${who}`, rate.windowSeconds, by);
      budget.shared = counter.count;
      budget.resetAt = now + counter.resetInSeconds * 1000;
    } catch {
      // Unreachable, or closed at shutdown: they stay counted here and go with the next write.
      budget.unsettled += by;
      return;
    } finally {
      budget.settling = 0;
    }
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
      const kvKey = cacheKey(key);
      for (;;) {
        const entry = await kv.get<Stored<number>>(kvKey);
        const at = now();
        const live = entry.value && entry.value.expiresAt > at ? entry.value : null;
        const next = {
          value: (live?.value ?? 0) + by,
          expiresAt: live?.expiresAt ?? at + windowSeconds * 1000,
        };
        const result = await kv.atomic().check(entry)
          .set(kvKey, next, { expireIn: next.expiresAt - at })
          .commit();
        if (result.ok) {
          return { count: next.value, resetInSeconds: Math.ceil((next.expiresAt - at) / 1000) };
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
      const [count, , ttl] = await redis.multi()
        .incrby(key, by)
        .expire(key, windowSeconds, "NX")
        .ttl(key)
        .exec<[number, number, number]>();
      return { count, resetInSeconds: ttl > 0 ? ttl : windowSeconds };
    },
    async ping() {
      await redis.ping();
    },
  };
}

export function openCache(
  config: { UPSTASH_REDIS_REST_URL?: string; UPSTASH_REDIS_REST_TOKEN?: string },
  kv: Deno.Kv,
): Cache {
  return config.UPSTASH_REDIS_REST_URL && config.UPSTASH_REDIS_REST_TOKEN
    ? upstashCache({ url: config.UPSTASH_REDIS_REST_URL, token: config.UPSTASH_REDIS_REST_TOKEN })
    : kvCache(kv);
}
