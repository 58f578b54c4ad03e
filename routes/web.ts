// The web console at `/`: one HTML page, its script (web/dist/console.js, built from web/ by
// `deno task web` and committed) and its stylesheet. Everything else it does goes through /api.
import { Hono } from "hono";
import { html } from "hono/html";
import type { AppEnv } from "./env.ts";
import { documented } from "./middleware/describe.ts";

const describe = documented("Console");

const FILES = {
  "console.js": {
    url: new URL("../web/dist/console.js", import.meta.url),
    type: "text/javascript",
  },
  "console.css": { url: new URL("../web/console.css", import.meta.url), type: "text/css" },
};

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Convene</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="/console.css">
    <script type="module" src="/console.js"></script>
  </head>
  <body>
    <div id="console"><noscript>The Convene console needs JavaScript; the API is at /docs.</noscript></div>
  </body>
</html>
`;

/**
 * A page of its own, outside the console: one narrow column, no script (the sandbox's pay page,
 * the unsubscribe page). `body` is escaped by `html` wherever it interpolates.
 */
export function plainPage(title: string, body: unknown) {
  return html`
    <!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width">
        <link rel="icon" href="data:,">
        <title>${title}</title>
      </head>
      <body
        style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto">${body}</body>
    </html>
  `;
}

export function webRoutes() {
  const cache = new Map<string, Promise<Uint8Array>>();
  const serve = (name: keyof typeof FILES) => {
    let bytes = cache.get(name);
    if (!bytes) {
      bytes = Deno.readFile(FILES[name].url);
      cache.set(name, bytes);
    }
    return bytes;
  };
  const file = (name: keyof typeof FILES) =>
    describe({
      summary: `The console's ${name === "console.js" ? "script" : "stylesheet"}`,
      answers: { 200: { contentType: FILES[name].type } },
    });
  return new Hono<AppEnv>()
    .get(
      "/",
      describe({ summary: "The web console", answers: { 200: { contentType: "text/html" } } }),
      (c) => c.html(PAGE),
    )
    .get(
      "/console.js",
      file("console.js"),
      async (c) =>
        c.body(await serve("console.js") as Uint8Array<ArrayBuffer>, 200, {
          "content-type": "text/javascript; charset=utf-8",
          "cache-control": "no-cache",
        }),
    )
    .get(
      "/console.css",
      file("console.css"),
      async (c) =>
        c.body(await serve("console.css") as Uint8Array<ArrayBuffer>, 200, {
          "content-type": "text/css; charset=utf-8",
          "cache-control": "no-cache",
        }),
    );
}
