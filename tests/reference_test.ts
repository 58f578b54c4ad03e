// The API's reference: the OpenAPI document covers every route and is valid OpenAPI 3.1, the
// AsyncAPI document parses, the interactive page loads its files, and the contract checks the
// other tests run on every answer and frame do catch drift.
import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import { Validator } from "npm:@seriousme/openapi-schema-validator@2.11.0";
// deno-lint-ignore no-import-prefix
import { Parser } from "npm:@asyncapi/parser@3.6.6";
import { createTestApp } from "./helpers/app.ts";
import { Contract } from "./helpers/contract.ts";
import { undocumentedFrame } from "./helpers/sockets.ts";
import { openApiDocument } from "../routes/reference/openapi.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

async function served(
  app: { request: (path: string) => Response | Promise<Response> },
  path: string,
) {
  const answer = await app.request(path);
  assert.equal(answer.status, 200, path);
  assert.match(answer.headers.get("content-type") ?? "", /^application\/json/);
  return await answer.json() as Json;
}

Deno.test("[reference] GET /openapi.json documents every route the app serves, and nothing else", async () => {
  await using t0 = await createTestApp();
  const document = await served(t0.app, "/openapi.json");
  const served_ = new Set(
    t0.app.routes.filter((route) => route.method !== "ALL")
      .map((route) => `${route.method} ${route.path.replace(/:(\w+)/g, "{$1}")}`),
  );
  const documented = new Set(
    Object.entries(document.paths as Json).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`)
    ),
  );
  assert.deepEqual([...served_].filter((route) => !documented.has(route)), [], "undocumented");
  assert.deepEqual([...documented].filter((route) => !served_.has(route)), [], "not served");
  assert.ok(documented.size >= 70, `${documented.size} operations`);
  assert.equal(document.tags[0].name, "Identity", "the reference opens with identity");
  const tagged = new Set(document.tags.map((tag: Json) => tag.name));
  for (const [route, item] of Object.entries(document.paths as Json)) {
    for (const operation of Object.values(item as Json)) {
      assert.ok(tagged.has((operation as Json).tags[0]), `${route} has a listed tag`);
    }
  }

  // A route without `describe` is named, not silently left out.
  const { undocumented } = openApiDocument([
    ...t0.app.routes,
    { method: "GET", path: "/api/secret", handler: () => {} },
  ], { publicUrl: "http://convene.test" });
  assert.deepEqual(undocumented, ["GET /api/secret"]);

  const reserve = document.paths["/api/sales/{id}/reservations"].post;
  assert.deepEqual(reserve.security, [{ bearer: [] }, { cookie: [] }]);
  assert.deepEqual(
    reserve.responses["409"].content["application/problem+json"].schema.allOf[1].properties.code
      .enum,
    ["sold-out", "limit-reached"],
  );
  assert.ok(
    reserve.parameters.some((p: Json) => p.name === "Idempotency-Key" && p.in === "header"),
  );
  assert.ok(reserve.responses["201"].headers["Idempotent-Replayed"]);
  assert.ok(reserve.responses["201"].headers["RateLimit-Remaining"], "writes carry rate limits");
  assert.ok(reserve.responses["429"].headers["Retry-After"]);
  assert.equal(reserve.requestBody.content["application/json"].schema.required[0], "productId");
  assert.deepEqual(document.paths["/api/sales/{id}"].get.security, [], "a sale is public");
  const login = document.paths["/api/auth/login"].post;
  assert.deepEqual(
    login.responses["401"].content["application/problem+json"].schema.allOf[1]
      .properties.code.enum,
    ["unauthorized"],
  );
});

Deno.test("[reference] the OpenAPI document is valid OpenAPI 3.1", async () => {
  await using t0 = await createTestApp();
  const document = await served(t0.app, "/openapi.json");
  assert.equal(document.openapi, "3.1.0");
  const result = await new Validator().validate(document);
  assert.deepEqual(result.errors ?? [], []);
  assert.equal(result.valid, true);
});

/** The linter a client author would run on the document (Node from the machine, npx fetches it). */
const REDOCLY = "@redocly/cli@2.77.0";

Deno.test("[reference] the OpenAPI document passes `redocly lint` with no errors (one meaning per path)", async () => {
  await using t0 = await createTestApp();
  const document = await served(t0.app, "/openapi.json");
  const dir = await Deno.makeTempDir({ prefix: "convene-openapi-" });
  try {
    const file = `${dir}/openapi.json`;
    await Deno.writeTextFile(file, JSON.stringify(document));
    const { code, stdout, stderr } = await new Deno.Command("npx", {
      args: ["-y", REDOCLY, "lint", file, "--format=json"],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const report = new TextDecoder().decode(stdout);
    const problems = JSON.parse(report.slice(report.indexOf("{"))) as {
      totals: { errors: number };
      problems: { ruleId: string; severity: string; message: string }[];
    };
    const errors = problems.problems.filter((problem) => problem.severity === "error");
    assert.deepEqual(errors, [], new TextDecoder().decode(stderr).slice(-500));
    assert.equal(code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[reference] GET /asyncapi.json is an AsyncAPI 3.0 document of every frame, both ways", async () => {
  await using t0 = await createTestApp();
  const document = await served(t0.app, "/asyncapi.json");
  const { document: parsed, diagnostics } = await new Parser().parse(JSON.stringify(document));
  const errors = diagnostics.filter((diagnostic: Json) => diagnostic.severity === 0);
  assert.deepEqual(errors.map((error: Json) => `${error.path.join(".")}: ${error.message}`), []);
  assert.ok(parsed, "parsed");
  const messages = Object.keys(document.components.messages);
  for (
    const name of ["client.private-message", "client.resume", "client.offer", "client.subscribe"]
  ) {
    assert.ok(messages.includes(name), name);
  }
  for (
    const name of [
      "server.incoming-message",
      "server.message-delivered",
      "server.found-match",
      "server.stock-update",
      "server.notification",
      "server.error",
    ]
  ) {
    assert.ok(messages.includes(name), name);
  }
  const send = document.components.messages["client.private-message"].payload;
  // Text or files or both: neither is required on its own (a message with neither is refused).
  assert.deepEqual(send.properties.data.required.sort(), ["tempId", "toUserId"]);
  assert.deepEqual(Object.keys(send.properties.data.properties).sort(), [
    "attachmentIds",
    "tempId",
    "text",
    "toUserId",
  ]);
});

Deno.test("[reference] GET /docs serves the interactive reference and its files", async () => {
  await using t0 = await createTestApp();
  const page = await t0.app.request("/docs");
  assert.equal(page.status, 200);
  const html = await page.text();
  for (const file of ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/start.js"]) {
    assert.ok(html.includes(file), file);
    const asset = await t0.app.request(file);
    assert.equal(asset.status, 200, file);
    assert.ok((await asset.arrayBuffer()).byteLength > 100, file);
  }
  assert.match(await (await t0.app.request("/docs/start.js")).text(), /\/openapi\.json/);
  const missing = await t0.app.request("/docs/nothing.js");
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});

Deno.test("[reference] the contract refuses answers the document does not describe", async () => {
  await using t0 = await createTestApp();
  const contract = new Contract(await served(t0.app, "/openapi.json"));
  const json = new Headers({ "content-type": "application/json" });
  const problem = new Headers({ "content-type": "application/problem+json" });
  const post = {
    id: "p1",
    author: { id: "u1", name: "Ada" },
    text: "hello",
    mediaIds: [],
    media: [],
    likeCount: 0,
    commentCount: 0,
    likedByMe: false,
    createdAt: "2026-12-02T15:04:05.000Z",
    updatedAt: "2026-12-02T15:04:05.000Z",
  };
  contract.check("GET", "/api/posts/p1", 200, json, post);
  const refused = (f: () => void, pattern: RegExp) => assert.throws(f, pattern);
  refused(
    () => contract.check("GET", "/api/posts/p1", 200, json, { ...post, secret: 1 }),
    /schema/,
  );
  refused(
    () => contract.check("GET", "/api/posts/p1", 200, json, { ...post, likeCount: "1" }),
    /schema/,
  );
  refused(() => contract.check("GET", "/api/posts/p1", 201, json, post), /not documented/);
  const gone = { type: "/problems/x", title: "Gone", status: 404, detail: "…" };
  contract.check("GET", "/api/posts/p1", 404, problem, { ...gone, code: "not-found" });
  refused(
    () => contract.check("GET", "/api/posts/p1", 404, problem, { ...gone, code: "sold-out" }),
    /schema/,
  );
  refused(() => contract.check("PUT", "/api/posts/p1", 200, json, post), /no documented route/);
  // /api/match/current is its own route, not /api/match/{id}.
  assert.equal(contract.route("GET", "/api/match/current")?.path, "/api/match/current");
});

Deno.test("[reference] the socket contract refuses frames the AsyncAPI document does not describe", () => {
  assert.equal(undocumentedFrame({ type: "typing", data: { from: "u1" } }), null);
  assert.match(
    String(undocumentedFrame({ type: "typing", data: { from: "u1", at: 1 } })),
    /typing/,
  );
  assert.match(String(undocumentedFrame({ type: "shout", data: {} })), /unknown type/);
  assert.match(
    String(undocumentedFrame({ type: "presence", data: { userId: "u1", status: "away" } })),
    /presence/,
  );
});
