import assert from "node:assert/strict";
import { assertProblem, createTestApp, signUp } from "./helpers/app.ts";

const ADMIN = { ADMIN_EMAILS: "root@example.com" };

Deno.test("[mail] PUT /api/auth/password emails a confirmation, listed in the dev outbox", async (t) => {
  await using t0 = await createTestApp({ env: ADMIN });
  const admin = await signUp(t0.http, { email: "root@example.com" });
  const ada = await signUp(t0.http, { name: "Ada" });

  const changed = await t0.http("PUT", "/api/auth/password", {
    token: ada.token,
    body: { currentPassword: ada.password, newPassword: "difference-engine" },
    ip: "198.51.100.23",
  });
  assert.equal(changed.status, 204);
  await t0.jobsSettled("send-email");

  await t.step("the admin sees exactly one email to Ada, naming the time and address", async () => {
    const outbox = await t0.http("GET", "/api/admin/outbox", { token: admin.token });
    assert.equal(outbox.status, 200);
    assert.equal(outbox.body.items.length, 1);
    const [mail] = outbox.body.items;
    assert.equal(mail.to, ada.email);
    assert.equal(mail.subject, "Your Convene password was changed");
    assert.match(mail.text, /^Hi Ada,/);
    assert.match(mail.text, new RegExp(new Date(t0.clock.now()).toISOString()));
    assert.match(mail.text, /198\.51\.100\.23/);
    assert.ok(!mail.text.includes("difference-engine"), "never the password");
  });

  await t.step("a wrong current password sends nothing", async () => {
    const refused = await t0.http("PUT", "/api/auth/password", {
      token: ada.token,
      body: { currentPassword: "not-it-at-all", newPassword: "another-engine" },
    });
    assertProblem(refused, 400);
    const outbox = await t0.http("GET", "/api/admin/outbox", { token: admin.token });
    assert.equal(outbox.body.items.length, 1);
  });

  await t.step("members get 403, strangers 401", async () => {
    assertProblem(await t0.http("GET", "/api/admin/outbox", { token: ada.token }), 403);
    assertProblem(await t0.http("GET", "/api/admin/outbox"), 401);
  });
});

Deno.test("[mail] GET /api/admin/outbox does not exist in production", async () => {
  await using t0 = await createTestApp({
    env: {
      ...ADMIN,
      APP_ENV: "production",
      JWT_SECRET: "p".repeat(40),
      PAYMENTS_SANDBOX_SECRET: "s".repeat(40),
    },
  });
  const admin = await signUp(t0.http, { email: "root@example.com" });
  assertProblem(await t0.http("GET", "/api/admin/outbox", { token: admin.token }), 404);
});

/** A stand-in for Resend's `POST /emails`: answers with the scripted statuses, then 200. */
function startResendDouble(script: number[]) {
  const apiKey = `re_${crypto.randomUUID()}`;
  const received: { headers: Headers; body: Record<string, unknown>; status: number }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (req.headers.get("authorization") !== `Bearer ${apiKey}`) {
      return Response.json({ name: "missing_api_key" }, { status: 401 });
    }
    const body = await req.json();
    const status = script.shift() ?? 200;
    received.push({ headers: req.headers, body, status });
    return status === 200
      ? Response.json({ id: crypto.randomUUID() })
      : Response.json({ name: "error", message: `scripted ${status}` }, { status });
  });
  return {
    apiKey,
    url: `http://127.0.0.1:${server.addr.port}`,
    received,
    close: () => server.shutdown(),
  };
}

async function resendApp(script: number[]) {
  const resend = startResendDouble(script);
  const t0 = await createTestApp({
    env: {
      RESEND_API_KEY: resend.apiKey,
      RESEND_API_URL: resend.url,
      MAIL_FROM: "Convene <hello@convene.test>",
    },
  });
  return {
    ...t0,
    resend,
    async [Symbol.asyncDispose]() {
      await t0[Symbol.asyncDispose]();
      await resend.close();
    },
  };
}

const HELLO = { to: "ada@example.com", subject: "Hello", text: "Hi Ada" };

Deno.test("[mail] Resend: one email per job, retried with the same Idempotency-Key", async () => {
  await using t0 = await resendApp([500]);
  const jobId = await t0.deps.jobs.enqueue("send-email", HELLO);
  await t0.jobsSettled("send-email");
  assert.deepEqual(t0.resend.received.map((request) => request.status), [500, 200]);
  for (const request of t0.resend.received) {
    assert.equal(request.headers.get("idempotency-key"), jobId);
    assert.deepEqual(request.body, {
      from: "Convene <hello@convene.test>",
      to: ["ada@example.com"],
      subject: HELLO.subject,
      text: HELLO.text,
    });
  }
});

Deno.test("[mail] Resend refusing an email (422) dead-letters it at once, without retries", async () => {
  await using t0 = await resendApp([422]);
  const jobId = await t0.deps.jobs.enqueue("send-email", HELLO);
  const [settled] = await t0.jobsSettled("send-email");
  assert.equal(settled.msg, "job dead-lettered");
  assert.equal(t0.resend.received.length, 1);
  assert.ok((await t0.deps.kv.get(["dead_letter", jobId])).value);
});
