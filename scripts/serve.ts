// `deno task dev` / `deno task start`: runs `deno serve` on HOST:PORT (deno serve ignores both),
// passes stop requests on to it however this launcher was started, and exits non-zero at once when
// the server cannot start (instead of waiting in `--watch` for a file change).
import { ConfigError, parseConfig } from "../config.ts";
import { LAUNCHER_PID, SERVER_DONE } from "./lifecycle.ts";

/** The server drains for up to 10 s and closes in a few more; past this it is killed. */
const STOP_DEADLINE_MS = 20_000;
/** How often the processes that started this one are checked (see `watchAncestors`). */
const ANCESTOR_POLL_MS = 500;

let port: number;
let host: string;
try {
  ({ PORT: port, HOST: host } = parseConfig(Deno.env.toObject()));
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`Configuration error: ${error.message}`);
  Deno.exit(1);
}

const watch = Deno.args.includes("--watch");
const args = ["serve", "-A", `--port=${port}`, `--host=${host}`];
if (watch) args.push("--watch");
if (Deno.args.includes("--parallel")) {
  if (Deno.env.get("DATABASE_URL")) {
    args.push("--parallel");
  } else {
    console.error(
      "Serving one isolate: the embedded PGlite database cannot be shared between isolates. " +
        "Set DATABASE_URL to run one isolate per core.",
    );
  }
}
args.push(new URL("../main.ts", import.meta.url).pathname);

const child = new Deno.Command(Deno.execPath(), {
  args,
  env: { [LAUNCHER_PID]: String(Deno.pid) },
}).spawn();
let exitCode: number | null = null;

/** Asks the server to drain and stop; a `--watch` supervisor is ended once the server says so. */
function stop(reason: string) {
  if (exitCode !== null) return;
  exitCode = 0;
  console.error(`Stopping (${reason})…`);
  signalChild("SIGTERM");
  const deadline = setTimeout(() => {
    console.error(`The server did not stop within ${STOP_DEADLINE_MS / 1000} s: killing it.`);
    exitCode = 1;
    signalChild("SIGKILL");
  }, STOP_DEADLINE_MS);
  child.status.finally(() => clearTimeout(deadline));
}

function signalChild(signal: Deno.Signal) {
  try {
    child.kill(signal);
  } catch {
    // Already gone.
  }
}

function listen(signal: Deno.Signal, handler: () => void) {
  try {
    Deno.addSignalListener(signal, handler);
  } catch {
    // Unsupported here (Windows): the platform's default applies.
  }
}

listen("SIGTERM", () => stop("SIGTERM"));
listen("SIGINT", () => stop("SIGINT"));
listen(SERVER_DONE, () => {
  if (exitCode === null) {
    // Done without being asked to stop: it could not start.
    exitCode = 1;
    signalChild("SIGKILL");
  } else if (watch) {
    // It stopped as asked; the --watch supervisor would wait for a file change.
    signalChild("SIGKILL");
  }
});
watchAncestors(() => stop("the process that started it ended"));

const status = await child.status;
Deno.exit(exitCode ?? status.code);

/**
 * `npx` passes SIGTERM to the shell it runs `deno task` in, and that shell dies without passing it
 * on: `deno task`, this launcher and the server are left running. So the processes that launched
 * this one are watched (Linux, through /proc): `deno task`, and through a shell up to `npx` when
 * it ran it. When one of them ends, the launcher stops the server as it would on SIGTERM. (A
 * launch chain that lives on without its own parent, as under nohup, keeps the server.)
 */
function watchAncestors(onGone: () => void) {
  const chain = launchChain();
  if (chain.length === 0) return;
  const timer = setInterval(() => {
    if (chain.every(isAlive)) return;
    clearInterval(timer);
    onGone();
  }, ANCESTOR_POLL_MS);
  Deno.unrefTimer(timer);
}

/** `deno task` (the parent), and above it, when npx ran it, every process up to npx's own. */
function launchChain(): number[] {
  const parent = Deno.ppid;
  // Started some other way (a shell, a service manager): their lifetimes are their own business.
  if (!/(^|\/)deno task\b/.test(commandOf(parent))) return [];
  const chain = [parent];
  for (let pid = parentOf(parent) ?? 0; pid > 1 && chain.length < 4; pid = parentOf(pid) ?? 0) {
    chain.push(pid);
    if (/^(npm|npx)\b/.test(commandOf(pid))) return chain;
  }
  return [parent];
}

function isAlive(pid: number): boolean {
  return parentOf(pid) !== null;
}

/** The parent of a live process, or null when it has ended (or /proc is not there to tell). */
function parentOf(pid: number): number | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // "pid (command) state ppid …": the command may hold spaces and parentheses.
    const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return state === "Z" || state === "X" ? null : Number(ppid);
  } catch {
    return null;
  }
}

/** A process's command line as it shows itself (npm sets its title to `npm exec …`). */
function commandOf(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ").trim();
  } catch {
    return "";
  }
}
