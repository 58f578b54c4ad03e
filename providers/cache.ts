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
 */
export async function spendWrite(cache: Cache, rate: Rate, who: string) {
  const counter = await cache.increment(`api:${who}`, rate.windowSeconds);
  if (counter.count > rate.limit) {
    throw new TooManyRequests(
      `More than ${rate.limit} writes in ${rate.windowSeconds} s. Slow down.`,
      counter.resetInSeconds,
    );
  }
  return { limit: rate.limit, remaining: Math.max(0, rate.limit - counter.count) };
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
