// Runs a load script in its own process (its config as JSON on stdin, its result as JSON on
// stdout), so the server measured has its cores to itself instead of sharing them with its clients.
import process from "node:process";

/**
 * `run`'s result with the CPU this process used meanwhile (every thread: the isolate, KV's,
 * PGlite's worker), in µs per unit of work (`units` of the result): a figure the machine's noise
 * moves much less than latency or throughput.
 */
export async function withCpu<T>(
  run: () => Promise<T>,
  units: (result: T) => number,
): Promise<T & { cpuUs: number }> {
  const before = process.cpuUsage();
  const result = await run();
  const used = process.cpuUsage(before);
  return { ...result, cpuUs: (used.user + used.system) / units(result) };
}

export async function inOwnProcess<Config, Result>(
  script: URL,
  config: Config,
): Promise<Result> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script.pathname],
    // The load clients are not what is measured: their own telemetry stays off.
    env: { OTEL_DENO: "false" },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(config)));
  await writer.close();
  const { code, stdout } = await child.output();
  if (code !== 0) throw new Error(`${script.pathname} exited with ${code}`);
  return JSON.parse(new TextDecoder().decode(stdout));
}
