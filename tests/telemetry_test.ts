// OpenTelemetry end to end: the real server (`deno serve main.ts`) with Deno's built-in telemetry
// on (OTEL_DENO=true) exports to an OTLP receiver on loopback. The receiver asks for OTLP's
// standard JSON encoding (OTEL_EXPORTER_OTLP_PROTOCOL=http/json), so what arrives is decoded by
// the JSON parser, not by hand. The server is stopped with SIGTERM, and Deno sends what it still
// holds as the process ends.
import assert from "node:assert/strict";
import {
  type Account,
  connectOver,
  freePort,
  ServerProcess,
  signUpOver,
} from "./helpers/server.ts";
import { connect, servedTestApp, TestSocket } from "./helpers/sockets.ts";
import { assertProblem } from "./helpers/app.ts";
import { members } from "./helpers/members.ts";
import { storeDeadLetter } from "../kv/dead-letters.ts";
import { signSandbox } from "../providers/payments.ts";
import { useWsProxy } from "../db/client.ts";
import { serveWsProxy } from "../db/ws-proxy.ts";
import { freshDatabase, integrationTest } from "./helpers/integration.ts";
import { spawnProxy } from "./helpers/proxy.ts";

type AnyValue = { stringValue?: string; intValue?: string | number; arrayValue?: unknown };
type KeyValue = { key: string; value: AnyValue };
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: KeyValue[];
  links?: { traceId: string; spanId: string }[];
}
interface OtlpMetric {
  name: string;
  sum?: {
    dataPoints: { attributes?: KeyValue[]; asInt?: string | number; asDouble?: number }[];
  };
  histogram?: { dataPoints: { attributes?: KeyValue[]; count?: string | number }[] };
  gauge?: { dataPoints: { asInt?: string | number; asDouble?: number }[] };
}

/** An OTLP/HTTP receiver: keeps every span and metric exported to it. */
function otlpReceiver() {
  const spans: OtlpSpan[] = [];
  const metrics: OtlpMetric[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json();
    const path = new URL(req.url).pathname;
    if (path === "/v1/traces") {
      for (const resource of body.resourceSpans ?? []) {
        for (const scope of resource.scopeSpans ?? []) spans.push(...scope.spans ?? []);
      }
    }
    if (path === "/v1/metrics") {
      for (const resource of body.resourceMetrics ?? []) {
        for (const scope of resource.scopeMetrics ?? []) metrics.push(...scope.metrics ?? []);
      }
    }
    return Response.json({});
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    spans,
    metrics,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

const SANDBOX_SECRET = "telemetry-sandbox-secret-0123456789";

const attribute = (span: { attributes?: KeyValue[] }, key: string) => {
  const value = span.attributes?.find((entry) => entry.key === key)?.value;
  return value?.stringValue ?? (value?.intValue !== undefined ? Number(value.intValue) : undefined);
};

/** The real server in `dataDir`, exporting to `receiver` (metrics every 500 ms). */
function tracedServer(
  receiver: { url: string },
  dataDir: string,
  env: Record<string, string> = {},
) {
  return ServerProcess.start(dataDir, {
    PORT: String(freePort()),
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_SERVICE_NAME: "convene-test",
    // Observable gauges are read on the periodic export only (not in the flush at exit).
    OTEL_METRIC_EXPORT_INTERVAL: "500",
    ...env,
  });
}

/** Ada sends Bob a message over her socket; resolves once he has it and she has its receipt. */
async function messageOver(server: ServerProcess, ada: Account, bob: Account, text: string) {
  const wsUrl = `${server.url.replace("http", "ws")}/ws`;
  await using adaSocket = await TestSocket.open(wsUrl, ada.token);
  await using bobSocket = await TestSocket.open(wsUrl, bob.token);
  // Live once the server has registered them (a ping answered), as the other socket tests wait.
  await adaSocket.roundTrip();
  await bobSocket.roundTrip();
  adaSocket.send("private-message", { toUserId: bob.id, tempId: "t-1", text });
  await bobSocket.waitFor("incoming-message");
  await adaSocket.waitFor("message-delivered");
  await adaSocket.close();
  await bobSocket.close();
}

Deno.test("[telemetry] a chat message is one trace from its frame to the delivery and the history row; jobs, logs and metrics join it", async () => {
  await using receiver = otlpReceiver();
  const dataDir = await Deno.makeTempDir({ prefix: "convene-otel-" });
  const server = await tracedServer(receiver, dataDir, { PAYMENTS_SANDBOX_SECRET: SANDBOX_SECRET });
  let stopped = false;
  let bobId = "";
  let orderId = "";
  try {
    const ada = await signUpOver(server.http, "ada@example.com");
    const bob = await signUpOver(server.http, "bob@example.com");
    bobId = bob.id;
    await connectOver(server.http, ada, bob);
    assert.equal((await server.http("GET", "/api/feed", { token: ada.token })).status, 200);
    // The accept's notification is written by a job: wait until it ran.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const notes = await server.http("GET", "/api/notifications", { token: ada.token });
      if (notes.body.items?.some((note: { type: string }) => note.type === "connection_accepted")) {
        break;
      }
      if (Date.now() > deadline) throw new Error("the accept's notification never came");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // A membership paid through the sandbox's signed webhook; a password change's email.
    const order = await server.http("POST", "/api/payments/membership", {
      token: bob.token,
      body: { tier: "pro" },
    });
    assert.equal(order.status, 200, JSON.stringify(order.body));
    orderId = order.body.orderId;
    const rawBody = JSON.stringify({
      id: `evt_${orderId}`,
      type: "payment.succeeded",
      data: { orderId, amountCents: 900, currency: "USD" },
    });
    const paid = await server.http("POST", "/api/payments/webhook/sandbox", {
      raw: rawBody,
      headers: {
        "content-type": "application/json",
        "convene-signature": await signSandbox(
          SANDBOX_SECRET,
          rawBody,
          Math.floor(Date.now() / 1000),
        ),
      },
    });
    assert.equal(paid.body.orderStatus, "paid", JSON.stringify(paid.body));
    const changed = await server.http("PUT", "/api/auth/password", {
      token: ada.token,
      body: { currentPassword: "analytical-engine", newPassword: "difference-engine" },
    });
    assert.equal(changed.status, 204);
    await server.waitForLog((line) => line.msg === "job done" && line.job === "send-email");
    await messageOver(server, ada, bob, "Traced?");
    // The store's gauges report what a read started by an earlier export found: wait for one
    // (a loaded machine may export seldom), rather than stop before any could.
    const gaugesBy = Date.now() + 15_000;
    while (!receiver.metrics.some((entry) => entry.name === "convene.outbox.backlog")) {
      if (Date.now() > gaugesBy) throw new Error("the store's gauges were never exported");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal((await server.kill("SIGTERM")).success, true);
    stopped = true;
  } finally {
    if (!stopped) await server.kill("SIGKILL");
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
  const { spans, metrics } = receiver;

  // The frame's span, its decision and the delivery to Bob: one trace.
  const frame = spans.find((span) => span.name === "ws.frame private-message");
  assert.ok(frame, `no frame span among ${[...new Set(spans.map((span) => span.name))]}`);
  // A frame starts its own trace (a socket outlives the request that opened it), linked to that
  // request.
  assert.ok(!frame.parentSpanId, `the frame's span has a parent: ${frame.parentSpanId}`);
  const upgrades = new Set(
    spans.filter((span) => span.name === "GET /ws").map((span) => span.spanId),
  );
  assert.ok(
    frame.links?.some((link) => upgrades.has(link.spanId)),
    "the frame is not linked to its socket's upgrade request",
  );
  const trace = spans.filter((span) => span.traceId === frame.traceId);
  const decision = trace.find((span) => attribute(span, "convene.operation") === "chat.send");
  assert.ok(decision, "no chat.send decision in the frame's trace");
  assert.equal(decision.name, "kv.decision");
  assert.equal(decision.parentSpanId, frame.spanId);
  assert.equal(attribute(decision, "convene.outcome"), "committed");
  const delivery = trace.find((span) =>
    span.name === "ws.deliver" && attribute(span, "convene.event") === "incoming-message"
  );
  assert.ok(delivery, "no delivery to the recipient in the frame's trace");
  assert.equal(attribute(delivery, "convene.recipient"), bobId);
  // The history row was written by a batch whose span links to the message's decision.
  const history = spans.filter((span) => span.name === "history.write");
  assert.ok(
    history.some((span) => span.links?.some((link) => link.traceId === frame.traceId)),
    "no history batch linked to the message's trace",
  );

  // Its statements are spans of their own under the batch, with their text but never the values.
  const batches = new Set(history.map((span) => span.spanId));
  const statements = spans.filter((span) => span.name === "db.query");
  assert.ok(
    statements.some((span) => batches.has(span.parentSpanId ?? "")),
    "no statement under a history batch",
  );
  assert.ok(
    !statements.some((span) => String(attribute(span, "db.query.text")).includes("Traced?")),
    "a statement span carries a parameter's value",
  );

  // Requests are named by their route template; a job enqueued by one runs in its trace.
  const accept = spans.find((span) => span.name === "PATCH /api/connections/:id");
  assert.ok(accept, `no route-named request span among ${spans.map((span) => span.name)}`);
  assert.equal(attribute(accept, "http.route"), "/api/connections/:id");
  const jobs = spans.filter((span) => span.name.startsWith("job "));
  assert.ok(
    jobs.some((span) => span.traceId === accept.traceId),
    `no job in the accept's trace (jobs: ${jobs.map((span) => span.name)})`,
  );

  // Cache calls are spans in the request's trace.
  const feed = spans.find((span) => span.name === "GET /api/feed");
  assert.ok(feed, "no feed request span");
  assert.ok(
    spans.some((span) => span.name.startsWith("cache.") && span.traceId === feed.traceId),
    "no cache call in the feed request's trace",
  );

  // Payments: the provider's calls and the webhook, with what it came to; email in its job.
  const start = spans.find((span) => span.name === "payment.start");
  assert.equal(start && attribute(start, "convene.order.id"), orderId);
  const webhook = spans.find((span) => span.name === "webhook");
  assert.ok(webhook, "no webhook span");
  assert.equal(attribute(webhook, "convene.outcome"), "paid");
  assert.equal(attribute(webhook, "convene.order.id"), orderId);
  const verified = spans.find((span) => span.name === "payment.verify");
  assert.equal(verified?.parentSpanId, webhook.spanId);
  assert.equal(verified && attribute(verified, "convene.payment.event"), "succeeded");
  const passwordChange = spans.find((span) => span.name === "PUT /api/auth/password");
  const mail = spans.find((span) => span.name === "mail.send");
  assert.ok(passwordChange && mail, "no password change or mail span");
  assert.equal(mail.traceId, passwordChange.traceId, "the email is in its request's trace");
  assert.equal(attribute(mail, "convene.mail.provider"), "dev-outbox");
  assert.ok(
    !JSON.stringify(mail.attributes).includes("ada@example.com"),
    "a mail span names its address",
  );

  // Log lines written inside a span name it.
  const acceptLog = server.logs.find((line) =>
    line.msg === "request" && line.route === "/api/connections/:id" && line.method === "PATCH"
  );
  assert.equal(acceptLog?.trace_id, accept.traceId);
  assert.equal(typeof acceptLog?.span_id, "string");

  // Instruments, with plausible values after the traffic above.
  const metric = (name: string) => metrics.filter((entry) => entry.name === name);
  const total = (
    name: string,
    where: (point: { attributes?: KeyValue[] }) => boolean = () => true,
  ) =>
    metric(name).flatMap((entry) => entry.sum?.dataPoints ?? []).filter(where)
      .reduce((sum, point) => Math.max(sum, Number(point.asInt ?? point.asDouble ?? 0)), 0);
  assert.ok(total("convene.ws.connects") >= 2, "convene.ws.connects below 2");
  assert.ok(
    total(
      "convene.kv.decisions",
      (point) => attribute(point, "convene.operation") === "chat.send",
    ) >=
      1,
    "no chat.send decision counted",
  );
  const routes = metric("convene.http.request.duration")
    .flatMap((entry) => entry.histogram?.dataPoints ?? [])
    .map((point) => attribute(point, "http.route"));
  assert.ok(routes.includes("/api/connections/:id"), `routes: ${routes}`);
  assert.ok(!routes.some((route) => String(route).includes(bobId)), "a raw URL as a route");
  const latency = metric("convene.chat.delivery.latency")
    .flatMap((entry) => entry.histogram?.dataPoints ?? [])
    .reduce((sum, point) => sum + Number(point.count ?? 0), 0);
  assert.ok(latency >= 1, "no message latency recorded");
  assert.ok(
    total("convene.jobs.runs", (point) =>
      attribute(point, "convene.job") === "notify" &&
      attribute(point, "convene.outcome") === "done") >= 1,
    "no notify job run counted",
  );
  const reachable = metric("convene.database.reachable")
    .flatMap((entry) => entry.gauge?.dataPoints ?? [])
    .map((point) => Number(point.asInt ?? point.asDouble));
  assert.deepEqual([...new Set(reachable)], [1], "the database was reachable throughout");
  assert.ok(metric("convene.history.buffered").length > 0, "no history writer gauge");
  const gauge = (name: string) =>
    metric(name).flatMap((entry) => entry.gauge?.dataPoints ?? [])
      .map((point) => Number(point.asInt ?? point.asDouble));
  assert.ok(gauge("convene.outbox.backlog").length > 0, "no outbox backlog gauge");
  assert.ok(gauge("convene.dead_letters").every((value) => value === 0), "dead letters appeared");
  assert.ok(gauge("convene.dead_letters").length > 0, "no dead letters gauge");
  // Every job the traffic enqueued has run: what was counted in was counted out.
  const queued = metric("convene.jobs.queued").flatMap((entry) => entry.sum?.dataPoints ?? []);
  assert.ok(
    queued.some((point) => attribute(point, "convene.job") === "send-email"),
    "no send-email job counted as queued",
  );
  const lastQueued = new Map<unknown, number>();
  for (const point of queued) {
    lastQueued.set(attribute(point, "convene.job"), Number(point.asInt ?? point.asDouble));
  }
  assert.equal(lastQueued.get("send-email"), 0, "a send-email job still counted as queued");
});

integrationTest(
  "TEST_DATABASE_URL",
  "[telemetry] on Postgres through Neon's driver, every statement is a db.query span, a transaction's too, none twice, never a value",
  async (serverUrl) => {
    const target = `${new URL(serverUrl).hostname}:${new URL(serverUrl).port || 5432}`;
    const own = serveWsProxy({ allow: [target] });
    useWsProxy(own.address);
    const fresh = await freshDatabase(serverUrl, "convene_otel");
    const proxy = await spawnProxy([String(freePort()), target]);
    await using receiver = otlpReceiver();
    const dataDir = await Deno.makeTempDir({ prefix: "convene-otel-neon-" });
    const server = await tracedServer(receiver, dataDir, {
      DATABASE_URL: fresh.url,
      DATABASE_WS_PROXY: proxy.address,
    });
    let stopped = false;
    try {
      const ada = await signUpOver(server.http, "ada@example.com");
      const bob = await signUpOver(server.http, "bob@example.com");
      await connectOver(server.http, ada, bob);
      await messageOver(server, ada, bob, "Over Neon?");
      // Read back from history: the row was written.
      const conversations = await server.http("GET", "/api/conversations", { token: bob.token });
      assert.equal(conversations.body.items?.[0]?.lastMessage?.text, "Over Neon?");
      assert.equal((await server.kill("SIGTERM")).success, true);
      stopped = true;
    } finally {
      if (!stopped) await server.kill("SIGKILL");
      await proxy.close();
      await fresh.drop();
      await own.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
    const { spans } = receiver;
    const statements = spans.filter((span) => span.name === "db.query");
    assert.ok(
      statements.length > 0 &&
        statements.every((span) => attribute(span, "db.system.name") === "postgresql"),
      "no Postgres statement spans",
    );
    const batches = new Set(
      spans.filter((span) => span.name === "history.write").map((span) => span.spanId),
    );
    // The history writer applies a batch in one transaction, on a connection the pool lends.
    assert.ok(
      statements.some((span) => batches.has(span.parentSpanId ?? "")),
      "no statement under a history batch",
    );
    // The accept's history is written in a transaction, on a connection the pool lends.
    const texts = statements.map((span) => String(attribute(span, "db.query.text")));
    assert.ok(texts.some((text) => /^begin/i.test(text)), `no transaction among ${texts}`);
    assert.ok(texts.some((text) => /^commit/i.test(text)), "no commit");
    const ids = new Set(statements.map((span) => span.spanId));
    assert.ok(
      !statements.some((span) => ids.has(span.parentSpanId ?? "")),
      "a statement counted twice (a db.query under a db.query)",
    );
    assert.ok(
      !statements.some((span) => String(attribute(span, "db.query.text")).includes("Over Neon?")),
      "a statement span carries a parameter's value",
    );
  },
);

Deno.test("[telemetry] the operations endpoint reports this isolate's figures to admins only", async () => {
  await using t0 = await servedTestApp({ realClock: true });
  const [admin] = await members(t0.deps, 1, { role: "admin" });
  const [ada, bob] = await members(t0.deps, 2);
  assertProblem(await t0.http("GET", "/api/admin/operations"), 401);
  assertProblem(await t0.http("GET", "/api/admin/operations", { token: ada.token }), 403);

  await connect(t0.http, ada, bob);
  await using adaSocket = await TestSocket.open(t0.url, ada.token);
  await using bobSocket = await TestSocket.open(t0.url, bob.token);
  await adaSocket.roundTrip();
  await bobSocket.roundTrip();
  adaSocket.send("private-message", { toUserId: bob.user.id, tempId: "m-1", text: "Counted?" });
  await bobSocket.waitFor("incoming-message");
  for (let i = 0; i < 3; i++) await t0.http("GET", "/api/feed", { token: ada.token });
  await storeDeadLetter(t0.deps.kv, { id: "letter-1", name: "greet", payload: {} });

  const answer = await t0.http("GET", "/api/admin/operations", { token: admin.token });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  const { series, current, at, stepSeconds, windowSeconds } = answer.body;
  assert.equal(at.length, windowSeconds / stepSeconds);
  assert.equal(current.sockets, 2);
  assert.equal(series.sockets.at(-1), 2);
  assert.equal(current.deadLetters, 1);
  const sum = (values: number[]) => values.reduce((total, value) => total + value, 0);
  // Rates are per second over steps of `stepSeconds`: back to counts.
  assert.equal(Math.round(sum(series.messagesPerSecond) * stepSeconds), 1);
  assert.ok(sum(series.requestsPerSecond) * stepSeconds >= 6, "requests not counted");
  assert.equal(sum(series.errorsPerSecond), 0);
  assert.ok(series.messageLatencyP95.some((value: number | null) => value !== null));
  assert.ok(series.feedP95.some((value: number | null) => value !== null));
  assert.equal(typeof current.outboxBacklog, "number");
});
