// Per-user cached views (feed first pages, discovery rankings) that a write can invalidate at once.
// Each entry carries the user's version it was computed under; invalidating sets a new version,
// so an entry computed from data older than the write is never served, even if it is stored
// after the write.
import { newId } from "../ids.ts";
import type { Cache } from "./cache.ts";

/** Versions outlive every entry stored under them (entries live minutes). */
const VERSION_TTL_SECONDS = 86_400;
/** Invalidations run this many cache writes at a time. */
const BATCH = 100;

interface Entry<T> {
  version: string;
  value: T;
}

/** Computations in flight per cache key, so concurrent misses of one key compute it once. */
const inflight = new WeakMap<Cache, Map<string, Promise<unknown>>>();

export class PerUserCache<T> {
  constructor(
    private readonly cache: Cache,
    private readonly name: string,
    readonly ttlSeconds: number,
  ) {}

  /**
   * The user's cached value, or `compute()`'s result, stored for next time. The version and the
   * entry are read together; an entry stored under another version is a miss. Concurrent misses
   * of the same entry in this isolate share one computation.
   */
  async through(userId: string, variant: string, compute: () => Promise<T>) {
    const key = `${this.name}:${userId}:${variant}`;
    const [version, entry] = await this.cache.getMany([this.#versionKey(userId), key]) as [
      string | null,
      Entry<T> | null,
    ];
    const current = version ?? "0";
    if (entry && entry.version === current) return { value: entry.value, cached: true };
    const running = this.#running();
    const flightKey = `${key}:${current}`;
    let flight = running.get(flightKey) as Promise<T> | undefined;
    if (!flight) {
      flight = (async () => {
        try {
          const value = await compute();
          await this.cache.set(
            key,
            { version: current, value } satisfies Entry<T>,
            this.ttlSeconds,
          );
          return value;
        } finally {
          running.delete(flightKey);
        }
      })();
      running.set(flightKey, flight);
    }
    return { value: await flight, cached: false };
  }

  /** Whatever these users had cached is gone for their next request. */
  async invalidate(...userIds: string[]): Promise<void> {
    for (let start = 0; start < userIds.length; start += BATCH) {
      await Promise.all(
        userIds.slice(start, start + BATCH).map((userId) =>
          this.cache.set(this.#versionKey(userId), newId(), VERSION_TTL_SECONDS)
        ),
      );
    }
  }

  #running() {
    let running = inflight.get(this.cache);
    if (!running) inflight.set(this.cache, running = new Map());
    return running;
  }

  #versionKey(userId: string) {
    return `${this.name}-version:${userId}`;
  }
}

/** The first page of each user's feed, for two minutes. */
export const FEED_CACHE_SECONDS = 120;
/** Each user's discovery ranking, for five minutes. */
export const DISCOVERY_CACHE_SECONDS = 300;

/** Feed first pages: invalidated for a post's whole audience when the post changes. */
export const feedCache = <T>(cache: Cache) =>
  new PerUserCache<T>(cache, "feed", FEED_CACHE_SECONDS);

/** Discovery rankings: invalidated on the user's profile or connection changes. */
export const discoveryCache = <T>(cache: Cache) =>
  new PerUserCache<T>(cache, "discover", DISCOVERY_CACHE_SECONDS);

/** Both views of these users, after a change to who they are connected with or can see. */
export async function invalidateGraphViews(cache: Cache, ...userIds: string[]) {
  await Promise.all([
    feedCache(cache).invalidate(...userIds),
    discoveryCache(cache).invalidate(...userIds),
  ]);
}
