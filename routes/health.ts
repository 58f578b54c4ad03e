// Liveness and readiness: /healthz answers while the process is up, /readyz checks each dependency.
import { Hono } from "hono";
import type { AppEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { Unavailable } from "../errors.ts";
import { readinessKey } from "../kv/keys.ts";
import { z } from "zod";
import { documented } from "./middleware/describe.ts";

const describe = documented("Operations");

const CHECK_TIMEOUT_MS = 3000;

function withTimeout(check: () => Promise<unknown>): Promise<unknown> {
  return Promise.race([
    check(),
    new Promise((_, reject) => {
      const timer = setTimeout(() => reject(new Error("timed out")), CHECK_TIMEOUT_MS);
      Deno.unrefTimer(timer);
    }),
  ]);
}

export function healthRoutes(deps: Deps) {
  const checks: Record<string, () => Promise<unknown>> = {
    kv: () => deps.kv.get(readinessKey()),
    database: () => deps.database.ping(),
    cache: () => deps.cache.ping(),
  };

  return new Hono<AppEnv>()
    .get(
      "/healthz",
      describe({
        summary: "Liveness: 200 while the process is up",
        answers: { 200: z.object({ status: z.literal("ok") }) },
      }),
      (c) => c.json({ status: "ok" as const }),
    )
    .get(
      "/readyz",
      describe({
        summary: "Readiness: KV, database and cache reachable",
        description: "503 names each part that did not answer within 3 s (`failed`).",
        answers: {
          200: z.object({
            status: z.literal("ready"),
            checks: z.record(z.string(), z.literal("ok")),
          }),
        },
      }),
      async (c) => {
        const names = Object.keys(checks);
        const results = await Promise.allSettled(names.map((name) => withTimeout(checks[name])));
        const failed = names.filter((_, i) => results[i].status === "rejected");
        if (failed.length > 0) {
          const reasons = Object.fromEntries(
            failed.map((name) => [
              name,
              String((results[names.indexOf(name)] as PromiseRejectedResult).reason),
            ]),
          );
          throw new Unavailable(`Not ready: ${failed.join(", ")} unreachable.`, {
            failed,
            ...(deps.config.production ? {} : { reasons }),
          });
        }
        return c.json({
          status: "ready" as const,
          checks: Object.fromEntries(names.map((name) => [name, "ok"])),
        });
      },
    );
}
