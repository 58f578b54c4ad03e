import assert from "node:assert/strict";
import { eq } from "drizzle-orm";
import { users } from "../db/schema.ts";
import { assertProblem, createTestApp, type HttpClient, signUp } from "./helpers/app.ts";
import { type Member, members } from "./helpers/members.ts";
import { png, upload } from "./helpers/media.ts";

async function patch(http: HttpClient, who: Member, body: unknown) {
  return await http("PATCH", "/api/profile", { token: who.token, body });
}

Deno.test("[profiles] PATCH /api/profile normalises skills and refuses what clients may not set", async (t) => {
  await using t0 = await createTestApp();
  const { http } = t0;
  const ada = await signUp(http, { name: "Ada" });

  await t.step("skills are trimmed, lower-cased, de-duplicated, empty ones dropped", async () => {
    const answer = await patch(http, ada, {
      skills: [" Rust ", "rust", "GO", "", "  ", "Type   Script", "go"],
      headline: "  Systems programmer ",
      location: "Lagos",
    });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.body.user.skills, ["rust", "go", "type script"]);
    assert.equal(answer.body.user.headline, "Systems programmer");
    assert.equal(answer.body.user.email, ada.email, "the owner sees their own account");
    const me = await http("GET", "/api/auth/me", { token: ada.token });
    assert.deepEqual(me.body.user.skills, ["rust", "go", "type script"]);
  });

  await t.step("at most 30 distinct skills (31 is a 400 naming skills)", async () => {
    const skills = Array.from({ length: 31 }, (_, i) => `skill ${i}`);
    const problem = assertProblem(await patch(http, ada, { skills }), 400);
    assert.equal(problem.errors[0].path, "skills");
    const thirty = await patch(http, ada, { skills: [...skills.slice(0, 30), "SKILL 0"] });
    assert.equal(thirty.body.user.skills.length, 30);
  });

  await t.step("role, email and unknown fields are refused; nothing changes", async () => {
    for (const body of [{ role: "admin" }, { email: "x@example.com" }, { verifiedSkills: [] }]) {
      assertProblem(await patch(http, ada, body), 400);
    }
    assertProblem(await patch(http, ada, { name: "" }), 400);
    assertProblem(await patch(http, ada, { gender: "robot" }), 400);
    const me = await http("GET", "/api/auth/me", { token: ada.token });
    assert.deepEqual([me.body.user.role, me.body.user.email], ["user", ada.email]);
  });

  await t.step("empty text clears a field", async () => {
    const answer = await patch(http, ada, { headline: "", bio: null });
    assert.deepEqual([answer.body.user.headline, answer.body.user.bio], [null, null]);
  });

  await t.step("GET /api/users/:id shows the public profile only", async () => {
    const [bob] = await members(t0.deps, 1, { name: () => "Bob" });
    const answer = await http("GET", `/api/users/${ada.user.id}`, { token: bob.token });
    assert.equal(answer.status, 200);
    assert.equal(answer.body.name, "Ada");
    assert.deepEqual(answer.body.relationship, {
      following: false,
      followedBy: false,
      connection: null,
    });
    for (const hidden of ["email", "gender", "role", "passwordHash"]) {
      assert.ok(!(hidden in answer.body), `${hidden} is not public`);
    }
    assertProblem(await http("GET", "/api/users/nobody", { token: bob.token }), 404);
    assertProblem(await http("GET", `/api/users/${ada.user.id}`), 401);
  });
});

Deno.test("[profiles] GET /api/users?q= matches plain text, never a pattern", async (t) => {
  await using t0 = await createTestApp();
  const { http } = t0;
  const names = ["(a+)+$ fan", "dot.*star", "100% sure", "snake_case", "back\\slash", "Plain Jane"];
  const people = await members(t0.deps, names.length, { name: (i) => names[i] });
  await patch(http, people[5], { skills: ["Rust", "Go"] });
  const [viewer] = people;

  const search = async (q: string) => {
    const answer = await http("GET", `/api/users?q=${encodeURIComponent(q)}`, {
      token: viewer.token,
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body.items.map((item: { name: string }) => item.name);
  };

  await t.step("each special character matches only itself", async () => {
    assert.deepEqual(await search("(a+)+$"), ["(a+)+$ fan"]);
    assert.deepEqual(await search(".*"), ["dot.*star"]);
    assert.deepEqual(await search("%"), ["100% sure"]);
    assert.deepEqual(await search("_"), ["snake_case"]);
    assert.deepEqual(await search("\\"), ["back\\slash"]);
  });

  await t.step("a pathological pattern over a long name is answered at once", async () => {
    await patch(http, people[1], { name: "a".repeat(99) + "!" });
    assert.deepEqual(await search("(a+)+$"), ["(a+)+$ fan"]);
    assert.deepEqual(await search("a".repeat(100)), []);
  });

  await t.step("name, bio or skill, case-insensitive, paged by name", async () => {
    assert.deepEqual(await search("plain"), ["Plain Jane"]);
    assert.deepEqual(await search("RUS"), ["Plain Jane"]);
    await patch(http, people[2], { bio: "Maintains a Zig compiler on weekends" });
    assert.deepEqual(await search("zig COMPILER"), ["100% sure"]);
    const first = await http("GET", "/api/users?q=a&limit=2", { token: viewer.token });
    const second = await http("GET", `/api/users?q=a&limit=2&cursor=${first.body.nextCursor}`, {
      token: viewer.token,
    });
    const all = await search("a");
    assert.deepEqual(
      [...first.body.items, ...second.body.items].map((item: { name: string }) => item.name),
      all.slice(0, 4),
    );
  });

  await t.step("an empty or over-long q is a 400", async () => {
    assertProblem(await http("GET", "/api/users?q=", { token: viewer.token }), 400);
    assertProblem(await http("GET", "/api/users", { token: viewer.token }), 400);
    assertProblem(
      await http("GET", `/api/users?q=${"x".repeat(101)}`, { token: viewer.token }),
      400,
    );
  });
});

Deno.test("[profiles] GET /api/discover ranks peers, explains each score, and is cached", async (t) => {
  await using t0 = await createTestApp();
  const { http } = t0;
  const names = [
    "Me",
    "Twin",
    "Rustacean",
    "Blank",
    "Friend",
    "Asked",
    "Blocked",
    "Mutual",
    "Idle",
  ];
  const [me, twin, rustacean, blank, friend, asked, blocked, mutual, idle] = await members(
    t0.deps,
    names.length,
    { name: (i) => names[i] },
  );
  await patch(http, me, { skills: ["rust", "go", "sql"], location: "Lagos" });
  await patch(http, twin, { skills: ["Rust", "Go", "SQL"], location: " lagos " });
  await patch(http, rustacean, { skills: ["rust", "c"], location: "Berlin" });
  await patch(http, idle, { skills: ["rust", "c"], location: "Berlin" });
  const request = await http("POST", "/api/connections", {
    token: me.token,
    body: { toUserId: friend.user.id },
  });
  await http("PATCH", `/api/connections/${request.body.id}`, {
    token: friend.token,
    body: { status: "accepted" },
  });
  const toMutual = await http("POST", "/api/connections", {
    token: friend.token,
    body: { toUserId: mutual.user.id },
  });
  await http("PATCH", `/api/connections/${toMutual.body.id}`, {
    token: mutual.token,
    body: { status: "accepted" },
  });
  await http("POST", "/api/connections", { token: me.token, body: { toUserId: asked.user.id } });
  await http("POST", `/api/blocks/${me.user.id}`, { token: blocked.token });
  // Idle was last active a month ago.
  await t0.deps.database.db.update(users)
    .set({ lastActiveAt: new Date(t0.clock.now() - 30 * 86_400_000) })
    .where(eq(users.id, idle.user.id));

  const discover = (query = "") => http("GET", `/api/discover${query}`, { token: me.token });

  await t.step("self, connections, pending requests and blocks are left out", async () => {
    const answer = await discover();
    assert.equal(answer.status, 200);
    const ids = answer.body.items.map((item: { profile: { id: string } }) => item.profile.id);
    for (const left of [me, friend, asked, blocked]) assert.ok(!ids.includes(left.user.id));
    assert.deepEqual(
      new Set(ids),
      new Set([twin, rustacean, blank, mutual, idle].map((member) => member.user.id)),
    );
  });

  await t.step("ranked by the weighted features, each contribution shown", async () => {
    const { items } = (await discover()).body;
    const byName = Object.fromEntries(
      items.map((item: { profile: { name: string } }) => [item.profile.name, item]),
    );
    assert.equal(items[0].profile.name, "Twin", "same skills and same place rank first");
    assert.deepEqual(byName.Twin.signals.sharedSkills, ["go", "rust", "sql"]);
    assert.equal(byName.Twin.explain.skills, 0.5);
    assert.equal(byName.Twin.explain.location, 0.15);
    assert.equal(byName.Rustacean.explain.skills, 0.125, "Jaccard 1/4 × weight 0.5");
    assert.equal(byName.Rustacean.explain.location, 0);
    assert.equal(byName.Mutual.signals.mutualConnections, 1);
    assert.equal(byName.Mutual.explain.mutuals, 0.04, "1 of 5 mutuals × weight 0.2");
    assert.equal(byName.Blank.explain.skills, 0);
    assert.ok(byName.Rustacean.explain.recency > byName.Idle.explain.recency * 10);
    assert.ok(byName.Rustacean.score > byName.Idle.score, "recent activity breaks the tie");
    for (const item of items) {
      const sum = Object.values(item.explain as Record<string, number>).reduce((a, b) => a + b);
      assert.ok(Math.abs(sum - item.score) < 1e-5, "the explanation adds up to the score");
    }
    const scores = items.map((item: { score: number }) => item.score);
    assert.deepEqual(scores, [...scores].sort((a, b) => b - a));
  });

  await t.step("pages by keyset over the ranking", async () => {
    const all = (await discover()).body.items.map((item: { profile: { id: string } }) =>
      item.profile.id
    );
    const first = await discover("?limit=3");
    const second = await discover(`?limit=3&cursor=${first.body.nextCursor}`);
    assert.deepEqual(
      [...first.body.items, ...second.body.items].map((item: { profile: { id: string } }) =>
        item.profile.id
      ),
      all,
    );
    assert.equal(second.body.nextCursor, null);
  });

  await t.step("cached: another member's change waits; one's own shows at once", async () => {
    const before = (await discover()).body;
    t0.clock.advance(1000);
    await patch(http, blank, { skills: ["rust", "go", "sql"], location: "Lagos" });
    assert.equal((await discover()).body.computedAt, before.computedAt, "served from the cache");
    await patch(http, me, { skills: ["rust", "go", "sql"] });
    const after = (await discover()).body;
    assert.notEqual(after.computedAt, before.computedAt);
    assert.ok(
      after.items.slice(0, 2).some((item: { profile: { name: string } }) =>
        item.profile.name === "Blank"
      ),
    );
  });

  await t.step("a new connection leaves the ranking at once", async () => {
    const sent = await http("POST", "/api/connections", {
      token: twin.token,
      body: { toUserId: me.user.id },
    });
    const pending = (await discover()).body.items;
    assert.ok(
      pending.every((item: { profile: { id: string } }) => item.profile.id !== twin.user.id),
    );
    await http("PATCH", `/api/connections/${sent.body.id}`, {
      token: me.token,
      body: { status: "accepted" },
    });
    const { items } = (await discover()).body;
    assert.ok(items.every((item: { profile: { id: string } }) => item.profile.id !== twin.user.id));
    const withMutuals = items.find((item: { profile: { id: string } }) =>
      item.profile.id === mutual.user.id
    );
    assert.equal(withMutuals.signals.mutualConnections, 1);
  });
});

Deno.test("[profiles] every member has a picture: their photo, or their initials on a colour of their own", async () => {
  await using t0 = await createTestApp();
  const { app, http, deps } = t0;
  const [ada, bob, cy] = await members(deps, 3, {
    name: (i) => ["Ada Lovelace", "Bob <b>", "Cy"][i],
  });
  const picture = (of: Member, token = ada.token) =>
    app.request(`/api/users/${of.user.id}/avatar`, {
      headers: { authorization: `Bearer ${token}` },
      redirect: "manual",
    });

  const initials = await picture(ada);
  assert.equal(initials.status, 200);
  assert.equal(initials.headers.get("content-type"), "image/svg+xml");
  const svg = await initials.text();
  assert.match(svg, />AL<\/text>/);
  const bobs = await (await picture(bob)).text();
  assert.match(bobs, />B&lt;<\/text>/, "a name's markup is escaped, never drawn as markup");
  const hue = (text: string) => /hsl\((\d+) /.exec(text)?.[1];
  assert.equal(hue(svg), hue(await (await picture(ada, bob.token)).text()), "one colour each");

  const photo = (await upload(app, cy.token, png())).body;
  await http("PATCH", "/api/profile", { token: cy.token, body: { avatarMediaId: photo.id } });
  const redirected = await picture(cy);
  assert.equal(redirected.status, 302);
  assert.equal(redirected.headers.get("location"), `/media/${photo.id}`);

  await http("POST", `/api/blocks/${ada.user.id}`, { token: cy.token });
  assert.equal((await picture(cy)).status, 404, "a block hides it, as it hides the profile");
  assert.equal((await picture(cy, "not-a-token")).status, 401);
});
