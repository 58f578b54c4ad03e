import assert from "node:assert/strict";
import { readEvents } from "../kv/events.ts";
import { assertProblem, createTestApp } from "./helpers/app.ts";
import { members } from "./helpers/members.ts";
import { connect, servedTestApp, TestSocket } from "./helpers/sockets.ts";

async function chatApp() {
  const t0 = await createTestApp();
  const [ada, bob, cy] = await members(t0.deps, 3, { name: (i) => ["Ada", "Bob", "Cy"][i] });
  await connect(t0.http, ada, bob);
  await connect(t0.http, ada, cy);
  const send = (
    from: { token: string },
    to: { user: { id: string } },
    text: string,
    tempId: string = crypto.randomUUID(),
  ) =>
    t0.http("POST", `/api/conversations/${to.user.id}/messages`, {
      token: from.token,
      body: { text, tempId },
    });
  return { ...t0, ada, bob, cy, send };
}

Deno.test("[chat] POST /api/conversations/:userId/messages follows the socket's rules", async (t) => {
  await using t0 = await chatApp();
  const { ada, bob, cy } = t0;

  await t.step("a message to a connection → 201, stored, in both logs", async () => {
    const answer = await t0.send(ada, bob, "  hello  ", "t-1");
    assert.equal(answer.status, 201);
    assert.deepEqual(
      [answer.body.from, answer.body.text, answer.body.tempId],
      [ada.user.id, "hello", "t-1"],
    );
    const [incoming] = (await readEvents(t0.deps.kv, bob.user.id, 0, 100))
      .filter((event) => event.type === "incoming-message");
    assert.deepEqual(incoming.data, {
      messageId: answer.body.id,
      conversationId: answer.body.conversationId,
      from: ada.user.id,
      text: "hello",
      createdAt: answer.body.createdAt,
      attachments: [],
    });
    const delivered = (await readEvents(t0.deps.kv, ada.user.id, 0, 100))
      .filter((event) => event.type === "message-delivered");
    assert.equal(delivered.length, 1);
  });

  await t.step(
    "five concurrent sends of one tempId → one message, five answers with its id",
    async () => {
      const answers = await Promise.all(
        Array.from({ length: 5 }, () => t0.send(ada, cy, "once", "dup")),
      );
      assert.deepEqual(answers.map((a) => a.status), [201, 201, 201, 201, 201]);
      assert.equal(new Set(answers.map((a) => a.body.id)).size, 1);
      assert.equal(
        answers.filter((a) => a.headers.get("idempotent-replayed") === "true").length,
        4,
      );
      const messages = await t0.http(
        "GET",
        `/api/conversations/${answers[0].body.conversationId}/messages`,
        { token: cy.token },
      );
      assert.deepEqual(messages.body.items.map((m: { text: string }) => m.text), ["once"]);
      const reused = await t0.send(ada, bob, "other text", "dup");
      assert.equal(assertProblem(reused, 409).type.endsWith("temp-id-reused"), true);
    },
  );

  await t.step("not connected → 403; yourself, empty text, no tempId → 400", async () => {
    assertProblem(await t0.send(bob, cy, "hi"), 403);
    assertProblem(await t0.send(ada, ada, "me"), 400);
    assertProblem(await t0.send(ada, bob, "   "), 400);
    assertProblem(
      await t0.http("POST", `/api/conversations/${bob.user.id}/messages`, {
        token: ada.token,
        body: { text: "no temp id" },
      }),
      400,
    );
    assertProblem(
      await t0.http("POST", `/api/conversations/${bob.user.id}/messages`, {
        body: { text: "x", tempId: "y" },
      }),
      401,
    );
    const list = await t0.http("GET", "/api/conversations", { token: bob.token });
    assert.equal(list.body.items.length, 1, "only the conversation with Ada");
  });
});

Deno.test("[chat] conversations list latest first with unread counts; reads move them", async (t) => {
  await using t0 = await chatApp();
  const { ada, bob, cy } = t0;
  for (let i = 0; i < 25; i++) {
    t0.clock.advance(1);
    assert.equal((await t0.send(i % 2 ? ada : bob, i % 2 ? bob : ada, `b${i}`)).status, 201);
  }
  t0.clock.advance(1);
  await t0.send(cy, ada, "from cy");

  await t.step("GET /api/conversations: latest first, peer, last message, unread", async () => {
    const list = await t0.http("GET", "/api/conversations", { token: ada.token });
    assert.deepEqual(
      list.body.items.map((
        c: { peer: { name: string }; unreadCount: number },
      ) => [c.peer.name, c.unreadCount]),
      [["Cy", 1], ["Bob", 13]],
    );
    assert.equal(list.body.items[0].lastMessage.text, "from cy");
    const paged = await t0.http("GET", "/api/conversations?limit=1", { token: ada.token });
    const next = await t0.http(
      "GET",
      `/api/conversations?limit=1&cursor=${paged.body.nextCursor}`,
      {
        token: ada.token,
      },
    );
    assert.equal(next.body.items[0].peer.name, "Bob");
    assert.equal(next.body.nextCursor, null);
  });

  const conversationId = (await t0.http("GET", "/api/conversations", { token: bob.token })).body
    .items[0].id;

  await t.step("messages page newest first with keyset cursors: all 25, none twice", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { items: { text: string }[]; nextCursor: string | null } } = await t0
        .http(
          "GET",
          `/api/conversations/${conversationId}/messages?limit=10${
            cursor ? `&cursor=${cursor}` : ""
          }`,
          { token: bob.token },
        );
      seen.push(...page.body.items.map((m) => m.text));
      cursor = page.body.nextCursor;
    } while (cursor);
    assert.deepEqual(seen, Array.from({ length: 25 }, (_, i) => `b${24 - i}`));
  });

  await t.step("a non-participant gets 404 for the messages and for a read", async () => {
    assertProblem(
      await t0.http("GET", `/api/conversations/${conversationId}/messages`, { token: cy.token }),
      404,
    );
    assertProblem(
      await t0.http("POST", `/api/conversations/${conversationId}/read`, { token: cy.token }),
      404,
    );
    assertProblem(
      await t0.http("GET", "/api/conversations/no-such-id/messages", { token: bob.token }),
      404,
    );
  });

  await t.step(
    "reading up to a message clears those; Ada learns through message-read",
    async () => {
      const messages = await t0.http(
        "GET",
        `/api/conversations/${conversationId}/messages?limit=100`,
        {
          token: ada.token,
        },
      );
      const fromBob = messages.body.items.filter((m: { from: string }) => m.from === bob.user.id);
      // The fifth-newest of Bob's messages: four of his remain unread.
      const upTo = fromBob[4];
      const read = await t0.http("POST", `/api/conversations/${conversationId}/read`, {
        token: ada.token,
        body: { messageId: upTo.id },
      });
      assert.equal(read.status, 204);
      const unread = async () =>
        (await t0.http("GET", "/api/conversations", { token: ada.token })).body.items
          .find((c: { id: string }) => c.id === conversationId).unreadCount;
      assert.equal(await unread(), 4);
      // Bob's history says which of his messages Ada read, and when; never hers to him.
      const readAt = new Date(t0.clock.now()).toISOString();
      const bobsView = await t0.http(
        "GET",
        `/api/conversations/${conversationId}/messages?limit=100`,
        { token: bob.token },
      );
      const states = bobsView.body.items
        .filter((m: { from: string }) => m.from === bob.user.id)
        .map((m: { readAt: string | null }) => m.readAt);
      assert.deepEqual(states, [null, null, null, null, ...Array(states.length - 4).fill(readAt)]);
      assert.ok(
        bobsView.body.items.filter((m: { from: string }) => m.from === ada.user.id)
          .every((m: { readAt: string | null }) => m.readAt === null),
      );
      const receipts = (await readEvents(t0.deps.kv, bob.user.id, 0, 1000))
        .filter((event) => event.type === "message-read");
      assert.deepEqual(
        receipts.map((event) => {
          const data = event.data as { messageId: string; readerId: string };
          return [data.messageId, data.readerId];
        }),
        [[upTo.id, ada.user.id]],
      );
      // Reading an older message again changes nothing and sends nothing; no receipt goes back
      // or moves its time.
      t0.clock.advance(1000);
      await t0.http("POST", `/api/conversations/${conversationId}/read`, {
        token: ada.token,
        body: { messageId: fromBob[8].id },
      });
      assert.equal(await unread(), 4);
      const again = await t0.http(
        "GET",
        `/api/conversations/${conversationId}/messages?limit=100`,
        { token: bob.token },
      );
      assert.equal(
        again.body.items.find((m: { id: string }) => m.id === fromBob[8].id).readAt,
        readAt,
      );
      await t0.http("POST", `/api/conversations/${conversationId}/read`, { token: ada.token });
      assert.equal(await unread(), 0);
      assertProblem(
        await t0.http("POST", `/api/conversations/${conversationId}/read`, {
          token: ada.token,
          body: { messageId: "not-in-this-conversation" },
        }),
        404,
      );
    },
  );
});

Deno.test("[chat] one meaning per path: to a member by their id, into a conversation by its id; the original form still works", async () => {
  await using t0 = await chatApp();
  const { ada, bob } = t0;
  const toBob = await t0.http("POST", `/api/users/${bob.user.id}/messages`, {
    token: ada.token,
    body: { text: "by member id", tempId: "m-1" },
  });
  assert.equal(toBob.status, 201, JSON.stringify(toBob.body));
  const conversationId = toBob.body.conversationId;
  const reply = await t0.http("POST", `/api/conversations/${conversationId}/messages`, {
    token: bob.token,
    body: { text: "by conversation id", tempId: "m-2" },
  });
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  assert.equal(reply.body.conversationId, conversationId, "to the conversation's other member");
  const legacy = await t0.http("POST", `/api/conversations/${bob.user.id}/messages`, {
    token: ada.token,
    body: { text: "the original form", tempId: "m-3" },
  });
  assert.equal(legacy.status, 201);
  assert.equal(legacy.body.conversationId, conversationId);
  const history = await t0.http("GET", `/api/conversations/${conversationId}/messages`, {
    token: ada.token,
  });
  assert.deepEqual(
    history.body.items.map((m: { text: string; from: string }) => [m.text, m.from]),
    [
      ["the original form", ada.user.id],
      ["by conversation id", bob.user.id],
      ["by member id", ada.user.id],
    ],
  );
});

Deno.test("[chat] a pending connection request allows nothing: HTTP, socket and typing are refused until it is accepted", async () => {
  await using t0 = await servedTestApp();
  const [ada, dee] = await members(t0.deps, 2, { name: (i) => ["Ada", "Dee"][i] });
  const request = await t0.http("POST", "/api/connections", {
    token: ada.token,
    body: { toUserId: dee.user.id },
  });
  assert.equal(request.status, 201);
  await using adaSocket = await TestSocket.open(t0.url, ada.token);
  await using deeSocket = await TestSocket.open(t0.url, dee.token);
  const send = (from: typeof ada, to: typeof ada, text: string) =>
    t0.http("POST", `/api/conversations/${to.user.id}/messages`, {
      token: from.token,
      body: { text, tempId: crypto.randomUUID() },
    });

  assert.equal(assertProblem(await send(ada, dee, "early"), 403).code, "not-connected");
  assert.equal(assertProblem(await send(dee, ada, "early"), 403).code, "not-connected");
  adaSocket.send("private-message", { toUserId: dee.user.id, tempId: "s-1", text: "early" }, "m");
  adaSocket.send("typing", { toUserId: dee.user.id }, "t");
  const errors = await adaSocket.waitFor("error", () => true, 2);
  assert.deepEqual(
    errors.map((frame) => [frame.data.ref, frame.data.code]).sort(),
    [["m", "not-connected"], ["t", "not-connected"]],
  );
  await deeSocket.roundTrip();
  assert.deepEqual(deeSocket.received("typing"), []);
  assert.deepEqual(deeSocket.received("incoming-message"), []);

  const accepted = await t0.http("PATCH", `/api/connections/${request.body.id}`, {
    token: dee.token,
    body: { status: "accepted" },
  });
  assert.equal(accepted.status, 200);
  assert.equal((await send(ada, dee, "now")).status, 201);
  adaSocket.send("typing", { toUserId: dee.user.id });
  await deeSocket.waitFor("typing", (frame) => frame.data.from === ada.user.id);
  await deeSocket.waitFor("incoming-message", (frame) => frame.data.text === "now");
});
