// Two isolates as `deno serve --parallel` runs them: two complete apps in this process, each with
// its own connection to one KV file (as each isolate opens its own), its own hub, locks and history
// writer, sharing the database and the signing secret, each served on its own port. A socket opened
// on `first.url` lives on the first isolate, one on `second.url` on the second.
import { openKv } from "../../kv/store.ts";
import type { TestAppOptions } from "./app.ts";
import { servedTestApp } from "./sockets.ts";

export async function twoIsolates(options: TestAppOptions = {}) {
  const dir = await Deno.makeTempDir({ prefix: "convene-isolates-" });
  const path = `${dir}/kv.sqlite3`;
  const connections = [await openKv(path), await openKv(path)];
  const env = { JWT_SECRET: crypto.randomUUID() + crypto.randomUUID(), ...options.env };
  const first = await servedTestApp({ ...options, env, kv: connections[0] });
  const second = await servedTestApp({
    ...options,
    env,
    kv: connections[1],
    database: first.deps.database,
  });
  return {
    first,
    second,
    async [Symbol.asyncDispose]() {
      await second[Symbol.asyncDispose]();
      await first[Symbol.asyncDispose]();
      for (const kv of connections) kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
