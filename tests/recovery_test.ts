import assert from "node:assert/strict";
import { assertProblem, createTestApp, signUp } from "./helpers/app.ts";
import { listDevMail } from "../providers/mail.ts";
import { RESET_TTL_MS } from "../workflows/auth/recovery.ts";

type App = Awaited<ReturnType<typeof createTestApp>>;

/** The reset links mailed to `to`, oldest first (the dev outbox lists newest first). */
async function resetLinks(t0: App, to: string) {
  await t0.deps.outbox.flush();
  const { items } = await listDevMail(t0.deps.kv, { limit: 100 });
  return items.filter((mail) => mail.to === to && mail.subject === "Reset your Convene password")
    .map((mail) => {
      const link = mail.text.match(/https?:\/\/\S+reset-password\?token=(\S+)/);
      assert.ok(link, mail.text);
      return link[1];
    }).reverse();
}

async function mailsTo(t0: App, to: string) {
  const { items } = await listDevMail(t0.deps.kv, { limit: 100 });
  return items.filter((mail) => mail.to === to).map((mail) => mail.subject);
}

async function forgot(t0: App, email: string, ip = "203.0.113.7") {
  return await t0.http("POST", "/api/auth/forgot-password", { body: { email }, ip });
}

async function waitForMail(t0: App, count: number) {
  await t0.deps.outbox.flush();
  await t0.jobsSettled("send-email", count);
}

Deno.test("[auth] password reset: one answer for any address, a mailed link that works once and expires, every session ends", async (t) => {
  await using t0 = await createTestApp();
  const ada = await signUp(t0.http, { name: "Ada" });
  const laptop = await t0.http("POST", "/api/auth/login", {
    body: { email: ada.email, password: ada.password },
  });
  /** Ada's password, once a reset has set it. */
  let current = "";

  await t.step("known or not, the answer is the same; only the owner gets a link", async () => {
    const unknown = await forgot(t0, "nobody@example.com");
    const known = await forgot(t0, ada.email.toUpperCase());
    assert.equal(unknown.status, 202);
    assert.deepEqual(known.body, unknown.body);
    await waitForMail(t0, 1);
    assert.equal((await resetLinks(t0, ada.email)).length, 1);
    assert.deepEqual(await mailsTo(t0, "nobody@example.com"), []);
  });

  await t.step("two resets with one link at once: one wins, the other is a 400", async () => {
    const [token] = await resetLinks(t0, ada.email);
    const answers = await Promise.all(
      ["first-new-password", "second-new-password"].map((newPassword) =>
        t0.http("POST", "/api/auth/reset-password", { body: { token, newPassword } })
      ),
    );
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [204, 400]);
    const lost = answers.find((answer) => answer.status === 400)!;
    assert.equal(assertProblem(lost, 400).errors[0].path, "token");
    const winner = answers[0].status === 204 ? "first-new-password" : "second-new-password";
    current = winner;
    const loser = winner === "first-new-password" ? "second-new-password" : "first-new-password";
    const signIn = (password: string) =>
      t0.http("POST", "/api/auth/login", { body: { email: ada.email, password } });
    assert.equal((await signIn(winner)).status, 200, "the winner's password is the password");
    assertProblem(await signIn(loser), 401);
    assertProblem(await signIn(ada.password), 401);
    // Every session of the account ended, the one that never asked included.
    assertProblem(await t0.http("GET", "/api/auth/me", { token: ada.token }), 401);
    assertProblem(await t0.http("GET", "/api/auth/me", { token: laptop.body.token }), 401);
    await waitForMail(t0, 2);
    assert.ok((await mailsTo(t0, ada.email)).includes("Your Convene password was reset"));
  });

  await t.step("a used, replaced or expired link is refused", async () => {
    const [used] = await resetLinks(t0, ada.email);
    const reset = (token: string) =>
      t0.http("POST", "/api/auth/reset-password", {
        body: { token, newPassword: "yet-another-password" },
      });
    assertProblem(await reset(used), 400);
    await forgot(t0, ada.email);
    await forgot(t0, ada.email);
    await waitForMail(t0, 4);
    const [, replaced, latest] = await resetLinks(t0, ada.email);
    assertProblem(await reset(replaced), 400);
    t0.clock.advance(RESET_TTL_MS);
    assertProblem(await reset(latest), 400);
    assertProblem(await reset("not-a-token"), 400);
  });

  await t.step("a password change ends a link asked for before it", async () => {
    await forgot(t0, ada.email, "203.0.113.8");
    const session = await t0.http("POST", "/api/auth/login", {
      body: { email: ada.email, password: current },
    });
    await t0.http("PUT", "/api/auth/password", {
      token: session.body.token,
      body: { currentPassword: current, newPassword: "changed-by-the-owner" },
    });
    await waitForMail(t0, 6);
    const refused = await t0.http("POST", "/api/auth/reset-password", {
      body: { token: (await resetLinks(t0, ada.email)).at(-1), newPassword: "an-attackers-one" },
    });
    assertProblem(refused, 400);
  });

  await t.step("requests are limited per address asked about and per caller", async () => {
    const limit = t0.deps.config.RATE_LIMIT_PASSWORD_RESET.limit;
    const answers = [];
    for (let i = 0; i <= limit; i++) {
      answers.push(await forgot(t0, "target@example.com", `198.51.100.${i}`));
    }
    assert.deepEqual(
      answers.slice(0, limit).map((answer) => answer.status),
      Array(limit).fill(202),
    );
    assertProblem(answers[limit], 429);
    assert.ok(Number(answers[limit].headers.get("retry-after")) > 0);
    const fromOne = [];
    for (let i = 0; i <= limit; i++) {
      fromOne.push(await forgot(t0, `n${i}@example.com`, "192.0.2.1"));
    }
    assertProblem(fromOne[limit], 429);
  });
});

Deno.test("[auth] sessions: a member sees where they are signed in, ends one device or every other", async () => {
  await using t0 = await createTestApp();
  const ada = await signUp(t0.http, { name: "Ada" });
  const login = (userAgent: string, place?: Record<string, string>) =>
    t0.http("POST", "/api/auth/login", {
      body: { email: ada.email, password: ada.password },
      headers: { "user-agent": userAgent, ...place },
    });
  const phone = (await login("Phone/1.0", { "cf-ipcity": "Lagos", "cf-ipcountry": "NG" })).body
    .token;
  t0.clock.advance(1000);
  // A malformed percent-encoding is shown as it came, not a failed sign-in.
  const laptop = (await login("Laptop/2.0", { "x-vercel-ip-city": "S%E3o%" })).body.token;
  const tablet = (await login("Tablet/3.0")).body.token;

  t0.clock.advance(5 * 60_000);
  assert.equal((await t0.http("GET", "/api/auth/me", { token: phone })).status, 200);
  const listed = await t0.http("GET", "/api/auth/sessions", { token: laptop });
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  const byAgent = new Map(
    listed.body.items.map((item: { userAgent: string }) => [item.userAgent, item]),
  );
  assert.equal(listed.body.items.length, 4, "signup's session and three logins");
  const phoneSession = byAgent.get("Phone/1.0") as Record<string, unknown>;
  assert.equal(phoneSession.place, "Lagos, NG");
  assert.equal(phoneSession.current, false);
  assert.equal(
    phoneSession.lastSeenAt,
    new Date(t0.clock.now()).toISOString(),
    "seen just now",
  );
  assert.equal((byAgent.get("Laptop/2.0") as Record<string, unknown>).current, true);
  assert.equal((byAgent.get("Laptop/2.0") as Record<string, unknown>).place, "S%E3o%");
  for (const item of listed.body.items) {
    assert.ok(
      ![phone, laptop, tablet, ada.token].some((token) => JSON.stringify(item).includes(token)),
    );
  }

  // The laptop ends the phone's session: the phone is signed out at once.
  const ended = await t0.http("DELETE", `/api/auth/sessions/${phoneSession.id}`, { token: laptop });
  assert.equal(ended.status, 204);
  assertProblem(await t0.http("GET", "/api/auth/me", { token: phone }), 401);
  assert.equal((await t0.http("GET", "/api/auth/me", { token: tablet })).status, 200);
  // Another member cannot end (or see) Ada's sessions.
  const bob = await signUp(t0.http, { name: "Bob" });
  const tabletId = ((await t0.http("GET", "/api/auth/sessions", { token: laptop })).body.items
    .find((item: { userAgent: string }) => item.userAgent === "Tablet/3.0")).id;
  assertProblem(
    await t0.http("DELETE", `/api/auth/sessions/${tabletId}`, { token: bob.token }),
    404,
  );

  // Every other session ends; the caller's stays.
  assert.equal(
    (await t0.http("POST", "/api/auth/sessions/end-others", { token: laptop })).status,
    204,
  );
  assertProblem(await t0.http("GET", "/api/auth/me", { token: tablet }), 401);
  assertProblem(await t0.http("GET", "/api/auth/me", { token: ada.token }), 401);
  const left = await t0.http("GET", "/api/auth/sessions", { token: laptop });
  assert.deepEqual(
    left.body.items.map((item: { userAgent: string; current: boolean }) => [
      item.userAgent,
      item.current,
    ]),
    [["Laptop/2.0", true]],
  );
});

/** The confirmation links mailed to `to`, oldest first. */
async function confirmLinks(t0: App, to: string) {
  await t0.deps.outbox.flush();
  const { items } = await listDevMail(t0.deps.kv, { limit: 100 });
  return items.filter((mail) =>
    mail.to === to && mail.subject === "Confirm your address for Convene"
  )
    .map((mail) => mail.text.match(/verify-email\?token=(\S+)/)![1]).reverse();
}

Deno.test("[auth] email verification: a link at signup; until it is opened, no matching, no selling, at most 5 connection requests", async (t) => {
  await using t0 = await createTestApp({
    env: { EMAIL_VERIFICATION: "required", ADMIN_EMAILS: "seller@example.com" },
  });
  const ada = await signUp(t0.http, { name: "Ada" });
  const seller = await signUp(t0.http, { name: "Seller", email: "seller@example.com" });
  const others = await Promise.all(
    Array.from({ length: 7 }, (_, i) => signUp(t0.http, { name: `Peer ${i}` })),
  );

  await t.step("unconfirmed: what waits, and what does not", async () => {
    assert.equal(ada.user.emailVerified, false);
    const queue = await t0.http("POST", "/api/match/queue", {
      token: ada.token,
      body: { intent: "pair-programming" },
    });
    assert.equal(assertProblem(queue, 403).type, "/problems/email-unverified");
    const product = await t0.http("POST", "/api/products", {
      token: seller.token,
      body: { name: "Mug", priceCents: 500, currency: "USD" },
    });
    assert.equal(assertProblem(product, 403).type, "/problems/email-unverified");
    // Connection requests: 5, even when 7 are sent at once.
    const requests = await Promise.all(others.map((peer) =>
      t0.http("POST", "/api/connections", {
        token: ada.token,
        body: { toUserId: peer.user.id },
      })
    ));
    assert.deepEqual(
      requests.map((answer) => answer.status).sort(),
      [201, 201, 201, 201, 201, 403, 403],
    );
    // The rest of the app works: a post.
    const post = await t0.http("POST", "/api/posts", { token: ada.token, body: { text: "hi" } });
    assert.equal(post.status, 201);
  });

  await t.step("the link confirms, once; then everything is open", async () => {
    await t0.jobsSettled("send-email", 9);
    const [token] = await confirmLinks(t0, ada.email);
    const [first, second] = await Promise.all([
      t0.http("POST", "/api/auth/verify-email", { body: { token } }),
      t0.http("POST", "/api/auth/verify-email", { body: { token } }),
    ]);
    assert.deepEqual([first.status, second.status].sort(), [200, 400]);
    const me = await t0.http("GET", "/api/auth/me", { token: ada.token });
    assert.equal(me.body.user.emailVerified, true);
    const queue = await t0.http("POST", "/api/match/queue", {
      token: ada.token,
      body: { intent: "pair-programming" },
    });
    assert.equal(queue.status, 202, JSON.stringify(queue.body));
    const resend = await t0.http("POST", "/api/auth/verify-email/resend", { token: ada.token });
    assert.equal(assertProblem(resend, 409).type, "/problems/already-verified");
  });

  await t.step("resending is limited to 3 an hour, and only the latest link works", async () => {
    const resends = [];
    for (let i = 0; i < 4; i++) {
      resends.push(await t0.http("POST", "/api/auth/verify-email/resend", { token: seller.token }));
    }
    assert.deepEqual(resends.map((answer) => answer.status), [202, 202, 202, 429]);
    await t0.deps.outbox.flush();
    await t0.jobsSettled("send-email", 12);
    const links = await confirmLinks(t0, seller.email);
    assert.equal(links.length, 4, "signup's and three more");
    const stale = await t0.http("POST", "/api/auth/verify-email", { body: { token: links[0] } });
    assertProblem(stale, 400);
    const latest = await t0.http("POST", "/api/auth/verify-email", {
      body: { token: links.at(-1) },
    });
    assert.equal(latest.status, 200);
    const product = await t0.http("POST", "/api/products", {
      token: seller.token,
      body: { name: "Mug", priceCents: 500, currency: "USD" },
    });
    assert.equal(product.status, 201, "confirmed, the admin sells");
  });

  await t.step("a new address takes effect only once its link is opened", async () => {
    const newEmail = `ada.new.${crypto.randomUUID().slice(0, 6)}@example.com`;
    const wrong = await t0.http("PUT", "/api/auth/email", {
      token: ada.token,
      body: { newEmail, password: "wrong-password" },
    });
    assert.equal(assertProblem(wrong, 400).errors[0].path, "password");
    const taken = await t0.http("PUT", "/api/auth/email", {
      token: ada.token,
      body: { newEmail: seller.email, password: ada.password },
    });
    assert.equal(assertProblem(taken, 409).type, "/problems/email-taken");
    const asked = await t0.http("PUT", "/api/auth/email", {
      token: ada.token,
      body: { newEmail, password: ada.password },
    });
    assert.equal(asked.status, 202);
    const before = await t0.http("GET", "/api/auth/me", { token: ada.token });
    assert.deepEqual([before.body.user.email, before.body.user.pendingEmail], [
      ada.email,
      newEmail,
    ]);
    // The old address still signs in; the new one does not yet.
    const login = (email: string) =>
      t0.http("POST", "/api/auth/login", { body: { email, password: ada.password } });
    assert.equal((await login(ada.email)).status, 200);
    assertProblem(await login(newEmail), 401);
    await t0.deps.outbox.flush();
    await t0.jobsSettled("send-email", 13);
    const [token] = await confirmLinks(t0, newEmail);
    const confirmed = await t0.http("POST", "/api/auth/verify-email", { body: { token } });
    assert.equal(confirmed.status, 200);
    assert.deepEqual(
      [
        confirmed.body.user.email,
        confirmed.body.user.pendingEmail,
        confirmed.body.user.emailVerified,
      ],
      [newEmail, null, true],
    );
    assert.equal((await login(newEmail)).status, 200);
    assertProblem(await login(ada.email), 401);
  });
});
