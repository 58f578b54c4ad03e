import assert from "node:assert/strict";
import { assertProblem, createTestApp, type HttpClient } from "./helpers/app.ts";
import { type Member, members } from "./helpers/members.ts";
import { listDevMail } from "../providers/mail.ts";
import { sendDigest } from "../workflows/notifications.ts";
import { addDigestItem, takeDigest } from "../kv/digests.ts";
import { coordination } from "../kv/outbox.ts";

async function connected(http: HttpClient, one: Member, other: Member) {
  const sent = await http("POST", "/api/connections", {
    token: one.token,
    body: { toUserId: other.user.id },
  });
  await http("PATCH", `/api/connections/${sent.body.id}`, {
    token: other.token,
    body: { status: "accepted" },
  });
}

Deno.test("[notifications] choices per type; a muted conversation says nothing; an offline member gets one email for many, with a link that stops them without signing in", async (t) => {
  await using t0 = await createTestApp();
  const [ada, bob] = await members(t0.deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  await connected(t0.http, ada, bob);
  await t0.deps.outbox.flush();
  await t0.jobsSettled("notify", 2);
  let notifyJobs = 2;
  const send = async (text: string) => {
    const sent = await t0.http("POST", `/api/conversations/${bob.user.id}/messages`, {
      token: ada.token,
      body: { text, tempId: crypto.randomUUID() },
    });
    assert.equal(sent.status, 201, JSON.stringify(sent.body));
    await t0.deps.outbox.flush();
    await t0.jobsSettled("notify", ++notifyJobs);
    return sent.body;
  };
  const mailToBob = async () => {
    await t0.deps.outbox.flush();
    const { items } = await listDevMail(t0.deps.kv, { limit: 50 });
    return items.filter((mail) => mail.to.startsWith("member") && mail.text.startsWith("Hi Bob"));
  };

  await t.step("the defaults, and a change that names one type", async () => {
    const prefs = await t0.http("GET", "/api/notifications/preferences", { token: bob.token });
    assert.equal(prefs.body.inApp.like, true);
    assert.equal(prefs.body.email.message, true);
    assert.equal(prefs.body.email.like, false);
    const changed = await t0.http("PUT", "/api/notifications/preferences", {
      token: bob.token,
      body: { inApp: { follow: false } },
    });
    assert.equal(changed.body.inApp.follow, false);
    assert.equal(changed.body.inApp.like, true, "types not named keep their choice");
    const bad = await t0.http("PUT", "/api/notifications/preferences", {
      token: bob.token,
      body: { inApp: { poke: true } },
    });
    assertProblem(bad, 400);
    await t0.http("POST", `/api/follows/${bob.user.id}`, { token: ada.token });
    await t0.deps.outbox.flush();
    await t0.jobsSettled("notify", ++notifyJobs);
    const notes = await t0.http("GET", "/api/notifications", { token: bob.token });
    assert.ok(!notes.body.items.some((note: { type: string }) => note.type === "follow"));
  });

  await t.step(
    "a request and three messages while Bob is offline: one email for the four",
    async () => {
      for (const text of ["one", "two", "three"]) await send(text);
      assert.equal(await sendDigest(t0.deps, bob.user.id), 4);
      await t0.jobsSettled("send-email");
      const mails = await mailToBob();
      assert.equal(mails.length, 1);
      assert.equal(mails[0].subject, "4 new notifications on Convene");
      assert.equal(mails[0].text.match(/Ada sent you a message/g)?.length, 3);
      assert.match(mails[0].text, /Ada asked to connect with you/);
      assert.equal(await sendDigest(t0.deps, bob.user.id), 0, "taken once");
    },
  );

  await t.step("a muted conversation notifies nothing, in the app or by email", async () => {
    const conversation = (await send("four")).conversationId;
    await sendDigest(t0.deps, bob.user.id);
    const before = await t0.http("GET", "/api/notifications/unread-count", { token: bob.token });
    const muted = await t0.http("PUT", `/api/conversations/${conversation}/mute`, {
      token: bob.token,
    });
    assert.equal(muted.status, 204);
    const [eve] = await members(t0.deps, 1);
    assertProblem(
      await t0.http("PUT", `/api/conversations/${conversation}/mute`, { token: eve.token }),
      404,
    );
    await send("five");
    const after = await t0.http("GET", "/api/notifications/unread-count", { token: bob.token });
    assert.equal(after.body.count, before.body.count);
    assert.equal(await sendDigest(t0.deps, bob.user.id), 0);
    await t0.http("DELETE", `/api/conversations/${conversation}/mute`, { token: bob.token });
    await send("six");
    assert.equal(await sendDigest(t0.deps, bob.user.id), 1, "unmuted: told again");
  });

  await t.step("the email's link stops every email, without signing in", async () => {
    await t0.jobsSettled("send-email", 3);
    const [latest] = await mailToBob();
    const link = latest.text.match(/https?:\/\/\S+\/api\/notifications\/unsubscribe\S+/)![0];
    const path = link.slice(link.indexOf("/api/"));
    const page = await t0.http("GET", path);
    assert.equal(page.status, 200);
    assert.match(String(page.body), /<form method="post">/);
    const prefsBefore = await t0.http("GET", "/api/notifications/preferences", {
      token: bob.token,
    });
    assert.equal(prefsBefore.body.email.message, true, "opening the link stops nothing");
    assert.equal((await t0.http("POST", path)).status, 200);
    const prefs = await t0.http("GET", "/api/notifications/preferences", { token: bob.token });
    assert.ok(Object.values(prefs.body.email).every((on) => on === false));
    assert.equal(prefs.body.inApp.message, true, "the app still tells");
    await send("seven");
    assert.equal(await sendDigest(t0.deps, bob.user.id), 0);
    const forged = path.replace(/sig=[0-9a-f]{4}/, "sig=0000");
    assertProblem(await t0.http("POST", forged), 400);
    const other = path.replace(bob.user.id, ada.user.id);
    assertProblem(await t0.http("POST", other), 400);
  });
});

Deno.test("[notifications] 20 notifications at once schedule one digest, and a digest taken while one arrives leaves none behind", async () => {
  await using t0 = await createTestApp();
  const item = (n: number) => ({ type: "message", actorName: "Ada", subjectId: "c", at: n });
  const scheduled = await Promise.all(
    Array.from({ length: 20 }, (_, n) => addDigestItem(t0.deps.kv, "u1", `e${n}`, item(n), 1000)),
  );
  assert.deepEqual(scheduled.filter((due) => due !== null), [1000]);
  // Items keep arriving while digests are taken: each lands in exactly one digest, or schedules
  // the next one.
  const sent: number[] = [];
  let rescheduled = 0;
  await Promise.all([
    ...Array.from({ length: 30 }, async (_, n) => {
      if (await addDigestItem(t0.deps.kv, "u1", `late${n}`, item(100 + n), 2000)) rescheduled++;
    }),
    ...Array.from({ length: 3 }, async () => {
      sent.push((await takeDigest(coordination(t0.deps), "u1", () => [])).length);
    }),
  ]);
  // Whatever is left waits with a digest scheduled for it: none is left behind unscheduled.
  const due = await t0.deps.kv.get(["digest_due", "u1"]);
  const left = await Array.fromAsync(t0.deps.kv.list({ prefix: ["digest_item", "u1"] }));
  assert.ok(left.length === 0 || due.value !== null, `${left.length} items with no digest due`);
  const rest = (await takeDigest(coordination(t0.deps), "u1", () => [])).length;
  assert.equal(sent.reduce((a, b) => a + b, 0) + rest, 50, "every item in exactly one digest");
  assert.ok(rescheduled <= 3, "a digest is scheduled again at most once per digest taken");
});
