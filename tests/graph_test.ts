import assert from "node:assert/strict";
import { and, asc, eq, or } from "drizzle-orm";
import { connectionEvents, connections, follows } from "../db/schema.ts";
import { assertProblem, createTestApp, type HttpClient, signUp } from "./helpers/app.ts";
import { type Member, members } from "./helpers/members.ts";

async function connect(http: HttpClient, from: Member, to: Member) {
  const sent = await http("POST", "/api/connections", {
    token: from.token,
    body: { toUserId: to.user.id, message: "Hi!" },
  });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  return sent.body;
}

async function move(http: HttpClient, who: Member, id: string, status: string) {
  return await http("PATCH", `/api/connections/${id}`, { token: who.token, body: { status } });
}

Deno.test("[graph] POST/DELETE /api/follows/:userId is idempotent and lists page by keyset", async (t) => {
  await using t0 = await createTestApp();
  const { http } = t0;
  const [star, ...fans] = await members(t0.deps, 26);

  await t.step("following twice is one follow and one notification", async () => {
    const [fan] = fans;
    for (let i = 0; i < 2; i++) {
      const answer = await http("POST", `/api/follows/${star.user.id}`, { token: fan.token });
      assert.equal(answer.status, 204);
    }
    const profile = await http("GET", `/api/users/${star.user.id}`, { token: fan.token });
    assert.equal(profile.body.followerCount, 1);
    assert.equal(profile.body.relationship.following, true);
    await t0.jobsSettled("notify", 1);
    const notices = await http("GET", "/api/notifications", { token: star.token });
    assert.deepEqual(
      notices.body.items.map((item: { type: string; actor: { id: string } }) => [
        item.type,
        item.actor.id,
      ]),
      [["follow", fan.user.id]],
    );
  });

  await t.step("25 followers page at 10, most recent first, none skipped or repeated", async () => {
    for (const [index, fan] of fans.entries()) {
      if (index % 2 === 0) t0.clock.advance(1);
      await http("POST", `/api/follows/${star.user.id}`, { token: fan.token });
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `&cursor=${cursor}` : "";
      const page = await http("GET", `/api/users/${star.user.id}/followers?limit=10${query}`, {
        token: star.token,
      });
      assert.equal(page.status, 200);
      assert.ok(page.body.items.every((item: Record<string, unknown>) => !("email" in item)));
      seen.push(...page.body.items.map((item: { id: string }) => item.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    assert.equal(seen.length, 25);
    assert.equal(new Set(seen).size, 25);
    assert.equal(seen.at(-1), fans[0].user.id, "the first follower comes last");
    const following = await http("GET", `/api/users/${fans[3].user.id}/following`, {
      token: star.token,
    });
    assert.deepEqual(following.body.items.map((item: { id: string }) => item.id), [star.user.id]);
  });

  await t.step("unfollow twice is fine; self-follow is 400; unknown user 404", async () => {
    const [fan] = fans;
    for (let i = 0; i < 2; i++) {
      const answer = await http("DELETE", `/api/follows/${star.user.id}`, { token: fan.token });
      assert.equal(answer.status, 204);
    }
    const profile = await http("GET", `/api/users/${star.user.id}`, { token: fan.token });
    assert.deepEqual([profile.body.followerCount, profile.body.relationship.following], [
      24,
      false,
    ]);
    assertProblem(await http("POST", `/api/follows/${fan.user.id}`, { token: fan.token }), 400);
    assertProblem(await http("POST", "/api/follows/nobody", { token: fan.token }), 404);
  });
});

Deno.test("[graph] /api/connections is a state machine with one live request per pair", async (t) => {
  await using t0 = await createTestApp();
  const { http } = t0;
  const [ada, bob, cy] = await members(t0.deps, 3);

  await t.step("only the recipient may accept; the sender gets 403", async () => {
    const request = await connect(http, ada, bob);
    assert.equal(request.status, "pending");
    assertProblem(await move(http, ada, request.id, "accepted"), 403);
    assertProblem(await move(http, ada, request.id, "rejected"), 403);
    assertProblem(await move(http, cy, request.id, "accepted"), 404);
    const accepted = await move(http, bob, request.id, "accepted");
    assert.equal(accepted.status, 200);
    assert.deepEqual([accepted.body.status, accepted.body.version], ["accepted", 2]);
  });

  await t.step("a request that is not pending is 409 and stays as it was", async () => {
    const [request] = (await http("GET", "/api/connections?status=accepted", { token: ada.token }))
      .body.items;
    for (
      const [who, status] of [[bob, "rejected"], [ada, "withdrawn"], [bob, "accepted"]] as const
    ) {
      const problem = assertProblem(await move(http, who, request.id, status), 409);
      assert.equal(problem.requestStatus, "accepted");
    }
    const read = await http("GET", `/api/connections/${request.id}`, { token: bob.token });
    assert.deepEqual([read.body.status, read.body.version], ["accepted", 2]);
    assertProblem(await http("GET", `/api/connections/${request.id}`, { token: cy.token }), 404);
    const again = assertProblem(
      await http("POST", "/api/connections", { token: bob.token, body: { toUserId: ada.user.id } }),
      409,
    );
    assert.equal(again.requestStatus, "accepted");
  });

  await t.step("only the sender may withdraw; then the pair may start again", async () => {
    const request = await connect(http, cy, ada);
    assertProblem(await move(http, ada, request.id, "withdrawn"), 403);
    assert.equal((await move(http, cy, request.id, "withdrawn")).body.status, "withdrawn");
    const rejectedLater = await connect(http, ada, cy);
    assert.equal((await move(http, cy, rejectedLater.id, "rejected")).body.status, "rejected");
    await connect(http, cy, ada);
  });

  await t.step("Postgres keeps every transition and the connection both ways", async () => {
    const db = t0.deps.database.db;
    const [accepted] = (await http("GET", "/api/connections?status=accepted", { token: bob.token }))
      .body.items;
    const events = await db.select().from(connectionEvents)
      .where(eq(connectionEvents.requestId, accepted.id)).orderBy(asc(connectionEvents.version));
    assert.deepEqual(
      events.map((event) => [event.fromStatus, event.toStatus, event.actorId]),
      [[null, "pending", ada.user.id], ["pending", "accepted", bob.user.id]],
    );
    const rows = await db.select().from(connections).where(eq(connections.requestId, accepted.id));
    assert.deepEqual(rows.map((row) => row.userId).sort(), [ada.user.id, bob.user.id].sort());
    const sent = await http("GET", "/api/connections?direction=sent", { token: cy.token });
    assert.deepEqual(
      sent.body.items.map((item: { status: string }) => item.status),
      ["pending", "withdrawn"],
    );
  });

  await t.step("request and acceptance each notify the other side", async () => {
    await t0.jobsSettled("notify", 5);
    const toBob = await http("GET", "/api/notifications", { token: bob.token });
    assert.deepEqual(toBob.body.items.map((item: { type: string }) => item.type), [
      "connection_request",
    ]);
    const toAda = await http("GET", "/api/notifications", { token: ada.token });
    assert.ok(
      toAda.body.items.some((item: { type: string; actor: { id: string } }) =>
        item.type === "connection_accepted" && item.actor.id === bob.user.id
      ),
    );
  });

  await t.step("bad input: self, unknown user, unknown status → 4xx", async () => {
    assertProblem(
      await http("POST", "/api/connections", { token: ada.token, body: { toUserId: ada.user.id } }),
      400,
    );
    assertProblem(
      await http("POST", "/api/connections", { token: ada.token, body: { toUserId: "ghost" } }),
      404,
    );
    assertProblem(await move(http, bob, "no-such-request", "accepted"), 404);
    const [request] = (await http("GET", "/api/connections", { token: ada.token })).body.items;
    assertProblem(await move(http, ada, request.id, "ended"), 400);
  });
});

Deno.test("[graph] 100 concurrent A→B and B→A requests → exactly one pending", async () => {
  await using t0 = await createTestApp();
  const { http } = t0;
  const [a, b] = await members(t0.deps, 2);
  const answers = await Promise.all(
    Array.from({ length: 100 }, (_, i) => {
      const [from, to] = i % 2 === 0 ? [a, b] : [b, a];
      return http("POST", "/api/connections", {
        token: from.token,
        body: { toUserId: to.user.id },
      });
    }),
  );
  const statuses = answers.map((answer) => answer.status);
  assert.equal(statuses.filter((status) => status === 201).length, 1);
  assert.equal(statuses.filter((status) => status === 409).length, 99);
  const winner = answers.find((answer) => answer.status === 201)!.body;
  for (const who of [a, b]) {
    const listed = await http("GET", "/api/connections?status=pending", { token: who.token });
    assert.deepEqual(listed.body.items.map((item: { id: string }) => item.id), [winner.id]);
  }
});

Deno.test("[graph] POST /api/blocks/:userId hides the pair from each other everywhere", async (t) => {
  await using t0 = await createTestApp({ env: { ADMIN_EMAILS: "mod@example.com" } });
  const { http } = t0;
  const [ada, bob, cy] = await members(t0.deps, 3, { name: (i) => ["Ada", "Bob", "Cy"][i] });
  await http("PATCH", "/api/profile", { token: ada.token, body: { skills: ["rust"] } });
  await http("PATCH", "/api/profile", { token: bob.token, body: { skills: ["rust"] } });
  const request = await connect(http, ada, bob);
  await move(http, bob, request.id, "accepted");
  await http("POST", `/api/follows/${ada.user.id}`, { token: bob.token });
  await http("POST", `/api/follows/${bob.user.id}`, { token: ada.token });
  const post = (await http("POST", "/api/posts", { token: bob.token, body: { text: "hi Ada" } }))
    .body;
  assert.equal((await http("GET", "/api/feed", { token: ada.token })).body.items[0].id, post.id);

  await t.step("the block ends the connection and the follows both ways", async () => {
    assert.equal(
      (await http("POST", `/api/blocks/${bob.user.id}`, { token: ada.token })).status,
      204,
    );
    assert.equal(
      (await http("POST", `/api/blocks/${bob.user.id}`, { token: ada.token })).status,
      204,
    );
    const read = await http("GET", `/api/connections/${request.id}`, { token: bob.token });
    assert.equal(read.body.status, "ended");
    await t0.deps.outbox.flush();
    const rows = await t0.deps.database.db.select().from(connections)
      .where(eq(connections.requestId, request.id));
    assert.deepEqual(rows, []);
    const pair = await t0.deps.database.db.select().from(follows).where(or(
      and(eq(follows.followerId, ada.user.id), eq(follows.followeeId, bob.user.id)),
      and(eq(follows.followerId, bob.user.id), eq(follows.followeeId, ada.user.id)),
    ));
    assert.deepEqual(pair, []);
  });

  await t.step("neither sees the other's profile, posts, feed or discovery entry", async () => {
    for (const [viewer, other] of [[ada, bob], [bob, ada]]) {
      assertProblem(await http("GET", `/api/users/${other.user.id}`, { token: viewer.token }), 404);
      const feed = await http("GET", "/api/feed", { token: viewer.token });
      assert.ok(
        feed.body.items.every((item: { author: { id: string } }) =>
          item.author.id !== other.user.id
        ),
      );
      const found = await http("GET", "/api/users?q=rust", { token: viewer.token });
      assert.deepEqual(found.body.items.map((item: { id: string }) => item.id), [viewer.user.id]);
      const peers = await http("GET", "/api/discover", { token: viewer.token });
      assert.ok(
        peers.body.items.every((item: { profile: { id: string } }) =>
          item.profile.id !== other.user.id
        ),
      );
    }
    assertProblem(await http("GET", `/api/posts/${post.id}`, { token: ada.token }), 404);
    assertProblem(await http("POST", `/api/posts/${post.id}/like`, { token: ada.token }), 404);
  });

  await t.step("neither can follow or ask to connect; a third member still can", async () => {
    assertProblem(await http("POST", `/api/follows/${ada.user.id}`, { token: bob.token }), 404);
    assertProblem(
      await http("POST", "/api/connections", { token: bob.token, body: { toUserId: ada.user.id } }),
      404,
    );
    assert.equal(
      (await http("POST", `/api/follows/${bob.user.id}`, { token: cy.token })).status,
      204,
    );
    const blocks = await http("GET", "/api/blocks", { token: ada.token });
    assert.deepEqual(blocks.body.items.map((item: { user: { id: string } }) => item.user.id), [
      bob.user.id,
    ]);
  });

  await t.step("only the blocker can lift it; afterwards they see each other again", async () => {
    assertProblem(await http("DELETE", `/api/blocks/${ada.user.id}`, { token: bob.token }), 404);
    assert.equal(
      (await http("DELETE", `/api/blocks/${bob.user.id}`, { token: ada.token })).status,
      204,
    );
    assert.equal(
      (await http("GET", `/api/users/${bob.user.id}`, { token: ada.token })).status,
      200,
    );
    assert.equal((await http("GET", `/api/posts/${post.id}`, { token: ada.token })).status, 200);
  });

  await t.step("reports are stored for admins only", async () => {
    const report = await http("POST", "/api/reports", {
      token: ada.token,
      body: { userId: bob.user.id, reason: "spam in posts", postId: post.id },
    });
    assert.equal(report.status, 201);
    assertProblem(
      await http("POST", "/api/reports", {
        token: ada.token,
        body: { userId: ada.user.id, reason: "me" },
      }),
      400,
    );
    assertProblem(
      await http("POST", "/api/reports", {
        token: cy.token,
        body: { userId: ada.user.id, reason: "not her post", postId: post.id },
      }),
      400,
    );
    assertProblem(await http("GET", "/api/admin/reports", { token: ada.token }), 403);
    const admin = await signUp(http, { email: "mod@example.com" });
    const listed = await http("GET", "/api/admin/reports", { token: admin.token });
    assert.equal(listed.status, 200);
    assert.deepEqual(
      listed.body.items.map((
        item: { reporter: { name: string }; user: { name: string }; reason: string },
      ) => [
        item.reporter.name,
        item.user.name,
        item.reason,
      ]),
      [["Ada", "Bob", "spam in posts"]],
    );
  });
});

Deno.test("[graph] a block racing accepts and new requests never leaves a live request", async () => {
  await using t0 = await createTestApp();
  const { http } = t0;
  const people = await members(t0.deps, 40);
  const pairs = Array.from({ length: 20 }, (_, i) => [people[2 * i], people[2 * i + 1]]);
  await Promise.all(pairs.map(async ([a, b], round) => {
    const first = await connect(http, a, b);
    // The block is sent at a different point of each burst of 15 accepts and 15 new requests.
    const calls = Array.from({ length: 30 }, (_, i) => () => {
      if (i % 2 === 0) return move(http, b, first.id, "accepted");
      const [from, to] = i % 4 === 1 ? [a, b] : [b, a];
      return http("POST", "/api/connections", {
        token: from.token,
        body: { toUserId: to.user.id },
      });
    });
    calls.splice(round, 0, () => http("POST", `/api/blocks/${a.user.id}`, { token: b.token }));
    const answers = await Promise.all(calls.map((call) => call()));
    const [blocked] = answers.splice(round, 1);
    assert.equal(blocked.status, 204);
    assert.ok(answers.every((answer) => [200, 404, 409].includes(answer.status)));
    assert.equal(
      (await http("GET", `/api/connections/${first.id}`, { token: a.token })).body.status,
      "ended",
      "the request, accepted or not, was ended by the block",
    );
    for (const who of [a, b]) {
      for (const status of ["pending", "accepted"]) {
        const listed = await http("GET", `/api/connections?status=${status}`, { token: who.token });
        assert.deepEqual(listed.body.items, []);
      }
    }
    const rows = await t0.deps.database.db.select().from(connections)
      .where(eq(connections.requestId, first.id));
    assert.deepEqual(rows, []);
  }));
});
