// The history writer: decisions answer after their KV commit, and the outbox's writer carries
// their rows to Postgres in batches behind them. What a client sees: everything it was told is
// stored ends up stored, in order, once; one bad record fails alone; and a read right after an
// answer shows it, on this isolate or another.
import assert from "node:assert/strict";
import { eq, sql } from "drizzle-orm";
import { z } from "zod";
import { matches, messages } from "../db/schema.ts";
import { BATCH_MAX, type OutboxRecord } from "../kv/outbox.ts";
import { openKv } from "../kv/store.ts";
import { createTestApp, postgresGate } from "./helpers/app.ts";
import { members } from "./helpers/members.ts";
import { png, upload } from "./helpers/media.ts";
import { connect, servedTestApp, TestSocket } from "./helpers/sockets.ts";

async function chatApp() {
  const t0 = await createTestApp();
  const [ada, bob, cy] = await members(t0.deps, 3);
  await connect(t0.http, ada, bob);
  await connect(t0.http, ada, cy);
  return { t0, ada, bob, cy };
}

const outboxKeys = async (kv: Deno.Kv) =>
  (await Array.fromAsync(kv.list({ prefix: ["outbox"] }))).map((entry) => entry.key);

Deno.test("[history] records handed over one at a time are written in batches of at most BATCH_MAX, oldest first, each once", async () => {
  await using t0 = await createTestApp();
  const calls: number[][] = [];
  t0.deps.outbox.registerBatch("row", z.object({ n: z.number() }), (rows) => {
    calls.push(rows.map((row) => row.n));
    return Promise.resolve();
  });
  const records = Array.from({ length: 1200 }, (_, n) => t0.deps.outbox.record("row", { n }));
  for (let start = 0; start < records.length; start += 100) {
    const chunk = records.slice(start, start + 100);
    assert.ok((await t0.deps.outbox.write(t0.deps.kv.atomic(), ...chunk).commit()).ok);
  }
  // As 1,200 requests would, each after its own commit, with no await in between.
  for (const record of records) t0.deps.outbox.afterCommit(record);
  await t0.deps.outbox.flush();
  assert.ok(calls.every((call) => call.length <= BATCH_MAX), "no batch is larger than the bound");
  assert.ok(calls.length <= 4, `1,200 records took ${calls.length} writes`);
  assert.deepEqual(calls.flat(), records.map((_, n) => n), "each once, oldest first");
  assert.deepEqual(await outboxKeys(t0.deps.kv), []);
});

Deno.test("[history] records that arrive within the wait are written together, without a flush", async () => {
  await using t0 = await createTestApp({ realClock: true });
  const written = Promise.withResolvers<number[]>();
  t0.deps.outbox.registerBatch("row", z.object({ n: z.number() }), (rows) => {
    written.resolve(rows.map((row) => row.n));
    return Promise.resolve();
  });
  const records = Array.from({ length: 20 }, (_, n) => t0.deps.outbox.record("row", { n }));
  assert.ok((await t0.deps.outbox.write(t0.deps.kv.atomic(), ...records).commit()).ok);
  t0.deps.outbox.afterCommit(...records.slice(0, 10));
  t0.deps.outbox.afterCommit(...records.slice(10));
  assert.deepEqual(await written.promise, records.map((_, n) => n), "one write for all 20");
});

Deno.test("[history] 200 concurrent sends in two conversations: every acknowledged message stored once, each conversation in order", async () => {
  const { t0, ada, bob, cy } = await chatApp();
  await using _ = t0;
  const send = (from: typeof ada, to: typeof ada, n: number) =>
    t0.http("POST", `/api/conversations/${to.user.id}/messages`, {
      token: from.token,
      body: { text: `message ${n}`, tempId: `t-${from.user.id}-${to.user.id}-${n}` },
    });
  const answers = await Promise.all(
    Array.from({ length: 100 }, (_, n) => [send(ada, bob, n), send(cy, ada, n)]).flat(),
  );
  assert.ok(answers.every((answer) => answer.status === 201), "every send acknowledged");
  const conversations = new Set(answers.map((answer) => answer.body.conversationId));
  assert.equal(conversations.size, 2);
  await t0.deps.outbox.flush();
  for (const conversationId of conversations) {
    const rows = await t0.deps.database.db.select().from(messages)
      .where(eq(messages.conversationId, conversationId)).orderBy(messages.seq);
    assert.deepEqual(rows.map((row) => row.seq), Array.from({ length: 100 }, (_, n) => n + 1));
    const acked = answers.filter((answer) => answer.body.conversationId === conversationId);
    assert.deepEqual(
      new Set(rows.map((row) => row.id)),
      new Set(acked.map((answer) => answer.body.id)),
      "exactly the acknowledged messages",
    );
    // Seq is the order KV decided; time follows it.
    for (let i = 1; i < rows.length; i++) {
      assert.ok(rows[i].createdAt >= rows[i - 1].createdAt);
    }
  }
  assert.deepEqual(await outboxKeys(t0.deps.kv), []);
});

Deno.test("[history] one message storage refuses fails alone: the rest of its batch is stored, it becomes a dead letter", async () => {
  const { t0, ada, bob } = await chatApp();
  await using _ = t0;
  const conversationId = crypto.randomUUID();
  const records: OutboxRecord[] = Array.from(
    { length: 30 },
    (_, n) =>
      t0.deps.outbox.record("chat-message", {
        id: crypto.randomUUID(),
        conversationId,
        seq: n + 1,
        fromUserId: ada.user.id,
        toUserId: bob.user.id,
        // Written before the edge refused NUL: Postgres text cannot hold it (SQLSTATE 22021).
        text: n === 13 ? "a\u0000b" : `message ${n}`,
        tempId: `t-${n}`,
        createdAt: t0.clock.now() + n,
      }),
  );
  assert.ok((await t0.deps.outbox.write(t0.deps.kv.atomic(), ...records).commit()).ok);
  t0.deps.outbox.afterCommit(...records);
  await t0.deps.outbox.flush();
  const rows = await t0.deps.database.db.select().from(messages)
    .where(eq(messages.conversationId, conversationId)).orderBy(messages.seq);
  assert.deepEqual(
    rows.map((row) => row.seq),
    Array.from({ length: 30 }, (_, n) => n + 1).filter((seq) => seq !== 14),
  );
  assert.deepEqual(await outboxKeys(t0.deps.kv), []);
  const [admin] = await members(t0.deps, 1, { role: "admin" });
  const letters = await t0.http("GET", "/api/admin/dead-letters", { token: admin.token });
  assert.deepEqual(letters.body.items.map((letter: { id: string }) => letter.id), [records[13].id]);
});

Deno.test("[history] read your writes: a read right after the answer shows it, even when the writer of the isolate that answered is still busy", async (t) => {
  const kv = await openKv(":memory:");
  // Isolate one's database: its writes wait at a gate until the test opens it.
  const gate = Promise.withResolvers<void>();
  const first = await createTestApp({ kv });
  const handle = first.deps.database;
  const gatedDb = new Proxy(handle.db, {
    get(db, name) {
      const value = Reflect.get(db, name, db);
      if (name !== "execute") return typeof value === "function" ? value.bind(db) : value;
      return async (...args: unknown[]) => {
        await gate.promise;
        return (value as (...a: unknown[]) => unknown).apply(db, args);
      };
    },
  });
  const second = await createTestApp({
    kv,
    database: handle,
    env: { JWT_SECRET: first.deps.config.JWT_SECRET },
  });
  first.deps.database = { ...handle, db: gatedDb };
  try {
    const [ada, bob] = await members(second.deps, 2);
    await connect(second.http, ada, bob);
    /** Ada sends `text` through `sender`; Bob reads the conversation on the second isolate. */
    const sendThenRead = async (sender: typeof first, text: string) => {
      const sent = await sender.http("POST", `/api/conversations/${bob.user.id}/messages`, {
        token: ada.token,
        body: { text, tempId: `t-${text}` },
      });
      assert.equal(sent.status, 201, JSON.stringify(sent.body));
      const page = await second.http(
        "GET",
        `/api/conversations/${sent.body.conversationId}/messages`,
        { token: bob.token },
      );
      return page.body.items.map((item: { text: string }) => item.text);
    };

    await t.step("on the same isolate: the conversation lists the message at once", async () => {
      assert.deepEqual(await sendThenRead(second, "same isolate"), ["same isolate"]);
    });

    await t.step("on another isolate, while the answering isolate's write waits", async () => {
      assert.deepEqual(await sendThenRead(first, "other isolate"), [
        "other isolate",
        "same isolate",
      ]);
    });

    await t.step("the late write of the first isolate adds nothing twice", async () => {
      gate.resolve();
      await first.deps.outbox.flush();
      const rows = await handle.db.select().from(messages);
      assert.deepEqual(rows.map((row) => row.text).sort(), ["other isolate", "same isolate"]);
      assert.deepEqual(await outboxKeys(kv), []);
    });
  } finally {
    gate.resolve();
    await second[Symbol.asyncDispose]();
    await first[Symbol.asyncDispose](); // gives the database back
    kv.close();
  }
});

Deno.test("[history] the hot paths ask Postgres nothing: join → found-match, send → deliver, and a file sent and opened, while it is held", async () => {
  await using t0 = await servedTestApp();
  const [ada, bob] = await members(t0.deps, 2);
  await connect(t0.http, ada, bob);
  const picture = png(2048);
  const file = (await upload(t0.app, ada.token, picture, { to: "/api/attachments" })).body;
  // Signup keeps each member's card (name, gender) in KV; members() does as signup does.
  await using adaSocket = await TestSocket.open(t0.url, ada.token);
  await using bobSocket = await TestSocket.open(t0.url, bob.token);
  await t0.deps.outbox.flush();

  const gate = postgresGate(t0.deps.database);
  gate.hold();
  try {
    const hotPaths = async () => {
      for (const who of [ada, bob]) {
        const join = { token: who.token, body: { intent: "pairing" } };
        assert.equal((await t0.http("POST", "/api/match/queue", join)).status, 202);
      }
      const [[found], [seen]] = await Promise.all([
        adaSocket.waitFor("found-match"),
        bobSocket.waitFor("found-match"),
      ]);
      assert.equal(found.data.matchId, seen.data.matchId);

      adaSocket.send("private-message", { toUserId: bob.user.id, tempId: "hot-1", text: "hi" });
      const [[incoming], [delivered]] = await Promise.all([
        bobSocket.waitFor("incoming-message"),
        adaSocket.waitFor("message-delivered"),
      ]);
      assert.equal(incoming.data.text, "hi");
      assert.equal(delivered.data.tempId, "hot-1");

      // A file: sent, then opened by Bob (the redirect, then the signed link's bytes).
      const attachmentIds = [file.id];
      adaSocket.send("private-message", { toUserId: bob.user.id, tempId: "hot-2", attachmentIds });
      await bobSocket.waitFor("incoming-message", (frame) => frame.data.attachments.length === 1);
      const asBob = {
        headers: { authorization: `Bearer ${bob.token}` },
        redirect: "manual" as const,
      };
      const redirect = await t0.app.request(file.url, asBob);
      assert.equal(redirect.status, 302);
      const opened = await t0.app.request(redirect.headers.get("location")!);
      assert.deepEqual(new Uint8Array(await opened.arrayBuffer()), picture);
      return { found, incoming };
    };
    // A query on the way would wait at the gate, and the answer with it: fail instead of hanging.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const { found, incoming } = await Promise.race([
      hotPaths(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("a hot path waited on Postgres")), 5_000);
      }),
    ]).finally(() => clearTimeout(timer));
    // The writer starts within its batch wait (5 ms, later on a busy machine), behind the answers.
    for (const until = Date.now() + 5_000; gate.asked === 0 && Date.now() < until;) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.ok(gate.asked > 0, "the history writer did ask (and waits), behind the answers");

    gate.release();
    await t0.deps.outbox.flush();
    const [match] = await t0.deps.database.db.select().from(matches)
      .where(eq(matches.id, found.data.matchId));
    assert.ok(match, "the match reached Postgres once it answered again");
    const [message] = await t0.deps.database.db.select().from(messages)
      .where(eq(messages.id, incoming.data.messageId));
    assert.equal(message.text, "hi");
  } finally {
    gate.release();
  }
});

Deno.test("[history] the maintenance cron vacuums PGlite, which has no autovacuum of its own", async () => {
  await using t0 = await createTestApp();
  await members(t0.deps, 3);
  const lastVacuum = async () => {
    const result = await t0.deps.database.db.execute(
      sql`select last_vacuum, last_analyze from pg_stat_user_tables where relname = 'users'`,
    );
    return (result as unknown as { rows: Record<string, unknown>[] }).rows[0];
  };
  assert.deepEqual(await lastVacuum(), { last_vacuum: null, last_analyze: null });
  await t0.deps.database.maintain();
  const after = await lastVacuum();
  assert.ok(after.last_vacuum !== null && after.last_analyze !== null, JSON.stringify(after));
});

Deno.test("[history] matchmaking reads members' names from KV, and a profile edit reaches it at once", async () => {
  await using t0 = await createTestApp();
  const [ada, bob] = await members(t0.deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  const edited = await t0.http("PATCH", "/api/profile", {
    token: ada.token,
    body: { name: "Ada Lovelace", gender: "female" },
  });
  assert.equal(edited.status, 200, JSON.stringify(edited.body));
  for (const who of [ada, bob]) {
    const join = { token: who.token, body: { intent: "pairing" } };
    assert.equal((await t0.http("POST", "/api/match/queue", join)).status, 202);
  }
  const current = await t0.http("GET", "/api/match/current", { token: bob.token });
  assert.deepEqual(
    [current.body.peer.name, current.body.peer.gender],
    ["Ada Lovelace", "female"],
  );
});
