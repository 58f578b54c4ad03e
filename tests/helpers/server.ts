// The real server as its own process (`deno serve main.ts`, as `deno task start` runs it) on a data
// directory of the test's: its log lines are collected and awaited (with a deadline), never slept on.
import { httpClient } from "./app.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const DEADLINE_MS = 60_000;

export type LogLine = Record<string, unknown>;

export class ServerProcess {
  /** Every stdout line, parsed (a line that is not JSON is kept as `{ notJson: line }`). */
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<Deno.CommandStatus>;
  #waiters = new Set<() => void>();
  #port = 0;

  private constructor(readonly child: Deno.ChildProcess) {
    void this.#read(child.stdout, (line) => {
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = { notJson: line };
      }
      this.logs.push(parsed);
    });
    void this.#read(child.stderr, (line) => {
      this.stderr.push(line);
      const port = /Listening on http:\/\/[^:]+:(\d+)\//.exec(line)?.[1];
      if (port) this.#port = Number(port);
    });
    this.exited = child.status;
  }

  /** Starts the server on `dataDir` and resolves once it is ready and listening. */
  static async start(dataDir: string, env: Record<string, string> = {}): Promise<ServerProcess> {
    const passed = Object.fromEntries(
      ["PATH", "HOME", "DENO_DIR", "TMPDIR"].flatMap((name) => {
        const value = Deno.env.get(name);
        return value === undefined ? [] : [[name, value]];
      }),
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: ["serve", "-A", "--port=0", MAIN],
      env: { ...passed, NO_COLOR: "1", DATA_DIR: dataDir, ...env },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const server = new ServerProcess(child);
    await server.waitFor(() =>
      server.#port > 0 && server.logs.some((l) => l.msg === "convene ready")
    );
    return server;
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
