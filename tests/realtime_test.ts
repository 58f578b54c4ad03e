import { readPresence } from "../kv/presence.ts";
import assert from "node:assert/strict";
import { readEvents } from "../kv/events.ts";
import { holdPresence } from "../kv/presence.ts";
import { openKv } from "../kv/store.ts";
import { assertProblem, createTestApp } from "./helpers/app.ts";
import { members } from "./helpers/members.ts";
import { connect, serveApp, servedTestApp, TestSocket } from "./helpers/sockets.ts";
import { sessionFromToken } from "../routes/middleware/session.ts";
import { revokeToken } from "../kv/auth/sessions.ts";
import { announceSessionsChanged } from "../kv/events.ts";
import { SESSION_ENDED } from "../realtime/hub.ts";
import { FRAME_BURST, FRAMES_PER_SECOND, MAX_QUEUED_FRAMES } from "../realtime/frames.ts";
import { holdingKv } from "./helpers/kv-trips.ts";

/** A served app with members Ada and Bob connected, and Cy connected to nobody. */
async function chatApp(options: Parameters<typeof createTestApp>[0] = {}) {
  const t0 = await servedTestApp(options);
  const [ada, bob, cy] = await members(t0.deps, 3, { name: (i) => ["Ada", "Bob", "Cy"][i] });
  await connect(t0.http, ada, bob);
  return { ...t0, ada, bob, cy };
}

const upgrade = {
  upgrade: "websocket",
  connection: "Upgrade",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-version": "13",
};

Deno.test("[realtime] GET /ws authenticates before it upgrades", async (t) => {
  await using t0 = await chatApp();

  await t.step("no token, a bad token, or a revoked one → 401 problem", async () => {
    assertProblem(await t0.http("GET", "/ws", { headers: upgrade }), 401);
    assertProblem(await t0.http("GET", "/ws?token=not-a-token", { headers: upgrade }), 401);
    await assert.rejects(TestSocket.open(t0.url), /refused/);
  });

  await t.step("a plain GET with a token → 426 naming the upgrade", async () => {
    const answer = await t0.http("GET", "/ws", { token: t0.ada.token });
    assert.equal(assertProblem(answer, 426).type.endsWith("upgrade-required"), true);
    assert.equal(answer.headers.get("upgrade"), "websocket");
  });

  await t.step("a session cookie from a foreign page → 403", async () => {
    const answer = await t0.http("GET", "/ws", {
      cookie: `session=${t0.ada.token}`,
      headers: { ...upgrade, origin: "https://evil.example" },
    });
    assertProblem(answer, 403);
  });

  await t.step("logging out closes the sockets of that session at once", async () => {
    const socket = await TestSocket.open(t0.url, t0.ada.token);
    await socket.roundTrip();
    assert.equal((await t0.http("POST", "/api/auth/logout", { token: t0.ada.token })).status, 204);
    const [ended] = await socket.waitFor("session-ended");
    assert.equal(ended.data.reason, "revoked");
    assert.equal((await socket.closed).code, 4001);
    await assert.rejects(TestSocket.open(t0.url, t0.ada.token), /refused/);
  });
});

Deno.test("[realtime] a socket speaks only as its user, only to connections", async (t) => {
  await using t0 = await chatApp();
  await using ada = await TestSocket.open(t0.url, t0.ada.token);
  await using bob = await TestSocket.open(t0.url, t0.bob.token);
  await using cy = await TestSocket.open(t0.url, t0.cy.token);
  for (const socket of [ada, bob, cy]) await socket.roundTrip(); // live from here on

  await t.step("a fromUserId in the frame is ignored: Bob sees the message as Ada's", async () => {
    ada.send("private-message", {
      toUserId: t0.bob.user.id,
      tempId: "t-1",
      text: "hello Bob",
      fromUserId: t0.cy.user.id,
    });
    const [incoming] = await bob.waitFor("incoming-message");
    assert.equal(incoming.data.from, t0.ada.user.id);
    assert.equal(incoming.data.text, "hello Bob");
    const [delivered] = await ada.waitFor("message-delivered");
    assert.equal(delivered.data.tempId, "t-1");
    assert.equal(delivered.data.messageId, incoming.data.messageId);
    assert.equal(delivered.data.conversationId, incoming.data.conversationId);
    assert.match(incoming.id!, /^\d+$/, "durable events carry their log id");
  });

  await t.step("Cy, not connected, cannot message Ada: error, nothing stored", async () => {
    cy.send("private-message", { toUserId: t0.ada.user.id, tempId: "c-1", text: "hi" }, "f1");
    const [error] = await cy.waitFor("error");
    assert.deepEqual([error.data.code, error.data.ref], ["not-connected", "f1"]);
    for (const who of [t0.ada, t0.cy]) {
      const list = await t0.http("GET", "/api/conversations", { token: who.token });
      assert.equal(
        list.body.items.filter((c: { peer: { id: string } }) =>
          [t0.ada.user.id, t0.cy.user.id].includes(c.peer.id)
        ).length,
        0,
      );
    }
    await ada.roundTrip();
    assert.equal(ada.received("incoming-message").length, 0);
  });

  await t.step("after Bob blocks Ada, her message is refused and nothing is stored", async () => {
    assert.equal(
      (await t0.http("POST", `/api/blocks/${t0.ada.user.id}`, { token: t0.bob.token })).status,
      204,
    );
    ada.send("private-message", { toUserId: t0.bob.user.id, tempId: "t-2", text: "still?" });
    const [error] = await ada.waitFor("error");
    assert.equal(error.data.code, "not-connected");
    const conversationId = bob.received("incoming-message")[0].data.conversationId;
    const messages = await t0.http("GET", `/api/conversations/${conversationId}/messages`, {
      token: t0.ada.token,
    });
    assert.deepEqual(messages.body.items.map((m: { text: string }) => m.text), ["hello Bob"]);
    await bob.roundTrip();
    assert.equal(bob.received("incoming-message").length, 1);
  });

  await t.step("malformed frames get an error and the socket stays open", async () => {
    const before = cy.received("error").length;
    cy.sendRaw("{not json");
    cy.sendRaw(JSON.stringify({ type: "teleport", data: {} }));
    cy.sendRaw(JSON.stringify({ type: "private-message", id: "x", data: { toUserId: 7 } }));
    const nul = { toUserId: t0.ada.user.id, tempId: "n-1", text: "a\u0000b" };
    cy.sendRaw(JSON.stringify({ type: "private-message", id: "nul", data: nul }));
    const errors = (await cy.waitFor("error", () => true, before + 4)).slice(before);
    assert.deepEqual(errors.map((e) => e.data.code), [
      "invalid-json",
      "unknown-type",
      "invalid-frame",
      "invalid-frame",
    ]);
    assert.equal(errors[2].data.ref, "x");
    assert.ok(errors[2].data.errors.some((e: { path: string }) => e.path.includes("toUserId")));
    assert.deepEqual(
      [errors[3].data.ref, errors[3].data.errors[0].path],
      ["nul", "data.text"],
      "a NUL byte is refused before anything is acknowledged",
    );
    await cy.roundTrip();
  });

  await t.step("a frame over 32 KiB closes the socket with 1009 (message too big)", async () => {
    await using big = await TestSocket.open(t0.url, t0.cy.token);
    await big.roundTrip();
    big.sendRaw(JSON.stringify({ type: "ping", data: { pad: "x".repeat(40_000) } }));
    big.send("ping", {}, "after");
    const closed = await big.closedByServer();
    assert.deepEqual([closed.code, closed.reason], [1009, "frames are limited to 32768 bytes"]);
    assert.equal(big.received("pong").length, 0, "nothing after it was read");
    await cy.roundTrip(); // the user's other socket is untouched
  });
});

Deno.test("[realtime] two app instances sharing one KV deliver once and ack once", async () => {
  const kv = await openKv(":memory:");
  const env = { JWT_SECRET: crypto.randomUUID() + crypto.randomUUID() };
  await using one = await chatApp({ kv, env });
  await using two = await createTestApp({ kv, env, database: one.deps.database });
  await using served = serveApp(two.app.fetch);
  await using ada = await TestSocket.open(one.url, one.ada.token);
  await using bob = await TestSocket.open(served.url, one.bob.token);
  await ada.roundTrip();
  await bob.roundTrip();
  assert.deepEqual([
    one.deps.hub.localSockets(one.bob.user.id),
    two.deps.hub.localSockets(one.bob.user.id),
  ], [0, 1]);

  ada.send("typing", { toUserId: one.bob.user.id });
  const [typing] = await bob.waitFor("typing");
  assert.equal(typing.data.from, one.ada.user.id, "ephemeral signals cross instances too");

  ada.send("private-message", { toUserId: one.bob.user.id, tempId: "a", text: "across" });
  ada.send("private-message", { toUserId: one.bob.user.id, tempId: "b", text: "marker" });
  // Both logs are ordered: once the marker is in, any duplicate of the first would be too.
  await bob.waitFor("incoming-message", (f) => f.data.text === "marker");
  await ada.waitFor("message-delivered", (f) => f.data.tempId === "b");
  assert.deepEqual(bob.received("incoming-message").map((f) => f.data.text), ["across", "marker"]);
  assert.deepEqual(ada.received("message-delivered").map((f) => f.data.tempId), ["a", "b"]);
  kv.close();
});

Deno.test("[realtime] 50 messages sent while the recipient is away are resumed in order, once", async (t) => {
  await using t0 = await chatApp();
  await using ada = await TestSocket.open(t0.url, t0.ada.token);
  await ada.roundTrip();
  let lastEventId: string;
  {
    await using bob = await TestSocket.open(t0.url, t0.bob.token);
    await bob.roundTrip();
    ada.send("private-message", { toUserId: t0.bob.user.id, tempId: "seen", text: "seen" });
    const [seen] = await bob.waitFor("incoming-message");
    lastEventId = seen.id!;
  }
  // Ada sees Bob go offline: from now on his messages also raise a notification.
  await ada.waitFor(
    "presence",
    (f) => f.data.userId === t0.bob.user.id && f.data.status === "offline",
  );
  for (let i = 0; i < 50; i++) {
    ada.send("private-message", { toUserId: t0.bob.user.id, tempId: `away-${i}`, text: `m${i}` });
  }
  await ada.waitFor("message-delivered", (f) => f.data.tempId.startsWith("away-"), 50);

  await using bob = await TestSocket.open(t0.url, t0.bob.token);
  bob.send("resume", { lastEventId });
  const resumed = await bob.waitFor("incoming-message", () => true, 50);
  ada.send("private-message", { toUserId: t0.bob.user.id, tempId: "live", text: "live" });
  await bob.waitFor("incoming-message", (f) => f.data.text === "live");
  assert.deepEqual(
    bob.received("incoming-message").map((f) => f.data.text),
    [...Array.from({ length: 50 }, (_, i) => `m${i}`), "live"],
    "all 50 in order, none twice, then live",
  );
  const ids = resumed.map((f) => Number(f.id));
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b));

  await t.step(
    "a socket that gives ?lastEventId= at the upgrade gets them without a frame",
    async () => {
      await using again = await TestSocket.open(
        `${t0.url}?lastEventId=${lastEventId}`,
        t0.bob.token,
      );
      const replayed = await again.waitFor("incoming-message", () => true, 51);
      assert.deepEqual(
        replayed.map((f) => f.data.text),
        [...Array.from({ length: 50 }, (_, i) => `m${i}`), "live"],
        "in order, once, with no frame sent",
      );
      ada.send("private-message", { toUserId: t0.bob.user.id, tempId: "live-2", text: "live 2" });
      await again.waitFor("incoming-message", (f) => f.data.text === "live 2");
      assert.equal(again.received("incoming-message").length, 52);
    },
  );

  await t.step(
    "a socket that gives none is live at once, and a bad resume point is 400",
    async () => {
      await using fresh = await TestSocket.open(t0.url, t0.bob.token);
      // Live from when the server registered it: a first answer says it has.
      await fresh.roundTrip();
      ada.send("private-message", { toUserId: t0.bob.user.id, tempId: "live-3", text: "live 3" });
      const [live] = await fresh.waitFor("incoming-message");
      assert.equal(live.data.text, "live 3", "only what came after it connected");
      const bad = await t0.http("GET", "/ws?lastEventId=-1", { token: t0.bob.token });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.errors[0].path, "lastEventId");
    },
  );

  // While away Bob was offline, so the messages also raised a `message` notification.
  await t0.jobsSettled("notify", 2 + 50); // the connection's request and acceptance, then these
  const notes = await t0.http("GET", "/api/notifications", { token: t0.bob.token });
  const [note] = notes.body.items;
  assert.deepEqual([note.type, note.subjectId, note.count], [
    "message",
    resumed[0].data.conversationId,
    50,
  ]);
});

Deno.test("[realtime] one tempId sent five times at once stores one message and acks five times", async () => {
  await using t0 = await chatApp();
  const sockets = await Promise.all(
    Array.from({ length: 5 }, () => TestSocket.open(t0.url, t0.ada.token)),
  );
  await using bob = await TestSocket.open(t0.url, t0.bob.token);
  await Promise.all([...sockets, bob].map((socket) => socket.roundTrip()));
  for (const socket of sockets) {
    socket.send("private-message", { toUserId: t0.bob.user.id, tempId: "same", text: "once" });
  }
  await Promise.all(sockets.map((socket) => socket.roundTrip()));
  // Each socket gets the stored ack from Ada's log; the four losing sends are answered directly.
  await Promise.all(
    sockets.map((socket) => socket.waitFor("message-delivered", (f) => !f.data.replayed)),
  );
  const all = sockets.flatMap((socket) => socket.received("message-delivered"));
  assert.equal(new Set(all.map((f) => f.data.messageId)).size, 1, "one message id");
  assert.equal(all.filter((f) => f.data.replayed).length, 4);
  for (const socket of sockets) {
    assert.ok(socket.received("message-delivered").length >= 1, "every send was acknowledged");
  }
  await bob.waitFor("incoming-message");
  await bob.roundTrip();
  assert.equal(bob.received("incoming-message").length, 1);
  const conversations = await t0.http("GET", "/api/conversations", { token: t0.bob.token });
  const messages = await t0.http(
    "GET",
    `/api/conversations/${conversations.body.items[0].id}/messages`,
    { token: t0.bob.token },
  );
  assert.equal(messages.body.items.length, 1);
  for (const socket of sockets) await socket.close();
});

Deno.test("[realtime] presence goes to connections, and a dead isolate's sockets lapse", async (t) => {
  await using t0 = await chatApp({ hub: { presenceTtlMs: 60_000 } });
  await using bob = await TestSocket.open(t0.url, t0.bob.token);
  await bob.roundTrip();
  const presence = (status: string) =>
    bob.received("presence", (f) => f.data.userId === t0.ada.user.id && f.data.status === status);

  await t.step("Ada connecting and leaving is seen by Bob, not by Cy", async () => {
    await using cy = await TestSocket.open(t0.url, t0.cy.token);
    await cy.roundTrip();
    const ada = await TestSocket.open(t0.url, t0.ada.token);
    await bob.waitFor("presence", (f) => f.data.status === "online");
    const asked = await t0.http("GET", `/api/presence?userIds=${t0.ada.user.id},${t0.cy.user.id}`, {
      token: t0.bob.token,
    });
    assert.deepEqual(asked.body.items, [{ userId: t0.ada.user.id, status: "online" }]);
    await ada.close();
    await bob.waitFor("presence", (f) => f.data.status === "offline");
    await cy.roundTrip();
    assert.equal(cy.received("presence").length, 0);
    await cy.close();
    // The server releases Cy's socket after the close reaches it; the next step must not see it.
    for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
      const [status] = (await readPresence(t0.deps.kv, [t0.cy.user.id], t0.clock.now())).values();
      if (status === "offline") break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  });

  await t.step("a socket whose isolate died is offline after the TTL and swept once", async () => {
    // What an isolate that died without closing its sockets leaves behind.
    const now = t0.clock.now();
    await holdPresence(t0.deps.kv, t0.ada.user.id, ["ghost"], now, now + 60_000);
    const ask = async () =>
      (await t0.http("GET", `/api/presence?userIds=${t0.ada.user.id}`, { token: t0.bob.token }))
        .body.items[0].status;
    assert.equal(await ask(), "online");
    t0.clock.advance(61_000);
    assert.equal(await ask(), "offline", "readers see the lapse at once");
    await t0.deps.hub.heartbeat(); // Bob's live socket keeps his presence; the ghost's lapsed
    const offlineBefore = presence("offline").length;
    assert.equal(await t0.deps.hub.sweepPresence(), 1);
    assert.equal(await t0.deps.hub.sweepPresence(), 0, "swept once");
    await bob.waitFor("presence", (f) => f.data.status === "offline", offlineBefore + 1);
    await bob.roundTrip();
    assert.equal(presence("offline").length, offlineBefore + 1);
  });
});

Deno.test("[realtime] notifications reach the recipient's sockets live", async () => {
  await using t0 = await chatApp();
  await using ada = await TestSocket.open(t0.url, t0.ada.token);
  await ada.roundTrip();
  assert.equal(
    (await t0.http("POST", `/api/follows/${t0.ada.user.id}`, { token: t0.cy.token })).status,
    204,
  );
  const [notification] = await ada.waitFor("notification", (f) => f.data.type === "follow");
  assert.deepEqual([notification.data.type, notification.data.actor.id], ["follow", t0.cy.user.id]);
  const logged = await readEvents(t0.deps.kv, t0.ada.user.id, 0, 100);
  assert.ok(logged.some((event) => String(event.seq) === notification.id));
});

Deno.test("[realtime] a user holds at most WS_MAX_SOCKETS_PER_USER sockets; the next is closed 4029", async (t) => {
  await using t0 = await chatApp({ env: { WS_MAX_SOCKETS_PER_USER: "3" } });
  const open = await Promise.all([1, 2, 3].map(() => TestSocket.open(t0.url, t0.ada.token)));
  for (const socket of open) await socket.roundTrip();

  await t.step("the fourth gets an error frame and close code 4029", async () => {
    const fourth = await TestSocket.open(t0.url, t0.ada.token);
    const closed = await fourth.closedByServer();
    assert.deepEqual([closed.code, closed.reason], [4029, "too many sockets"]);
    const [error] = fourth.received("error");
    assert.deepEqual([error.data.code, error.data.max], ["too-many-sockets", 3]);
    assert.equal(t0.deps.hub.localSockets(t0.ada.user.id), 3);
  });

  await t.step("closing one makes room for another", async () => {
    await open.pop()!.close();
    await using again = await TestSocket.open(t0.url, t0.ada.token);
    await again.roundTrip();
    assert.equal(t0.deps.hub.localSockets(t0.ada.user.id), 3);
  });
  for (const socket of open) await socket.close();
});

Deno.test("[realtime] 150 simultaneous connects of one user, then all closed: nothing stays registered, presence is offline", async () => {
  await using t0 = await chatApp();
  await using bob = await TestSocket.open(t0.url, t0.bob.token);
  await bob.roundTrip();
  const sockets = await Promise.all(
    Array.from({ length: 150 }, () => TestSocket.open(t0.url, t0.ada.token)),
  );
  const outcomes = await Promise.all(sockets.map((socket) =>
    Promise.race([
      socket.closed.then((event) => event.code),
      socket.roundTrip().then(() => "open"),
    ])
  ));
  assert.equal(outcomes.filter((outcome) => outcome === "open").length, 10);
  assert.equal(outcomes.filter((outcome) => outcome === 4029).length, 140);
  assert.equal(t0.deps.hub.localSockets(t0.ada.user.id), 10);
  const status = async () =>
    (await t0.http("GET", `/api/presence?userIds=${t0.ada.user.id}`, { token: t0.bob.token }))
      .body.items[0].status;
  assert.equal(await status(), "online");

  await Promise.all(sockets.map((socket) => socket.close()));
  await bob.waitFor(
    "presence",
    (f) => f.data.userId === t0.ada.user.id && f.data.status === "offline",
  );
  assert.equal(t0.deps.hub.localSockets(t0.ada.user.id), 0);
  await t0.deps.hub.heartbeat(); // refreshes nothing of Ada's: she has no socket left
  assert.equal(await status(), "offline");
});

Deno.test("[realtime] socket writes spend the same per-user budget as HTTP writes", async () => {
  // Ada's budget of 6: her connection request, three HTTP messages, two socket messages.
  await using t0 = await chatApp({ env: { RATE_LIMIT_API: "6/15m" } });
  await using ada = await TestSocket.open(t0.url, t0.ada.token);
  await ada.roundTrip();
  for (const n of [1, 2, 3]) {
    const sent = await t0.http("POST", `/api/conversations/${t0.bob.user.id}/messages`, {
      token: t0.ada.token,
      body: { text: `http ${n}`, tempId: `h-${n}` },
    });
    assert.equal(sent.status, 201);
  }
  for (const n of [1, 2, 3]) {
    ada.send(
      "private-message",
      { toUserId: t0.bob.user.id, tempId: `s-${n}`, text: `ws ${n}` },
      `f${n}`,
    );
  }
  const [refused] = await ada.waitFor("error");
  assert.deepEqual([refused.data.code, refused.data.status, refused.data.ref], [
    "rate-limited",
    429,
    "f3",
  ]);
  assert.ok(refused.data.retryAfter > 0);
  await ada.waitFor("message-delivered", () => true, 2);
  const http = await t0.http("POST", `/api/conversations/${t0.bob.user.id}/messages`, {
    token: t0.ada.token,
    body: { text: "http 4", tempId: "h-4" },
  });
  assertProblem(http, 429);
  const conversation = ada.received("message-delivered")[0].data.conversationId;
  const stored = await t0.http("GET", `/api/conversations/${conversation}/messages`, {
    token: t0.bob.token,
  });
  assert.deepEqual(stored.body.items.map((m: { text: string }) => m.text).sort(), [
    "http 1",
    "http 2",
    "http 3",
    "ws 1",
    "ws 2",
  ]);
});

Deno.test("[realtime] a session revoked while its socket connects is ended at once, not left open", async () => {
  await using t0 = await createTestApp();
  const [ada] = await members(t0.deps, 1);
  // The upgrade checked the token; then, before the hub registered the socket, it was revoked and
  // the revocation announced (the announcement lands before the socket's starting point).
  const session = await sessionFromToken(t0.deps, ada.token);
  assert.ok(session);
  await revokeToken(t0.deps.kv, t0.deps.sessions, session.jti, session.exp * 1000, t0.clock.now());
  await announceSessionsChanged(t0.deps.kv, session.sub, t0.clock.now);
  const sent: { type: string; data: unknown }[] = [];
  const closed: number[] = [];
  const socket = {
    readyState: 1,
    send: (raw: string) => sent.push(JSON.parse(raw)),
    close: (code?: number) => closed.push(code ?? 1005),
  };
  await t0.deps.hub.connect(session, socket);
  assert.deepEqual(sent, [{ type: "session-ended", data: { reason: "revoked" } }]);
  assert.deepEqual(closed, [SESSION_ENDED]);
  assert.deepEqual(
    await readPresence(t0.deps.kv, [ada.user.id], t0.clock.now()),
    new Map([[ada.user.id, "offline"]]),
  );
});

Deno.test("[realtime] a flood of 2,000 frames: the frame budget acknowledges what it allows, refuses the rest, and the inbound queue stays bounded", async (t) => {
  // Every strong KV call waits on this gate while it is held: the first frame's decision is stuck,
  // and the frames behind it pile up.
  let held: PromiseWithResolvers<void> | null = null;
  using store = await openKv(":memory:");
  await using t0 = await servedTestApp({ kv: holdingKv(store, () => held?.promise) });
  const [ada, bob] = await members(t0.deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  await connect(t0.http, ada, bob);
  const flood = (socket: TestSocket, tag: string) => {
    for (let i = 0; i < 2000; i++) {
      socket.send(
        "private-message",
        { toUserId: bob.user.id, tempId: `${tag}-${i}`, text: "x" },
        `${tag}-${i}`,
      );
    }
  };
  const limited = (socket: TestSocket, tag: string) =>
    socket.frames.filter((frame) =>
      frame.type === "error" && frame.data.code === "rate-limited" &&
      String(frame.data.ref).startsWith(`${tag}-`)
    ).length;
  const acked = (socket: TestSocket, tag: string) =>
    socket.frames.filter((frame) =>
      frame.type === "message-delivered" && frame.data.tempId.startsWith(`${tag}-`)
    ).length;

  /** Waits until each of the 2,000 frames got its one answer: an ack or `rate-limited`. */
  const allAnswered = async (socket: TestSocket, tag: string) => {
    const deadline = Date.now() + 10_000;
    while (acked(socket, tag) + limited(socket, tag) < 2000) {
      assert.ok(Date.now() < deadline, "every frame was answered");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // (No ping to close on: the budget is spent, so it would be refused too.)
    assert.equal(acked(socket, tag) + limited(socket, tag), 2000, "each frame answered once");
  };

  await t.step(
    "while the first frame is stuck, all but MAX_QUEUED_FRAMES are refused on arrival",
    async () => {
      await using socket = await TestSocket.open(t0.url, ada.token);
      held = Promise.withResolvers();
      flood(socket, "stuck");
      await socket.waitFor(
        "error",
        (frame) => String(frame.data.ref).startsWith("stuck-"),
        2000 - MAX_QUEUED_FRAMES,
      );
      assert.equal(acked(socket, "stuck"), 0, "nothing behind the stuck frame was handled");
      assert.equal(limited(socket, "stuck"), 2000 - MAX_QUEUED_FRAMES, "the queue holds no more");
      held.resolve();
      held = null;
      await allAnswered(socket, "stuck");
      assert.ok(acked(socket, "stuck") >= FRAME_BURST, "the queued frames were handled in turn");
    },
  );

  await t.step(
    "2,000 at once: the burst and its refill are acknowledged, every other frame rate-limited",
    async () => {
      await using socket = await TestSocket.open(t0.url, ada.token);
      const started = performance.now();
      flood(socket, "burst");
      await socket.waitFor(
        "message-delivered",
        (frame) => frame.data.tempId.startsWith("burst-"),
        FRAME_BURST,
      );
      await allAnswered(socket, "burst");
      const seconds = (performance.now() - started) / 1000;
      const ok = acked(socket, "burst");
      assert.ok(ok >= FRAME_BURST, `${ok} acknowledged`);
      assert.ok(
        ok <= FRAME_BURST + Math.ceil(seconds * FRAMES_PER_SECOND) + 1,
        `${ok} in ${seconds} s`,
      );
      assert.equal(limited(socket, "burst"), 2000 - ok);
    },
  );
});

Deno.test("[realtime] a socket is live from its upgrade: a message committed before the hub registered it still arrives", async () => {
  // The hub's registration (its presence claim) is held while the message commits.
  let held: PromiseWithResolvers<void> | null = null;
  using store = await openKv(":memory:");
  await using t0 = await servedTestApp({
    kv: holdingKv(store, (call) => call.includes('"presence"') ? held?.promise : undefined),
  });
  const [ada, bob] = await members(t0.deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  await connect(t0.http, ada, bob);
  held = Promise.withResolvers<void>();
  await using socket = await TestSocket.open(t0.url, bob.token); // the 101 is in
  const sent = await t0.http("POST", `/api/conversations/${bob.user.id}/messages`, {
    token: ada.token,
    body: { text: "in between", tempId: "between-1" },
  });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  held.resolve();
  held = null;
  const [incoming] = await socket.waitFor("incoming-message");
  assert.equal(incoming.data.text, "in between");
});
