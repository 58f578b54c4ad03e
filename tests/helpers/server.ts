// The real server as its own process (`deno serve main.ts`, as `deno task start` runs it) on a data
// directory of the test's: its log lines are collected and awaited (with a deadline), never slept on.
import type { Reservation } from "../../db/records.ts";
import { reservationKey } from "../../kv/keys.ts";
import { openKv } from "../../kv/store.ts";
import { type HttpClient, httpClient } from "./app.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;
const DEADLINE_MS = 60_000;

export type LogLine = Record<string, unknown>;

/** A local port nothing listens on right now (for a server that takes its port from PORT). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

export class ServerProcess {
  /**
   * Every stdout line, parsed (a line that is not JSON is kept as `{ notJson: line }`); under
   * `--parallel`, `isolate` says which isolate wrote it.
   */
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<Deno.CommandStatus>;
  #waiters = new Set<() => void>();
  #port = 0;
  #reading: Promise<void>[];

  private constructor(readonly child: Deno.ChildProcess) {
    this.#reading = [
      this.#read(child.stdout, (line) => {
        // `deno serve --parallel` prefixes each isolate's lines with "[serve-worker-N ]".
        const worker = /^\[serve-worker-(\d+)\s*\] /.exec(line);
        const text = worker ? line.slice(worker[0].length) : line;
        let parsed: LogLine;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = { notJson: line };
        }
        if (worker) parsed.isolate = Number(worker[1]);
        this.logs.push(parsed);
      }),
      this.#read(child.stderr, (line) => {
        this.stderr.push(line);
        const port = /Listening on http:\/\/[^:]+:(\d+)\//.exec(line)?.[1];
        if (port) this.#port = Number(port);
      }),
    ];
    this.exited = child.status;
  }

  /** Starts the server on `dataDir` and resolves once it is ready and listening. */
  static async start(dataDir: string, env: Record<string, string> = {}): Promise<ServerProcess> {
    const server = ServerProcess.spawn([Deno.execPath(), "serve", "-A", "--port=0", MAIN], {
      DATA_DIR: dataDir,
      ...env,
    });
    await server.ready();
    return server;
  }

  /**
   * Runs `command` (the server, or a launcher of it) with a clean environment plus `env`, from the
   * project's root, its output collected.
   */
  static spawn(command: string[], env: Record<string, string>): ServerProcess {
    const passed = Object.fromEntries(
      ["PATH", "HOME", "DENO_DIR", "TMPDIR", "npm_config_cache"].flatMap((name) => {
        const value = Deno.env.get(name);
        return value === undefined ? [] : [[name, value]];
      }),
    );
    const child = new Deno.Command(command[0], {
      args: command.slice(1),
      cwd: ROOT,
      env: { ...passed, NO_COLOR: "1", ...env },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new ServerProcess(child);
  }

  /** Resolves once the server said it is ready and Deno said where it listens. */
  ready(): Promise<void> {
    return this.waitFor(() => this.#port > 0 && this.logs.some((l) => l.msg === "convene ready"));
  }

  /** Resolves when stdout and stderr have closed: every process holding them has exited. */
  get outputClosed(): Promise<void> {
    return Promise.all(this.#reading).then(() => {});
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** JSON requests against the running server (as the in-memory tests' `http`). */
  get http() {
    return httpClient({
      request: (path: string, init: RequestInit) => fetch(`${this.url}${path}`, init),
    });
  }

  /** Resolves once `ready()` holds (re-checked on every line), or fails after the deadline. */
  waitFor(ready: () => boolean, what = "the server"): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(wake);
        reject(
          new Error(`waited ${DEADLINE_MS} ms for ${what}; stderr: ${this.stderr.join("\n")}`),
        );
      }, DEADLINE_MS);
      const wake = () => {
        if (!ready()) return;
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve();
      };
      this.#waiters.add(wake);
      wake();
    });
  }

  /** Resolves with the first log line matching `match`, past or future. */
  async waitForLog(match: (line: LogLine) => boolean): Promise<LogLine> {
    await this.waitFor(() => this.logs.some(match), "a log line");
    return this.logs.find(match)!;
  }

  async kill(signal: Deno.Signal): Promise<Deno.CommandStatus> {
    try {
      this.child.kill(signal);
    } catch {
      // Already gone.
    }
    return await this.exited;
  }

  async #read(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
    let buffered = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) if (line.trim()) onLine(line);
      for (const wake of [...this.#waiters]) wake();
    }
    if (buffered.trim()) onLine(buffered);
    for (const wake of [...this.#waiters]) wake();
  }
}

/** A member of a running server, signed up over HTTP. */
export interface Account {
  id: string;
  token: string;
}

/** Signs up `email` (named after its local part) through the server's API. */
export async function signUpOver(http: HttpClient, email: string): Promise<Account> {
  const answer = await http("POST", "/api/auth/signup", {
    body: { name: email.split("@")[0], email, password: "analytical-engine" },
  });
  if (answer.status !== 201) {
    throw new Error(`signup: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  return { id: answer.body.user.id, token: answer.body.token };
}

/** `a` asks `b` to connect and `b` accepts: the two may message each other. */
export async function connectOver(http: HttpClient, a: Account, b: Account) {
  const request = await http("POST", "/api/connections", {
    token: a.token,
    body: { toUserId: b.id },
  });
  const accepted = await http("PATCH", `/api/connections/${request.body.id}`, {
    token: b.token,
    body: { status: "accepted" },
  });
  if (accepted.status !== 200) throw new Error(`accept: ${accepted.status}`);
}

/** A product and a sale of `stock` units of it, live for the next hour, made by admin `root`. */
export async function liveSale(http: HttpClient, root: Account, stock: number) {
  const product = (await http("POST", "/api/products", {
    token: root.token,
    body: { name: "Mug", priceCents: 900, currency: "USD" },
  })).body;
  const sale = (await http("POST", "/api/sales", {
    token: root.token,
    body: {
      items: [{ productId: product.id, stock, priceCents: 900 }],
      startsAt: new Date(Date.now() - 60_000).toISOString(),
      endsAt: new Date(Date.now() + 3_600_000).toISOString(),
      perUserLimit: stock,
    },
  })).body;
  if (!sale.id) throw new Error(`sale: ${JSON.stringify(sale)}`);
  return { product: product as { id: string }, sale: sale as { id: string } };
}

/** Units held right now, read from the server's KV file (which it may have open too). */
export async function heldUnits(dataDir: string): Promise<number> {
  const kv = await openKv(`${dataDir}/kv.sqlite3`);
  try {
    return (await Array.fromAsync(kv.list<Reservation>({ prefix: ["reservation"] })))
      .filter((entry) => entry.key.length === reservationKey("x").length)
      .filter((entry) => entry.value.status === "held")
      .reduce((units, entry) => units + entry.value.quantity, 0);
  } finally {
    kv.close();
  }
}
