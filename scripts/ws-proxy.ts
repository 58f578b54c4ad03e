// `deno task db:proxy [port] [host:port…] [--delay-ms N]`: lets DATABASE_URL point at a plain
// Postgres through Neon's driver (set DATABASE_WS_PROXY=127.0.0.1:<port>/v1). `--delay-ms 40`
// holds every chunk 40 ms each way, as a Deno Deploy region far from the database's region would.
import { parseArgs } from "node:util";
import { serveWsProxy } from "../db/ws-proxy.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { "delay-ms": { type: "string", default: "0" } },
  allowPositionals: true,
});
const delayMs = Number(values["delay-ms"]);
if (!Number.isFinite(delayMs) || delayMs < 0) {
  console.error(`--delay-ms: "${values["delay-ms"]}" is not a number of milliseconds ≥ 0`);
  Deno.exit(2);
}
const [port = "5433", ...allow] = positionals;
const proxy = serveWsProxy({
  port: Number(port),
  allow: allow.length ? allow : ["127.0.0.1:5432"],
  delayMs,
});
console.log(
  `WebSocket→TCP proxy on 127.0.0.1:${proxy.port}` +
    (delayMs ? ` (${delayMs} ms each way)` : "") + `; DATABASE_WS_PROXY=${proxy.address}`,
);
