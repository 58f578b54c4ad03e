// `deno task dev` / `deno task start`: runs `deno serve` on PORT (deno serve itself ignores PORT).
import { ConfigError, parseConfig } from "../config.ts";

let port: number;
try {
  port = parseConfig(Deno.env.toObject()).PORT;
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`Configuration error: ${error.message}`);
  Deno.exit(1);
}

const args = ["serve", "-A", `--port=${port}`];
if (Deno.args.includes("--watch")) args.push("--watch");
if (Deno.args.includes("--parallel")) {
  if (Deno.env.get("DATABASE_URL")) {
    args.push("--parallel");
  } else {
    console.error(
      "Serving one isolate: the embedded PGlite database cannot be shared between isolates. " +
        "Set DATABASE_URL to run one isolate per core.",
    );
  }
}
args.push(new URL("../main.ts", import.meta.url).pathname);

const child = new Deno.Command(Deno.execPath(), { args }).spawn();
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    child.kill(signal);
    // The app closes KV and the database on SIGTERM, but a --watch supervisor would wait for a
    // file change to restart it: after a grace period, SIGINT ends the supervisor too.
    const timer = setTimeout(() => child.kill("SIGINT"), 3000);
    child.status.finally(() => clearTimeout(timer));
  });
}
Deno.exit((await child.status).code);
