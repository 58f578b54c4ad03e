import assert from "node:assert/strict";
import { assertProblem, createTestApp, type HttpClient, signUp } from "./helpers/app.ts";
import { type Member, members } from "./helpers/members.ts";
import { chatTempKey, memberCardKey, memberStandingKey } from "../kv/keys.ts";

type App = Awaited<ReturnType<typeof createTestApp>>;

async function connected(http: HttpClient, one: Member, other: Member) {
  const sent = await http("POST", "/api/connections", {
    token: one.token,
    body: { toUserId: other.user.id, message: "Hi!" },
  });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  const accepted = await http("PATCH", `/api/connections/${sent.body.id}`, {
    token: other.token,
    body: { status: "accepted" },
  });
  assert.equal(accepted.status, 200, JSON.stringify(accepted.body));
}

async function auditActions(t0: App, admin: Member) {
  const log = await t0.http("GET", "/api/admin/audit", { token: admin.token });
  assert.equal(log.status, 200);
  return log.body.items.map((entry: { action: string; subject: { id: string } }) =>
    `${entry.action} ${entry.subject.id}`
  );
}

Deno.test("[moderation] a suspension racing a member's sends: none commits after it; they cannot sign in, are hidden everywhere, and come back when restored", async (t) => {
  await using t0 = await createTestApp({ env: { ADMIN_EMAILS: "mod@example.com" } });
  const admin = await signUp(t0.http, { name: "Mod", email: "mod@example.com" });
  const adminMember = { user: admin.user, token: admin.token } as Member;
  const [ada] = await members(t0.deps, 1, { name: () => "Ada Reader" });
  const bob = await signUp(t0.http, { name: "Bob Spammer" });
  const bobMember = { user: bob.user, token: bob.token } as Member;
  await connected(t0.http, bobMember, ada);
  const post = await t0.http("POST", "/api/posts", { token: bob.token, body: { text: "Buy now" } });
  const adaPost = await t0.http("POST", "/api/posts", {
    token: ada.token,
    body: { text: "Hello" },
  });
  const comment = await t0.http("POST", `/api/posts/${adaPost.body.id}/comments`, {
    token: bob.token,
    body: { text: "Cheap pills" },
  });
  assert.equal(comment.status, 201);
  await t0.deps.outbox.flush();

  await t.step("50 sends racing the suspension: every stored one committed before it", async () => {
    const sends = Array.from(
      { length: 50 },
      (_, i) =>
        t0.http("POST", `/api/conversations/${ada.user.id}/messages`, {
          token: bob.token,
          body: { text: `spam ${i}`, tempId: `t-${i}` },
        }),
    );
    await Promise.race(sends); // one went through: the rest race the suspension
    const suspended = await t0.http("POST", `/api/admin/users/${bob.user.id}/suspend`, {
      token: admin.token,
      body: { reason: "spam" },
    });
    assert.equal(suspended.status, 200, JSON.stringify(suspended.body));
    assert.equal(suspended.body.until, null, "for good");
    const answers = await Promise.all(sends);
    assert.ok(
      answers.every((answer) => [201, 401, 403].includes(answer.status)),
      JSON.stringify(answers.map((answer) => answer.status)),
    );
    const standing = await t0.deps.kv.get(memberStandingKey(bob.user.id));
    let stored = 0;
    for (let i = 0; i < 50; i++) {
      const sent = await t0.deps.kv.get(chatTempKey(bob.user.id, `t-${i}`));
      if (!sent.value) continue;
      stored++;
      assert.ok(
        sent.versionstamp! < standing.versionstamp!,
        `message ${i} committed after the suspension`,
      );
      assert.equal(answers[i].status, 201, "every stored message was acknowledged");
    }
    assert.equal(stored, answers.filter((answer) => answer.status === 201).length);
    assert.ok(stored > 0 && stored < 50, `a real race: ${stored} of 50 sent before it`);
    // Anything sent now is refused.
    const after = await t0.http("POST", `/api/conversations/${ada.user.id}/messages`, {
      token: bob.token,
      body: { text: "still here?", tempId: "t-after" },
    });
    assertProblem(after, 401);
  });

  await t.step("they cannot sign in; the owner is told why, no one else", async () => {
    const refused = await t0.http("POST", "/api/auth/login", {
      body: { email: bob.email, password: bob.password },
    });
    assert.equal(assertProblem(refused, 403).type, "/problems/account-suspended");
    assert.equal(refused.body.until, null);
    const wrong = await t0.http("POST", "/api/auth/login", {
      body: { email: bob.email, password: "not-the-password" },
    });
    assertProblem(wrong, 401);
  });

  await t.step("their posts, comments and profile are hidden from everyone", async () => {
    await t0.deps.outbox.flush();
    assertProblem(await t0.http("GET", `/api/posts/${post.body.id}`, { token: ada.token }), 404);
    const comments = await t0.http("GET", `/api/posts/${adaPost.body.id}/comments`, {
      token: ada.token,
    });
    assert.deepEqual(comments.body.items, []);
    assertProblem(await t0.http("GET", `/api/users/${bob.user.id}`, { token: ada.token }), 404);
    const search = await t0.http("GET", "/api/users?q=Spammer", { token: ada.token });
    assert.deepEqual(search.body.items, []);
    const discover = await t0.http("GET", "/api/discover", { token: ada.token });
    assert.ok(
      !discover.body.items.some((item: { profile: { id: string } }) =>
        item.profile.id === bob.user.id
      ),
    );
  });

  await t.step(
    "restored: they sign in again and are seen again; both actions audited",
    async () => {
      const restored = await t0.http("POST", `/api/admin/users/${bob.user.id}/restore`, {
        token: admin.token,
      });
      assert.deepEqual(restored.body, { suspended: false, restored: true });
      const again = await t0.http("POST", `/api/admin/users/${bob.user.id}/restore`, {
        token: admin.token,
      });
      assert.equal(again.body.restored, false);
      const login = await t0.http("POST", "/api/auth/login", {
        body: { email: bob.email, password: bob.password },
      });
      assert.equal(login.status, 200);
      await t0.deps.outbox.flush();
      assert.equal(
        (await t0.http("GET", `/api/posts/${post.body.id}`, { token: ada.token })).status,
        200,
      );
      assert.deepEqual((await auditActions(t0, adminMember)).slice(0, 2), [
        `member.restore ${bob.user.id}`,
        `member.suspend ${bob.user.id}`,
      ]);
    },
  );

  await t.step("a suspension for a time ends by itself; only admins suspend", async () => {
    const until = t0.clock.now() + 60 * 60_000;
    const timed = await t0.http("POST", `/api/admin/users/${bob.user.id}/suspend`, {
      token: admin.token,
      body: { reason: "cool off", until: new Date(until).toISOString() },
    });
    assert.equal(timed.body.until, new Date(until).toISOString());
    const login = () =>
      t0.http("POST", "/api/auth/login", { body: { email: bob.email, password: bob.password } });
    assert.equal(assertProblem(await login(), 403).until, new Date(until).toISOString());
    t0.clock.advance(60 * 60_000);
    assert.equal((await login()).status, 200);
    const past = await t0.http("POST", `/api/admin/users/${bob.user.id}/suspend`, {
      token: admin.token,
      body: { reason: "x", until: new Date(t0.clock.now() - 1000).toISOString() },
    });
    assert.equal(assertProblem(past, 400).errors[0].path, "until");
    assertProblem(
      await t0.http("POST", `/api/admin/users/${ada.user.id}/suspend`, {
        token: bob.token,
        body: { reason: "revenge" },
      }),
      401,
    );
    const self = await t0.http("POST", `/api/admin/users/${admin.user.id}/suspend`, {
      token: admin.token,
      body: { reason: "oops" },
    });
    assertProblem(self, 400);
  });
});

Deno.test("[moderation] takedowns hide a post or comment and tell its author; a report is resolved once, with a note; all audited", async () => {
  await using t0 = await createTestApp({ env: { ADMIN_EMAILS: "mod@example.com" } });
  const admin = await signUp(t0.http, { name: "Mod", email: "mod@example.com" });
  const [ada, bob] = await members(t0.deps, 2);
  const post = await t0.http("POST", "/api/posts", { token: bob.token, body: { text: "Rude" } });
  const comment = await t0.http("POST", `/api/posts/${post.body.id}/comments`, {
    token: bob.token,
    body: { text: "Ruder" },
  });
  const report = await t0.http("POST", "/api/reports", {
    token: ada.token,
    body: { userId: bob.user.id, reason: "abuse", postId: post.body.id },
  });
  assert.equal(report.status, 201, JSON.stringify(report.body));

  const down = (what: string, id: string) =>
    t0.http("POST", `/api/admin/${what}/${id}/takedown`, {
      token: admin.token,
      body: { reason: "abuse" },
    });
  assert.equal((await down("comments", comment.body.id)).status, 200);
  const comments = await t0.http("GET", `/api/posts/${post.body.id}/comments`, {
    token: ada.token,
  });
  assert.deepEqual(comments.body.items, []);
  assert.equal((await down("posts", post.body.id)).status, 200);
  assertProblem(await t0.http("GET", `/api/posts/${post.body.id}`, { token: ada.token }), 404);
  assertProblem(await t0.http("GET", `/api/posts/${post.body.id}`, { token: bob.token }), 404);
  assertProblem(await down("posts", "0199e4c0-0000-7000-8000-000000000000"), 404);
  assertProblem(
    await t0.http("POST", `/api/admin/posts/${post.body.id}/takedown`, {
      token: ada.token,
      body: { reason: "mine" },
    }),
    403,
  );
  await t0.deps.outbox.flush();
  await t0.jobsSettled("notify", 2);
  const notes = await t0.http("GET", "/api/notifications", { token: bob.token });
  const moderation = notes.body.items.filter((note: { type: string }) =>
    note.type === "moderation"
  );
  assert.deepEqual(
    moderation.map((note: { subjectId: string }) => note.subjectId).sort(),
    [comment.body.id, post.body.id].sort(),
  );

  const resolve = (note: string) =>
    t0.http("POST", `/api/admin/reports/${report.body.id}/resolve`, {
      token: admin.token,
      body: { note },
    });
  const [first, second] = await Promise.all([resolve("post taken down"), resolve("duplicate")]);
  assert.deepEqual([first.status, second.status], [200, 200]);
  assert.equal(first.body.resolution.note, second.body.resolution.note, "resolved once");
  const listed = await t0.http("GET", "/api/admin/reports", { token: admin.token });
  assert.equal(listed.body.items[0].resolution.by, admin.user.id);

  const log = await t0.http("GET", "/api/admin/audit", { token: admin.token });
  const actions = log.body.items.map((entry: { action: string }) => entry.action);
  assert.deepEqual(actions, ["report.resolve", "post.takedown", "comment.takedown"]);
});

Deno.test("[moderation] gender is chosen once; a change is an admin's, audit-logged, and matchmaking reads it", async () => {
  await using t0 = await createTestApp({ env: { ADMIN_EMAILS: "mod@example.com" } });
  const admin = await signUp(t0.http, { name: "Mod", email: "mod@example.com" });
  const [eve] = await members(t0.deps, 1);
  const patch = (gender: string) =>
    t0.http("PATCH", "/api/profile", { token: eve.token, body: { gender } });
  // Two first choices at once: one is the choice, the other is refused.
  const [one, two] = await Promise.all([patch("female"), patch("male")]);
  assert.deepEqual([one.status, two.status].sort(), [200, 409]);
  const chosen = one.status === 200 ? "female" : "male";
  assert.equal(assertProblem(one.status === 409 ? one : two, 409).type, "/problems/gender-settled");
  assertProblem(await patch(chosen === "female" ? "male" : "female"), 409);
  assert.equal((await patch(chosen)).status, 200, "the same choice again changes nothing");

  const other = chosen === "female" ? "male" : "female";
  const changed = await t0.http("PATCH", `/api/admin/users/${eve.user.id}/gender`, {
    token: admin.token,
    body: { gender: other, reason: "asked by email on 2026-12-07" },
  });
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  const card = await t0.deps.kv.get<{ gender: string }>(memberCardKey(eve.user.id));
  assert.equal(card.value?.gender, other, "matchmaking's card has the admin's value");
  const log = await t0.http("GET", "/api/admin/audit", { token: admin.token });
  assert.equal(log.body.items[0].action, "member.gender");
  assert.equal(log.body.items[0].detail.reason, "asked by email on 2026-12-07");
});
