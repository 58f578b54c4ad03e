// Two isolates on one embedded KV file, as `deno serve --parallel` runs them (helpers/isolates.ts):
// decisions made on both at once never answer 500, and what one isolate decides reaches sockets on
// the other: chat, receipts, typing, presence, a resume, matchmaking and call signalling.
import assert from "node:assert/strict";
import { count, eq } from "drizzle-orm";
import { likes, messages } from "../db/schema.ts";
import { SESSION_TRUST_MS } from "../kv/auth/sessions.ts";
import { blockKey, revokedTokenKey } from "../kv/keys.ts";
import { type Increment, kvCache } from "../providers/cache.ts";
import { twoIsolates } from "./helpers/isolates.ts";
import { type Member, members } from "./helpers/members.ts";
import { connect, TestSocket } from "./helpers/sockets.ts";

type Isolate = Awaited<ReturnType<typeof twoIsolates>>["first"];

async function socket(isolate: Isolate, who: Member, query = "") {
  const opened = await TestSocket.open(`${isolate.url}${query}`, who.token);
  await opened.roundTrip();
  return opened;
}

Deno.test("[isolates] likes and chat sends split over two isolates at once: every one answers 2xx, none 500", async () => {
  await using isolates = await twoIsolates();
  const { first, second } = isolates;
  const isolate = (i: number) => i % 2 ? second : first;
  const crowd = await members(first.deps, 120);
  const post = await first.http("POST", "/api/posts", {
    token: crowd[0].token,
    body: { text: "liked from both isolates" },
  });
  assert.equal(post.status, 201);

  const liked = await Promise.all(
    crowd.map((who, i) =>
      isolate(i).http("POST", `/api/posts/${post.body.id}/like`, { token: who.token })
    ),
  );
  assert.deepEqual(new Set(liked.map((answer) => answer.status)), new Set([200]));

  // Ten pairs, each side sending ten messages at once, each message through either isolate.
  const pairs = Array.from({ length: 10 }, (_, i) => [crowd[2 * i], crowd[2 * i + 1]] as const);
  for (const [i, [a, b]] of pairs.entries()) await connect(isolate(i).http, a, b);
  const sent = await Promise.all(
    pairs.flatMap(([a, b]) =>
      [a, b].flatMap((from, side) =>
        Array.from(
          { length: 10 },
          (_, i) =>
            isolate(i + side).http(
              "POST",
              `/api/conversations/${(side ? a : b).user.id}/messages`,
              {
                token: from.token,
                body: { text: `m${i}`, tempId: `${from.user.id}-${i}` },
              },
            ),
        )
      )
    ),
  );
  assert.deepEqual(new Set(sent.map((answer) => answer.status)), new Set([201]));
  await first.deps.outbox.flush();
  await second.deps.outbox.flush();
  const db = first.deps.database.db;
  const [{ n: likeRows }] = await db.select({ n: count() }).from(likes).where(
    eq(likes.postId, post.body.id),
  );
  assert.equal(likeRows, 120);
  // Each conversation numbers its 20 messages 1..20, once each.
  const stored = await db.select({ conversationId: messages.conversationId, seq: messages.seq })
    .from(messages);
  const byConversation = Map.groupBy(stored, (row) => row.conversationId);
  assert.deepEqual(
    new Set(sent.map((answer) => answer.body.conversationId)),
    new Set(byConversation.keys()),
  );
  assert.equal(byConversation.size, 10);
  for (const rows of byConversation.values()) {
    assert.deepEqual(
      rows.map((row) => row.seq).sort((x, y) => x - y),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
  }
  const failures = [...first.logs, ...second.logs].filter((line) => line.level === "error");
  assert.deepEqual(failures, []);
});

Deno.test("[isolates] a send decided on what its isolate remembers: numbered after the other isolate's sends, refused once blocked there, a reused tempId replayed", async () => {
  await using isolates = await twoIsolates();
  const { first, second } = isolates;
  const [ada, bob] = await members(first.deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  await connect(first.http, ada, bob);
  const send = (isolate: Isolate, from: Member, to: Member, tempId: string) =>
    isolate.http("POST", `/api/conversations/${to.user.id}/messages`, {
      token: from.token,
      body: { text: tempId, tempId },
    });
  // Ada's sends on the first isolate leave it knowing the conversation; Bob's on the second
  // change it behind the first's back, and Ada's next send there must notice.
  const answers = [
    await send(first, ada, bob, "a1"),
    await send(first, ada, bob, "a2"),
    await send(second, bob, ada, "b1"),
    await send(first, ada, bob, "a3"),
    await send(second, bob, ada, "b2"),
    await send(first, ada, bob, "a4"),
  ];
  assert.deepEqual(answers.map((answer) => answer.status), [201, 201, 201, 201, 201, 201]);

  const again = await send(first, ada, bob, "a4");
  assert.equal(again.status, 201);
  assert.equal(again.headers.get("idempotent-replayed"), "true");
  assert.equal(again.body.id, answers[5].body.id);

  // A checked key that changes with no event in either log (written here directly: a block
  // whose commit has landed on the other isolate before anything it causes) refuses the send
  // decided from memory; once it is gone again, the next send reads afresh and passes.
  assert.equal((await send(first, ada, bob, "a5")).status, 201);
  const block = blockKey(bob.user.id, ada.user.id);
  await second.deps.kv.set(block, { at: Date.now() });
  assert.equal((await send(first, ada, bob, "a6")).status, 403);
  await second.deps.kv.delete(block);
  assert.equal((await send(first, ada, bob, "a6")).status, 201);

  assert.equal(
    (await second.http("POST", `/api/blocks/${ada.user.id}`, { token: bob.token })).status,
    204,
  );
  const blocked = await send(first, ada, bob, "a7");
  assert.equal(blocked.status, 403);
  assert.equal(blocked.body.code, "not-connected");

  await first.deps.outbox.flush();
  await second.deps.outbox.flush();
  // One conversation, numbered in the order the sends were answered, each message once.
  const stored = await first.deps.database.db
    .select({ text: messages.text, seq: messages.seq, conversationId: messages.conversationId })
    .from(messages).orderBy(messages.seq);
  assert.deepEqual(stored.map((row) => [row.text, row.seq]), [
    ["a1", 1],
    ["a2", 2],
    ["b1", 3],
    ["a3", 4],
    ["b2", 5],
    ["a4", 6],
    ["a5", 7],
    ["a6", 8],
  ]);
  assert.equal(new Set(stored.map((row) => row.conversationId)).size, 1);
});

Deno.test("[isolates] chat, receipts, typing and presence cross isolates; a socket resumes on the other one", async (t) => {
  await using isolates = await twoIsolates();
  const { first, second } = isolates;
  const [ada, bob] = await members(first.deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  await connect(first.http, ada, bob);
  await using adaSocket = await socket(first, ada);
  let lastEventId = "";

  await t.step("Bob comes online on the second isolate: Ada, on the first, sees it", async () => {
    await using bobSocket = await socket(second, bob);
    await adaSocket.waitFor(
      "presence",
      (f) => f.data.userId === bob.user.id && f.data.status === "online",
    );
    assert.deepEqual(
      [first.deps.hub.localSockets(bob.user.id), second.deps.hub.localSockets(bob.user.id)],
      [0, 1],
    );

    adaSocket.send("typing", { toUserId: bob.user.id });
    const [typing] = await bobSocket.waitFor("typing");
    assert.equal(typing.data.from, ada.user.id);

    adaSocket.send("private-message", { toUserId: bob.user.id, tempId: "t1", text: "across" });
    const [incoming] = await bobSocket.waitFor("incoming-message");
    assert.equal(incoming.data.text, "across");
    const [delivered] = await adaSocket.waitFor("message-delivered");
    assert.equal(delivered.data.tempId, "t1");
    bobSocket.send("message-read", {
      conversationId: incoming.data.conversationId,
      messageId: incoming.data.messageId,
    });
    const [read] = await adaSocket.waitFor("message-read");
    assert.equal(read.data.conversationId, incoming.data.conversationId);
    lastEventId = incoming.id!;
  });

  await t.step("Bob leaves: Ada sees him offline", async () => {
    await adaSocket.waitFor(
      "presence",
      (f) => f.data.userId === bob.user.id && f.data.status === "offline",
    );
  });

  await t.step(
    "what was sent meanwhile is resumed on the first isolate, in order, once",
    async () => {
      for (let i = 0; i < 20; i++) {
        adaSocket.send("private-message", {
          toUserId: bob.user.id,
          tempId: `away-${i}`,
          text: `${i}`,
        });
      }
      await adaSocket.waitFor("message-delivered", (f) => f.data.tempId.startsWith("away-"), 20);
      await using back = await socket(first, bob, `?lastEventId=${lastEventId}`);
      const resumed = await back.waitFor("incoming-message", () => true, 20);
      await back.roundTrip();
      assert.deepEqual(
        back.received("incoming-message").map((f) => f.data.text),
        Array.from({ length: 20 }, (_, i) => `${i}`),
      );
      const ids = resumed.map((f) => Number(f.id));
      assert.deepEqual(ids, [...ids].sort((x, y) => x - y));
    },
  );
});

Deno.test("[isolates] two joiners on different isolates: found-match on both sockets, and the call's signals cross", async () => {
  await using isolates = await twoIsolates();
  const { first, second } = isolates;
  const [ada, bob] = await members(first.deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  await using adaSocket = await socket(first, ada);
  await using bobSocket = await socket(second, bob);

  const join = (isolate: Isolate, who: Member) =>
    isolate.http("POST", "/api/match/queue", {
      token: who.token,
      body: { intent: "pair-programming" },
    });
  assert.equal((await join(first, ada)).status, 202);
  assert.equal((await join(second, bob)).status, 202);
  const [toAda] = await adaSocket.waitFor("found-match");
  const [toBob] = await bobSocket.waitFor("found-match");
  assert.equal(toAda.data.matchId, toBob.data.matchId);
  assert.deepEqual([toAda.data.peer.id, toBob.data.peer.id], [bob.user.id, ada.user.id]);
  const matchId = toAda.data.matchId;

  const offer = { type: "offer", sdp: "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\n" };
  bobSocket.send("offer", { matchId, payload: offer });
  const [received] = await adaSocket.waitFor("offer");
  assert.deepEqual(received.data, { matchId, fromUserId: bob.user.id, payload: offer });
  adaSocket.send("answer", { matchId, payload: { type: "answer", sdp: "v=0\r\n" } });
  await bobSocket.waitFor("answer");
  for (let i = 0; i < 3; i++) {
    adaSocket.send("ice-candidate", { matchId, payload: { candidate: `candidate:${i}` } });
  }
  const candidates = await bobSocket.waitFor("ice-candidate", () => true, 3);
  assert.deepEqual(
    candidates.map((frame) => frame.data.payload.candidate),
    ["candidate:0", "candidate:1", "candidate:2"],
  );
  await Promise.all([adaSocket.roundTrip(), bobSocket.roundTrip()]);
  assert.equal(adaSocket.received("offer").length, 1, "once, not once per isolate");
  assert.equal(bobSocket.received("answer").length, 1);

  // Ending on one isolate ends it for the socket on the other.
  const ended = await second.http("POST", `/api/match/${matchId}/end`, { token: bob.token });
  assert.equal(ended.status, 200, JSON.stringify(ended.body));
  await adaSocket.waitFor("call-ended", (f) => f.data.matchId === matchId);
});

/** The `jti` of a signed token (its payload is plain base64url JSON). */
function tokenId(token: string): string {
  const payload = token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
  return JSON.parse(atob(payload)).jti;
}

/** Asks `ask` until it answers `status`, for at most `ms` of wall time; the answers it saw. */
async function until(status: number, ms: number, ask: () => Promise<{ status: number }>) {
  const seen: number[] = [];
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    const answer = await ask();
    seen.push(answer.status);
    if (answer.status === status) return seen;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`not ${status} within ${ms} ms: saw ${seen.join(", ")}`);
}

Deno.test("[isolates] a session revoked on one isolate is refused on the other: at once over BroadcastChannel, within SESSION_TRUST_MS without it", async (t) => {
  await using isolates = await twoIsolates();
  const { first, second } = isolates;
  const [ada, bob] = await members(first.deps, 2);
  const me = (isolate: Isolate, who: Member) =>
    isolate.http("GET", "/api/auth/me", { token: who.token });

  await t.step("a logout on the first isolate reaches the second's memory", async () => {
    assert.equal((await me(second, ada)).status, 200); // remembered there as live
    const out = await first.http("POST", "/api/auth/logout", { token: ada.token });
    assert.ok(out.status < 300, JSON.stringify(out.body));
    assert.equal((await me(first, ada)).status, 401);
    // The second isolate's clock stands still: only the notice can make it refuse.
    await until(401, 2_000, () => me(second, ada));
  });

  await t.step(
    "a revocation no notice announces is refused once SESSION_TRUST_MS has passed",
    async () => {
      assert.equal((await me(second, bob)).status, 200);
      // As an isolate the channel does not reach would leave it: in KV only.
      await first.deps.kv.set(revokedTokenKey(tokenId(bob.token)), true, { expireIn: 60_000 });
      second.clock.advance(SESSION_TRUST_MS - 1);
      assert.equal((await me(second, bob)).status, 200, "trusted within the bound (documented)");
      second.clock.advance(1);
      assert.equal((await me(second, bob)).status, 401, "refused once the bound has passed");
    },
  );
});

Deno.test("[isolates] the write budget: one isolate is exact under concurrency; another overshoots by at most the writes of one settlement", async () => {
  // Each isolate's cache can hold its counter's increments, as a slow cache round trip would.
  const holds: Array<{ held: PromiseWithResolvers<void> | null }> = [];
  await using isolates = await twoIsolates({
    env: { RATE_LIMIT_API: "10/1m" },
    cache: (kv, clock) => {
      const inner = kvCache(kv, clock.now);
      const hold = { held: null as PromiseWithResolvers<void> | null };
      holds.push(hold);
      return Object.assign(Object.create(inner), {
        kind: inner.kind,
        async incrementMany(increments: Increment[]) {
          await hold.held?.promise;
          return await inner.incrementMany(increments);
        },
      });
    },
  });
  const { first, second } = isolates;
  const [ada] = await members(first.deps, 1);
  const post = (isolate: Isolate) =>
    isolate.http("POST", "/api/posts", { token: ada.token, body: { text: "budget" } });

  const burst = await Promise.all(Array.from({ length: 15 }, () => post(first)));
  assert.equal(burst.filter((answer) => answer.status === 201).length, 10);
  assert.equal(burst.filter((answer) => answer.status === 429).length, 5);

  // The second isolate has never seen Ada's counter; while its first settlement is under way it
  // decides on what it knows, so the writes of that one round trip pass.
  const [, secondHold] = holds;
  secondHold.held = Promise.withResolvers();
  const during = [await post(second), await post(second)];
  assert.deepEqual(during.map((answer) => answer.status), [201, 201]);
  secondHold.held.resolve();
  secondHold.held = null;
  await until(429, 2_000, () => post(second));
  const afterwards = await Promise.all(Array.from({ length: 5 }, () => post(second)));
  assert.deepEqual(new Set(afterwards.map((answer) => answer.status)), new Set([429]));
});

Deno.test("[isolates] the write budget still holds when a settlement outlives its window: the next window is timed from the member's writes", async () => {
  // Settlements wait at a gate the test opens, so one can still be under way when the clock
  // has moved past its window.
  const gate = Promise.withResolvers<void>();
  await using isolates = await twoIsolates({
    env: { RATE_LIMIT_API: "5/1m" },
    cache: (kv, clock) => {
      const inner = kvCache(kv, clock.now);
      return Object.assign(Object.create(inner), {
        kind: inner.kind,
        async incrementMany(increments: Increment[]) {
          await gate.promise;
          return await inner.incrementMany(increments);
        },
      });
    },
  });
  const { first } = isolates;
  const [ada] = await members(first.deps, 1);
  const post = async () =>
    (await first.http("POST", "/api/posts", { token: ada.token, body: { text: "w" } })).status;
  const posts = async (count: number) => {
    const statuses = [];
    for (let i = 0; i < count; i++) statuses.push(await post());
    return statuses;
  };

  assert.equal(await post(), 201); // its settlement waits at the gate
  first.clock.advance(61_000);
  // A new window: five more, whatever the old settlement still carries.
  assert.deepEqual(await posts(7), [201, 201, 201, 201, 201, 429, 429]);
  gate.resolve();
  // Both settlements land in the shared counter's new window: the late one and these five.
  for (let seen = null; seen !== 6;) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    seen = await first.deps.cache.get<number>(`api:${ada.user.id}`);
  }
  // The window the settlement reported is timed from Ada's writes, so it is still on.
  assert.deepEqual(await posts(3), [429, 429, 429]);
});
