import assert from "node:assert/strict";
import { cycles, type Graph, importGraph, upwardImports } from "../scripts/imports.ts";

const root = new URL("..", import.meta.url);

Deno.test("[architecture] main.ts's import graph has no cycle and no import up the layers", async () => {
  const graph = await importGraph(root.pathname);
  assert.ok(graph.size > 50, `the graph was read (${graph.size} modules)`);
  const named = (paths: string[]) => paths.map((path) => path.replace(root.href, ""));
  assert.deepEqual(cycles(graph).map(named), []);
  assert.deepEqual(upwardImports(graph, root.href), []);
});

Deno.test("[architecture] the checks find a cycle, a type-only one included, and an upward import", () => {
  const base = "file:///p/";
  const graph: Graph = new Map([
    [`${base}routes/a.ts`, [`${base}kv/b.ts`]],
    [`${base}kv/b.ts`, [`${base}db/c.ts`]],
    // db/c.ts imports a type from kv/b.ts: a cycle, and an import up the layers.
    [`${base}db/c.ts`, [`${base}kv/b.ts`, `${base}errors.ts`]],
    [`${base}errors.ts`, []],
  ]);
  assert.deepEqual(cycles(graph), [[`${base}db/c.ts`, `${base}kv/b.ts`]]);
  assert.deepEqual(upwardImports(graph, base), [["db/c.ts", "kv/b.ts"]]);
});
