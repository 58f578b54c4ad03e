// In-process mutual exclusion by key, first come first served: a throughput device for hot KV
// keys (callers still check versionstamps; other isolates are not excluded).
import { ofApp, Remembered } from "./remembered.ts";

/** Keys whose last turn a lock remembers (for `since`); the oldest are forgotten first. */
const REMEMBERED_TURNS = 10_000;

export class KeyedLock {
  #tails = new Map<string, Promise<void>>();
  /** Turns ended, over every key, and the count at the end of each key's last turn. */
  #ended = 0;
  #lastEnded = new Remembered<string, number>(REMEMBERED_TURNS);

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
      this.#lastEnded.set(key, this.#ended++);
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

const owned = new WeakMap<object, KeyedLock>();

/**
 * The locks of one app in this isolate (see ofApp): each app takes turns only with its own
 * contenders. Callers prefix their keys with what they lock (`stock:`, `chat:`, `match:`).
 */
export function locksOf(owner: object): KeyedLock {
  return ofApp(owned, owner, () => new KeyedLock());
}
