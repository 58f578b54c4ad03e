// In-process mutual exclusion by key, first come first served: a throughput device for hot KV
// keys (callers still check versionstamps; other isolates are not excluded).
import { ofApp } from "./remembered.ts";

export class KeyedLock {
  #tails = new Map<string, Promise<void>>();

  /** Runs `work` once every earlier `run` of `key` in this isolate has finished. */
  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => release = resolve);
    const tail = before.then(() => mine);
    this.#tails.set(key, tail);
    await before;
    try {
      return await work();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

const owned = new WeakMap<object, KeyedLock>();

/**
 * The locks of one app in this isolate (see ofApp): each app takes turns only with its own
 * contenders. Callers prefix their keys with what they lock (`chat:`, `match:`).
 */
export function locksOf(owner: object): KeyedLock {
  return ofApp(owned, owner, () => new KeyedLock());
}
