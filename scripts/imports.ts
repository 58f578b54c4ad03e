/**
 * The shape of the project's import graph, type imports included, from what `deno info --json`
 * prints: its cycles, and imports that point up the card's layers. `deno task imports` exits 1
 * and names each; tests/architecture_test.ts runs the same checks.
 */

type InfoModule = {
  specifier: string;
  dependencies?: { code?: { specifier?: string }; type?: { specifier?: string } }[];
};

export type Graph = Map<string, string[]>;

export async function importGraph(root: string, entry = "main.ts"): Promise<Graph> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
  const own = (s: string | undefined): s is string =>
    !!s && s.startsWith("file://") && !s.includes("/node_modules/");
  const graph: Graph = new Map();
  for (const m of info.modules) {
    if (!own(m.specifier)) continue;
    const targets = (m.dependencies ?? []).flatMap((d) => [d.code?.specifier, d.type?.specifier]);
    graph.set(m.specifier, [...new Set(targets.filter(own))]);
  }
  return graph;
}

/** Strongly connected components of more than one module, or a module importing itself. */
export function cycles(graph: Graph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (a: string) => {
    index.set(a, index.size);
    low.set(a, index.get(a)!);
    stack.push(a);
    onStack.add(a);
    for (const b of graph.get(a) ?? []) {
      if (!index.has(b)) {
        visit(b);
        low.set(a, Math.min(low.get(a)!, low.get(b)!));
      } else if (onStack.has(b)) low.set(a, Math.min(low.get(a)!, index.get(b)!));
    }
    if (low.get(a) !== index.get(a)) return;
    const component: string[] = [];
    let b: string;
    do {
      b = stack.pop()!;
      onStack.delete(b);
      component.push(b);
    } while (b !== a);
    if (component.length > 1 || (graph.get(a) ?? []).includes(a)) found.push(component.sort());
  };
  for (const a of graph.keys()) if (!index.has(a)) visit(a);
  return found;
}

/**
 * The layers, lowest first: a module may import its own layer and those below. Leaves (errors.ts,
 * ids.ts, input.ts, cursor.ts, config.ts) are below all; deps.ts, which only names the adapters'
 * types for everyone, is left to the cycle check.
 */
export const LAYERS = ["db", "kv", "providers", "workflows", "realtime", "routes", "app.ts"];

export function layerOf(path: string): number | null {
  if (path === "deps.ts") return null;
  if (path === "main.ts" || path.startsWith("scripts/")) return LAYERS.length;
  return LAYERS.indexOf(path.split("/")[0]); // -1: a leaf
}

/** Imports from a lower layer to a higher one, as [importer, imported], paths from the root. */
export function upwardImports(graph: Graph, root: string): [string, string][] {
  const found: [string, string][] = [];
  for (const [from, targets] of graph) {
    const a = from.replace(root, "");
    for (const to of targets) {
      const b = to.replace(root, "");
      const [la, lb] = [layerOf(a), layerOf(b)];
      if (la !== null && lb !== null && lb > la) found.push([a, b]);
    }
  }
  return found;
}

if (import.meta.main) {
  const root = new URL("..", import.meta.url);
  const graph = await importGraph(root.pathname);
  const found = cycles(graph);
  for (const c of found) {
    console.log(`cycle of ${c.length}: ${c.map((s) => s.replace(root.href, "")).join(", ")}`);
  }
  const upward = upwardImports(graph, root.href);
  for (const [a, b] of upward) console.log(`upward import: ${a} -> ${b}`);
  console.log(`${found.length} import cycle(s), ${upward.length} upward import(s)`);
  if (found.length || upward.length) Deno.exit(1);
}
