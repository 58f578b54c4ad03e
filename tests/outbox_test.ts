import assert from "node:assert/strict";
import { z } from "zod";
import { SWEEP_GRACE_MS } from "../kv/outbox.ts";
import { jobRecord } from "../workflows/outbox-jobs.ts";
import { createTestApp, signUp } from "./helpers/app.ts";

/** An app with two members and an outbox record that notifies Ada of Bob's follow. */
async function outboxApp() {
  const t0 = await createTestApp();
  const [ada, bob] = await Promise.all([signUp(t0.http), signUp(t0.http)]);
  const follow = () =>
    jobRecord(t0.deps.outbox, "notify", {
      userId: ada.user.id,
      actorId: bob.user.id,
      type: "follow",
      subjectId: bob.user.id,
    });
  const notifications = async () =>
    (await t0.http("GET", "/api/notifications", { token: ada.token })).body.items;
  const outboxKeys = async () =>
    (await Array.fromAsync(t0.deps.kv.list({ prefix: ["outbox"] }))).map((entry) => entry.key);
  return { ...t0, ada, bob, follow, notifications, outboxKeys };
}

Deno.test("[outbox] a commit whose apply step never ran (a crash) is applied once by the sweep", async (t) => {
  await using t0 = await outboxApp();
  const record = t0.follow();
  // The deciding commit, then "the process dies": apply() is never called.
  const committed = await t0.deps.outbox.write(
    t0.deps.kv.atomic().set(["decision", record.id], "made"),
    record,
  ).commit();
  assert.ok(committed.ok);

  await t.step("within the grace period the sweep leaves it to its request", async () => {
    assert.deepEqual(await t0.deps.outbox.sweep(), { applied: 0, failed: 0 });
    assert.equal((await t0.outboxKeys()).length, 1);
  });

  await t.step("after it, the sweep applies it: the notification arrives, once", async () => {
    t0.clock.advance(SWEEP_GRACE_MS + 1000);
    assert.deepEqual(await t0.deps.outbox.sweep(), { applied: 1, failed: 0 });
    await t0.jobsSettled("notify");
    assert.equal((await t0.notifications()).length, 1);
    assert.deepEqual(await t0.outboxKeys(), []);
  });

  await t.step("sweeping again changes nothing", async () => {
    assert.deepEqual(await t0.deps.outbox.sweep(), { applied: 0, failed: 0 });
    const jobs = t0.logs.filter((record) => record.job === "notify" && record.msg === "job done");
    assert.equal(jobs.length, 1);
    assert.equal((await t0.notifications()).length, 1);
  });
});

Deno.test("[outbox] 100 applies racing 20 sweeps still have one effect", async () => {
  await using t0 = await outboxApp();
  const record = t0.follow();
  await t0.deps.outbox.write(t0.deps.kv.atomic(), record).commit();
  t0.clock.advance(SWEEP_GRACE_MS + 1000);
  // A hundred request-side applies and twenty sweeps (one per isolate, say) at the same moment.
  await Promise.all([
    ...Array.from({ length: 100 }, () => t0.deps.outbox.apply(record)),
    ...Array.from({ length: 20 }, () => t0.deps.outbox.sweep()),
  ]);
  await t0.jobsSettled("notify");
  assert.deepEqual(await t0.outboxKeys(), []);
  const [notification, ...more] = await t0.notifications();
  assert.equal(more.length, 0);
  assert.equal(notification.count, 1);
  assert.equal(
    t0.logs.filter((entry) => entry.job === "notify" && entry.msg === "job done").length,
    1,
    "the job itself ran once, however often it was enqueued",
  );
});

Deno.test("[outbox] a failing apply keeps the record, counts the attempt, and the sweep retries it", async () => {
  await using t0 = await outboxApp();
  let failuresLeft = 1;
  const applied: string[] = [];
  t0.deps.outbox.register("flaky", z.object({ value: z.string() }), (payload) => {
    if (failuresLeft-- > 0) return Promise.reject(new Error("history database unreachable"));
    applied.push(payload.value);
    return Promise.resolve();
  });
  const record = t0.deps.outbox.record("flaky", { value: "history row" });
  await t0.deps.outbox.write(t0.deps.kv.atomic(), record).commit();

  await t0.deps.outbox.apply(record); // never throws: the decision is already made
  const [left] = await Array.fromAsync(
    t0.deps.kv.list<{ attempts: number; lastError: string }>({ prefix: ["outbox"] }),
  );
  assert.deepEqual([left.value.attempts, left.value.lastError], [
    1,
    "history database unreachable",
  ]);
  assert.ok(
    t0.logs.some((entry) => entry.msg === "outbox apply failed" && entry.recordId === record.id),
  );

  t0.clock.advance(SWEEP_GRACE_MS + 1000);
  assert.deepEqual(await t0.deps.outbox.sweep(), { applied: 1, failed: 0 });
  assert.deepEqual(applied, ["history row"]);
  assert.deepEqual(await t0.outboxKeys(), []);
});

Deno.test("[outbox] a record of an unregistered kind is refused before anything is committed", async () => {
  await using t0 = await createTestApp();
  assert.throws(() => t0.deps.outbox.record("no-such-kind", {}), /not registered/);
});
