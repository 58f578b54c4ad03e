import assert from "node:assert/strict";
import { z } from "zod";
import {
  JobRegistry,
  kvQueueJobs,
  listenForJobs,
  qstashJobs,
  qstashVerifier,
} from "../workflows/jobs.ts";
import { assertProblem, createTestApp } from "./helpers/app.ts";
import { signDelivery, startQstashDouble } from "./helpers/qstash-double.ts";

/** A registry with one `greet` job that records what it ran and resolves when `count` ran. */
function greetRegistry() {
  const ran: { name: string; jobId: string }[] = [];
  let wake = () => {};
  const registry = new JobRegistry().register(
    "greet",
    z.object({ name: z.string() }),
    (payload, job) => {
      ran.push({ name: payload.name, jobId: job.id });
      wake();
      return Promise.resolve();
    },
  );
  const until = (count: number) =>
    new Promise<void>((resolve) => {
      wake = () => ran.length >= count && resolve();
      wake();
    });
  return { registry, ran, until };
}

Deno.test("[jobs] KV queue delivers enqueued jobs to their handler, and a dedupe id enqueues once", async () => {
  const kv = await Deno.openKv(":memory:");
  const { registry, ran, until } = greetRegistry();
  const listening = listenForJobs(kv, registry, () => {});
  const jobs = kvQueueJobs(kv);

  const first = await jobs.enqueue("greet", { name: "Ada" }, { dedupeId: "greet-ada" });
  const again = await jobs.enqueue("greet", { name: "Ada" }, { dedupeId: "greet-ada" });
  await jobs.enqueue("greet", { name: "Grace" });
  await until(2);

  assert.equal(again, first, "the duplicate names the job already enqueued");
  assert.deepEqual(ran.map((job) => job.name).sort(), ["Ada", "Grace"]);
  assert.equal(ran.find((job) => job.name === "Ada")?.jobId, first);
  kv.close();
  await listening;
});

Deno.test("[jobs] registry refuses unknown jobs and payloads of the wrong shape", async () => {
  const { registry } = greetRegistry();
  await assert.rejects(() => registry.run({ id: "1", name: "nope", payload: {} }), /No job/);
  await assert.rejects(() => registry.run({ id: "1", name: "greet", payload: { name: 7 } }));
});

const KEYS = { current: "sig_current_" + "c".repeat(20), next: "sig_next_" + "n".repeat(20) };

Deno.test("[jobs] QStash: a publish reaches POST /workflows/:name signed, and the real Receiver accepts it", async (t) => {
  const { registry, ran } = greetRegistry();
  // The double delivers into the app, and the app publishes to the double: bind the app late.
  const late: { app?: { request(url: string, init: RequestInit): Response | Promise<Response> } } =
    {};
  const double = startQstashDouble({
    currentSigningKey: KEYS.current,
    deliver: (url, init) => late.app!.request(url, init),
  });
  await using t0 = await createTestApp({
    registry,
    verifyDelivery: qstashVerifier(KEYS),
    jobs: () =>
      qstashJobs({
        token: double.token,
        baseUrl: double.baseUrl,
        publicUrl: "http://convene.test",
      }),
  });
  late.app = t0.app;

  try {
    await t.step("publish → signed delivery → handler runs once", async () => {
      const jobId = await t0.deps.jobs.enqueue("greet", { name: "Linus" }, {
        delaySeconds: 30,
        dedupeId: "greet-linus",
      });
      await double.settled();
      const [published] = double.published;
      assert.equal(published.destination, "http://convene.test/workflows/greet");
      assert.equal(published.delay, "30s");
      assert.equal(published.dedupeId, "greet-linus");
      assert.deepEqual(double.deliveries.map((delivery) => delivery.status), [200]);
      assert.deepEqual(ran, [{ name: "Linus", jobId }]);
    });

    await t.step("the same dedupe id is not delivered again", async () => {
      await t0.deps.jobs.enqueue("greet", { name: "Linus" }, { dedupeId: "greet-linus" });
      await double.settled();
      assert.equal(ran.length, 1);
    });

    const body = JSON.stringify({ id: "job-1", name: "greet", payload: { name: "Mallory" } });
    const url = "http://convene.test/workflows/greet";
    const post = (headers: Record<string, string>, raw = body, to = url) =>
      t0.app.request(to, {
        method: "POST",
        body: raw,
        headers: { "content-type": "application/json", ...headers },
      });

    await t.step("unsigned → 401", async () => {
      assert.equal((await post({})).status, 401);
    });

    await t.step("tampered body → 401", async () => {
      const signature = await signDelivery(KEYS.current, url, body);
      const tampered = body.replace("Mallory", "Trudy");
      assert.equal((await post({ "upstash-signature": signature }, tampered)).status, 401);
    });

    await t.step("signed with a key that is neither current nor next → 401", async () => {
      const signature = await signDelivery("sig_someone_else_" + "x".repeat(20), url, body);
      assert.equal((await post({ "upstash-signature": signature })).status, 401);
    });

    await t.step("signed for another URL → 401", async () => {
      const signature = await signDelivery(
        KEYS.current,
        "http://convene.test/workflows/other",
        body,
      );
      assert.equal((await post({ "upstash-signature": signature })).status, 401);
    });

    await t.step("expired signature → 401", async () => {
      const realNow = Date.now;
      Date.now = () => realNow() - 3_600_000;
      const signature = await signDelivery(KEYS.current, url, body).finally(() =>
        Date.now = realNow
      );
      assert.equal((await post({ "upstash-signature": signature })).status, 401);
    });

    await t.step("signed with the next key is accepted (key rotation)", async () => {
      const signature = await signDelivery(KEYS.next, url, body);
      const answer = await post({ "upstash-signature": signature });
      assert.equal(answer.status, 200);
      assert.equal(ran.at(-1)?.name, "Mallory");
    });

    await t.step(
      "validly signed but for an unknown job → 404; over 1 MB → 413; not a job message → 400",
      async () => {
        const unknownUrl = "http://convene.test/workflows/nope";
        const unknownBody = JSON.stringify({ id: "j", name: "nope", payload: {} });
        const unknown = await post(
          { "upstash-signature": await signDelivery(KEYS.current, unknownUrl, unknownBody) },
          unknownBody,
          unknownUrl,
        );
        assert.equal(unknown.status, 404);
        const huge = JSON.stringify({
          id: "j",
          name: "greet",
          payload: { name: "x".repeat(2 ** 21) },
        });
        const tooBig = await post({
          "upstash-signature": await signDelivery(KEYS.current, url, huge),
        }, huge);
        assert.equal(tooBig.status, 413);
        const junk = "[1,2,3]";
        const answer = await post({
          "upstash-signature": await signDelivery(KEYS.current, url, junk),
        }, junk);
        assert.equal(answer.status, 400);
      },
    );
  } finally {
    await double.close();
  }
});

Deno.test("[jobs] /workflows/:name refuses every delivery when QStash is not configured", async () => {
  await using t0 = await createTestApp();
  const body = JSON.stringify({ id: "j", name: "greet", payload: {} });
  const signature = await signDelivery(KEYS.current, "http://convene.test/workflows/greet", body);
  const answer = await t0.http("POST", "/workflows/greet", {
    raw: body,
    headers: { "upstash-signature": signature, "content-type": "application/json" },
  });
  assertProblem(answer, 401);
});
