// Speaks Upstash Redis's REST shape (POST /, /pipeline, /multi-exec, Bearer) to a real Redis.
// Test-only, so not in the import map (locked in tests/deno.lock; see README "Tests").
// deno-lint-ignore no-import-prefix
import { createClient } from "npm:redis@6.3.1";

type Reply = unknown;

function encode(value: Reply, base64: boolean): Reply {
  if (!base64) return value;
  if (typeof value === "string") {
    const bytes = new TextEncoder().encode(value);
    let binary = "";
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return btoa(binary);
  }
  if (Array.isArray(value)) return value.map((item) => encode(item, base64));
  return value;
}

export async function startUpstashBridge(redisUrl: string) {
  const redis = createClient({ url: redisUrl });
  redis.on("error", () => {});
  await redis.connect();
  const token = crypto.randomUUID();
  const args = (command: unknown) => (command as unknown[]).map((part) => String(part));

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (req.headers.get("authorization") !== `Bearer ${token}`) {
      return Response.json({ error: "Unauthorized" }, { status: 401 });
    }
    const base64 = req.headers.get("upstash-encoding") === "base64";
    const body = await req.json();
    const one = async (command: unknown) => {
      try {
        return { result: encode(await redis.sendCommand(args(command)) ?? null, base64) };
      } catch (error) {
        return { error: String((error as Error).message ?? error) };
      }
    };
    const path = new URL(req.url).pathname;
    if (path === "/pipeline") return Response.json(await Promise.all(body.map(one)));
    if (path === "/multi-exec") {
      const multi = redis.multi();
      for (const command of body) multi.addCommand(args(command));
      try {
        const results = await multi.exec() as Reply[];
        return Response.json(results.map((result) => ({ result: encode(result ?? null, base64) })));
      } catch (error) {
        return Response.json({ error: String(error) }, { status: 400 });
      }
    }
    const answer = await one(body);
    return Response.json(answer, { status: "error" in answer ? 400 : 200 });
  });

  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    token,
    redis,
    async close() {
      await server.shutdown();
      await redis.close();
    },
  };
}
