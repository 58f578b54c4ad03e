// What OpenTelemetry costs: chat at saturation and reservations over HTTP, each measured in a
// process of its own with Deno's telemetry off, on with every trace kept, and on with one trace in
// ten kept (what docs/observability.md recommends under load), exporting OTLP over HTTP to a sink
// in this process as it would to a collector; the three alternate, in the same run. The figure is
// the measured process's CPU per message and per try (every thread); each "on" is a ratio to the
// "off" of its round. On a shared machine those move by ±15 % run to run, more than the effect
// measured, so each run is also profiled and the share of its busy CPU spent in telemetry code
// is given: samples of one run compared with each other, which the noise does not move. (Every run
// is profiled, "off" included, so the profiler's own cost is in every figure alike.)
import { type Profiler, Session } from "node:inspector/promises";
import { chatInProcess } from "./chat.ts";
import { PGLITE } from "./profiles.ts";
import { overHttp } from "./sales.ts";

const ROUNDS = Number(Deno.env.get("BENCH_TELEMETRY_ROUNDS") ?? 2);
const MARK = "telemetry-bench-result ";

interface Figures {
  /** Of each run's busy CPU samples (not idle), the share in telemetry code, %. */
  chatTelemetryShare: number;
  reserveTelemetryShare: number;
  chatCpuUs: number;
  chatRate: number;
  reserveCpuUs: number;
  reserveRate: number;
}

/** The measured side: one chat run and one reservations run, then its figures on stdout. */
async function measureHere(): Promise<Figures> {
  const chat = await profiled(() => chatInProcess(PGLITE));
  await chat.result.close();
  await chat.result.dispose();
  const reserve = await profiled(() => overHttp(PGLITE));
  return {
    chatTelemetryShare: chat.share,
    chatCpuUs: chat.result.result.cpuUs,
    chatRate: chat.result.result.rate,
    reserveTelemetryShare: reserve.share,
    reserveCpuUs: reserve.result.cpuUs!,
    reserveRate: reserve.result.perSecond,
  };
}

/** `run`'s result, and the share of its busy CPU spent in telemetry code (a CPU profile's). */
async function profiled<T>(run: () => Promise<T>): Promise<{ result: T; share: number }> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  const result = await run();
  const { profile } = await session.post("Profiler.stop");
  session.disconnect();
  return { result, share: telemetryShare(profile) };
}

/**
 * The share of a CPU profile's busy samples spent in telemetry code: Deno's telemetry extension
 * and its ops, span starts and ends, `@opentelemetry/api`, and Convene's telemetry.ts. What the
 * machine's noise does not move: it compares samples of one run with each other.
 */
function telemetryShare(profile: Profiler.Profile): number {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  let busy = 0;
  let telemetry = 0;
  const ours = new URL("../telemetry.ts", import.meta.url).href;
  for (const [i, id] of (profile.samples ?? []).entries()) {
    const frame = nodes.get(id)!;
    const ms = profile.timeDeltas?.[i] ?? 0;
    if (frame.functionName === "(idle)") continue;
    busy += ms;
    const { url, functionName: name } = frame;
    if (
      url.includes("deno_telemetry") || url.includes("@opentelemetry") || url === ours ||
      name.startsWith("op_otel") ||
      (!url && ["end", "startSpan", "startSpanForeign"].includes(name))
    ) telemetry += ms;
  }
  return (100 * telemetry) / busy;
}

/** The three settings measured: their environments. */
const SETTINGS = {
  off: { OTEL_DENO: "false" },
  "on, every trace": { OTEL_DENO: "true", OTEL_TRACES_SAMPLER: "parentbased_always_on" },
  "on, 1 trace in 10": {
    OTEL_DENO: "true",
    OTEL_TRACES_SAMPLER: "parentbased_traceidratio",
    OTEL_TRACES_SAMPLER_ARG: "0.1",
  },
};
type Setting = keyof typeof SETTINGS;

async function measureIn(setting: Setting, sink: string): Promise<Figures> {
  const { code, stdout } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "measure"],
    env: {
      ...SETTINGS[setting],
      OTEL_EXPORTER_OTLP_ENDPOINT: sink,
      OTEL_SERVICE_NAME: "convene-bench",
    },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const line = new TextDecoder().decode(stdout).split("\n").findLast((l) => l.startsWith(MARK));
  if (code !== 0 || !line) throw new Error(`the measured process exited with ${code}`);
  return JSON.parse(line.slice(MARK.length));
}

/** A collector stand-in: takes every export and answers as OTLP/HTTP does. */
function otlpSink() {
  let bytes = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    bytes += (await req.arrayBuffer()).byteLength;
    return new Response(new Uint8Array(), {
      headers: { "content-type": "application/x-protobuf" },
    });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    bytes: () => bytes,
    close: () => server.shutdown(),
  };
}

export async function benchTelemetry() {
  console.log(
    `\nOpenTelemetry's cost: off, on (OTEL_DENO=true, OTLP to a sink) keeping every trace, and on ` +
      `keeping 1 in 10; ${ROUNDS} rounds, CPU of the measured process per unit, ratio to off`,
  );
  const sink = otlpSink();
  const rounds: Record<Setting, Figures>[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const figures = {} as Record<Setting, Figures>;
    for (const setting of Object.keys(SETTINGS) as Setting[]) {
      figures[setting] = await measureIn(setting, sink.url);
    }
    rounds.push(figures);
  }
  await sink.close();
  const show = (
    name: string,
    cpu: (figures: Figures) => number,
    rate: (figures: Figures) => number,
    unit: string,
  ) => {
    for (const [i, figures] of rounds.entries()) {
      const cells = (Object.keys(SETTINGS) as Setting[]).map((setting) => {
        const ratio = setting === "off"
          ? ""
          : ` ${(cpu(figures[setting]) / cpu(figures.off)).toFixed(2)}×`;
        return `${setting}: ${cpu(figures[setting]).toFixed(0)} µs ${
          rate(figures[setting]).toFixed(0)
        } ${unit}${ratio}`;
      });
      console.log(`  ${`${name}, round ${i + 1}`.padEnd(32)} ${cells.join("   ")}`);
    }
  };
  show("chat message at saturation", (f) => f.chatCpuUs, (f) => f.chatRate, "msgs/s");
  show("reservation over HTTP", (f) => f.reserveCpuUs, (f) => f.reserveRate, "tries/s");
  const share = (name: string, of: (figures: Figures) => number) => {
    for (const [i, figures] of rounds.entries()) {
      const cells = (Object.keys(SETTINGS) as Setting[]).map((setting) =>
        `${setting}: ${of(figures[setting]).toFixed(1)} %`
      );
      console.log(`  ${`${name}, round ${i + 1}`.padEnd(32)} ${cells.join("   ")}`);
    }
  };
  share("chat CPU in telemetry code", (f) => f.chatTelemetryShare);
  share("reservations' CPU in telemetry", (f) => f.reserveTelemetryShare);
  console.log(`  the sink took ${(sink.bytes() / 1e6).toFixed(1)} MB of OTLP`);
}

if (import.meta.main) {
  if (Deno.args[0] === "measure") {
    const figures = await measureHere();
    console.log(MARK + JSON.stringify(figures));
    Deno.exit(0); // PGlite's idle instances would keep the process a few seconds more
  } else {
    await benchTelemetry();
  }
}
