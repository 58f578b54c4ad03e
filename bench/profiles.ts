// Where a benchmark's history database lives: the three profiles `deno task bench` runs each case
// on. (a) PGlite, the embedded default; (b) a server Postgres through Neon's driver and the
// WebSocket bridge; (c) the same with 40 ms each way, as a Deno Deploy region far from Neon's.
// Each `open()` is a fresh, migrated database, dropped again by its handle's `close()`.
import { type DatabaseHandle, openNeon, openPglite, useWsProxy } from "../db/client.ts";
import { freshDatabase } from "../tests/helpers/integration.ts";
import { spawnProxy } from "../tests/helpers/proxy.ts";

export interface Profile {
  name: string;
  open(): Promise<DatabaseHandle>;
  close(): Promise<void>;
}

/** The one-way delay of the edge profile. */
export const EDGE_DELAY_MS = Number(Deno.env.get("BENCH_EDGE_DELAY_MS") ?? 40);

export const PGLITE: Profile = {
  name: "PGlite",
  open: () => openPglite(),
  close: () => Promise.resolve(),
};

/**
 * The profiles this machine can run: PGlite always; the two Postgres ones when
 * BENCH_DATABASE_URL (default: the local server on 127.0.0.1:5432) answers. BENCH_PROFILES
 * ("trips,pglite,postgres,edge,telemetry,scale") picks some.
 */
export async function benchProfiles(): Promise<Profile[]> {
  const wanted = benchesWanted();
  const profiles: Profile[] = wanted.has("pglite") ? [PGLITE] : [];
  const url = await reachablePostgres();
  if (!url) return profiles;
  const server = new URL(url);
  const address = `${server.hostname}:${server.port || 5432}`;
  if (wanted.has("postgres")) profiles.push(await postgresProfile(url, address, 0));
  if (wanted.has("edge")) profiles.push(await postgresProfile(url, address, EDGE_DELAY_MS));
  return profiles;
}

/**
 * BENCH_PROFILES: the profiles (and "trips", the round-trips section, "telemetry", OpenTelemetry's
 * cost, and "scale", the scale-out one) to run; all by default.
 */
export function benchesWanted(): Set<string> {
  return new Set(
    (Deno.env.get("BENCH_PROFILES") ?? "trips,pglite,postgres,edge,telemetry,scale").split(",").map(
      (s) => s.trim(),
    ),
  );
}

/** BENCH_DATABASE_URL (default: the local server on 127.0.0.1:5432) when it answers, else null. */
export async function reachablePostgres(): Promise<string | null> {
  const url = Deno.env.get("BENCH_DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const server = new URL(url);
  try {
    const probe = await Deno.connect({
      hostname: server.hostname,
      port: Number(server.port || 5432),
    });
    probe.close();
    return url;
  } catch {
    console.log(
      `(no Postgres at ${server.hostname}:${server.port || 5432}: set BENCH_DATABASE_URL for the ` +
        "Postgres profiles and the scale-out section)",
    );
    return null;
  }
}

// The bridge runs as `deno task db:proxy` in its own process, as Neon's proxy is not in the app's
// isolate either: neither the app nor the load clients pay for it.
async function postgresProfile(url: string, address: string, delayMs: number): Promise<Profile> {
  const proxy = await spawnProxy(["0", address, "--delay-ms", String(delayMs)]);
  return {
    name: delayMs
      ? `Postgres via Neon's driver, +${delayMs} ms each way`
      : "Postgres via Neon's driver",
    async open() {
      useWsProxy(proxy.address);
      const database = await freshDatabase(url, "convene_bench");
      const handle = await openNeon(database.url);
      return {
        ...handle,
        async close() {
          await handle.close();
          await database.drop();
        },
      };
    },
    close: () => proxy.close(),
  };
}
