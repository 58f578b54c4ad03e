// Per-user cached views (feed first pages, discovery rankings) that a write can invalidate at once.
// Each user's entries live under a version; invalidating sets a new version, so an entry computed
// from data older than the write can never be read again, even if it is stored after the write.
import { newId } from "../ids.ts";
import type { Cache } from "../providers/cache.ts";

/** Versions outlive every entry stored under them (entries live minutes). */
const VERSION_TTL_SECONDS = 86_400;
/** Invalidations run this many cache writes at a time. */
const BATCH = 100;

export class PerUserCache<T> {
  constructor(
    private readonly cache: Cache,
    private readonly name: string,
    readonly ttlSeconds: number,
  ) {}

  /** The cached value for this user (and variant), and the key to store a fresh one under. */
  async read(userId: string, variant = ""): Promise<{ value: T | null; key: string }> {
    const version = await this.cache.get<string>(this.#versionKey(userId)) ?? "0";
    const key = `${this.name}:${userId}:${version}:${variant}`;
    return { value: await this.cache.get<T>(key), key };
  }

  async store(key: string, value: T): Promise<void> {
    await this.cache.set(key, value, this.ttlSeconds);
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
