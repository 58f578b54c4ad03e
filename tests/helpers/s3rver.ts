// s3rver, an S3-compatible server from the npm registry, run by Node beside the tests. Deno's
// node:crypto lacks the DES cipher s3rver's list continuation tokens use; Node with OpenSSL's
// legacy provider has it.
import { fileURLToPath } from "node:url";

const SERVER = `
const S3rver = require(process.argv[1]);
new S3rver({
  port: 0,
  address: "127.0.0.1",
  silent: true,
  directory: process.argv[2],
  configureBuckets: [{ name: "convene" }],
}).run().then(({ port }) => console.log(port));
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
`;

export const S3RVER_BUCKET = "convene";
const PACKAGE = "/node_modules/s3rver";

/** False when Node is not installed (the caller skips, saying so). */
export async function nodeAvailable(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("node", { args: ["--version"], stdout: "null" })
      .output();
    return success;
  } catch {
    return false;
  }
}

/** Starts s3rver on a free port over a temporary directory; disposing stops it and cleans up. */
export async function startS3rver() {
  const directory = await Deno.makeTempDir({ prefix: "convene-s3rver-" });
  // Test and tool packages are not in the import map (the server's first start fetches only what
  // it imports): importing s3rver here is what makes Deno fetch it for this test, and Node then
  // runs it from where Deno put it.
  // deno-lint-ignore no-import-prefix
  await import("npm:s3rver@3.7.1");
  const entry = fileURLToPath(import.meta.resolve("npm:s3rver@3.7.1"));
  const module = entry.slice(0, entry.lastIndexOf(PACKAGE) + PACKAGE.length);
  const child = new Deno.Command("node", {
    args: ["--openssl-legacy-provider", "-e", SERVER, module, directory],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let printed = "";
  while (!printed.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("s3rver exited before it listened");
    printed += value;
  }
  reader.releaseLock();
  const port = Number(printed.trim());
  return {
    options: {
      endpoint: `http://127.0.0.1:${port}`,
      bucket: S3RVER_BUCKET,
      region: "us-east-1",
      accessKeyId: "S3RVER",
      secretAccessKey: "S3RVER",
    },
    async [Symbol.asyncDispose]() {
      await child.stdin.close();
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await Deno.remove(directory, { recursive: true });
    },
  };
}
