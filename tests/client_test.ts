// The typed client: hc<AppType> knows every route, its inputs and its answers. Each call below
// type-checks only because the route tree is one chain (a route missing from AppType, or an input
// of the wrong shape, fails `deno check`), and answers as the server does.
import assert from "node:assert/strict";
import { hc } from "hono/client";
import type { AppType } from "../app.ts";
import { createTestApp } from "./helpers/app.ts";
import { members } from "./helpers/members.ts";

Deno.test("[client] hc<AppType> calls one route of each feature, typed end to end", async () => {
  await using t0 = await createTestApp();
  const [ada, bob] = await members(t0.deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  const env = { remoteAddr: { hostname: "203.0.113.7", port: 40000, transport: "tcp" } };
  const client = (token?: string) =>
    hc<AppType>("http://convene.test", {
      fetch: (input: RequestInfo | URL, init?: RequestInit) => t0.app.request(input, init, env),
      headers: token ? { authorization: `Bearer ${token}` } : {},
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

  const conversations = await asAda.api.conversations.$get({ query: {} });
  assert.deepEqual((await conversations.json()).items, []);

  const unread = await asAda.api.notifications["unread-count"].$get();
  assert.equal(unread.status, 200);

  const interviews = await asAda.api.interviews.$get({ query: {} });
  assert.equal(interviews.status, 200);

  const current = await asAda.api.match.current.$get();
  assert.equal(current.status, 404, "not in a call");

  const sale = await client().api.sales[":id"].$get({ param: { id: "no-such-sale" } });
  assert.equal(sale.status, 404);

  const media = await asAda.api.media[":id"].$delete({ param: { id: "no-such-file" } });
  assert.equal(media.status, 404);

  const presence = await asAda.api.presence.$get({ query: { userIds: bob.user.id } });
  assert.deepEqual((await presence.json()).items, []);

  const deadLetters = await asAda.api.admin["dead-letters"].$get({ query: {} });
  assert.equal(deadLetters.status, 403, "only administrators");

  const anonymous = await client().api.conversations.$get({ query: {} });
  assert.equal(anonymous.status, 401);
});
