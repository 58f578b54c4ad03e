// The console as the server ships it: the committed bundle is what `deno task web` builds from
// web/ now, and `/` serves the page, its script and its stylesheet.
import assert from "node:assert/strict";
import { createTestApp } from "./helpers/app.ts";

const root = new URL("../", import.meta.url);

Deno.test("[web] web/dist/console.js is the bundle of web/ as it is now (run deno task web)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "convene-web-" });
  try {
    const task = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))).tasks
      .web as string;
    const args = task.replace(/^deno /, "").replace("web/dist/console.js", `${dir}/console.js`)
      .split(" ");
    const built = await new Deno.Command(Deno.execPath(), { args, cwd: root.pathname }).output();
    assert.equal(built.code, 0, new TextDecoder().decode(built.stderr));
    const fresh = await Deno.readTextFile(`${dir}/console.js`);
    const committed = await Deno.readTextFile(new URL("web/dist/console.js", root));
    assert.ok(
      fresh === committed,
      "web/dist/console.js is stale: run `deno task web` and commit it",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[web] GET / serves the console: the page, its script and its stylesheet", async () => {
  await using t0 = await createTestApp();
  const page = await t0.app.request("/");
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /<script type="module" src="\/console\.js">/);
  assert.match(html, /<link rel="stylesheet" href="\/console\.css">/);
  const script = await t0.app.request("/console.js");
  assert.equal(script.status, 200);
  assert.match(script.headers.get("content-type") ?? "", /^text\/javascript/);
  assert.ok((await script.text()).length > 10_000);
  const style = await t0.app.request("/console.css");
  assert.match(style.headers.get("content-type") ?? "", /^text\/css/);
  await style.body?.cancel();
});
