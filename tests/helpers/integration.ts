// Integration tests run against the real servers named by TEST_DATABASE_URL / TEST_REDIS_URL
// (set by .ci/run); without them they are registered as ignored, and their names say why.
import { Pool } from "@neondatabase/serverless";

export function integrationTest(
  variable: "TEST_DATABASE_URL" | "TEST_REDIS_URL",
  name: string,
  fn: (url: string, t: Deno.TestContext) => Promise<void>,
) {
  const url = Deno.env.get(variable);
  Deno.test({
    name: url ? name : `${name} (skipped: ${variable} is not set)`,
    ignore: !url,
    fn: (t) => fn(url!, t),
  });
}

/**
 * A new, empty database on the Postgres at `serverUrl`, reached through Neon's driver (point it at
 * the WebSocket bridge with useWsProxy first). `drop()` removes it, ending what is still connected.
 */
export async function freshDatabase(serverUrl: string, prefix = "convene_test") {
  const admin = new Pool({ connectionString: serverUrl, max: 1 });
  admin.on("error", () => {});
  const name = `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  await admin.query(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async drop() {
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}
