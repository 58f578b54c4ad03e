// Hostile input against every route and every socket frame: generated bad values (NUL, unpaired
// surrogates, 100 KB strings, nulls, wrong types, arrays for objects, odd ids) must each get a 4xx
// problem (or be accepted), never a 5xx, and nothing acknowledged may fail on its way to history.
import assert from "node:assert/strict";
import { type Answer, createTestApp } from "./helpers/app.ts";
import { upload } from "./helpers/media.ts";
import { type Member, members } from "./helpers/members.ts";
import { connect } from "./helpers/sockets.ts";
import { png } from "./helpers/media.ts";
import { FrameBudget, handleFrame } from "../realtime/frames.ts";
import { encodeCursor } from "../cursor.ts";
import { sessionFromToken } from "../routes/middleware/session.ts";

/** Values no field should hold: each replaces every leaf of a valid body in turn. */
const BAD_VALUES: unknown[] = [
  "\u0000",
  "a\u0000b",
  "\ud800",
  "b\udc00",
  "x".repeat(100_000),
  "",
  null,
  [],
  {},
  [null],
  1e308,
  -1,
  2 ** 53,
  0.5,
  true,
  "../../etc/passwd",
  { $ne: null },
  "2026-13-45T99:99:99Z",
  // Valid-looking, but storage cannot hold them: year 0, and integers past Postgres' `integer`.
  "0000-01-01T00:00:00Z",
  "+010000-01-01T00:00:00Z",
  2_147_483_648,
  -2_147_483_649,
];

/** Whole bodies of the wrong shape. */
const BAD_BODIES: unknown[] = [null, [], "text", 42, true, { "a\u0000": 1 }, nested(40)];

/** Path ids as a client could spell them (raw, already percent-encoded where needed). */
const ODD_IDS = [
  "%00",
  "a%00b",
  "%ED%A0%80",
  "%E0%A4%A",
  "x".repeat(3000),
  "..%2F..%2Fetc",
  "%F0%9F%99%82",
  "a%20b",
  "%27%3B--",
  "null",
  "-1",
];

/** Query values for every list's parameters. */
const ODD_QUERY = [
  "%00",
  "%ED%A0%80",
  "-1",
  "1e309",
  "x".repeat(5000),
  "%5B%5D",
  "'%20or%201=1",
  "",
  // Cursors as this server would issue them, holding what storage cannot: year 0, an integer
  // past Postgres' `integer`, a score that is no number.
  encodeCursor(["0000-01-01T00:00:00Z", "x"]),
  encodeCursor(["0000-01-01T00:00:00.000Z", "0"]),
  encodeCursor(2_147_483_648),
  encodeCursor([1e308, "x"]),
  encodeCursor(["9999-12-31T23:59:59-14:00", "x"]),
];
const QUERY_KEYS = [
  "cursor",
  "limit",
  "q",
  "unread",
  "role",
  "state",
  "status",
  "direction",
  "userIds",
];

function nested(depth: number): unknown {
  return depth === 0 ? "deep" : { a: nested(depth - 1) };
}

/** Every leaf path of a JSON value (array items and object fields, depth first). */
function leaves(value: unknown, path: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((item, i) => leaves(item, [...path, i]));
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([key, item]) => leaves(item, [...path, key]));
  }
  return [path];
}

function withLeaf(value: unknown, path: (string | number)[], leaf: unknown): unknown {
  if (path.length === 0) return leaf;
  const copy = structuredClone(value) as Record<string | number, unknown>;
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<string | number, unknown>;
  if (leaf === undefined) delete at[path.at(-1)!];
  else at[path.at(-1)!] = leaf;
  return copy;
}

/** Real resources, so that fuzzed requests reach past "not found" into the rules. */
async function world(t0: Awaited<ReturnType<typeof createTestApp>>) {
  const http = t0.http;
  const [admin, other, friend] = await members(t0.deps, 3, { role: "admin" });
  await connect(http, admin, friend);
  const ok = async (answer: Promise<Answer>, status = 201) => {
    const settled = await answer;
    assert.equal(settled.status, status, JSON.stringify(settled.body));
    return settled.body;
  };
  const as = (who: Member, body?: unknown) => ({ token: who.token, body });
  const file = await upload(t0.app, admin.token, png(512));
  const post = await ok(http("POST", "/api/posts", as(admin, { text: "hello" })));
  const comment = await ok(
    http("POST", `/api/posts/${post.id}/comments`, as(other, { text: "c" })),
  );
  const request = await ok(
    http("POST", "/api/connections", as(admin, { toUserId: other.user.id })),
  );
  const message = await ok(
    http(
      "POST",
      `/api/conversations/${friend.user.id}/messages`,
      as(admin, {
        text: "hi",
        tempId: "fuzz-1",
      }),
    ),
  );
  const interview = await ok(http(
    "POST",
    "/api/interviews",
    as(admin, {
      candidateId: other.user.id,
      skill: "deno",
      prompt: "Explain KV.",
      rubric: [{ criterion: "clarity", weight: 1 }],
    }),
  ));
  const product = await ok(
    http("POST", "/api/products", as(admin, { name: "Mug", priceCents: 900, currency: "USD" })),
  );
  const now = t0.clock.now();
  const sale = await ok(http(
    "POST",
    "/api/sales",
    as(admin, {
      items: [{ productId: product.id, stock: 1000, priceCents: 900 }],
      startsAt: new Date(now - 60_000).toISOString(),
      endsAt: new Date(now + 3_600_000).toISOString(),
      perUserLimit: 1000,
    }),
  ));
  const hold = await ok(http(
    "POST",
    `/api/sales/${sale.id}/reservations`,
    as(admin, { productId: product.id, quantity: 1 }),
  ));
  const order = await ok(http("POST", `/api/reservations/${hold.id}/checkout`, as(admin)), 200);
  const ids: Record<string, string> = {
    userId: other.user.id,
    users: other.user.id,
    connections: request.id,
    posts: post.id,
    comments: comment.id,
    conversations: message.conversationId,
    interviews: interview.id,
    match: "no-such-match",
    sales: sale.id,
    products: product.id,
    reservations: hold.id,
    orders: order.orderId,
    media: file.body.id,
    pay: order.orderId,
    provider: "sandbox",
    workflows: "notify",
    "dead-letters": "no-such-letter",
  };
  const bodies: Record<string, unknown> = {
    "POST /api/auth/signup": {
      name: "Fuzz",
      email: "fuzz@example.com",
      password: "analytical-engine",
      gender: "female",
    },
    "POST /api/auth/login": { email: "fuzz@example.com", password: "analytical-engine" },
    "POST /api/auth/forgot-password": { email: "fuzz@example.com" },
    "POST /api/auth/reset-password": { token: "not-a-token", newPassword: "a-new-password" },
    "POST /api/auth/verify-email": { token: "not-a-token" },
    "PUT /api/auth/email": { newEmail: "fuzz.new@example.com", password: "not-the-password" },
    "PUT /api/notifications/preferences": { inApp: { like: false }, email: { message: true } },
    "POST /api/admin/users/:id/suspend": {
      reason: "fuzz",
      until: new Date(now + 60_000).toISOString(),
    },
    "PATCH /api/admin/users/:id/gender": { gender: "female", reason: "asked" },
    "POST /api/admin/posts/:id/takedown": { reason: "fuzz" },
    "POST /api/admin/comments/:id/takedown": { reason: "fuzz" },
    "POST /api/admin/reports/:id/resolve": { note: "fuzz" },
    "DELETE /api/auth/me": { password: "not-the-password" },
    "PUT /api/auth/password": { currentPassword: "not-the-password", newPassword: "a-new-one-1" },
    "POST /api/notifications/read": { ids: [post.id] },
    "PATCH /api/profile": {
      name: "Fuzzy",
      headline: "h",
      bio: "b",
      skills: ["deno", "kv"],
      location: "Lagos",
      gender: "female",
      avatarMediaId: file.body.id,
    },
    "POST /api/connections": { toUserId: friend.user.id, message: "hello" },
    "PATCH /api/connections/:id": { status: "withdrawn" },
    "POST /api/reports": { userId: other.user.id, reason: "spam", postId: post.id },
    "POST /api/posts": { text: "a post", mediaIds: [file.body.id] },
    "PATCH /api/posts/:id": { text: "edited" },
    "POST /api/posts/:id/comments": { text: "a comment" },
    "POST /api/conversations/:userId/messages": { text: "hi", tempId: "t-1" },
    "POST /api/conversations/:id/read": { messageId: message.id },
    "POST /api/interviews": {
      candidateId: other.user.id,
      skill: "deno",
      prompt: "p",
      rubric: [{ criterion: "c", weight: 1 }],
      timeLimitMinutes: 30,
    },
    "POST /api/interviews/:id/submit": { answer: "a", mediaIds: [file.body.id] },
    "POST /api/interviews/:id/score": { scores: [{ criterion: "c", score: 5 }], feedback: "f" },
    "POST /api/match/queue": { intent: "pair-programming" },
    "POST /api/products": { name: "Cup", description: "d", priceCents: 100, currency: "USD" },
    "POST /api/sales": {
      items: [{ productId: product.id, stock: 5, priceCents: 100 }],
      startsAt: new Date(now).toISOString(),
      endsAt: new Date(now + 60_000).toISOString(),
      perUserLimit: 2,
    },
    "POST /api/sales/:id/reservations": { productId: product.id, quantity: 1 },
    "PATCH /api/admin/products/:id": { name: "Mug", description: "d", priceCents: 200 },
    "PATCH /api/admin/sales/:id": {
      startsAt: new Date(now + 60_000).toISOString(),
      endsAt: new Date(now + 120_000).toISOString(),
      perUserLimit: 3,
      prices: [{ productId: product.id, priceCents: 150 }],
    },
    "POST /api/admin/sales/:id/restock": { productId: product.id, units: 5 },
    "POST /api/payments/membership": { tier: "pro" },
    "POST /api/payments/webhook/:provider": {
      id: "evt_1",
      type: "payment.succeeded",
      data: { orderId: order.orderId, amountCents: 900, currency: "USD" },
    },
    "POST /workflows/:name": { id: "job-1", name: "notify", payload: {} },
  };
  return { admin, ids, bodies };
}

/** Fills `:param`s: with the real id for the path, or with `odd` for every one. */
function fill(path: string, ids: Record<string, string>, odd?: string): string {
  return path.replace(/:(\w+)/g, (_, name: string, offset: number) => {
    if (odd !== undefined) return odd;
    const resource = path.slice(0, offset).split("/").filter(Boolean).at(-1)!;
    return ids[name === "id" || name === "orderId" ? resource : name] ?? "unknown";
  });
}

interface Probe {
  method: string;
  path: string;
  body?: unknown;
}

/** Routes that may end the session they are called with: each probe of them gets its own. */
const SESSION_ENDING = new Set([
  "POST /api/auth/logout",
  "DELETE /api/auth/me",
  "PUT /api/auth/password",
]);

function probes(routes: { method: string; path: string }[], w: Awaited<ReturnType<typeof world>>) {
  const list: Probe[] = [];
  for (const { method, path } of routes) {
    const real = fill(path, w.ids);
    const base = w.bodies[`${method} ${path}`];
    for (const odd of ODD_IDS) {
      if (path.includes(":")) list.push({ method, path: fill(path, w.ids, odd), body: base });
    }
    if (method === "GET") {
      for (const key of QUERY_KEYS) {
        for (const value of ODD_QUERY) list.push({ method, path: `${real}?${key}=${value}` });
      }
      list.push({ method, path: `${real}?limit=1&limit=2&cursor=a&cursor=b` });
      continue;
    }
    for (const body of BAD_BODIES) list.push({ method, path: real, body });
    if (base === undefined) continue;
    for (const leaf of leaves(base)) {
      list.push({ method, path: real, body: withLeaf(base, leaf, undefined) });
      for (const bad of BAD_VALUES) {
        list.push({ method, path: real, body: withLeaf(base, leaf, bad) });
      }
    }
    list.push({ method, path: real, body: { ...base as object, unexpected: "\u0000" } });
  }
  return list;
}

async function runAll(
  t0: Awaited<ReturnType<typeof createTestApp>>,
  admin: Member,
  list: Probe[],
  concurrency = 8,
) {
  const failures: string[] = [];
  const statuses = new Map<number, number>();
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < list.length) {
      const probe = list[next++];
      const own = SESSION_ENDING.has(`${probe.method} ${probe.path}`);
      const token = own ? (await members(t0.deps, 1))[0].token : admin.token;
      const answer = await t0.http(probe.method, probe.path, { token, body: probe.body });
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      const type = answer.headers.get("content-type") ?? "";
      const problem = answer.status >= 400 && !type.startsWith("application/problem+json");
      if (answer.status >= 500 || problem) {
        failures.push(
          `${probe.method} ${probe.path.slice(0, 80)} ${
            JSON.stringify(probe.body)?.slice(0, 120)
          } → ` +
            `${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`,
        );
      }
    }
  }));
  return { failures, statuses };
}

Deno.test("[fuzz] every route answers generated bad input with a 4xx problem, never a 5xx, and nothing acknowledged fails later", async () => {
  await using t0 = await createTestApp();
  const w = await world(t0);
  const routes = [
    ...new Map(
      t0.app.routes
        .filter((route) => route.method !== "ALL" && !["/ws", "/api/media"].includes(route.path))
        .map((route) => [`${route.method} ${route.path}`, route]),
    ).values(),
  ];
  assert.ok(routes.length >= 75, `the app's routes were found (${routes.length})`);
  const list = probes(routes, w);
  const { failures, statuses } = await runAll(t0, w.admin, list);
  assert.deepEqual(failures, [], `${failures.length} of ${list.length} probes failed`);
  // The probes reached the rules: the session held, and most were judged on their content.
  const unauthorized = statuses.get(401) ?? 0;
  assert.ok(unauthorized < list.length / 20, `${unauthorized} of ${list.length} were 401`);
  assert.ok((statuses.get(400) ?? 0) > list.length / 3, JSON.stringify([...statuses]));

  // Whatever was acknowledged reached history: no outbox record or job failed on its way.
  await t0.deps.outbox.sweep({ graceMs: 0 });
  const failed = t0.logs.filter((line) =>
    line.msg === "outbox apply failed" || line.msg === "job dead-lettered" ||
    line.msg === "unhandled error"
  );
  assert.deepEqual(failed, []);
});

Deno.test("[fuzz] every socket frame type answers bad data with an error frame, never an internal one", async () => {
  await using t0 = await createTestApp();
  const [ada, bob] = await members(t0.deps, 2);
  await connect(t0.http, ada, bob);
  // The real frame handler and rules, on a socket that records what it is sent (a real socket
  // would spend its frame budget long before the last case).
  const received: { type: string; data: { code?: string } }[] = [];
  const socket = {
    readyState: 1,
    send: (raw: string) => received.push(JSON.parse(raw)),
    close() {},
  };
  const session = await sessionFromToken(t0.deps, ada.token);
  const client = await t0.deps.hub.connect(session!, socket);
  const valid: Record<string, Record<string, unknown>> = {
    resume: { lastEventId: 0 },
    "private-message": { toUserId: bob.user.id, tempId: "f-1", text: "hi" },
    "message-read": { conversationId: "c-1", messageId: "m-1" },
    typing: { toUserId: bob.user.id },
    ping: {},
    subscribe: { saleId: "s-1" },
    unsubscribe: { saleId: "s-1" },
    offer: { matchId: "m-1", payload: { sdp: "v=0" } },
    answer: { matchId: "m-1", payload: { sdp: "v=0" } },
    "ice-candidate": { matchId: "m-1", payload: { candidate: "c" } },
  };
  let sent = 0;
  for (const [type, data] of Object.entries(valid)) {
    const frames: unknown[] = BAD_BODIES.map((bad) => ({ type, data: bad }));
    for (const leaf of leaves(data)) {
      for (const bad of BAD_VALUES) {
        frames.push({ type, id: `${type}-${sent}`, data: withLeaf(data, leaf, bad) });
      }
    }
    for (const frame of frames) {
      await handleFrame(t0.deps, client, JSON.stringify(frame), new FrameBudget());
      sent++;
    }
  }
  await t0.deps.hub.disconnect(client);
  const errors = received.filter((frame) => frame.type === "error");
  assert.deepEqual(errors.filter((frame) => frame.data.code === "internal"), []);
  assert.ok(errors.length > sent / 2, `most of ${sent} frames were refused (${errors.length})`);
  await t0.deps.outbox.sweep({ graceMs: 0 });
  assert.deepEqual(t0.logs.filter((line) => line.msg === "outbox apply failed"), []);
});
