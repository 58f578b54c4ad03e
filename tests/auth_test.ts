import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { issueToken, signingKey } from "../kv/auth/tokens.ts";
import { assertProblem, createTestApp, randomEmail, sessionCookie, signUp } from "./helpers/app.ts";

Deno.test("[auth] signup, login, me, password change and logout work end to end", async (t) => {
  await using t0 = await createTestApp({ env: { ADMIN_EMAILS: "Boss@Example.com" } });
  const { http } = t0;

  await t.step(
    "POST /api/auth/signup returns 201 { user, token } and an httpOnly cookie",
    async () => {
      const email = randomEmail();
      const answer = await http("POST", "/api/auth/signup", {
        body: { name: "  Grace Hopper ", email: email.toUpperCase(), password: "cobol-rules-1959" },
      });
      assert.equal(answer.status, 201);
      assert.equal(answer.body.user.email, email);
      assert.equal(answer.body.user.name, "Grace Hopper");
      assert.equal(answer.body.user.gender, "undisclosed");
      assert.equal(answer.body.user.role, "user");
      assert.deepEqual(answer.body.user.skills, []);
      assert.deepEqual(answer.body.user.verifiedSkills, []);
      assert.ok(!Number.isNaN(Date.parse(answer.body.user.createdAt)));
      assert.equal("passwordHash" in answer.body.user, false);
      assert.equal(typeof answer.body.token, "string");
      const cookie = answer.headers.getSetCookie().find((line) => line.startsWith("session="))!;
      assert.match(cookie, /HttpOnly/);
      assert.match(cookie, /SameSite=Lax/);
      assert.doesNotMatch(cookie, /Secure/, "Secure only in production");
    },
  );

  await t.step(
    "a client cannot choose its role (400 naming it, as PATCH /api/profile); ADMIN_EMAILS bootstraps admins",
    async () => {
      const email = randomEmail();
      const sneaky = await http("POST", "/api/auth/signup", {
        body: { name: "Eve", email, password: "let-me-in-please", role: "admin" },
      });
      assert.deepEqual(assertProblem(sneaky, 400).errors.map((e: { path: string }) => e.path), [
        "role",
      ]);
      const login = await http("POST", "/api/auth/login", {
        body: { email, password: "let-me-in-please" },
      });
      assert.equal(login.status, 401, "no account was made");
      const boss = await signUp(http, { email: "boss@example.com" });
      assert.equal(boss.user.role, "admin");
    },
  );

  await t.step("signup with a taken email (any case) → 409", async () => {
    const first = await signUp(http);
    const again = await http("POST", "/api/auth/signup", {
      body: { name: "Copy", email: first.email.toUpperCase(), password: "another-password" },
    });
    assert.equal(assertProblem(again, 409).code, "email-taken");
  });

  await t.step(
    "login returns the user and a token that /me accepts, by Bearer and by cookie",
    async () => {
      const account = await signUp(http, { gender: "female" });
      const login = await http("POST", "/api/auth/login", {
        body: { email: account.email, password: account.password },
      });
      assert.equal(login.status, 200);
      assert.equal(login.body.user.id, account.user.id);
      const byBearer = await http("GET", "/api/auth/me", { token: login.body.token });
      assert.equal(byBearer.status, 200);
      assert.equal(byBearer.body.user.id, account.user.id);
      assert.equal(byBearer.body.user.gender, "female");
      const byCookie = await http("GET", "/api/auth/me", { cookie: sessionCookie(login.headers) });
      assert.equal(byCookie.body.user.id, account.user.id);
    },
  );

  await t.step("/me without credentials → 401 problem", async () => {
    assertProblem(await http("GET", "/api/auth/me"), 401);
  });

  await t.step("logout revokes the token at once and clears the cookie", async () => {
    const account = await signUp(http);
    const other = await http("POST", "/api/auth/login", {
      body: { email: account.email, password: account.password },
    });
    const out = await http("POST", "/api/auth/logout", { token: account.token });
    assert.equal(out.status, 204);
    assert.ok(out.headers.getSetCookie().some((line) => /^session=;/.test(line)));
    assertProblem(await http("GET", "/api/auth/me", { token: account.token }), 401);
    assertProblem(await http("POST", "/api/auth/logout", { token: account.token }), 401);
    const stillIn = await http("GET", "/api/auth/me", { token: other.body.token });
    assert.equal(stillIn.status, 200, "logout ends only that session");
  });

  await t.step(
    "password change keeps this session, ends every other, and swaps the password",
    async () => {
      const account = await signUp(http);
      const laptop = account.token;
      const phone = (await http("POST", "/api/auth/login", {
        body: { email: account.email, password: account.password },
      })).body.token;
      const changed = await http("PUT", "/api/auth/password", {
        token: laptop,
        body: { currentPassword: account.password, newPassword: "a-brand-new-secret" },
      });
      assert.equal(changed.status, 204);
      assert.equal((await http("GET", "/api/auth/me", { token: laptop })).status, 200);
      assertProblem(await http("GET", "/api/auth/me", { token: phone }), 401);
      const oldPassword = await http("POST", "/api/auth/login", {
        body: { email: account.email, password: account.password },
      });
      assertProblem(oldPassword, 401);
      const newPassword = await http("POST", "/api/auth/login", {
        body: { email: account.email, password: "a-brand-new-secret" },
      });
      assert.equal(newPassword.status, 200);
      assert.equal(
        (await http("GET", "/api/auth/me", { token: newPassword.body.token })).status,
        200,
      );
    },
  );

  await t.step(
    "password change with a wrong current password → 400 and nothing changes",
    async () => {
      const account = await signUp(http);
      const answer = await http("PUT", "/api/auth/password", {
        token: account.token,
        body: { currentPassword: "not-my-password", newPassword: "whatever-else-1" },
      });
      assert.equal(assertProblem(answer, 400).errors[0].path, "currentPassword");
      const login = await http("POST", "/api/auth/login", {
        body: { email: account.email, password: account.password },
      });
      assert.equal(login.status, 200);
    },
  );
});

Deno.test("[auth] wrong password and unknown email get the same answer", async () => {
  await using t0 = await createTestApp();
  const account = await signUp(t0.http);
  const wrong = await t0.http("POST", "/api/auth/login", {
    body: { email: account.email, password: "wrong-password" },
  });
  const unknown = await t0.http("POST", "/api/auth/login", {
    body: { email: randomEmail(), password: "wrong-password" },
  });
  assert.equal(wrong.status, 401);
  assert.equal(unknown.status, 401);
  assert.deepEqual(wrong.body, unknown.body);
});

Deno.test("[auth] tokens that are expired, tampered, unsigned or foreign → 401", async (t) => {
  await using t0 = await createTestApp();
  const { http, deps, clock } = t0;
  const account = await signUp(http);
  const key = await signingKey(deps.config.JWT_SECRET);

  await t.step("expired", async () => {
    const { token } = await issueToken(
      key,
      { userId: account.user.id, generation: 0 },
      clock.now(),
      60,
    );
    assert.equal((await http("GET", "/api/auth/me", { token })).status, 200);
    clock.advance(61_000);
    assertProblem(await http("GET", "/api/auth/me", { token }), 401);
  });

  await t.step("tampered payload", async () => {
    const [header, payload, signature] = account.token.split(".");
    const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/")));
    const forged = btoa(JSON.stringify({ ...claims, sub: "someone-else" }))
      .replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
    assertProblem(
      await http("GET", "/api/auth/me", { token: `${header}.${forged}.${signature}` }),
      401,
    );
  });

  await t.step("alg: none", async () => {
    const [, payload] = account.token.split(".");
    const none = btoa(JSON.stringify({ alg: "none", typ: "JWT" })).replace(/=+$/, "");
    assertProblem(await http("GET", "/api/auth/me", { token: `${none}.${payload}.` }), 401);
  });

  await t.step("signed with another key", async () => {
    const foreign = await new SignJWT({ gen: 0 })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(account.user.id).setJti(crypto.randomUUID()).setIssuedAt()
      .setExpirationTime("1h")
      .sign(new TextEncoder().encode("x".repeat(40)));
    assertProblem(await http("GET", "/api/auth/me", { token: foreign }), 401);
  });

  await t.step("garbage", async () => {
    assertProblem(await http("GET", "/api/auth/me", { token: "not.a.jwt" }), 401);
    assertProblem(
      await http("GET", "/api/auth/me", { headers: { authorization: "Basic abc" } }),
      401,
    );
  });
});

Deno.test("[auth] failed logins are rate-limited per account and address, per address, and per account overall, with Retry-After", async (t) => {
  await using t0 = await createTestApp({
    env: { RATE_LIMIT_LOGIN: "3/15m", RATE_LIMIT_LOGIN_ACCOUNT: "6/15m" },
  });
  const { http, clock } = t0;

  await t.step(
    "a stranger's failures from one address → 429 there, while the owner signs in from another",
    async () => {
      const account = await signUp(http);
      const stranger = "198.51.100.66";
      for (let i = 0; i < 3; i++) {
        const answer = await http("POST", "/api/auth/login", {
          body: { email: account.email, password: "guess-" + i },
          ip: stranger,
        });
        assert.equal(answer.status, 401);
      }
      const blocked = await http("POST", "/api/auth/login", {
        body: { email: account.email, password: account.password },
        ip: stranger,
      });
      assertProblem(blocked, 429);
      const retryAfter = Number(blocked.headers.get("retry-after"));
      assert.ok(retryAfter > 0 && retryAfter <= 900, `Retry-After ${retryAfter}`);
      const owner = await http("POST", "/api/auth/login", {
        body: { email: account.email, password: account.password },
        ip: "203.0.113.10",
      });
      assert.equal(owner.status, 200, "the owner is not locked out by a stranger");
    },
  );

  await t.step(
    "per account overall: failures from many addresses reach the higher ceiling → 429 even with the right password",
    async () => {
      const account = await signUp(http);
      for (let i = 0; i < 6; i++) {
        const answer = await http("POST", "/api/auth/login", {
          body: { email: account.email, password: "guess-" + i },
          ip: `198.51.100.${i}`,
        });
        assert.equal(answer.status, 401);
      }
      const blocked = await http("POST", "/api/auth/login", {
        body: { email: account.email, password: account.password },
        ip: "198.51.100.99",
      });
      assertProblem(blocked, 429);
      clock.advance(900_000);
      const later = await http("POST", "/api/auth/login", {
        body: { email: account.email, password: account.password },
        ip: "198.51.100.99",
      });
      assert.equal(later.status, 200, "the window reopens");
    },
  );

  await t.step("per IP: many accounts from one address", async () => {
    const ip = "192.0.2.50";
    for (let i = 0; i < 3; i++) {
      const answer = await http("POST", "/api/auth/login", {
        body: { email: randomEmail(), password: "whatever" },
        ip,
      });
      assert.equal(answer.status, 401);
    }
    assertProblem(
      await http("POST", "/api/auth/login", { body: { email: randomEmail(), password: "x" }, ip }),
      429,
    );
  });

  await t.step("successful logins do not use up the allowance", async () => {
    const account = await signUp(http);
    for (let i = 0; i < 6; i++) {
      const answer = await http("POST", "/api/auth/login", {
        body: { email: account.email, password: account.password },
        ip: "192.0.2.77",
      });
      assert.equal(answer.status, 200);
    }
  });

  await t.step(
    "100 concurrent wrong guesses from 100 addresses: exactly 6 (the account's ceiling) are checked, the rest get 429",
    async () => {
      const account = await signUp(http);
      const answers = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          http("POST", "/api/auth/login", {
            body: { email: account.email, password: `guess-${i}` },
            ip: `10.9.${Math.floor(i / 200)}.${i % 200}`,
          })),
      );
      const statuses = answers.map((answer) => answer.status);
      assert.equal(statuses.filter((status) => status === 401).length, 6);
      assert.equal(statuses.filter((status) => status === 429).length, 94);
    },
  );
});

Deno.test("[auth] 30 concurrent signups with one email: exactly one account", async () => {
  await using t0 = await createTestApp();
  const email = randomEmail();
  const answers = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      t0.http("POST", "/api/auth/signup", {
        body: { name: `Racer ${i}`, email, password: "same-email-race" },
      })),
  );
  const statuses = answers.map((answer) => answer.status).sort();
  assert.equal(statuses.filter((status) => status === 201).length, 1);
  assert.equal(statuses.filter((status) => status === 409).length, 29);
});

Deno.test("[auth] cookie-authenticated writes must come from a trusted origin", async (t) => {
  await using t0 = await createTestApp({ env: { CORS_ORIGINS: "https://app.convene.test" } });
  const { http } = t0;
  const account = await signUp(http);
  const cookie = sessionCookie(account.answer.headers);
  const logout = (headers: Record<string, string>, auth: { cookie?: string; token?: string }) =>
    http("POST", "/api/auth/logout", { headers, ...auth });

  await t.step("cross-site Origin with the cookie → 403, for any content type", async () => {
    for (const type of ["application/json", "text/plain", "application/x-www-form-urlencoded"]) {
      const answer = await logout({ origin: "https://evil.test", "content-type": type }, {
        cookie,
      });
      assertProblem(answer, 403);
    }
    const fetchSite = await logout({ "sec-fetch-site": "cross-site" }, { cookie });
    assertProblem(fetchSite, 403);
    const none = await logout({}, { cookie });
    assertProblem(none, 403);
    assert.equal((await http("GET", "/api/auth/me", { cookie })).status, 200, "still signed in");
  });

  await t.step("Bearer requests are exempt", async () => {
    const other = await signUp(http);
    const answer = await logout({ origin: "https://evil.test" }, { token: other.token });
    assert.equal(answer.status, 204);
  });

  await t.step(
    "same origin, Sec-Fetch-Site same-origin, or an allowed CORS origin pass",
    async () => {
      const trustedHeaders: Record<string, string>[] = [
        { origin: "http://convene.test" },
        { "sec-fetch-site": "same-origin" },
        { origin: "https://app.convene.test" },
      ];
      for (const headers of trustedHeaders) {
        const fresh = await signUp(http);
        const answer = await logout(headers, { cookie: sessionCookie(fresh.answer.headers) });
        assert.equal(answer.status, 204, JSON.stringify(headers));
      }
    },
  );
});

Deno.test("[auth] production cookies are Secure", async () => {
  await using t0 = await createTestApp({
    env: {
      APP_ENV: "production",
      JWT_SECRET: "p".repeat(32),
      PAYMENTS_SANDBOX_SECRET: "s".repeat(32),
    },
  });
  const account = await signUp(t0.http);
  const cookie = account.answer.headers.getSetCookie().find((line) => line.startsWith("session="))!;
  assert.match(cookie, /Secure/);
});
