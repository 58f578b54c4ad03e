import assert from "node:assert/strict";
import { eq, or } from "drizzle-orm";
import type { Deps } from "../deps.ts";
import { matches } from "../db/schema.ts";
import { readEvents } from "../kv/events.ts";
import { matchKey, matchMemberKey, matchQueueKey } from "../kv/keys.ts";
import { type MatchRules, readMembership } from "../kv/matches/match.ts";
import { joinQueue, pairWaiting, queueLength } from "../kv/matches/queue.ts";
import { Outbox } from "../kv/outbox.ts";
import { holdPresence, readPresence } from "../kv/presence.ts";
import { openKv } from "../kv/store.ts";
import { sweepMatches, timeUp } from "../workflows/matches.ts";
import { assertProblem, createTestApp, type HttpClient, testClock } from "./helpers/app.ts";
import { heldJobs } from "./helpers/held-jobs.ts";
import { type Member, members } from "./helpers/members.ts";
import { servedTestApp, TestSocket } from "./helpers/sockets.ts";

type Options = Parameters<typeof createTestApp>[0];

/** A served app with Ada (female), Bob and Dan (male) and Cy and Eve (undisclosed). */
async function matchApp(options: Options = {}) {
  const t0 = await servedTestApp(options);
  const [ada] = await members(t0.deps, 1, { name: () => "Ada", gender: "female" });
  const [bob, dan] = await members(t0.deps, 2, { name: (i) => ["Bob", "Dan"][i], gender: "male" });
  const [cy, eve] = await members(t0.deps, 2, { name: (i) => ["Cy", "Eve"][i] });
  return {
    ...t0,
    ada,
    bob,
    cy,
    dan,
    eve,
    socket: async (who: Member) => {
      const socket = await TestSocket.open(t0.url, who.token);
      await socket.roundTrip();
      return socket;
    },
  };
}

function join(http: HttpClient, who: Member, intent = "pair-programming") {
  return http("POST", "/api/match/queue", { token: who.token, body: { intent } });
}

async function joined(http: HttpClient, who: Member, intent?: string) {
  const answer = await join(http, who, intent);
  assert.equal(answer.status, 202, JSON.stringify(answer.body));
  assert.equal(answer.body.status, "queuing");
}

async function current(http: HttpClient, who: Member) {
  const answer = await http("GET", "/api/match/current", { token: who.token });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

/** Two members matched with each other (the first joins, the second finds them). */
async function matched(http: HttpClient, first: Member, second: Member) {
  await joined(http, first);
  await joined(http, second);
  const match = await current(http, first);
  assert.equal(match.peer.id, second.user.id);
  return match;
}

function act(http: HttpClient, who: Member, matchId: string, action: string) {
  return http("POST", `/api/match/${matchId}/${action}`, { token: who.token });
}

async function eventsOf(deps: Deps, who: Member, type: string) {
  const events = await readEvents(deps.kv, who.user.id, 0, 1000);
  // deno-lint-ignore no-explicit-any
  return events.filter((event) => event.type === type) as { data: any }[];
}

async function historyRow(deps: Deps, matchId: string) {
  await deps.outbox.flush();
  const [row] = await deps.database.db.select().from(matches).where(eq(matches.id, matchId));
  return row;
}

Deno.test("[matches] 200 members join one intent at once → exactly 100 matches", async () => {
  await using t0 = await createTestApp();
  const crowd = await members(t0.deps, 200);
  const answers = await Promise.all(crowd.map((who) => join(t0.http, who, "Code Review")));
  assert.deepEqual(new Set(answers.map((answer) => answer.status)), new Set([202]));

  const peers = new Map<string, { matchId: string; peerId: string; role: string }>();
  for (const who of crowd) {
    const match = await current(t0.http, who);
    peers.set(who.user.id, { matchId: match.matchId, peerId: match.peer.id, role: match.role });
  }
  // Every member is in exactly one match, with a peer who is in the same match with them.
  for (const [userId, { matchId, peerId, role }] of peers) {
    const peer = peers.get(peerId)!;
    assert.equal(peer.peerId, userId);
    assert.equal(peer.matchId, matchId);
    assert.notEqual(peer.role, role);
  }
  assert.equal(new Set([...peers.values()].map((entry) => entry.matchId)).size, 100);
  assert.equal(await queueLength(t0.deps.kv, "code review"), 0);
  for (const who of crowd) {
    const found = await eventsOf(t0.deps, who, "found-match");
    assert.equal(found.length, 1, `${who.user.id} got ${found.length} found-match events`);
    assert.equal(found[0].data.matchId, peers.get(who.user.id)!.matchId);
  }
  const rows = await t0.deps.database.db.select().from(matches);
  assert.equal(rows.length, 100);
  assert.equal(new Set(rows.flatMap((row) => [row.offererId, row.answererId])).size, 200);
});

Deno.test("[matches] joiners arriving together: a blocked pair is not paired, a double join is refused", async () => {
  await using t0 = await createTestApp();
  for (let round = 0; round < 10; round++) {
    const [ada, bob, cy, dan] = await members(t0.deps, 4);
    const blocked = await t0.http("POST", `/api/blocks/${bob.user.id}`, { token: ada.token });
    assert.equal(blocked.status, 204);
    const intent = `together ${round}`;
    // In every order: the first to arrive may go alone, those behind it arrive together.
    const arriving = [dan, ada, bob, cy, cy];
    const order = [...arriving.slice(round % 5), ...arriving.slice(0, round % 5)];
    const answers = await Promise.all(order.map((who) => join(t0.http, who, intent)));
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [202, 202, 202, 202, 409]);
    const peerOf = async (who: Member) => {
      const answer = await t0.http("GET", "/api/match/current", { token: who.token });
      return answer.status === 200 ? answer.body.peer.id as string : null;
    };
    const peers = new Map<string, string | null>();
    for (const who of [ada, bob, cy, dan]) peers.set(who.user.id, await peerOf(who));
    assert.notEqual(peers.get(ada.user.id), bob.user.id, "the blocked pair never meets");
    assert.notEqual(peers.get(cy.user.id), cy.user.id, "nobody meets themselves");
    // Cy and Dan each pair with one of Ada and Bob, or with each other, leaving those two apart.
    const matchedCount = [...peers.values()].filter((peer) => peer !== null).length;
    assert.equal(matchedCount, [ada, bob].some((who) => peers.get(who.user.id) === null) ? 2 : 4);
    for (const [userId, peer] of peers) if (peer) assert.equal(peers.get(peer), userId);
    assert.equal(await queueLength(t0.deps.kv, intent), 4 - matchedCount);
  }
});

Deno.test("[matches] found-match carries the stored profile; a client's claims are refused", async () => {
  await using t0 = await matchApp();
  await using adaSocket = await t0.socket(t0.ada);
  await using bobSocket = await t0.socket(t0.bob);
  await joined(t0.http, t0.bob);
  // A spoofed id and gender in the body are refused, naming them; nobody was queued.
  const spoofed = await t0.http("POST", "/api/match/queue", {
    token: t0.ada.token,
    body: { intent: "pair-programming", userId: t0.cy.user.id, gender: "male" },
  });
  assert.deepEqual(assertProblem(spoofed, 400).errors.map((e: { path: string }) => e.path), [
    "userId",
    "gender",
  ]);
  const answer = await t0.http("POST", "/api/match/queue", {
    token: t0.ada.token,
    body: { intent: "pair-programming" },
  });
  assert.equal(answer.status, 202);
  const [toAda] = await adaSocket.waitFor("found-match");
  const [toBob] = await bobSocket.waitFor("found-match");
  assert.equal(toAda.data.matchId, toBob.data.matchId);
  assert.deepEqual(toAda.data.peer, { id: t0.bob.user.id, name: "Bob", gender: "male" });
  assert.deepEqual(toBob.data.peer, { id: t0.ada.user.id, name: "Ada", gender: "female" });
  // The member who waited longer makes the offer.
  assert.deepEqual([toBob.data.role, toAda.data.role], ["offerer", "answerer"]);
  const endsAt = Date.parse(toAda.data.endsAt) - Date.parse(toAda.data.startedAt);
  assert.equal(endsAt, 180_000);
  // Presence shows both in the call.
  const presence = await readPresence(t0.deps.kv, [t0.ada.user.id, t0.bob.user.id], t0.clock.now());
  assert.deepEqual([...presence.values()], ["in-call", "in-call"]);
});

Deno.test("[matches] queue rules: 409 when queued or in a call, bad input 400, others 404", async (t) => {
  await using t0 = await matchApp();
  const { http, ada, bob, cy } = t0;

  await t.step(
    "joining twice → 409 already-queued; joining during a call → 409 in-call",
    async () => {
      await joined(http, ada);
      const twice = assertProblem(await join(http, ada, "mentoring"), 409);
      assert.equal(twice.type, "/problems/already-queued");
      assert.equal(twice.intent, "pair-programming");
      const waiting = assertProblem(
        await http("GET", "/api/match/current", { token: ada.token }),
        404,
      );
      assert.equal(waiting.queuing.intent, "pair-programming");
      await joined(http, bob);
      const busy = assertProblem(await join(http, ada), 409);
      assert.equal(busy.type, "/problems/in-call");
      assert.equal(busy.matchId, (await current(http, ada)).matchId);
    },
  );

  await t.step("bad intents → 400 naming the field; nothing is queued", async () => {
    for (const body of [{}, { intent: "" }, { intent: "a".repeat(41) }, { intent: "x/../y" }]) {
      const problem = assertProblem(
        await http("POST", "/api/match/queue", { token: cy.token, body }),
        400,
      );
      assert.equal(problem.errors[0].path, "intent");
    }
    assertProblem(await http("GET", "/api/match/current", { token: cy.token }), 404);
    assertProblem(await http("POST", "/api/match/queue", { body: { intent: "x" } }), 401);
  });

  await t.step(
    "a match is private: others get 404 on read, end and every safety action",
    async () => {
      const { matchId } = await current(http, ada);
      assertProblem(await http("GET", `/api/match/${matchId}`, { token: cy.token }), 404);
      for (const action of ["end", "connect", "video-request", "video-approve"]) {
        assertProblem(await act(http, cy, matchId, action), 404);
      }
      assertProblem(await act(http, cy, "no-such-match", "end"), 404);
      assert.equal((await current(http, bob)).state, "live");
    },
  );

  await t.step(
    "ending: 200 to the caller, call-ended once to each, 200 again changes nothing",
    async () => {
      const { matchId } = await current(http, ada);
      const ended = await act(http, bob, matchId, "end");
      assert.equal(ended.status, 200);
      assert.deepEqual([ended.body.state, ended.body.outcome], ["ended", "ended"]);
      assert.equal((await act(http, ada, matchId, "end")).status, 200);
      for (const who of [ada, bob]) {
        const calls = await eventsOf(t0.deps, who, "call-ended");
        assert.deepEqual(calls.map((event) => event.data.reason), ["ended"]);
        assertProblem(await http("GET", "/api/match/current", { token: who.token }), 404);
      }
      const row = await historyRow(t0.deps, matchId);
      assert.deepEqual([row.outcome, row.endedBy, row.durationSeconds], ["ended", bob.user.id, 0]);
      // A member whose match vanished from KV without ever ending is not stuck in it.
      await matched(http, ada, cy);
      await t0.deps.kv.delete(matchKey((await current(http, cy)).matchId));
      await joined(http, cy);
      assert.ok(
        assertProblem(await http("GET", "/api/match/current", { token: cy.token }), 404).queuing,
      );
      await http("DELETE", "/api/match/queue", { token: cy.token });
      // Leaving when not queued is fine.
      assert.equal((await http("DELETE", "/api/match/queue", { token: ada.token })).status, 204);
    },
  );
});

Deno.test("[matches] a member who left or disconnected is never matched afterwards", async (t) => {
  await using t0 = await matchApp();
  const { http, ada, bob, cy, dan } = t0;

  await t.step("leaving with DELETE", async () => {
    await joined(http, ada);
    assert.equal((await http("DELETE", "/api/match/queue", { token: ada.token })).status, 204);
    await joined(http, bob);
    assertProblem(await http("GET", "/api/match/current", { token: ada.token }), 404);
    const waiting = assertProblem(
      await http("GET", "/api/match/current", { token: bob.token }),
      404,
    );
    assert.ok(waiting.queuing, "Bob waits: nobody else is there");
  });

  await t.step("closing the last socket", async () => {
    const socket = await t0.socket(cy);
    // Bob is waiting, so Cy would be matched at once: use another intent.
    await joined(http, cy, "mentoring");
    await socket.close();
    await waitUntil(async () => await queueLength(t0.deps.kv, "mentoring") === 0);
    await joined(http, dan, "mentoring");
    assertProblem(await http("GET", "/api/match/current", { token: cy.token }), 404);
    assert.ok(
      assertProblem(await http("GET", "/api/match/current", { token: dan.token }), 404).queuing,
    );
  });

  await t.step(
    "100 leave, then 100 others join at once: the leavers are never matched",
    async () => {
      const leavers = await members(t0.deps, 100);
      const joiners = await members(t0.deps, 100);
      // Leavers join one by one into a fresh intent and leave, concurrently with each other.
      await Promise.all(leavers.map(async (who) => {
        await joined(http, who, "rush");
        await http("DELETE", "/api/match/queue", { token: who.token });
      }));
      const paired = new Set<string>();
      for (const who of leavers) {
        const answer = await http("GET", "/api/match/current", { token: who.token });
        if (answer.status === 200) paired.add(who.user.id); // matched before their DELETE landed
      }
      await Promise.all(joiners.map((who) => joined(http, who, "rush")));
      const leaverIds = new Set(leavers.map((who) => who.user.id));
      let matchedJoiners = 0;
      for (const who of joiners) {
        const answer = await http("GET", "/api/match/current", { token: who.token });
        if (answer.status !== 200) continue;
        matchedJoiners++;
        assert.ok(!leaverIds.has(answer.body.peer.id), "a joiner was matched with a leaver");
      }
      assert.equal(matchedJoiners, 100);
      for (const who of leavers) {
        const answer = await http("GET", "/api/match/current", { token: who.token });
        assert.equal(answer.status === 200, paired.has(who.user.id));
      }
    },
  );
});

Deno.test("[matches] the queue over the socket: join-queue and leave-queue frames", async (t) => {
  await using t0 = await matchApp();
  const { http, ada, bob, cy, dan } = t0;

  await t.step(
    "two joins over sockets → found-match on both, with the queue answered",
    async () => {
      await using adaSocket = await t0.socket(ada);
      await using bobSocket = await t0.socket(bob);
      adaSocket.send("join-queue", { intent: "Pair  Programming" }, "a1");
      const [queued] = await adaSocket.waitFor("queue", (frame) => frame.data.ref === "a1");
      assert.deepEqual(queued.data, { ref: "a1", status: "queuing", intent: "pair programming" });
      bobSocket.send("join-queue", { intent: "pair programming" }, "b1");
      const [adaFound] = await adaSocket.waitFor("found-match");
      const [bobFound] = await bobSocket.waitFor("found-match");
      assert.equal(adaFound.data.matchId, bobFound.data.matchId);
      assert.equal(adaFound.data.peer.id, bob.user.id);
      assert.equal((await current(http, bob)).matchId, bobFound.data.matchId);
    },
  );

  await t.step("the same refusals as over HTTP, as error frames naming the frame", async () => {
    await using adaSocket = await t0.socket(ada);
    adaSocket.send("join-queue", { intent: "mentoring" }, "busy");
    const [busy] = await adaSocket.waitFor("error", (frame) => frame.data.ref === "busy");
    assert.deepEqual([busy.data.code, busy.data.status], ["in-call", 409]);
    adaSocket.send("join-queue", { intent: "x/../y" }, "bad");
    const [bad] = await adaSocket.waitFor("error", (frame) => frame.data.ref === "bad");
    assert.equal(bad.data.code, "invalid-frame");
    assert.equal(bad.data.errors[0].path, "data.intent");
  });

  await t.step("leave-queue: a member who left is never matched", async () => {
    await using cySocket = await t0.socket(cy);
    cySocket.send("join-queue", { intent: "rust" }, "c1");
    await cySocket.waitFor("queue", (frame) => frame.data.ref === "c1");
    cySocket.send("leave-queue", {}, "c2");
    const [left] = await cySocket.waitFor("queue", (frame) => frame.data.ref === "c2");
    assert.equal(left.data.status, "left");
    await joined(http, dan, "rust");
    assertProblem(await http("GET", "/api/match/current", { token: cy.token }), 404);
    assert.ok(
      assertProblem(await http("GET", "/api/match/current", { token: dan.token }), 404).queuing,
    );
  });

  await t.step("each frame spends the member's write budget, as the HTTP join does", async () => {
    await using limited = await servedTestApp({ env: { RATE_LIMIT_API: "2/1h" } });
    const [eve] = await members(limited.deps, 1);
    await using socket = await TestSocket.open(limited.url, eve.token);
    for (const id of ["e1", "e2"]) {
      socket.send(id === "e1" ? "join-queue" : "leave-queue", { intent: "go" }, id);
      await socket.waitFor("queue", (frame) => frame.data.ref === id);
    }
    socket.send("join-queue", { intent: "go" }, "e3");
    const [limitedError] = await socket.waitFor("error", (frame) => frame.data.ref === "e3");
    assert.equal(limitedError.data.code, "rate-limited");
    assertProblem(await limited.http("GET", "/api/match/current", { token: eve.token }), 404);
  });
});

async function waitUntil(condition: () => Promise<boolean>, deadlineMs = 5000) {
  const until = Date.now() + deadlineMs;
  while (!await condition()) {
    if (Date.now() > until) throw new Error("the condition never became true");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("[matches] signalling is relayed once between participants and refused to others", async (t) => {
  await using t0 = await matchApp();
  const { ada, bob, cy } = t0;
  await using adaSocket = await t0.socket(ada);
  await using bobSocket = await t0.socket(bob);
  await using cySocket = await t0.socket(cy);
  const { matchId } = await matched(t0.http, bob, ada);
  const offer = { type: "offer", sdp: "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\n" };

  await t.step("offer, answer and ICE candidates reach the peer once each", async () => {
    bobSocket.send("offer", { matchId, payload: offer });
    adaSocket.send("answer", { matchId, payload: { type: "answer", sdp: "v=0\r\n" } });
    for (let i = 0; i < 5; i++) {
      bobSocket.send("ice-candidate", {
        matchId,
        payload: { candidate: `candidate:${i}`, sdpMid: "0" },
      });
    }
    const [received] = await adaSocket.waitFor("offer");
    assert.deepEqual(received.data, { matchId, fromUserId: bob.user.id, payload: offer });
    await bobSocket.waitFor("answer");
    const candidates = await adaSocket.waitFor("ice-candidate", () => true, 5);
    assert.deepEqual(
      candidates.map((frame) => frame.data.payload.candidate),
      [0, 1, 2, 3, 4].map((i) => `candidate:${i}`),
    );
    await Promise.all([adaSocket.roundTrip(), bobSocket.roundTrip()]);
    assert.equal(adaSocket.received("offer").length, 1);
    assert.equal(bobSocket.received("answer").length, 1);
    assert.equal(bobSocket.received("offer").length, 0, "the sender does not get its own offer");
    assert.equal(adaSocket.received("error").length + bobSocket.received("error").length, 0);
  });

  await t.step("a non-participant's signal → error, and nobody receives it", async () => {
    cySocket.send("offer", { matchId, payload: offer }, "spoof");
    const [error] = await cySocket.waitFor("error");
    assert.deepEqual([error.data.code, error.data.status, error.data.ref], [
      "not-found",
      404,
      "spoof",
    ]);
    cySocket.send("ice-candidate", { matchId: "made-up", payload: {} });
    await cySocket.waitFor("error", () => true, 2);
    await Promise.all([adaSocket.roundTrip(), bobSocket.roundTrip()]);
    assert.equal(adaSocket.received("offer").length, 1);
    assert.equal(bobSocket.received("ice-candidate").length, 0);
  });

  await t.step("a malformed signal → error naming the field", async () => {
    bobSocket.send("offer", { payload: offer });
    const [error] = await bobSocket.waitFor("error");
    assert.equal(error.data.code, "invalid-frame");
  });

  await t.step("after the call ended, signals are refused", async () => {
    assert.equal((await act(t0.http, ada, matchId, "end")).status, 200);
    await Promise.all([adaSocket.waitFor("call-ended"), bobSocket.waitFor("call-ended")]);
    bobSocket.send("ice-candidate", { matchId, payload: { candidate: "late" } });
    const errors = await bobSocket.waitFor("error", () => true, 2);
    assert.equal(errors[1].data.code, "call-ended");
    await adaSocket.roundTrip();
    assert.equal(adaSocket.received("ice-candidate").length, 5);
  });
});

Deno.test("[matches] a call ends by itself at endsAt, once, and history records it", async (t) => {
  await using t0 = await matchApp({ env: { CALL_DURATION_SECONDS: "2" } });
  const { ada, bob } = t0;
  await using adaSocket = await t0.socket(ada);
  await using bobSocket = await t0.socket(bob);
  const match = await matched(t0.http, ada, bob);
  assert.equal(Date.parse(match.endsAt) - Date.parse(match.startedAt), 2000);

  await t.step("before endsAt, the sweep changes nothing", async () => {
    assert.deepEqual(await sweepMatches(t0.deps), { ended: 0, removed: 0, paired: 0 });
    assert.equal((await current(t0.http, ada)).state, "live");
  });

  await t.step("the scheduled job ends it at endsAt", async () => {
    t0.clock.advance(2000);
    await t0.jobsSettled("match-end");
    const [toAda] = await adaSocket.waitFor("call-ended");
    const [toBob] = await bobSocket.waitFor("call-ended");
    for (const frame of [toAda, toBob]) {
      assert.deepEqual(frame.data, {
        matchId: match.matchId,
        reason: "timeout",
        endedAt: match.endsAt,
        durationSeconds: 2,
      });
    }
    assertProblem(await t0.http("GET", "/api/match/current", { token: ada.token }), 404);
  });

  await t.step(
    "a late sweep and a repeated job change nothing; history has one timeout",
    async () => {
      assert.deepEqual(await sweepMatches(t0.deps), { ended: 0, removed: 0, paired: 0 });
      assert.equal(await timeUp(t0.deps, match.matchId), null);
      await Promise.all([adaSocket.roundTrip(), bobSocket.roundTrip()]);
      assert.equal(adaSocket.received("call-ended").length, 1);
      assert.equal(bobSocket.received("call-ended").length, 1);
      const row = await historyRow(t0.deps, match.matchId);
      assert.deepEqual([row.outcome, row.durationSeconds, row.endedBy], ["timeout", 2, null]);
      for (const who of [ada, bob]) {
        const { body } = await t0.http("GET", "/api/history/interactions", { token: who.token });
        assert.equal(body.items.length, 1);
        assert.deepEqual(
          [body.items[0].matchId, body.items[0].outcome, body.items[0].durationSeconds],
          [match.matchId, "timeout", 2],
        );
      }
      const presence = await readPresence(t0.deps.kv, [ada.user.id, bob.user.id], t0.clock.now());
      assert.deepEqual([...presence.values()], ["online", "online"]);
    },
  );
});

Deno.test("[matches] a call past endsAt is over before its job runs; the late job changes nothing", async (t) => {
  const held = heldJobs(["match-end"]);
  await using t0 = await matchApp({ jobs: held.jobs, env: { CALL_DURATION_SECONDS: "60" } });
  const { ada, bob, cy } = t0;

  await t.step("reading the current match ends an overdue call", async () => {
    const match = await matched(t0.http, ada, bob);
    await t0.deps.outbox.flush(); // the match's records enqueue its end a moment after the answer
    assert.equal(held.held.length, 1);
    assert.equal(held.held[0].options.delaySeconds, 60);
    t0.clock.advance(59_999);
    assert.equal((await sweepMatches(t0.deps)).ended, 0);
    t0.clock.advance(1);
    assertProblem(await t0.http("GET", "/api/match/current", { token: bob.token }), 404);
    assert.equal((await sweepMatches(t0.deps)).ended, 0, "reading it ended it already");
    await held.release("match-end");
    await t0.jobsSettled("match-end");
    for (const who of [ada, bob]) {
      assert.equal((await eventsOf(t0.deps, who, "call-ended")).length, 1);
    }
    assert.equal((await historyRow(t0.deps, match.matchId)).outcome, "timeout");
  });

  await t.step("joining again ends an overdue call, and the peer is told", async () => {
    const match = await matched(t0.http, cy, ada);
    t0.clock.advance(60_000);
    await joined(t0.http, cy, "other");
    const ended = await eventsOf(t0.deps, ada, "call-ended");
    assert.equal(ended.length, 2, "one call-ended per call");
    assert.equal(ended[1].data.matchId, match.matchId);
    assert.equal((await historyRow(t0.deps, match.matchId)).durationSeconds, 60);
  });
});

Deno.test("[matches] the sweep ends overdue calls whose job never came", async () => {
  const held = heldJobs(["match-end"]);
  await using t0 = await matchApp({ jobs: held.jobs });
  const first = await matched(t0.http, t0.ada, t0.bob);
  const second = await matched(t0.http, t0.cy, t0.dan);
  t0.clock.advance(180_000);
  assert.deepEqual(await sweepMatches(t0.deps), { ended: 2, removed: 0, paired: 0 });
  assert.deepEqual(await sweepMatches(t0.deps), { ended: 0, removed: 0, paired: 0 });
  for (const { matchId } of [first, second]) {
    const row = await historyRow(t0.deps, matchId);
    assert.deepEqual([row.outcome, row.durationSeconds], ["timeout", 180]);
  }
  // Racing ends (the job delivered many times, sweeps, hang-ups) still end it once.
  const third = await matched(t0.http, t0.ada, t0.eve);
  t0.clock.advance(180_000);
  await Promise.all([
    ...Array.from({ length: 20 }, () => timeUp(t0.deps, third.matchId)),
    ...Array.from({ length: 20 }, () => sweepMatches(t0.deps)),
    ...Array.from({ length: 20 }, () => act(t0.http, t0.eve, third.matchId, "end")),
  ]);
  for (const who of [t0.ada, t0.eve]) {
    const ended = await eventsOf(t0.deps, who, "call-ended");
    assert.equal(ended.filter((event) => event.data.matchId === third.matchId).length, 1);
  }
  assert.equal((await historyRow(t0.deps, third.matchId)).outcome, "timeout");
});

Deno.test("[matches] connect: the female participant decides; otherwise both must ask", async (t) => {
  await using t0 = await matchApp();
  const { http, ada, bob, cy, eve } = t0;
  await using bobSocket = await t0.socket(bob);

  await t.step("the male participant → 403 and no connection", async () => {
    const { matchId } = await matched(http, ada, bob);
    const problem = assertProblem(await act(http, bob, matchId, "connect"), 403);
    assert.equal(problem.type, "/problems/peer-decides");
    const pending = await http("GET", "/api/connections?status=accepted", { token: bob.token });
    assert.equal(pending.body.items.length, 0);
  });

  await t.step("the female participant → 200, and both see the connection", async () => {
    const { matchId } = await current(http, ada);
    const answer = await act(http, ada, matchId, "connect");
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.connected, true);
    for (const [who, other] of [[ada, bob], [bob, ada]]) {
      const { body } = await http("GET", "/api/connections?status=accepted", { token: who.token });
      assert.equal(body.items.length, 1);
      assert.deepEqual(
        new Set([body.items[0].fromUserId, body.items[0].toUserId]),
        new Set([who.user.id, other.user.id]),
      );
    }
    const [event] = await bobSocket.waitFor("match-connected");
    assert.equal(event.data.peerId, ada.user.id);
    // Connected, they may chat; again is a no-op.
    assert.equal((await act(http, ada, matchId, "connect")).body.connected, true);
    await act(http, bob, matchId, "end");
    assert.equal((await historyRow(t0.deps, matchId)).outcome, "connected");
  });

  await t.step("without a female participant, the first ask waits for the second", async () => {
    const { matchId } = await matched(http, cy, eve);
    const first = await act(http, cy, matchId, "connect");
    assert.equal(first.status, 200);
    assert.deepEqual([first.body.connected, first.body.connectAsked], [false, {
      you: true,
      peer: false,
    }]);
    assert.equal((await eventsOf(t0.deps, eve, "connect-request")).length, 1);
    assert.equal((await act(http, cy, matchId, "connect")).body.connected, false);
    assert.equal((await eventsOf(t0.deps, eve, "connect-request")).length, 1, "asked once");
    const none = await http("GET", "/api/connections?status=accepted", { token: cy.token });
    assert.equal(none.body.items.length, 0);
    // After the call ends, the other may still agree.
    await act(http, eve, matchId, "end");
    const second = await act(http, eve, matchId, "connect");
    assert.equal(second.body.connected, true);
    const { body } = await http("GET", "/api/connections?status=accepted", { token: cy.token });
    assert.equal(body.items.length, 1);
    assert.equal((await historyRow(t0.deps, matchId)).outcome, "connected");
  });

  await t.step("100 concurrent connects from both sides make one connection", async () => {
    const { matchId } = await matched(http, t0.dan, eve);
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => act(http, i % 2 ? t0.dan : eve, matchId, "connect")),
    );
    assert.deepEqual(new Set(answers.map((answer) => answer.status)), new Set([200]));
    const { body } = await http("GET", "/api/connections?status=accepted", { token: t0.dan.token });
    assert.equal(body.items.length, 1);
    assert.equal((await eventsOf(t0.deps, t0.dan, "match-connected")).length, 1);
  });
});

Deno.test("[matches] video: either asks, the female participant approves", async () => {
  await using t0 = await matchApp();
  const { http, ada, bob } = t0;
  await using adaSocket = await t0.socket(ada);
  await using bobSocket = await t0.socket(bob);
  const { matchId } = await matched(http, ada, bob);
  const asked = await act(http, bob, matchId, "video-request");
  assert.equal(asked.status, 202);
  const [request] = await adaSocket.waitFor("video-request");
  assert.deepEqual(request.data, { matchId, fromUserId: bob.user.id });
  assert.equal(
    assertProblem(await act(http, bob, matchId, "video-approve"), 403).type,
    "/problems/peer-decides",
  );
  const approved = await act(http, ada, matchId, "video-approve");
  assert.equal(approved.status, 200);
  assert.equal(approved.body.video.approved, true);
  for (const socket of [adaSocket, bobSocket]) {
    const [event] = await socket.waitFor("video-approved");
    assert.deepEqual(event.data, { matchId, approvedBy: ada.user.id });
  }
  await act(http, ada, matchId, "end");
  assertProblem(await act(http, bob, matchId, "video-request"), 409);
});

Deno.test("[matches] video without a female participant: the requester's peer approves", async () => {
  await using t0 = await matchApp();
  const { http, cy, eve } = t0;
  const { matchId } = await matched(http, cy, eve);
  assert.equal(
    assertProblem(await act(http, eve, matchId, "video-approve"), 409).type,
    "/problems/no-video-request",
  );
  assert.equal((await act(http, cy, matchId, "video-request")).status, 202);
  assertProblem(await act(http, cy, matchId, "video-approve"), 403);
  assert.equal((await act(http, eve, matchId, "video-approve")).body.video.approved, true);
});

Deno.test("[matches] blocking during a call ends it; blocked and recent pairs are never paired", async (t) => {
  await using t0 = await matchApp({ env: { REMATCH_COOLDOWN_SECONDS: "600" } });
  const { http, ada, bob, cy, dan } = t0;
  await using adaSocket = await t0.socket(ada);
  await using bobSocket = await t0.socket(bob);

  await t.step("a block ends the call: blocked for the blocker, ended for the other", async () => {
    const { matchId } = await matched(http, ada, bob);
    assert.equal(
      (await http("POST", `/api/blocks/${bob.user.id}`, { token: ada.token })).status,
      204,
    );
    const [toAda] = await adaSocket.waitFor("call-ended");
    const [toBob] = await bobSocket.waitFor("call-ended");
    assert.deepEqual([toAda.data.reason, toBob.data.reason], ["blocked", "ended"]);
    assertProblem(await http("GET", "/api/match/current", { token: bob.token }), 404);
    const mine = (await http("GET", "/api/history/interactions", { token: ada.token })).body.items;
    const theirs =
      (await http("GET", "/api/history/interactions", { token: bob.token })).body.items;
    assert.deepEqual([mine[0].outcome, theirs[0].outcome], ["blocked", "ended"]);
    assertProblem(await act(http, ada, matchId, "connect"), 409);
  });

  await t.step("blocked members wait side by side and are never paired", async () => {
    await joined(http, ada);
    await joined(http, bob);
    assertProblem(await http("GET", "/api/match/current", { token: bob.token }), 404);
    await joined(http, cy);
    assert.equal((await current(http, cy)).peer.id, ada.user.id, "Cy pairs with Ada, skipping Bob");
    await http("POST", `/api/match/${(await current(http, cy)).matchId}/end`, { token: cy.token });
  });

  await t.step(
    "members matched within the cooldown are not paired again; later they are",
    async () => {
      // Bob still waits. Dan and Bob meet, hang up, and both queue again.
      await using _danSocket = await t0.socket(dan);
      await joined(http, dan);
      const { matchId } = await current(http, dan);
      await act(http, dan, matchId, "end");
      await joined(http, dan);
      await joined(http, bob);
      assertProblem(await http("GET", "/api/match/current", { token: bob.token }), 404);
      assert.equal((await sweepMatches(t0.deps)).paired, 0);
      t0.clock.advance(600_000);
      await t0.deps.hub.heartbeat(); // the sockets are still there (the test clock jumped)
      const swept = await sweepMatches(t0.deps);
      assert.equal(swept.paired, 1);
      assert.equal((await current(http, bob)).peer.id, dan.user.id);
    },
  );
});

Deno.test("[matches] members in a call may chat while it lasts, without being connected", async () => {
  await using t0 = await matchApp();
  const { http, cy, eve } = t0;
  const send = (from: Member, to: Member, text: string) =>
    http("POST", `/api/conversations/${to.user.id}/messages`, {
      token: from.token,
      body: { text, tempId: crypto.randomUUID() },
    });
  assertProblem(await send(cy, eve, "hello?"), 403);
  const { matchId } = await matched(http, cy, eve);
  assert.equal((await send(cy, eve, "hi from the call")).status, 201);
  await act(http, eve, matchId, "end");
  assertProblem(await send(cy, eve, "still there?"), 403);
  await t0.jobsSettled("notify", 1);
});

Deno.test("[matches] the sweep drops queued members who have had no socket for a presence lifetime", async () => {
  await using t0 = await matchApp();
  await joined(t0.http, t0.ada, "late-night");
  assert.equal((await sweepMatches(t0.deps)).removed, 0, "a fresh joiner gets time to connect");
  t0.clock.advance(t0.deps.hub.options.presenceTtlMs + 1);
  assert.equal((await sweepMatches(t0.deps)).removed, 1);
  assert.equal(await queueLength(t0.deps.kv, "late-night"), 0);
  await joined(t0.http, t0.bob, "late-night");
  assertProblem(await t0.http("GET", "/api/match/current", { token: t0.ada.token }), 404);

  // A socket on an isolate that died lapses; the presence sweep takes its member out of the queue.
  await t0.http("DELETE", "/api/match/queue", { token: t0.bob.token });
  const now = t0.clock.now();
  await holdPresence(t0.deps.kv, t0.cy.user.id, ["socket-on-a-dead-isolate"], now, now + 60_000);
  await joined(t0.http, t0.cy, "late-night");
  t0.clock.advance(60_001);
  assert.equal(await t0.deps.hub.sweepPresence(), 1);
  assert.equal(await queueLength(t0.deps.kv, "late-night"), 0);
});

Deno.test("[matches] history lists past matches newest first, by keyset, without live ones", async () => {
  await using t0 = await matchApp({ env: { REMATCH_COOLDOWN_SECONDS: "1" } });
  const { http, ada, bob } = t0;
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    const { matchId } = await matched(http, ada, bob);
    ids.push(matchId);
    t0.clock.advance(1000);
    if (i < 4) await act(http, ada, matchId, "end");
  }
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `?limit=2&cursor=${cursor}` : "?limit=2";
    const { body } = await http("GET", `/api/history/interactions${query}`, { token: bob.token });
    seen.push(...body.items.map((item: { matchId: string }) => item.matchId));
    cursor = body.nextCursor;
  } while (cursor);
  assert.deepEqual(seen, ids.slice(0, 4).reverse());
  assertProblem(
    await http("GET", "/api/history/interactions?cursor=forged", { token: bob.token }),
    400,
  );
  const rows = await t0.deps.database.db.select().from(matches)
    .where(or(eq(matches.offererId, ada.user.id), eq(matches.answererId, ada.user.id)));
  assert.equal(rows.length, 5);
});

/**
 * A KV store whose first commit is preceded by `interleave`: a decision elsewhere that lands
 * between the reads a commit rests on and the commit itself.
 */
function raced(kv: Deno.Kv, interleave: () => Promise<unknown>) {
  let pending = true;
  const atomic = () => {
    const operation = kv.atomic();
    const commit = operation.commit.bind(operation);
    operation.commit = async () => {
      if (pending) {
        pending = false;
        await interleave();
      }
      return await commit();
    };
    return operation;
  };
  return {
    kv: new Proxy(kv, {
      get: (target, key) => {
        if (key === "atomic") return atomic;
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }),
    interleaved: () => !pending,
  };
}

Deno.test("[matches] the pairing commit checks both members itself: one moved after the read is never paired", async (t) => {
  for (const moved of ["waiting peer", "seeker"] as const) {
    await t.step(`the ${moved} moved`, async () => {
      const kv = await openKv(":memory:");
      try {
        const clock = testClock();
        const outbox = new Outbox(kv, clock, () => {});
        const rules: MatchRules = {
          callDurationMs: 60_000,
          cooldownMs: 0,
          effects: () => ({ events: [], records: [] }),
        };
        const ada = { id: "ada", name: "Ada", gender: "female" as const };
        const bob = { id: "bob", name: "Bob", gender: "male" as const };
        assert.equal(
          (await joinQueue({ kv, outbox, now: clock.now }, ada, "chat", rules)).match,
          null,
        );
        clock.advance(1);
        // Bob queues too (written directly, so that his pairing runs below, under the race).
        const joinedAt = clock.now();
        await kv.atomic()
          .set(matchMemberKey(bob.id), { status: "queuing", intent: "chat", joinedAt })
          .set(matchQueueKey("chat", joinedAt, bob.id), { ...bob, intent: "chat", joinedAt })
          .commit();
        // Elsewhere, one of them is moved into another call; no queue entry or log changes.
        const movedId = moved === "seeker" ? bob.id : ada.id;
        const elsewhere = { status: "in-call", matchId: "elsewhere", peerId: "zed" };
        const race = raced(kv, () => kv.set(matchMemberKey(movedId), elsewhere));

        const match = await pairWaiting({ kv: race.kv, outbox, now: clock.now }, bob.id, rules);

        assert.equal(race.interleaved(), true, "the race happened");
        assert.equal(match, null, "nobody is in two matches");
        assert.deepEqual(await readMembership(kv, movedId), elsewhere);
        const other = await readMembership(kv, movedId === ada.id ? bob.id : ada.id);
        assert.equal(other?.status, "queuing");
      } finally {
        kv.close();
      }
    });
  }
});
