import assert from "node:assert/strict";
import { z } from "zod";
import { Outbox, OUTBOX_MAX_ATTEMPTS, type OutboxRecord, SWEEP_GRACE_MS } from "../kv/outbox.ts";
import { jobRecord } from "../workflows/outbox-jobs.ts";
import { assertProblem, createTestApp, signUp } from "./helpers/app.ts";
import { members } from "./helpers/members.ts";

/** An app with two members and an outbox record that notifies Ada of Bob's follow. */
async function outboxApp() {
  const t0 = await createTestApp();
  const [ada, bob] = await Promise.all([signUp(t0.http), signUp(t0.http)]);
  const [admin] = await members(t0.deps, 1, { role: "admin" });
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
  /** Stores records as their deciding commits would, a hundred per commit, without applying. */
  const commitUnapplied = async (records: OutboxRecord[]) => {
    for (let start = 0; start < records.length; start += 100) {
      const batch = records.slice(start, start + 100);
      assert.ok((await t0.deps.outbox.write(t0.deps.kv.atomic(), ...batch).commit()).ok);
    }
  };
  const deadLetters = async () => {
    const items = [];
    let cursor = "";
    do {
      const page = await t0.http("GET", `/api/admin/dead-letters?limit=100${cursor}`, {
        token: admin.token,
      });
      assert.equal(page.status, 200);
      items.push(...page.body.items);
      cursor = page.body.nextCursor ? `&cursor=${page.body.nextCursor}` : "";
    } while (cursor);
    return items;
  };
  return {
    ...t0,
    ada,
    bob,
    admin,
    follow,
    notifications,
    outboxKeys,
    commitUnapplied,
    deadLetters,
  };
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
    assert.deepEqual(await t0.deps.outbox.sweep(), { applied: 0, failed: 0, deadLettered: 0 });
    assert.equal((await t0.outboxKeys()).length, 1);
  });

  await t.step("after it, the sweep applies it: the notification arrives, once", async () => {
    t0.clock.advance(SWEEP_GRACE_MS + 1000);
    assert.deepEqual(await t0.deps.outbox.sweep(), { applied: 1, failed: 0, deadLettered: 0 });
    await t0.jobsSettled("notify");
    assert.equal((await t0.notifications()).length, 1);
    assert.deepEqual(await t0.outboxKeys(), []);
  });

  await t.step("sweeping again changes nothing", async () => {
    assert.deepEqual(await t0.deps.outbox.sweep(), { applied: 0, failed: 0, deadLettered: 0 });
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
    if (failuresLeft-- > 0) return Promise.reject(new Error("history row refused"));
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
    "history row refused",
  ]);
  assert.ok(
    t0.logs.some((entry) => entry.msg === "outbox apply failed" && entry.recordId === record.id),
  );

  t0.clock.advance(SWEEP_GRACE_MS + 1000);
  assert.deepEqual(await t0.deps.outbox.sweep(), { applied: 1, failed: 0, deadLettered: 0 });
  assert.deepEqual(applied, ["history row"]);
  assert.deepEqual(await t0.outboxKeys(), []);
});

Deno.test("[outbox] a record of an unregistered kind is refused before anything is committed", async () => {
  await using t0 = await createTestApp();
  assert.throws(() => t0.deps.outbox.record("no-such-kind", {}), /not registered/);
});

Deno.test("[outbox] 1,000 records that keep failing never hold back the others; they end as dead letters an admin replays", async (t) => {
  await using t0 = await outboxApp();
  let broken = true;
  const applied: number[] = [];
  t0.deps.outbox.register("history-row", z.object({ n: z.number() }), (payload) => {
    if (broken) return Promise.reject(new Error("history row refused"));
    applied.push(payload.n);
    return Promise.resolve();
  });
  const failing = Array.from(
    { length: 1000 },
    (_, n) => t0.deps.outbox.record("history-row", { n }),
  );
  await t0.commitUnapplied(failing);
  const ordinary = t0.follow(); // younger than all of them: last in the sweep's order
  await t0.commitUnapplied([ordinary]);
  t0.clock.advance(SWEEP_GRACE_MS + 1000);

  await t.step(
    "one sweep pages past all 1,000 failures and applies the record behind them",
    async () => {
      const swept = await t0.deps.outbox.sweep();
      assert.deepEqual(swept, { applied: 1, failed: 1000, deadLettered: 0 });
      await t0.jobsSettled("notify");
      assert.equal((await t0.notifications()).length, 1, "the notification behind them arrived");
      assert.equal((await t0.outboxKeys()).length, 1000);
    },
  );

  await t.step(
    `after ${OUTBOX_MAX_ATTEMPTS} attempts each one is a dead letter, payload kept`,
    async () => {
      for (let sweep = 2; sweep < OUTBOX_MAX_ATTEMPTS; sweep++) {
        assert.deepEqual(await t0.deps.outbox.sweep(), {
          applied: 0,
          failed: 1000,
          deadLettered: 0,
        });
      }
      assert.deepEqual(await t0.deps.outbox.sweep(), { applied: 0, failed: 0, deadLettered: 1000 });
      assert.deepEqual(await t0.outboxKeys(), [], "the outbox is empty again");
      const letters = await t0.deadLetters();
      assert.equal(letters.length, 1000);
      assert.deepEqual(letters[0], {
        id: failing[0].id,
        source: "outbox",
        name: "history-row",
        payload: { n: 0 },
        attempts: OUTBOX_MAX_ATTEMPTS,
        lastError: "history row refused",
        failedAt: new Date(t0.clock.now()).toISOString(),
      });
      assert.deepEqual(letters.map((letter) => letter.payload.n), failing.map((_, n) => n));
    },
  );

  await t.step(
    "an admin replays one after the cause is fixed: applied once, gone from the list",
    async () => {
      broken = false;
      const path = `/api/admin/dead-letters/${failing[7].id}/replay`;
      const answers = await Promise.all(
        Array.from({ length: 10 }, () => t0.http("POST", path, { token: t0.admin.token })),
      );
      assert.deepEqual(answers.map((answer) => answer.status).sort(), [202, ...Array(9).fill(404)]);
      const accepted = answers.find((answer) => answer.status === 202)!;
      assert.deepEqual(accepted.body, {
        jobId: failing[7].id,
        name: "history-row",
        source: "outbox",
      });
      assert.deepEqual(applied, [7]);
      // The replay is an admin action: its audit entry is written behind it, once.
      const log = await t0.http("GET", "/api/admin/audit", { token: t0.admin.token });
      assert.deepEqual(
        log.body.items.map((entry: { action: string; subject: { id: string } }) => [
          entry.action,
          entry.subject.id,
        ]),
        [["dead-letter.replay", failing[7].id]],
      );
      assert.deepEqual(await t0.outboxKeys(), []);
      assert.equal((await t0.deadLetters()).length, 999);
    },
  );

  await t.step("a replay that fails again holds back nothing behind it in the sweep", async () => {
    const audited: string[] = [];
    t0.deps.outbox.register("audit-row", z.object({ what: z.string() }), (payload) => {
      audited.push(payload.what);
      return Promise.resolve();
    });
    const behind = t0.deps.outbox.record("audit-row", { what: "written before the replay" });
    await t0.commitUnapplied([behind]);
    t0.clock.advance(SWEEP_GRACE_MS + 1000);
    broken = true;
    const replayed = await t0.http("POST", `/api/admin/dead-letters/${failing[8].id}/replay`, {
      token: t0.admin.token,
    });
    assert.equal(replayed.status, 202);
    // The replayed record keeps its old id (first in the outbox's order) and fails again.
    assert.deepEqual(await t0.deps.outbox.sweep(), { applied: 1, failed: 1, deadLettered: 0 });
    assert.deepEqual(audited, ["written before the replay"]);
  });
});

Deno.test("[outbox] a record storage refuses (a NUL byte written before the edge refused it) is a dead letter at once", async () => {
  await using t0 = await outboxApp();
  // The chat applier's real Postgres insert: text cannot hold U+0000 (SQLSTATE 22021).
  const poisoned = t0.deps.outbox.record("chat-message", {
    id: crypto.randomUUID(),
    conversationId: crypto.randomUUID(),
    seq: 1,
    fromUserId: t0.ada.user.id,
    toUserId: t0.bob.user.id,
    text: "a\u0000b",
    tempId: "t-1",
    createdAt: t0.clock.now(),
  });
  const ordinary = t0.follow();
  await t0.commitUnapplied([poisoned, ordinary]);
  await t0.deps.outbox.apply(poisoned, ordinary); // never throws
  await t0.jobsSettled("notify");
  assert.equal((await t0.notifications()).length, 1);
  assert.deepEqual(await t0.outboxKeys(), []);
  const [letter, ...more] = await t0.deadLetters();
  assert.equal(more.length, 0);
  assert.equal(letter.id, poisoned.id);
  assert.equal(letter.source, "outbox");
  assert.equal(letter.attempts, 1, "retrying cannot help, so it was not retried");
  assert.equal(letter.payload.text, "a\u0000b");
});

Deno.test("[outbox] apply never throws after a committed decision, even when KV refuses its bookkeeping", async () => {
  await using t0 = await outboxApp();
  const logs: Record<string, unknown>[] = [];
  // The same store, except that every commit fails the way a locked SQLite file does.
  const locked = new Proxy(t0.deps.kv, {
    get(kv, name) {
      if (name !== "atomic") return Reflect.get(kv, name, kv).bind?.(kv) ?? Reflect.get(kv, name);
      return () => {
        const atomic = kv.atomic();
        atomic.commit = () => Promise.reject(new Error("database is locked"));
        return atomic;
      };
    },
  });
  const outbox = new Outbox(locked, t0.clock, (record) => logs.push(record));
  let runs = 0;
  outbox.register("history-row", z.object({}), () => {
    runs++;
    return Promise.reject(new Error("history row refused"));
  });
  const record = outbox.record("history-row", {});
  assert.ok((await outbox.write(t0.deps.kv.atomic(), record).commit()).ok);

  await outbox.apply(record);
  assert.equal(runs, 1);
  assert.deepEqual(logs.map((line) => line.outcome), [
    "retried",
    "bookkeeping failed, left to the sweep",
  ]);
  assert.equal((await t0.outboxKeys()).length, 1, "the record stays for the sweep");
});

Deno.test("[outbox] a database that cannot be reached spends no attempts: nothing is dead-lettered, reads answer 503, and the writer catches up by itself", async (t) => {
  await using t0 = await outboxApp();
  let down = true;
  const applied = new Set<number>();
  let tries = 0;
  t0.deps.outbox.registerBatch("history-row", z.object({ n: z.number() }), (payloads) => {
    tries++;
    if (down) return Promise.reject(new Deno.errors.ConnectionRefused("tcp connect error"));
    for (const payload of payloads) applied.add(payload.n);
    return Promise.resolve();
  });
  const swept = Array.from({ length: 1000 }, (_, n) => t0.deps.outbox.record("history-row", { n }));
  await t0.commitUnapplied(swept);
  t0.clock.advance(SWEEP_GRACE_MS + 1000);

  await t.step("20 sweeps during the outage count nothing and dead-letter nothing", async () => {
    for (let sweep = 0; sweep < 20; sweep++) {
      const result = await t0.deps.outbox.sweep();
      assert.deepEqual(
        [result.applied, result.failed, result.deadLettered],
        [0, 0, 0],
        `sweep ${sweep}`,
      );
      assert.ok(result.deferred! > 0, "the records were put off");
    }
    assert.ok(tries <= 20, `one try per sweep, not per record (${tries})`);
    const stored = await Array.fromAsync(t0.deps.kv.list<OutboxRecord>({ prefix: ["outbox"] }));
    assert.equal(stored.length, 1000);
    assert.ok(stored.every((entry) => entry.value.attempts === 0), "no attempt was counted");
    assert.deepEqual(await t0.deadLetters(), []);
    assert.ok(t0.deps.outbox.outage, "the writer knows the database is away");
  });

  const handed = Array.from({ length: 50 }, (_, n) =>
    t0.deps.outbox.record("history-row", {
      n: 1000 + n,
    }));
  await t.step(
    "records committed meanwhile wait in the paused writer; a read that needs them is 503",
    async () => {
      await t0.commitUnapplied(handed);
      t0.deps.outbox.afterCommit(...handed);
      const read = await t0.http("GET", "/api/conversations", { token: t0.ada.token });
      const problem = assertProblem(read, 503);
      assert.equal(problem.code, "unavailable");
      assert.ok(Number(read.headers.get("retry-after")) >= 1);
    },
  );

  await t.step(
    "the database answers again: the writer writes what it held without being asked",
    async () => {
      down = false;
      await t0.waitForLog((record) =>
        record.msg === "history writer resumed: the database answers again"
      );
      // The writer's own records, with no sweep and no read to push them.
      const deadline = Date.now() + 10_000;
      while (!handed.every((_, n) => applied.has(1000 + n))) {
        assert.ok(Date.now() < deadline, "the writer caught up within 10 s");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(t0.deps.outbox.outage, null);
      const result = await t0.deps.outbox.sweep();
      assert.equal(result.failed + result.deadLettered, 0);
      assert.equal(applied.size, 1050, "every record written once the database came back");
      assert.deepEqual(await t0.outboxKeys(), []);
    },
  );
});
