// The typed client (client/): conveneClient knows every route, its inputs and its answers. Each
// call below type-checks only because the route tree is one chain (a route missing from AppType,
// or an input of the wrong shape, fails `deno check`), and answers as the server does. The socket
// helper reconnects, resumes and matches acks over a real socket and a real network drop.
import assert from "node:assert/strict";
import { ApiProblem, conveneClient, problemOf } from "../client/http.ts";
import { ConveneSocket, type ServerEvent, type SocketState } from "../client/socket.ts";
import type { ServerEventType } from "../realtime/events.ts";
import { storeDeadLetter } from "../kv/dead-letters.ts";
import { createTestApp } from "./helpers/app.ts";
import { members } from "./helpers/members.ts";
import { tcpRelay } from "./helpers/relay.ts";
import { connect, servedTestApp } from "./helpers/sockets.ts";

Deno.test("[client] conveneClient calls one route of each feature, typed end to end", async () => {
  await using t0 = await createTestApp();
  const [ada, bob] = await members(t0.deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  const env = { remoteAddr: { hostname: "203.0.113.7", port: 40000, transport: "tcp" } };
  const client = (token?: string) =>
    conveneClient("http://convene.test", {
      fetch: ((input: RequestInfo | URL, init?: RequestInit) =>
        t0.app.request(input, init, env)) as typeof fetch,
      token,
    });
  const asAda = client(ada.token);

  const health = await client().healthz.$get();
  assert.equal((await health.json()).status, "ok");

  const me = await asAda.api.auth.me.$get();
  assert.equal((await me.json()).user.id, ada.user.id);

  const profile = await asAda.api.users[":id"].$get({ param: { id: bob.user.id } });
  assert.equal(profile.status, 200);

  const request = await asAda.api.connections.$post({ json: { toUserId: bob.user.id } });
  assert.equal(request.status, 201);

  const post = await asAda.api.posts.$post({ json: { text: "typed" } });
  assert.equal(post.status, 201);

  // A query whose every field is optional needs no argument at all.
  const conversations = await asAda.api.conversations.$get();
  assert.deepEqual((await conversations.json()).items, []);

  // A 204 has nothing to read: its type has no json() (this line fails `deno check` otherwise).
  const muted = await asAda.api.conversations[":id"].mute.$put({ param: { id: "none" } });
  // @ts-expect-error: no body, no json()
  muted.json;
  assert.equal(muted.status, 404, "and a failure is still read as a problem");
  assert.equal((await problemOf(muted)).code, "not-found");

  const unread = await asAda.api.notifications["unread-count"].$get();
  assert.equal(unread.status, 200);

  const interviews = await asAda.api.interviews.$get();
  assert.equal(interviews.status, 200);

  const current = await asAda.api.match.current.$get();
  assert.equal(current.status, 404, "not in a call");

  const sale = await client().api.sales[":id"].$get({ param: { id: "no-such-sale" } });
  assert.equal(sale.status, 404);

  const media = await asAda.api.media[":id"].$delete({ param: { id: "no-such-file" } });
  assert.equal(media.status, 404);

  const presence = await asAda.api.presence.$get({ query: { userIds: bob.user.id } });
  assert.deepEqual((await presence.json()).items, []);

  const deadLetters = await asAda.api.admin["dead-letters"].$get();
  assert.equal(deadLetters.status, 403, "only administrators");

  const anonymous = await client().api.conversations.$get();
  assert.equal(anonymous.status, 401);
  const problem = await problemOf(anonymous);
  assert.ok(problem instanceof ApiProblem);
  assert.deepEqual([problem.status, problem.code], [401, "unauthorized"]);
});

const DEADLINE_MS = 10_000;

/** Resolves once `socket` has delivered `count` events of `type` (counting from now). */
function collect<T extends ServerEventType>(socket: ConveneSocket, type: T, count: number) {
  const events: ServerEvent<T>[] = [];
  return new Promise<ServerEvent<T>[]>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${events.length}/${count} × ${type}: ${JSON.stringify(events)}`)),
      DEADLINE_MS,
    );
    const stop = socket.on(type, (event) => {
      events.push(event);
      if (events.length < count) return;
      clearTimeout(timer);
      stop();
      resolve(events);
    });
  });
}

/** Resolves when `socket` reaches `state` (at once if it is there). */
function reaches(socket: ConveneSocket, state: SocketState) {
  if (socket.state === state) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`never ${state}`)), DEADLINE_MS);
    const stop = socket.onState((now) => {
      if (now !== state) return;
      clearTimeout(timer);
      stop();
      resolve();
    });
  });
}

Deno.test("[client] ConveneSocket acks by tempId, rides out a network drop, and resumes without loss or duplicates", async () => {
  await using t0 = await servedTestApp();
  const [ada, bob] = await members(t0.deps, 2);
  await connect(t0.http, ada, bob);
  const port = Number(new URL(t0.url).port);
  await using relay = tcpRelay(port);
  const backoff = { firstMs: 20, maxMs: 200 };
  const asAda = new ConveneSocket({ url: t0.url, token: ada.token, backoff });
  const asBob = new ConveneSocket({
    url: `ws://127.0.0.1:${relay.port}/ws`,
    token: bob.token,
    backoff,
  });
  try {
    await Promise.all([reaches(asAda, "open"), reaches(asBob, "open")]);
    const received = collect(asBob, "incoming-message", 10);

    const before = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => asAda.sendMessage(bob.user.id, `before ${n}`)),
    );
    assert.equal(new Set(before.map((ack) => ack.messageId)).size, 5, "five acks, five messages");
    assert.equal(new Set(before.map((ack) => ack.tempId)).size, 5);

    const dropped = reaches(asBob, "reconnecting");
    relay.cut();
    await dropped;
    // While Bob is away: Ada writes on, and Bob's own message waits for the connection.
    const fromBob = asBob.sendMessage(ada.user.id, "sent while offline", "bob-offline-1");
    const adaGets = collect(asAda, "incoming-message", 1);
    for (const n of [6, 7, 8, 9, 10]) await asAda.sendMessage(bob.user.id, `during ${n}`);

    await reaches(asBob, "open");
    const texts = (await received).map((event) => event.data.text);
    assert.deepEqual(
      texts,
      [1, 2, 3, 4, 5].map((n) => `before ${n}`).concat(
        [6, 7, 8, 9, 10].map((n) => `during ${n}`),
      ),
    );
    const ack = await fromBob;
    assert.equal(ack.tempId, "bob-offline-1");
    const [incoming] = await adaGets;
    assert.deepEqual([incoming.data.messageId, incoming.data.text], [
      ack.messageId,
      "sent while offline",
    ]);

    // What the server stored: every message once.
    const stored = await t0.http("GET", `/api/conversations/${ack.conversationId}/messages`, {
      token: bob.token,
    });
    assert.equal(stored.status, 200);
    assert.equal(stored.body.items.length, 11);
    assert.ok(asBob.lastEventId !== null && asBob.lastEventId >= 11);
  } finally {
    asAda.close();
    asBob.close();
  }
});

Deno.test("[client] ConveneSocket stops for good when the session ends, and sends nothing after", async () => {
  await using t0 = await servedTestApp();
  const [ada, bob] = await members(t0.deps, 2);
  const socket = new ConveneSocket({ url: t0.url, token: ada.token, backoff: { firstMs: 20 } });
  await reaches(socket, "open");
  const reasons: (string | undefined)[] = [];
  socket.onState((state, reason) => reasons.push(`${state}: ${reason}`));
  const closed = reaches(socket, "closed");
  const logout = await t0.http("POST", "/api/auth/logout", { token: ada.token });
  assert.equal(logout.status, 204);
  await closed;
  assert.deepEqual(reasons, ["closed: the session ended"]);
  await assert.rejects(socket.sendMessage(bob.user.id, "too late"), /closed/);
  assert.equal(socket.state, "closed", "no reconnect after the session ended");
});

Deno.test("[client] ConveneSocket rejects a message the server refuses, matched by its tempId", async () => {
  await using t0 = await servedTestApp();
  const [ada, stranger] = await members(t0.deps, 2);
  const socket = new ConveneSocket({ url: t0.url, token: ada.token });
  try {
    await reaches(socket, "open");
    await assert.rejects(
      socket.sendMessage(stranger.user.id, "hello?", "t-stranger"),
      (error: Error & { code?: string }) => error.code === "not-connected",
    );
  } finally {
    socket.close();
  }
});

Deno.test("[client] the README's client example runs as written, in a project outside the clone", async () => {
  await using t0 = await servedTestApp();
  const base = t0.url.replace(/^ws/, "http").replace(/\/ws$/, "");
  const root = new URL("../", import.meta.url);
  const readme = await Deno.readTextFile(new URL("README.md", root));
  const section = /## The client([\s\S]*?)\n## /.exec(readme)?.[1] ?? "";
  const example = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(example, "the README has a TypeScript example under 'The client'");
  // The commands the README gives for a project of one's own, as written there.
  const link = /`npx -y deno@2\.9 (link) <path to the clone>`/.exec(section);
  assert.ok(link, "the README says how to link the clone");
  const dir = await Deno.makeTempDir({ prefix: "convene-readme-" });
  const deno = (...args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args,
      cwd: dir,
      env: { CONVENE_URL: base, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
  const said = (output: Deno.CommandOutput) =>
    new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  try {
    await Deno.writeTextFile(`${dir}/main.ts`, example);
    const linked = await deno("link", new URL(".", root).pathname);
    assert.equal(linked.code, 0, said(linked));
    // Checked as written (no --config: the linked package brings its own imports), then run.
    const checked = await deno("check", "main.ts");
    assert.equal(checked.code, 0, said(checked));
    const ran = await deno("run", "-A", "main.ts");
    assert.equal(ran.code, 0, said(ran));
    assert.match(new TextDecoder().decode(ran.stdout), /received .*text: "hello"/s);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[client] over real TCP, writes without a body work: like, unlike, follow, unfollow, leave the queue, discard a dead letter", async (t) => {
  await using t0 = await servedTestApp();
  const base = t0.url.replace(/^ws/, "http").replace(/\/ws$/, "");
  const [ada, bob] = await members(t0.deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  const [root] = await members(t0.deps, 1, { role: "admin" });
  // Deno's fetch sends no content-length on a bodyless DELETE, nor a content-type: as browsers do.
  const client = (token: string) => conveneClient(base, { token });
  const asAda = client(ada.token);

  await t.step("like and unlike a post", async () => {
    const post = await client(bob.token).api.posts.$post({ json: { text: "like me" } });
    const { id } = await post.json();
    const liked = await asAda.api.posts[":id"].like.$post({ param: { id } });
    assert.equal(liked.status, 200, await liked.clone().text());
    assert.equal((await liked.json()).likeCount, 1);
    const unliked = await asAda.api.posts[":id"].like.$delete({ param: { id } });
    assert.equal(unliked.status, 200, await unliked.clone().text());
    assert.equal((await unliked.json()).likeCount, 0);
  });

  await t.step("follow and unfollow", async () => {
    const followed = await asAda.api.follows[":userId"].$post({ param: { userId: bob.user.id } });
    assert.ok(followed.ok, `${followed.status} ${await followed.text()}`);
    const unfollowed = await asAda.api.follows[":userId"].$delete({
      param: { userId: bob.user.id },
    });
    assert.ok(unfollowed.ok, `${unfollowed.status} ${await unfollowed.text()}`);
    const following = await asAda.api.users[":id"].following.$get({
      param: { id: ada.user.id },
      query: {},
    });
    assert.deepEqual((await following.json()).items, []);
  });

  await t.step("leave the matchmaking queue", async () => {
    const joined = await asAda.api.match.queue.$post({ json: { intent: "pair-programming" } });
    assert.ok(joined.ok, `${joined.status} ${await joined.text()}`);
    const left = await asAda.api.match.queue.$delete();
    assert.equal(left.status, 204, await left.text());
  });

  await t.step("discard a dead letter", async () => {
    await storeDeadLetter(t0.deps.kv, { id: "letter-1", name: "greet", payload: {} });
    const discarded = await client(root.token).api.admin["dead-letters"][":id"].$delete({
      param: { id: "letter-1" },
    });
    assert.equal(discarded.status, 204, await discarded.text());
  });

  await t.step(
    "a bodyless POST as curl sends it (no content-length, no type) is no 415",
    async () => {
      const post = await client(bob.token).api.posts.$post({ json: { text: "curl" } });
      const { id } = await post.json();
      const answer = await rawRequest(
        base,
        `POST /api/posts/${id}/like HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${ada.token}\r\nconnection: close\r\n\r\n`,
      );
      assert.match(answer, /^HTTP\/1\.1 200 /);
    },
  );

  await t.step("a CORS preflight is never 415", async () => {
    const answer = await fetch(`${base}/api/posts`, {
      method: "OPTIONS",
      headers: { origin: "https://elsewhere.test", "access-control-request-method": "POST" },
    });
    await answer.body?.cancel();
    assert.notEqual(answer.status, 415);
    assert.ok(answer.status < 500);
  });
});

/** Writes `request` bytes as they are to the server at `base` and reads the whole answer. */
async function rawRequest(base: string, request: string): Promise<string> {
  const url = new URL(base);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  await conn.write(new TextEncoder().encode(request));
  const chunks: string[] = [];
  const decoder = new TextDecoder();
  for await (const chunk of conn.readable) chunks.push(decoder.decode(chunk, { stream: true }));
  return chunks.join("");
}
