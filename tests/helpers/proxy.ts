// `deno task db:proxy` in its own process, as the tests and the benchmarks start it: resolves once
// the proxy says where it listens, with the DATABASE_WS_PROXY address to use.
const SCRIPT = new URL("../../scripts/ws-proxy.ts", import.meta.url).pathname;

export async function spawnProxy(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, ...args],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  const address = /DATABASE_WS_PROXY=(\S+)/.exec(value ?? "")?.[1];
  if (!address) throw new Error(`db:proxy said: ${value}`);
  return {
    /** What it printed when it started. */
    line: value!,
    address,
    async close(signal: Deno.Signal = "SIGINT") {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      await child.status;
      await reader.cancel();
    },
  };
}

/** Runs the proxy script with `args` to its end (e.g. a refused flag). */
export function runProxy(args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, ...args],
    stdout: "null",
    stderr: "piped",
  }).output();
}
