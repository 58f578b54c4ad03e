import assert from "node:assert/strict";
import { JSON_BODY_LIMIT } from "../app.ts";
import {
  assertProblem,
  type Call,
  createTestApp,
  postgresGate,
  randomEmail,
  signUp,
} from "./helpers/app.ts";

Deno.test("[http] bad input gets a 4xx problem+json, never a 500", async (t) => {
  await using t0 = await createTestApp();
  const { http } = t0;

  await t.step("malformed JSON → 400", async () => {
    const answer = await http("POST", "/api/auth/signup", {
      raw: '{"name": "Ann", "email": ',
      headers: { "content-type": "application/json" },
    });
    assertProblem(answer, 400);
  });

  await t.step("missing fields → 400 naming each field", async () => {
    const problem = assertProblem(await http("POST", "/api/auth/signup", { body: {} }), 400);
    const paths = problem.errors.map((error: { path: string }) => error.path).sort();
    assert.deepEqual(paths, ["email", "name", "password"]);
  });

  await t.step("wrong types → 400", async () => {
    const answer = await http("POST", "/api/auth/signup", {
      body: { name: 42, email: ["a@b.c"], password: { long: true }, gender: "robot" },
    });
    const problem = assertProblem(answer, 400);
    assert.equal(problem.errors.length, 4);
  });

  await t.step("a body that is not an object → 400", async () => {
    for (const body of [null, [], "text", 7]) {
      assertProblem(await http("POST", "/api/auth/login", { body }), 400);
    }
  });

  await t.step("a password bcrypt would truncate (> 72 bytes) → 400", async () => {
    const answer = await http("POST", "/api/auth/signup", {
      body: { name: "Long", email: "long@example.com", password: "é".repeat(40) },
    });
    assert.equal(assertProblem(answer, 400).errors[0].path, "password");
  });

  await t.step("a body over 1 MB → 413, with or without Content-Length", async () => {
    const big = JSON.stringify({
      name: "x".repeat(JSON_BODY_LIMIT),
      email: "a@b.co",
      password: "p",
    });
    assertProblem(
      await http("POST", "/api/auth/signup", {
        raw: big,
        headers: { "content-type": "application/json" },
      }),
      413,
    );
    const stream = new Blob([big]).stream();
    const streamed = await t0.app.request("/api/auth/signup", {
      method: "POST",
      body: stream,
      headers: { "content-type": "application/json" },
    });
    assert.equal(streamed.status, 413);
    assert.equal(streamed.headers.get("content-type"), "application/problem+json");
  });

  await t.step("an unknown path → 404 problem", async () => {
    const problem = assertProblem(await http("GET", "/api/nothing-here"), 404);
    assert.match(problem.detail, /\/api\/nothing-here/);
  });

  await t.step(
    "signed-in routers: 401 before validation on their routes, 404 off them",
    async () => {
      // A route of a signed-in router refuses the anonymous caller before looking at the input.
      assertProblem(await http("POST", "/api/posts", { body: { text: 42 } }), 401);
      assertProblem(await http("POST", "/api/reservations/x/checkout"), 401);
      assertProblem(await http("GET", "/api/admin/dead-letters?limit=nope"), 401);
      // What no router serves is a 404 for everyone: a path, or a method on a served path.
      assertProblem(await http("GET", "/api/conversations/x/nothing-here"), 404);
      assertProblem(await http("PUT", "/api/posts"), 404);
      assertProblem(await http("GET", "/api/sales/x/nothing-here"), 404);
    },
  );

  await t.step("nothing above was stored: the email is still free", async () => {
    const account = await signUp(http, { email: "long@example.com" });
    assert.equal(account.user.email, "long@example.com");
  });
});

Deno.test("[http] an unexpected error → 500 with a reference, details only in the log, in every environment", async (t) => {
  for (const env of ["development", "production"] as const) {
    await t.step(env, async () => {
      await using t0 = await createTestApp({
        env: { APP_ENV: env, JWT_SECRET: "j".repeat(32), PAYMENTS_SANDBOX_SECRET: "s".repeat(32) },
      });
      await t0.deps.database.close(); // the database goes away mid-flight
      const answer = await t0.http("POST", "/api/auth/login", {
        body: { email: "a@example.com", password: "whatever" },
      });
      const problem = assertProblem(answer, 500);
      assert.equal(typeof problem.ref, "string");
      assert.equal(problem.ref, answer.headers.get("x-request-id"));
      assert.equal(problem.detail.includes(problem.ref), true);
      assert.equal(/stack|at .*\.ts/i.test(JSON.stringify(problem)), false);
      assert.match(problem.detail, /^Something went wrong on our side\. Quote reference [\w-]+\.$/);
      const logged = t0.logs.find((line) => line.msg === "unhandled error");
      assert.equal(logged?.ref, problem.ref, "the reference leads to the logged error");
      assert.match(String(logged?.error), /\S/, "the log line carries the error itself");
    });
  }
});

Deno.test("[http] every request is logged once as JSON with its id, status, time and user", async () => {
  await using t0 = await createTestApp();
  const account = await signUp(t0.http);
  const answer = await t0.http("GET", "/api/auth/me", {
    token: account.token,
    headers: { "x-request-id": "trace-123" },
  });
  assert.equal(answer.headers.get("x-request-id"), "trace-123");
  const lines = t0.logs.filter((line) => line.msg === "request" && line.requestId === "trace-123");
  assert.equal(lines.length, 1);
  const [line] = lines;
  assert.equal(line.method, "GET");
  assert.equal(line.path, "/api/auth/me");
  assert.equal(line.status, 200);
  assert.equal(line.userId, account.user.id);
  assert.equal(typeof line.ms, "number");
});

Deno.test("[http] secure headers and CORS", async (t) => {
  await using t0 = await createTestApp({ env: { CORS_ORIGINS: "https://app.convene.test" } });
  await t.step("secure headers on every answer", async () => {
    const answer = await t0.http("GET", "/healthz");
    assert.equal(answer.headers.get("x-content-type-options"), "nosniff");
    assert.equal(answer.headers.get("x-frame-options"), "SAMEORIGIN");
    assert.ok(answer.headers.get("strict-transport-security"));
    for (const page of ["/", "/docs", "/openapi.json"]) {
      const csp = (await t0.app.request(page)).headers.get("content-security-policy") ?? "";
      assert.match(csp, /default-src 'self'/, page);
      assert.match(csp, /script-src 'self'(;|$)/, `${page}: no inline script`);
      assert.match(csp, /frame-ancestors 'none'/, page);
    }
  });
  await t.step("an allowed origin gets credentials CORS; another gets none", async () => {
    const preflight = await t0.app.request("/api/auth/me", {
      method: "OPTIONS",
      headers: { origin: "https://app.convene.test", "access-control-request-method": "PUT" },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get("access-control-allow-origin"), "https://app.convene.test");
    assert.equal(preflight.headers.get("access-control-allow-credentials"), "true");
    const other = await t0.http("GET", "/healthz", { headers: { origin: "https://evil.test" } });
    assert.equal(other.headers.get("access-control-allow-origin"), null);
  });
});

Deno.test("[http] writes are rate-limited per user (RATE_LIMIT_API) with Retry-After", async () => {
  await using t0 = await createTestApp({ env: { RATE_LIMIT_API: "5/1m" } });
  const account = await signUp(t0.http, {}); // 1 write by this IP
  const answers = await Promise.all(
    Array.from(
      { length: 20 },
      () => t0.http("PUT", "/api/auth/password", { token: account.token, body: {} }),
    ),
  );
  const limited = answers.filter((answer) => answer.status === 429);
  assert.equal(limited.length, 15, "5 of 20 concurrent writes pass the limiter");
  assert.ok(Number(limited[0].headers.get("retry-after")) <= 60);
  const read = await t0.http("GET", "/api/auth/me", { token: account.token });
  assert.equal(read.status, 200, "reads are not limited");
  t0.clock.advance(60_000);
  const after = await t0.http("PUT", "/api/auth/password", { token: account.token, body: {} });
  assert.equal(after.status, 400, "the window reopens (400: the body is still invalid)");
});

Deno.test("[http] /healthz and /readyz", async (t) => {
  await using t0 = await createTestApp();
  await t.step("healthy", async () => {
    assert.deepEqual((await t0.http("GET", "/healthz")).body, { status: "ok" });
    const ready = await t0.http("GET", "/readyz");
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body.checks, { kv: "ok", database: "ok", cache: "ok" });
  });
  await t.step("/readyz → 503 naming the database when it is gone", async () => {
    await t0.deps.database.close();
    const problem = assertProblem(await t0.http("GET", "/readyz"), 503);
    assert.deepEqual(problem.failed, ["database"]);
    assert.match(problem.detail, /database/);
    assert.equal((await t0.http("GET", "/healthz")).status, 200, "the process is still up");
  });
});

Deno.test("[http] a database that cannot be reached → 503 with Retry-After on reads and writes; nothing thrown is ever a bare 500", async (t) => {
  await using t0 = await createTestApp();
  const account = await signUp(t0.http);
  const gate = postgresGate(t0.deps.database);
  const calls: [string, string, Call][] = [
    ["GET", "/api/auth/me", { token: account.token }],
    ["GET", "/api/feed", { token: account.token }],
    ["GET", "/api/conversations", { token: account.token }],
    ["GET", `/api/users/${account.user.id}/following`, { token: account.token }],
    ["POST", "/api/posts", { token: account.token, body: { text: "while it is down" } }],
    ["POST", "/api/auth/signup", {
      body: { name: "Late", email: randomEmail(), password: "analytical-engine" },
    }],
  ];
  const downs: [string, () => unknown][] = [
    ["connection refused", () => new Deno.errors.ConnectionRefused("tcp connect error")],
    ["Neon's driver: an ErrorEvent, not an Error", () =>
      new ErrorEvent("error", {
        message: "NetworkError: failed to connect to WebSocket",
      })],
    [
      "backends terminated (57P01)",
      () =>
        Object.assign(new Error("terminating connection due to administrator command"), {
          code: "57P01",
        }),
    ],
  ];
  for (const [name, reason] of downs) {
    await t.step(name, async () => {
      gate.fail(reason);
      try {
        for (const [method, path, call] of calls) {
          const problem = assertProblem(await t0.http(method, path, call), 503);
          assert.equal(problem.code, "unavailable", `${method} ${path}`);
          assert.ok(problem.retryAfter >= 1);
        }
      } finally {
        gate.restore();
      }
      assert.equal((await t0.http("GET", "/api/auth/me", { token: account.token })).status, 200);
    });
  }

  await t.step(
    "a rejection that is no Error → problem 500 with a ref, logged on one line",
    async () => {
      gate.fail(() => ({ reason: "a driver rejected with a plain object" }));
      try {
        const answer = await t0.http("GET", "/api/feed", {
          token: account.token,
          headers: { "x-request-id": "plain-object" },
        });
        const problem = assertProblem(answer, 500);
        assert.equal(problem.ref, "plain-object");
      } finally {
        gate.restore();
      }
      const logged = t0.logs.find((line) => line.msg === "unhandled error");
      assert.match(String(logged?.error), /a driver rejected with a plain object/);
      const access = t0.logs.find((line) =>
        line.msg === "request" && line.requestId === "plain-object"
      );
      assert.equal(access?.status, 500, "the access log has the request");
    },
  );
});
