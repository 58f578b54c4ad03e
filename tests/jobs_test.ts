import assert from "node:assert/strict";
import { z } from "zod";
import { claimJob, completeJob, LEASE_MS } from "../kv/jobs.ts";
import { deadLetterKey, jobFailureKey } from "../kv/keys.ts";
import { openKv } from "../kv/store.ts";
import { postponeSeconds, runJob } from "../workflows/runner.ts";
import { type JobMessage, JobRegistry } from "../workflows/jobs.ts";
import { kvQueueJobs, listenForJobs } from "../workflows/kv-queue.ts";
import { qstashJobs, qstashVerifier } from "../workflows/qstash.ts";
import { assertProblem, createTestApp, logBook, signUp, testClock } from "./helpers/app.ts";
import { signDelivery, startQstashDouble } from "./helpers/qstash-double.ts";

/**
 * A registry with a `greet` job whose effect is one entry in `effects` per job id (an effect
 * applied twice shows up twice), and which fails its first `failures` runs.
 */
function greetRegistry(options: { failures?: number } = {}) {
  const runs: string[] = [];
  const effects: { name: string; jobId: string }[] = [];
  let failuresLeft = options.failures ?? 0;
  /** While true, greeting "Doomed" fails every time (the bug an admin fixes before a replay). */
  const state = { doomed: true };
  const registry = new JobRegistry().register(
    "greet",
    z.object({ name: z.string() }),
    (payload, job) => {
      runs.push(job.id);
      if (failuresLeft-- > 0 || (payload.name === "Doomed" && state.doomed)) {
        return Promise.reject(new Error(`greeting ${payload.name} failed`));
      }
      effects.push({ name: payload.name, jobId: job.id });
      return Promise.resolve();
    },
  );
  return { registry, runs, effects, state };
}

/** A bare KV queue with a listener: what main.ts runs when QStash is not configured. */
async function kvQueue(registry: JobRegistry) {
  const kv = await openKv(":memory:");
  const logs = logBook();
  const jobs = kvQueueJobs(kv, { backoffMs: [20, 40, 80] });
  const listening = listenForJobs({ kv, registry, jobs, clock: testClock(), log: logs.log });
  return {
    kv,
    jobs,
    logs,
    settled: (count = 1) =>
      logs.waitFor(
        (record) => record.msg === "job done" || record.msg === "job dead-lettered",
        count,
      ),
    async [Symbol.asyncDispose]() {
      kv.close();
      await listening;
    },
  };
}

Deno.test("[jobs] KV queue delivers enqueued jobs to their handler, and a dedupe id enqueues once", async () => {
  const { registry, effects } = greetRegistry();
  await using queue = await kvQueue(registry);

  const first = await queue.jobs.enqueue("greet", { name: "Ada" }, { dedupeId: "greet-ada" });
  const again = await queue.jobs.enqueue("greet", { name: "Ada" }, { dedupeId: "greet-ada" });
  await queue.jobs.enqueue("greet", { name: "Grace" });
  await queue.settled(2);

  assert.equal(again, first, "the duplicate names the job already enqueued");
  assert.deepEqual(effects.map((job) => job.name).sort(), ["Ada", "Grace"]);
  assert.equal(effects.find((job) => job.name === "Ada")?.jobId, first);
});

Deno.test("[jobs] KV queue enqueueMany: 120 jobs in few commits, each once; a repeated or already-seen dedupe id is one job", async () => {
  const { registry, effects } = greetRegistry();
  await using queue = await kvQueue(registry);
  await queue.jobs.enqueue("greet", { name: "early" }, { dedupeId: "seen-before" });
  await queue.settled(1);

  // Counts the commits the batch makes.
  let commits = 0;
  const atomic = queue.kv.atomic.bind(queue.kv);
  const counted = new Proxy(queue.kv, {
    get: (target, property) =>
      property === "atomic"
        ? () => {
          const operation = atomic();
          const commit = operation.commit.bind(operation);
          operation.commit = () => (commits++, commit());
          return operation;
        }
        : Reflect.get(target, property, target).bind?.(target) ?? Reflect.get(target, property),
  });
  const jobs = kvQueueJobs(counted, { backoffMs: [20, 40, 80] });
  const requests = Array.from({ length: 120 }, (_, i) => ({
    name: "greet",
    payload: { name: `m${i}` },
    options: { dedupeId: `many-${i}` },
  }));
  await jobs.enqueueMany!([
    ...requests,
    { ...requests[7], payload: { name: "m7 again" } }, // the same dedupe id in one call
  ]);
  assert.equal(commits, 3, "120 distinct jobs in chunks of 50");

  commits = 0;
  await jobs.enqueueMany!([
    { name: "greet", payload: { name: "late" }, options: { dedupeId: "late" } },
    { name: "greet", payload: { name: "early again" }, options: { dedupeId: "seen-before" } },
  ]);
  assert.ok(commits >= 2, "a chunk whose dedupe id was seen falls back to one commit per job");

  await queue.settled(1 + 120 + 1);
  const names = effects.map((job) => job.name);
  assert.equal(names.length, 122);
  assert.deepEqual(
    names.filter((name) => /^m\d+$/.test(name)).sort(),
    requests.map((request) => request.payload.name).sort(),
  );
  assert.ok(
    names.includes("late") && !names.includes("early again") && !names.includes("m7 again"),
  );
});

Deno.test("[jobs] KV queue: the same job delivered twice, even at once, has one effect", async () => {
  const { registry, runs, effects } = greetRegistry();
  await using queue = await kvQueue(registry);
  const job: JobMessage = { id: crypto.randomUUID(), name: "greet", payload: { name: "Ada" } };
  const sequential: JobMessage = {
    id: crypto.randomUUID(),
    name: "greet",
    payload: { name: "Bo" },
  };

  // Redelivery as the queue does it: the very same message, twice, at the same moment.
  await Promise.all([queue.kv.enqueue(job), queue.kv.enqueue(job)]);
  await queue.kv.enqueue(sequential);
  await queue.settled(2);
  await queue.kv.enqueue(sequential);
  await queue.logs.waitFor((record) => record.msg === "job already done", 2);

  assert.deepEqual(effects.map((effect) => effect.jobId).sort(), [job.id, sequential.id].sort());
  assert.equal(runs.filter((id) => id === job.id).length, 1, "the handler ran once");
  assert.equal(runs.filter((id) => id === sequential.id).length, 1);
});

Deno.test("[jobs] a handler failing twice then succeeding runs three times and has one effect", async () => {
  const { registry, runs, effects } = greetRegistry({ failures: 2 });
  await using queue = await kvQueue(registry);

  const jobId = await queue.jobs.enqueue("greet", { name: "Grace" });
  await queue.settled();

  assert.deepEqual(runs, [jobId, jobId, jobId]);
  assert.deepEqual(effects, [{ name: "Grace", jobId }]);
  const failures = queue.logs.records.filter((record) => record.msg === "job failed");
  assert.deepEqual(failures.map((record) => record.attempts), [1, 2]);
  const deadLetters = await Array.fromAsync(queue.kv.list({ prefix: ["dead_letter"] }));
  assert.equal(deadLetters.length, 0);
});

Deno.test("[jobs] registry: unknown jobs and payloads of the wrong shape are permanent failures", async () => {
  const { registry } = greetRegistry();
  await assert.rejects(
    () => registry.run({ id: "1", name: "nope", payload: {} }),
    { name: "PermanentJobError", message: /no job is called "nope"/ },
  );
  await assert.rejects(
    () => registry.run({ id: "1", name: "greet", payload: { name: 7 } }),
    { name: "PermanentJobError" },
  );
});

const KEYS = { current: "sig_current_" + "c".repeat(20), next: "sig_next_" + "n".repeat(20) };

Deno.test("[jobs] QStash: a publish reaches POST /workflows/:name signed, and the real Receiver accepts it", async (t) => {
  const { registry, effects: ran } = greetRegistry();
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
      assert.equal(ran.length, 1, "the handler did not run");
    });

    await t.step("tampered body → 401", async () => {
      const signature = await signDelivery(KEYS.current, url, body);
      const tampered = body.replace("Mallory", "Trudy");
      assert.equal((await post({ "upstash-signature": signature }, tampered)).status, 401);
      assert.equal(ran.length, 1, "the handler did not run");
    });

    await t.step("signed with a key that is neither current nor next → 401", async () => {
      const signature = await signDelivery("sig_someone_else_" + "x".repeat(20), url, body);
      assert.equal((await post({ "upstash-signature": signature })).status, 401);
      assert.equal(ran.length, 1, "the handler did not run");
    });

    await t.step("signed for another URL → 401", async () => {
      const signature = await signDelivery(
        KEYS.current,
        "http://convene.test/workflows/other",
        body,
      );
      assert.equal((await post({ "upstash-signature": signature })).status, 401);
      assert.equal(ran.length, 1, "the handler did not run");
    });

    await t.step("expired signature → 401", async () => {
      const realNow = Date.now;
      Date.now = () => realNow() - 3_600_000;
      const signature = await signDelivery(KEYS.current, url, body).finally(() =>
        Date.now = realNow
      );
      assert.equal((await post({ "upstash-signature": signature })).status, 401);
      assert.equal(ran.length, 1, "the handler did not run");
    });

    await t.step("signed with the next key is accepted (key rotation)", async () => {
      const signature = await signDelivery(KEYS.next, url, body);
      const answer = await post({ "upstash-signature": signature });
      assert.equal(answer.status, 200);
      assert.equal(ran.at(-1)?.name, "Mallory");
    });

    await t.step(
      "the same delivery again (QStash redelivers) → 200, and no second effect",
      async () => {
        const signature = await signDelivery(KEYS.current, url, body);
        const answer = await post({ "upstash-signature": signature, "upstash-retried": "1" });
        assert.equal(answer.status, 200);
        assert.equal((await answer.json()).outcome, "duplicate");
        assert.equal(ran.filter((effect) => effect.jobId === "job-1").length, 1);
      },
    );

    await t.step(
      "signed but for an unknown job → dead letter at once; over 1 MB → 413; not a job → 400",
      async () => {
        const unknownUrl = "http://convene.test/workflows/nope";
        const unknownBody = JSON.stringify({ id: "j", name: "nope", payload: {} });
        const unknown = await post(
          { "upstash-signature": await signDelivery(KEYS.current, unknownUrl, unknownBody) },
          unknownBody,
          unknownUrl,
        );
        assert.equal(unknown.status, 200, "no point in QStash retrying it");
        assert.equal((await unknown.json()).outcome, "dead-lettered");
        assert.equal((await t0.deps.kv.get(["dead_letter", "j"])).value !== null, true);
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

/** An app whose `greet` job fails for "Doomed", on the KV queue or (with `qstash`) through the double. */
async function appWithGreet(options: { qstash?: boolean } = {}) {
  const greet = greetRegistry();
  const late: { app?: { request(url: string, init: RequestInit): Response | Promise<Response> } } =
    {};
  const double = options.qstash
    ? startQstashDouble({
      currentSigningKey: KEYS.current,
      deliver: (url, init) => late.app!.request(url, init),
    })
    : null;
  const t0 = await createTestApp({
    env: { ADMIN_EMAILS: "root@example.com" },
    registry: greet.registry,
    verifyDelivery: double ? qstashVerifier(KEYS) : undefined,
    jobs: double
      ? () =>
        qstashJobs({
          token: double.token,
          baseUrl: double.baseUrl,
          publicUrl: "http://convene.test",
        })
      : undefined,
  });
  late.app = t0.app;
  const admin = await signUp(t0.http, { email: "root@example.com", name: "Root" });
  const member = await signUp(t0.http);
  return {
    ...t0,
    ...greet,
    double,
    admin,
    member,
    async [Symbol.asyncDispose]() {
      await double?.close();
      await t0[Symbol.asyncDispose]();
    },
  };
}

for (const adapter of ["kv-queue", "qstash"] as const) {
  Deno.test(`[jobs] ${adapter}: a job failing every retry lands in dead letters; an admin replays it`, async (t) => {
    await using t0 = await appWithGreet({ qstash: adapter === "qstash" });
    const jobId = await t0.deps.jobs.enqueue("greet", { name: "Doomed" });
    await t0.jobsSettled("greet");
    await t0.double?.settled();

    await t.step("it ran once and retried three times, then became a dead letter", async () => {
      assert.deepEqual(t0.runs, [jobId, jobId, jobId, jobId]);
      if (adapter === "qstash") {
        assert.deepEqual(t0.double!.deliveries.map((d) => d.status), [503, 503, 503, 200]);
      }
      const list = await t0.http("GET", "/api/admin/dead-letters", { token: t0.admin.token });
      assert.equal(list.status, 200);
      assert.deepEqual(list.body.items.map((item: { id: string }) => item.id), [jobId]);
      const [item] = list.body.items;
      assert.equal(item.name, "greet");
      assert.deepEqual(item.payload, { name: "Doomed" });
      assert.equal(item.attempts, 4);
      assert.match(item.lastError, /greeting Doomed failed/);
      assert.equal(list.body.nextCursor, null);
    });

    await t.step("members get 403 and strangers 401, for listing and replaying", async () => {
      const path = `/api/admin/dead-letters/${jobId}/replay`;
      assertProblem(
        await t0.http("GET", "/api/admin/dead-letters", { token: t0.member.token }),
        403,
      );
      assertProblem(await t0.http("POST", path, { token: t0.member.token }), 403);
      assertProblem(await t0.http("POST", path), 401);
      assert.equal(t0.runs.length, 4, "nothing was replayed");
    });

    await t.step(
      "replay after the cause is fixed: runs once, effect once, dead letter gone",
      async () => {
        t0.state.doomed = false;
        const doomed = t0.effects.length;
        // Fifty admins clicking "replay" at once: one replay, forty-nine 404s.
        const answers = await Promise.all(
          Array.from(
            { length: 50 },
            () =>
              t0.http("POST", `/api/admin/dead-letters/${jobId}/replay`, { token: t0.admin.token }),
          ),
        );
        const accepted = answers.filter((answer) => answer.status === 202);
        assert.equal(accepted.length, 1);
        assert.equal(answers.filter((answer) => answer.status === 404).length, 49);
        assert.deepEqual(accepted[0].body, { jobId, name: "greet", source: "job" });
        await t0.waitForLog((record) => record.msg === "job done" && record.jobId === jobId);
        await t0.double?.settled();
        assert.equal(t0.effects.length, doomed + 1);
        assert.equal(t0.runs.length, 5, "four failed runs, one replay");
        assert.equal(t0.effects.at(-1)?.jobId, jobId);
        const list = await t0.http("GET", "/api/admin/dead-letters", { token: t0.admin.token });
        assert.deepEqual(list.body.items, []);
        const again = await t0.http("POST", `/api/admin/dead-letters/${jobId}/replay`, {
          token: t0.admin.token,
        });
        assertProblem(again, 404);
      },
    );
  });
}

Deno.test("[jobs] a payload of the wrong shape is dead-lettered at once; admins page and discard", async (t) => {
  await using t0 = await appWithGreet();
  const ids: string[] = [];
  for (const name of [1, 2, 3]) ids.push(await t0.deps.jobs.enqueue("greet", { name }));
  await t0.jobsSettled("greet", 3);
  assert.deepEqual(t0.runs, [], "the handler never saw a bad payload");
  const admin = { token: t0.admin.token };

  await t.step("listed oldest first, two per page, each with one attempt", async () => {
    const first = await t0.http("GET", "/api/admin/dead-letters?limit=2", admin);
    assert.equal(first.status, 200);
    assert.equal(first.body.items.length, 2);
    assert.ok(first.body.nextCursor);
    const second = await t0.http(
      "GET",
      `/api/admin/dead-letters?limit=2&cursor=${first.body.nextCursor}`,
      admin,
    );
    assert.equal(second.body.nextCursor, null);
    const listed = [...first.body.items, ...second.body.items];
    assert.deepEqual(listed.map((item: { id: string }) => item.id), ids);
    assert.deepEqual(listed.map((item: { attempts: number }) => item.attempts), [1, 1, 1]);
    assert.match(listed[0].lastError, /payload of "greet" is invalid/);
    assertProblem(await t0.http("GET", "/api/admin/dead-letters?cursor=%%%", admin), 400);
  });

  await t.step("DELETE discards one without running it; a second DELETE → 404", async () => {
    const path = `/api/admin/dead-letters/${ids[0]}`;
    assertProblem(await t0.http("DELETE", path, { token: t0.member.token }), 403);
    assert.equal((await t0.http("DELETE", path, admin)).status, 204);
    assertProblem(await t0.http("DELETE", path, admin), 404);
    const left = await t0.http("GET", "/api/admin/dead-letters", admin);
    assert.deepEqual(left.body.items.map((item: { id: string }) => item.id), ids.slice(1));
    assert.deepEqual(t0.runs, []);
  });
});

Deno.test("[jobs] QStash: 200 simultaneous deliveries of one job run its handler once", async () => {
  let release = () => {};
  const gate = new Promise<void>((resolve) => release = resolve);
  const runs: string[] = [];
  const registry = new JobRegistry().register("slow", z.object({}), async (_payload, job) => {
    runs.push(job.id);
    await gate; // hold the first run open while the duplicates arrive
  });
  await using t0 = await createTestApp({ registry, verifyDelivery: qstashVerifier(KEYS) });
  const url = "http://convene.test/workflows/slow";
  const body = JSON.stringify({ id: "job-slow", name: "slow", payload: {} });
  const signature = await signDelivery(KEYS.current, url, body);
  const deliver = () =>
    t0.app.request(url, {
      method: "POST",
      body,
      headers: { "content-type": "application/json", "upstash-signature": signature },
    });

  // Whichever delivery claims the job holds it open until every other one has been answered.
  let answered = 0;
  const answers = await Promise.all(Array.from({ length: 200 }, async () => {
    const answer = deliver();
    const response = await Promise.race([answer, gate.then(() => null)]);
    if (response && ++answered === 199) release();
    return await answer;
  }));
  assert.deepEqual(runs, ["job-slow"]);
  const statuses = answers.map((answer) => answer.status);
  assert.equal(statuses.filter((status) => status === 200).length, 1);
  // The duplicates are told to come back later (QStash retries any non-2xx answer).
  const busy = answers.filter((answer) => answer.status === 409);
  assert.equal(busy.length, 199);
  assert.ok(busy.every((answer) => Number(answer.headers.get("retry-after")) >= 1));
  const later = await deliver();
  assert.equal(later.status, 200);
  assert.equal((await later.json()).outcome, "duplicate");
  assert.deepEqual(runs, ["job-slow"]);
});

Deno.test("[jobs] a delivery that crashed mid-run blocks duplicates only until its lease lapses", async () => {
  await using kv = await openKv(":memory:");
  const clock = testClock();
  assert.deepEqual(await claimJob(kv, "job-1", clock.now()), { kind: "claimed" });
  // The isolate dies here: no failure, no completion, the lease stays.
  const busy = await claimJob(kv, "job-1", clock.now());
  assert.equal(busy.kind, "busy");
  clock.advance(LEASE_MS + 1);
  assert.deepEqual(await claimJob(kv, "job-1", clock.now()), { kind: "claimed" });
  await completeJob(kv, "job-1", clock.now());
  assert.deepEqual(await claimJob(kv, "job-1", clock.now()), { kind: "done" });
});

Deno.test("[jobs] a job whose database cannot be reached is put off, never counted or dead-lettered, and runs once when it is back", async (t) => {
  let down = true;
  const effects: string[] = [];
  const registry = new JobRegistry().register("record", z.object({ n: z.int() }), (_, job) => {
    if (down) return Promise.reject(new Deno.errors.ConnectionRefused("tcp connect error"));
    effects.push(job.id);
    return Promise.resolve();
  });

  await t.step("ten outages in a row: each delivery is put off with a growing delay", async () => {
    const kv = await openKv(":memory:");
    const logs = logBook();
    const enqueued: { name: string; options: Record<string, unknown> }[] = [];
    // The port the runner re-enqueues through, recording what it is asked (no queue runs it).
    const jobs = {
      kind: "kv-queue" as const,
      enqueue: (name: string, _payload: unknown, options = {}) => {
        enqueued.push({ name, options });
        return Promise.resolve("queued");
      },
    };
    const deps = { kv, registry, jobs, clock: testClock(), log: logs.log };
    let job: JobMessage = { id: "job-down", name: "record", payload: { n: 1 } };
    for (let delivery = 1; delivery <= 10; delivery++) {
      assert.equal(await runJob(deps, job, { final: delivery === 10 }), "postponed");
      const { options } = enqueued.at(-1)!;
      assert.deepEqual(options, {
        jobId: "job-down",
        delaySeconds: postponeSeconds(delivery),
        postponed: delivery,
      });
      job = { ...job, postponed: delivery };
    }
    assert.deepEqual(enqueued.map((item) => item.options.delaySeconds), [
      2,
      4,
      8,
      16,
      30,
      30,
      30,
      30,
      30,
      30,
    ]);
    assert.equal((await kv.get(jobFailureKey("job-down"))).value, null, "no failure counted");
    assert.equal((await kv.get(deadLetterKey("job-down"))).value, null, "no dead letter");
    down = false;
    assert.equal(await runJob(deps, job, { final: false }), "done");
    assert.deepEqual(effects, ["job-down"]);
    kv.close();
  });

  await t.step("through the KV queue: put off once, then run once", async () => {
    down = true;
    effects.length = 0;
    await using queue = await kvQueue(registry);
    const id = await queue.jobs.enqueue("record", { n: 2 });
    await queue.logs.waitFor((record) =>
      record.msg === "job postponed: a dependency cannot be reached"
    );
    down = false;
    await queue.settled(1);
    assert.deepEqual(effects, [id]);
    assert.equal((await queue.kv.get(deadLetterKey(id))).value, null);
  });
});

Deno.test("[jobs] KV queue: a job cut off by its store closing is logged once, and the listener ends cleanly", async () => {
  let started!: () => void;
  const running = new Promise<void>((resolve) => started = resolve);
  let finish!: () => void;
  const gate = new Promise<void>((resolve) => finish = resolve);
  const registry = new JobRegistry().register("slow", z.object({}), async () => {
    started();
    await gate; // the store closes while it waits
  });
  const kv = await openKv(":memory:");
  const logs = logBook();
  const jobs = kvQueueJobs(kv, { backoffMs: [20, 40, 80] });
  const listening = listenForJobs({ kv, registry, jobs, clock: testClock(), log: logs.log });
  await jobs.enqueue("slow", {});
  await running;
  kv.close();
  finish(); // the runner now records the outcome in a closed store
  const [record] = await logs.waitFor((entry) => entry.msg === "job interrupted: the store closed");
  assert.equal(record.job, "slow");
  await listening; // ends, rather than rejecting
});
