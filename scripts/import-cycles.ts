/**
 * Import cycles among the project's own modules, type imports included, from the graph
 * `deno info --json` prints. Run: `deno task cycles` (exits 1 and names each cycle).
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

if (import.meta.main) {
  const root = new URL("..", import.meta.url);
  const found = cycles(await importGraph(root.pathname));
  for (const c of found) {
    console.log(`cycle of ${c.length}: ${c.map((s) => s.replace(root.href, "")).join(", ")}`);
  }
  console.log(`${found.length} import cycle(s)`);
  if (found.length) Deno.exit(1);
}
