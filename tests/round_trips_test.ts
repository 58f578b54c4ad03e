// Edge latency is the number of strong KV round trips a request waits for one after another
// (docs/performance.md). Each hot operation is counted here against its budget: every strong KV
// call is held and the calls are let go a round at a time (tests/helpers/kv-trips.ts), so this is
// a count, not a timing. A failure names each round's calls.
import assert from "node:assert/strict";
import { openKv } from "../kv/store.ts";
import { TripGate } from "./helpers/kv-trips.ts";
import { members } from "./helpers/members.ts";
import { connect, servedTestApp, TestSocket } from "./helpers/sockets.ts";

/** Decisions: one batched read of what they check, one commit of what they write. */
const DECISION = 2;
/** An authenticated read: the session costs none; what is read, at most one. */
const READ = 1;
/** A second joiner until found-match has reached both participants' sockets. */
const MATCHMAKING = 3;

Deno.test("[round trips] every hot operation waits for at most its budget of strong KV round trips", async (t) => {
  const gate = new TripGate();
  using store = await openKv(":memory:");
  await using t0 = await servedTestApp({ kv: gate.wrap(store) });
  const { http } = t0;
  const [admin] = await members(t0.deps, 1, { name: () => "Admin", role: "admin" });
  const [ada, bob, cy, dan, eve, fay, gus] = await members(t0.deps, 7, { gender: "female" });

  async function within(
    budget: number,
    operation: () => Promise<{ status: number } | void>,
    status?: number,
  ) {
    const { trips, rounds, value } = await gate.measure(operation);
    if (value && status !== undefined) assert.equal(value.status, status);
    assert.ok(
      trips <= budget,
      `${trips} round trips (budget ${budget}):\n  ${
        rounds.map((r) => r.join(" | ")).join("\n  ")
      }`,
    );
  }

  await t.step("reads: GET /api/auth/me, a cached feed page, a sale page, discovery", async () => {
    await within(READ, () => http("GET", "/api/auth/me", { token: ada.token }), 200);
    await http("GET", "/api/feed", { token: ada.token });
    await within(READ, () => http("GET", "/api/feed", { token: ada.token }), 200);
    await http("GET", "/api/discover", { token: ada.token });
    await within(READ, () => http("GET", "/api/discover", { token: ada.token }), 200);
  });

  await t.step("like and follow", async () => {
    const post = await http("POST", "/api/posts", { token: bob.token, body: { text: "hello" } });
    await within(
      DECISION,
      () => http("POST", `/api/posts/${post.body.id}/like`, { token: ada.token }),
      200,
    );
    await within(DECISION, () => http("POST", `/api/follows/${bob.user.id}`, { token: ada.token }));
  });

  await t.step("a connection decision, and a block", async () => {
    const request = await http("POST", "/api/connections", {
      token: ada.token,
      body: { toUserId: bob.user.id },
    });
    await within(
      DECISION,
      () =>
        http("PATCH", `/api/connections/${request.body.id}`, {
          token: bob.token,
          body: { status: "accepted" },
        }),
      200,
    );
    await within(DECISION, () => http("POST", `/api/blocks/${cy.user.id}`, { token: ada.token }));
  });

  await t.step("a chat message sent over a socket, until its ack", async () => {
    await using socket = await TestSocket.open(t0.url, ada.token);
    await socket.roundTrip();
    await within(DECISION, async () => {
      socket.send("private-message", { toUserId: bob.user.id, tempId: "t1", text: "hi" });
      await socket.waitFor("message-delivered");
    });
  });

  await t.step("a sale page, a reservation, its checkout", async () => {
    const product = await http("POST", "/api/products", {
      token: admin.token,
      body: { name: "Mug", priceCents: 900, currency: "USD" },
    });
    const sale = await http("POST", "/api/sales", {
      token: admin.token,
      body: {
        items: [{ productId: product.body.id, stock: 10, priceCents: 900 }],
        startsAt: new Date(t0.clock.now() - 60_000).toISOString(),
        endsAt: new Date(t0.clock.now() + 3_600_000).toISOString(),
        perUserLimit: 5,
      },
    });
    await within(READ, () => http("GET", `/api/sales/${sale.body.id}`, { token: ada.token }), 200);
    let holdId = "";
    await within(DECISION, async () => {
      const hold = await http("POST", `/api/sales/${sale.body.id}/reservations`, {
        token: ada.token,
        body: { productId: product.body.id, quantity: 1 },
      });
      holdId = hold.body.id;
      return hold;
    }, 201);
    await within(
      DECISION,
      () => http("POST", `/api/reservations/${holdId}/checkout`, { token: ada.token }),
      200,
    );
  });

  await t.step("an interview transition", async () => {
    await connect(http, dan, eve);
    const interview = await http("POST", "/api/interviews", {
      token: dan.token,
      body: {
        candidateId: eve.user.id,
        skill: "Algorithms",
        prompt: "Find a value in a sorted array.",
        rubric: [{ criterion: "Correctness", weight: 1 }],
      },
    });
    await within(
      DECISION,
      () => http("POST", `/api/interviews/${interview.body.id}/start`, { token: eve.token }),
      200,
    );
  });

  await t.step(
    "matchmaking: the second join until found-match on both sockets; connect; end",
    async () => {
      await using fays = await TestSocket.open(t0.url, fay.token);
      await using guss = await TestSocket.open(t0.url, gus.token);
      await Promise.all([fays.roundTrip(), guss.roundTrip()]);
      const body = { intent: "pair-programming" };
      await http("POST", "/api/match/queue", { token: fay.token, body });
      await within(MATCHMAKING, async () => {
        await http("POST", "/api/match/queue", { token: gus.token, body });
        await Promise.all([fays.waitFor("found-match"), guss.waitFor("found-match")]);
      });
      const [found] = fays.received("found-match");
      const match = `/api/match/${found.data.matchId}`;
      await within(DECISION, () => http("POST", `${match}/connect`, { token: fay.token }), 200);
      await within(
        DECISION,
        () => http("POST", `${match}/end`, { token: fay.token }),
        200,
      );
    },
  );
});
