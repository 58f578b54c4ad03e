// `deno task db:proxy [port] [host:port…]`: lets DATABASE_URL point at a plain Postgres through
// Neon's driver (set DATABASE_WS_PROXY=127.0.0.1:<port>/v1).
import { serveWsProxy } from "../db/ws-proxy.ts";

const [port = "5433", ...allow] = Deno.args;
const proxy = serveWsProxy({
  port: Number(port),
  allow: allow.length ? allow : ["127.0.0.1:5432"],
});
console.log(`WebSocket→TCP proxy on 127.0.0.1:${proxy.port}; DATABASE_WS_PROXY=${proxy.address}`);
