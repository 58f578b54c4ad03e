// The API's own reference: the OpenAPI document of every HTTP route, the AsyncAPI document of the
// socket, and an interactive page (Swagger UI, served from its npm package) that reads the first.
import { Hono } from "hono";
import { z } from "zod";
import { getAbsoluteFSPath } from "swagger-ui-dist";
import type { AppEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { NotFound, Unavailable } from "../errors.ts";
import { documented } from "./middleware/describe.ts";
import { openApiDocument, type RouteEntry } from "./reference/openapi.ts";
import { asyncApiDocument } from "./reference/asyncapi.ts";

const describe = documented("Reference");

/** The Swagger UI files the page loads, each served from the package as it ships. */
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
};

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Convene API reference</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="/docs/swagger-ui.css">
  </head>
  <body>
    <main id="reference"></main>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/start.js"></script>
  </body>
</html>
`;

// A file of its own, not an inline script, so a strict Content-Security-Policy can allow it.
const START = `window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#reference",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: true,
  persistAuthorization: true,
});
`;

/**
 * Built documents, by what they are built from: the routes (their methods and paths; their
 * schemas are code, the same for every app) and the public URL. Building one takes 150–300 ms,
 * so an isolate, or a test worker with many apps, builds each once.
 */
const built = new Map<string, string>();

function once(key: string, build: () => unknown): string {
  let text = built.get(key);
  if (text === undefined) {
    text = JSON.stringify(build());
    built.set(key, text);
  }
  return text;
}

const document = z.record(z.string(), z.unknown()).meta({ description: "The document." });

/** `routes` is read on the first request, once the app has every route. */
export function referenceRoutes(deps: Deps, routes: () => RouteEntry[]) {
  const assets = new Map<string, Promise<Uint8Array>>();
  const info = () => ({ publicUrl: deps.config.PUBLIC_URL });
  return new Hono<AppEnv>()
    .get(
      "/openapi.json",
      describe({ summary: "This document (OpenAPI 3.1)", answers: { 200: document } }),
      (c) => {
        const all = routes();
        const served = all.map((route) => `${route.method} ${route.path}`).join();
        const key = `${deps.config.PUBLIC_URL} ${served}`;
        const text = once(key, () => openApiDocument(all, info()).document);
        return c.body(text, 200, { "content-type": "application/json" });
      },
    )
    .get(
      "/asyncapi.json",
      describe({
        summary: "The socket protocol of GET /ws (AsyncAPI 3.0)",
        answers: { 200: document },
      }),
      (c) => {
        const text = once(`asyncapi ${deps.config.PUBLIC_URL}`, () => asyncApiDocument(info()));
        return c.body(text, 200, { "content-type": "application/json" });
      },
    )
    .get(
      "/docs",
      describe({
        summary: "The interactive reference",
        answers: { 200: { contentType: "text/html" } },
      }),
      (c) => c.html(PAGE),
    )
    .get(
      "/docs/:asset",
      describe({
        summary: "A file of the interactive reference",
        answers: { 200: { contentType: "*/*" } },
        errors: { 404: ["not-found"] },
      }),
      async (c) => {
        const name = c.req.param("asset");
        if (name === "start.js") {
          return c.body(START, 200, { "content-type": "text/javascript; charset=utf-8" });
        }
        // Own names only: `constructor` or `toString` is no file of the reference.
        const type = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
        if (!type) throw new NotFound(`The reference has no file ${name}.`);
        let bytes = assets.get(name);
        if (!bytes) {
          bytes = Promise.resolve().then(() => Deno.readFile(`${getAbsoluteFSPath()}/${name}`));
          assets.set(name, bytes);
        }
        const file = await bytes.catch(() => {
          assets.delete(name);
          // A deployment without the package's files still serves the documents themselves.
          throw new Unavailable(
            `The interactive reference's ${name} is not in this deployment; /openapi.json is.`,
          );
        });
        return c.body(file as Uint8Array<ArrayBuffer>, 200, {
          "content-type": type,
          "cache-control": "public, max-age=3600",
        });
      },
    );
}
