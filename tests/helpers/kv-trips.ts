// Counting KV round trips. On Deno Deploy every strong read and every commit goes to KV's primary
// region, so the strong KV calls a request makes one after another are its edge latency. `holdingKv`
// puts a hold in front of each such call; `TripGate` uses the hold to count them deterministically
// (no clocks): it holds every strong call, and whenever the app has nothing left to do but wait
// for them, it lets all of them through at once: one round. The rounds an operation needs before it
// answers are its sequential round trips; calls issued together (getMany, Promise.all) share one.
// The benchmark holds each call a fixed time instead (bench/round-trips.ts).

/** `call` names the call and its first key, e.g. `getMany ["user", …]`. */
type Hold = (call: string) => Promise<void> | void;

function eventual(options: unknown): boolean {
  return (options as { consistency?: string } | undefined)?.consistency === "eventual";
}

/**
 * `kv` with `hold` awaited before every call that would reach the primary region: strong `get`,
 * `getMany` and `list`, `set`, `delete`, `enqueue` and atomic commits. Eventual reads, `watch` and
 * `listenQueue` pass untouched. `done` follows each held call's end.
 */
export function holdingKv(kv: Deno.Kv, hold: Hold, done: () => void = () => {}): Deno.Kv {
  async function held<T>(name: string, call: () => Promise<T>): Promise<T> {
    await hold(name);
    try {
      return await call();
    } finally {
      done();
    }
  }
  const methods: Record<string, unknown> = {
    get: (key: Deno.KvKey, options?: unknown) =>
      eventual(options)
        ? kv.get(key, options as never)
        : held(`get ${name(key)}`, () => kv.get(key, options as never)),
    getMany: (keys: Deno.KvKey[], options?: unknown) =>
      eventual(options)
        ? kv.getMany(keys, options as never)
        : held(`getMany ${keys.map(name).join(" ")}`, () => kv.getMany(keys, options as never)),
    list: (selector: Deno.KvListSelector, options?: Deno.KvListOptions) => {
      const iterator = kv.list(selector, options);
      if (eventual(options)) return iterator;
      let first: Promise<void> | null = null;
      return {
        get cursor() {
          return iterator.cursor;
        },
        async next() {
          if (!first) {
            first = Promise.resolve(hold(`list ${JSON.stringify(selector)}`));
            await first;
            try {
              return await iterator.next();
            } finally {
              done();
            }
          }
          await first;
          return await iterator.next();
        },
        [Symbol.asyncIterator]() {
          return this;
        },
      };
    },
    set: (key: Deno.KvKey, value: unknown, options?: { expireIn?: number }) =>
      held(`set ${name(key)}`, () => kv.set(key, value, options)),
    delete: (key: Deno.KvKey) => held(`delete ${name(key)}`, () => kv.delete(key)),
    enqueue: (value: unknown, options?: never) => held("enqueue", () => kv.enqueue(value, options)),
    atomic: () => {
      const operation = kv.atomic();
      const commit = operation.commit.bind(operation);
      operation.commit = () => held("commit", commit);
      return operation;
    },
  };
  return new Proxy(kv, {
    get(target, property) {
      if (typeof property === "string" && Object.hasOwn(methods, property)) {
        return methods[property];
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** A key's first two parts: enough to tell which record a call is about. */
function name(key: Deno.KvKey): string {
  return JSON.stringify(key.slice(0, 2));
}

/** How long the app must stay still (nothing new held, nothing running) before a round is let go. */
const STILL_MS = 30;
/** How long the app must make no strong call at all before a measurement starts. */
const SETTLE_MS = 100;

export interface Trips<T> {
  value: T;
  /** Rounds of strong calls the operation waited for, one after another. */
  trips: number;
  /** Strong calls made while it ran (its own, and any background work at the same time). */
  calls: number;
  /** The calls of each round, in order: what to shorten when a budget is exceeded. */
  rounds: string[][];
}

/** Holds strong KV calls while `measure` runs, and lets them go a round at a time. */
export class TripGate {
  #measuring = false;
  #held: { call: string; release: () => void }[] = [];
  #rounds: string[][] = [];
  #running = 0;
  #calls = 0;
  #changes = 0;
  #wake: (() => void) | null = null;

  /** `kv` behind this gate. */
  wrap(kv: Deno.Kv): Deno.Kv {
    return holdingKv(kv, (call) => this.#hold(call), () => this.#done());
  }

  #hold(call: string): Promise<void> | void {
    this.#changed();
    if (!this.#measuring) return;
    this.#calls++;
    return new Promise((release) => this.#held.push({ call, release }));
  }

  #done() {
    if (this.#running > 0) this.#running--;
    this.#changed();
  }

  #changed() {
    this.#changes++;
    this.#wake?.();
  }

  /** Runs `operation` and counts the rounds of strong calls it waits for. */
  async measure<T>(operation: () => Promise<T>): Promise<Trips<T>> {
    if (this.#measuring) throw new Error("one measurement at a time");
    // What earlier steps set going (jobs, the history writer) finishes first, so that its calls
    // are not counted as this operation's rounds.
    await this.#still(SETTLE_MS);
    this.#measuring = true;
    this.#calls = 0;
    this.#rounds = [];
    let finished = false;
    const result = operation().finally(() => {
      finished = true;
      this.#changed();
    });
    result.catch(() => {});
    let trips = 0;
    try {
      while (!finished) {
        await this.#still();
        if (finished) break;
        if (this.#held.length === 0) {
          await this.#nextChange();
          continue;
        }
        trips++;
        this.#rounds.push(this.#held.map((held) => held.call));
        this.#letGo();
      }
    } finally {
      this.#measuring = false;
      this.#letGo();
    }
    return { value: await result, trips, calls: this.#calls, rounds: this.#rounds };
  }

  #letGo() {
    const released = this.#held.splice(0);
    this.#running += released.length;
    for (const held of released) held.release();
  }

  /** Resolves once nothing has changed for STILL_MS and no released call is still running. */
  async #still(ms = STILL_MS) {
    for (;;) {
      const seen = this.#changes;
      await new Promise((resolve) => setTimeout(resolve, ms));
      if (seen === this.#changes && this.#running === 0) return;
    }
  }

  #nextChange(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#wake = null;
        resolve();
      };
    });
  }
}
