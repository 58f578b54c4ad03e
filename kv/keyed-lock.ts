// In-process mutual exclusion by key, first come first served: a throughput device for hot KV
// keys (callers still check versionstamps; other isolates are not excluded).

/** Keys whose last turn a lock remembers (for `since`); the oldest are forgotten first. */
const REMEMBERED_TURNS = 10_000;

export class KeyedLock {
  #tails = new Map<string, Promise<void>>();
  /** Turns ended, over every key, and the count at the end of each key's last turn. */
  #ended = 0;
  #lastEnded = new Map<string, number>();

  /** A mark to pass to `run` as `since`: taken before reading what the turn will decide on. */
  mark(): number {
    return this.#ended;
  }

  /**
   * Runs `work` once every earlier `run` of `key` in this isolate has finished. `work` is told
   * whether another turn on `key` ran or was running since the mark `since`: if not, what the
   * caller read after taking the mark is still the latest this isolate knows.
   */
  async run<T>(
    key: string,
    work: (waited: boolean) => Promise<T>,
    since = -1,
  ): Promise<T> {
    const waited = this.#tails.has(key) || (this.#lastEnded.get(key) ?? -1) >= since;
    const before = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => release = resolve);
    const tail = before.then(() => mine);
    this.#tails.set(key, tail);
    await before;
    try {
      return await work(waited);
    } finally {
      this.#lastEnded.delete(key);
      this.#lastEnded.set(key, this.#ended++);
      if (this.#lastEnded.size > REMEMBERED_TURNS) {
        this.#lastEnded.delete(this.#lastEnded.keys().next().value!);
      }
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

const owned = new WeakMap<object, KeyedLock>();

/**
 * The locks of one app in this isolate, found by something the app has exactly one of (its
 * outbox): tests run two apps on one KV as two isolates, and each takes turns only with its own
 * contenders. Callers prefix their keys with what they lock (`stock:`, `chat:`, `match:`).
 */
export function locksOf(owner: object): KeyedLock {
  let locks = owned.get(owner);
  if (!locks) owned.set(owner, locks = new KeyedLock());
  return locks;
}
