// The launcher (`deno task dev` / `start` run scripts/serve.ts): a stop request reaches the server
// however it was started, the server drains and everything exits; a start that cannot succeed
// exits non-zero at once, even under --watch.
import assert from "node:assert/strict";
import { ServerProcess } from "./helpers/server.ts";

const LAUNCHER = new URL("../scripts/serve.ts", import.meta.url).pathname;
const DEADLINE_MS = 30_000;

/** Resolves with `promise`, or fails the test when `what` takes longer than the deadline. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: not within ${DEADLINE_MS} ms`)),
      DEADLINE_MS,
    );
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A fresh data directory, removed afterwards with any process still running on it (a failed test
 * must not leave servers behind).
 */
async function dataDir() {
  const path = await Deno.makeTempDir({ prefix: "convene-launcher-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      for (const pid of processesOn(path)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Gone meanwhile.
        }
      }
      await Deno.remove(path, { recursive: true });
    },
  };
}

/** Processes whose environment names `dataDir` (Linux). */
function processesOn(dataDir: string): number[] {
  const pids: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const environ = Deno.readTextFileSync(`/proc/${entry.name}/environ`);
      if (environ.split("\0").includes(`DATA_DIR=${dataDir}`)) pids.push(Number(entry.name));
    } catch {
      // Ended, or not ours to read.
    }
  }
  return pids;
}

Deno.test("[launcher] dev: SIGTERM drains the server and ends the --watch supervisor; the launcher exits 0", async () => {
  await using dir = await dataDir();
  const dev = ServerProcess.spawn([Deno.execPath(), "run", "-A", LAUNCHER, "--watch"], {
    DATA_DIR: dir.path,
    PORT: "0",
  });
  await within(dev.ready(), "ready");
  // One signup whose body is still arriving when the signal comes (so a request is surely under
  // way), sent before twenty ordinary ones; the signal comes as the first of those is answered.
  const encoder = new TextEncoder();
  const json = JSON.stringify({
    name: "Ada",
    email: "ada.slow@example.com",
    password: "analytical-engine",
  });
  let rest!: ReadableStreamDefaultController<Uint8Array>;
  const slow = fetch(`${dev.url}/api/auth/signup`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: new ReadableStream<Uint8Array>({
      start(controller) {
        rest = controller;
        controller.enqueue(encoder.encode(json.slice(0, 10)));
      },
    }),
  });
  const signups = Array.from({ length: 20 }, (_, i) =>
    dev.http("POST", "/api/auth/signup", {
      body: { name: "Ada", email: `ada.${i}@example.com`, password: "analytical-engine" },
    }));
  await Promise.race(signups);
  dev.child.kill("SIGTERM");
  const stopping = await dev.waitForLog((line) => line.msg === "shutting down");
  rest.enqueue(encoder.encode(json.slice(10)));
  rest.close();
  const answers = await Promise.all(signups);
  assert.deepEqual(answers.map((answer) => answer.status), Array(20).fill(201));
  // Deno 2.9 makes a body still arriving at the signal unreadable (denoland/deno#36809): the
  // request is refused with 503 (retry), never a 500 or a dropped connection.
  const slowAnswer = await slow;
  assert.equal(slowAnswer.status, 503);
  assert.equal(slowAnswer.headers.get("retry-after"), "1");
  await slowAnswer.body?.cancel();
  assert.ok(Number(stopping.inFlight) > 0, "requests were under way when the signal came");
  const status = await within(dev.exited, "the launcher's exit");
  assert.equal(status.code, 0);
  await within(dev.outputClosed, "every process of the launch gone");
  assert.equal((await dev.waitForLog((line) => line.msg === "stopped")).drained, true);
});

Deno.test("[launcher] a start that cannot succeed (PGlite held by another server) exits 1 at once, also under --watch", async () => {
  await using dir = await dataDir();
  const holder = await ServerProcess.start(dir.path, { APP_ENV: "development" });
  try {
    const dev = ServerProcess.spawn([Deno.execPath(), "run", "-A", LAUNCHER, "--watch"], {
      DATA_DIR: dir.path,
      PORT: "0",
    });
    const status = await within(dev.exited, "the failed start's exit");
    assert.equal(status.code, 1);
    assert.ok(dev.stderr.some((line) => line.includes("is already open in another")));
    await within(dev.outputClosed, "every process of the launch gone");
  } finally {
    await holder.kill("SIGTERM");
  }
});

Deno.test("[launcher] SIGTERM to npx, whose shell does not pass it on, still stops the server", async () => {
  await using dir = await dataDir();
  const npx = ServerProcess.spawn(["npx", "-y", "deno@2.9", "task", "dev"], {
    DATA_DIR: dir.path,
    PORT: "0",
  });
  await within(npx.ready(), "ready");
  npx.child.kill("SIGTERM");
  // stdout and stderr close only once npx, its shell, deno task, the launcher and the server
  // (which all hold them) have exited.
  await within(npx.outputClosed, "every process of the launch gone");
  assert.equal((await npx.waitForLog((line) => line.msg === "stopped")).drained, true);
});
