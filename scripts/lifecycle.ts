// A server's life between start and stop: the work a stopping server waits for, and what it tells
// the launcher (scripts/serve.ts) that started it.

/** The launcher's pid, set in the server's environment by scripts/serve.ts. */
export const LAUNCHER_PID = "CONVENE_LAUNCHER_PID";

/**
 * What the server signals when it is done: it stopped after being asked to, or it could not start
 * (the launcher knows which: it did or did not ask). Under `--watch` the supervisor would wait for
 * a file change either way, so the launcher ends it. (Not SIGUSR1: Deno opens its inspector on it.)
 */
export const SERVER_DONE = "SIGUSR2";

/** Signals the launcher, when there is one (`deno serve main.ts` alone has none). */
export function tellLauncher() {
  const pid = Number(Deno.env.get(LAUNCHER_PID));
  if (!Number.isInteger(pid) || pid <= 0) return;
  try {
    Deno.kill(pid, SERVER_DONE);
  } catch {
    // The launcher is gone already, or signals are unsupported here (Windows).
  }
}

/** Work under way (requests, job deliveries, sweeps): a stopping server lets it finish. */
export class InFlight {
  #count = 0;
  #waiters = new Set<() => void>();

  get count(): number {
    return this.#count;
  }

  /** Counts `work` as in flight until it settles. */
  async track<T>(work: () => Promise<T>): Promise<T> {
    const done = this.begin();
    try {
      return await work();
    } finally {
      done();
    }
  }

  /** Counts one piece of work; call the returned function once, when it is over. */
  begin(): () => void {
    this.#count++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--this.#count === 0) { for (const wake of this.#waiters) wake(); }
    };
  }

  /** Resolves true once nothing is in flight, or false when `timeoutMs` passes first. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.#count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(wake);
        resolve(false);
      }, timeoutMs);
      this.#waiters.add(wake);
    });
  }
}
