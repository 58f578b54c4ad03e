import assert from "node:assert/strict";
import { getTableColumns } from "drizzle-orm";
import { z } from "zod";
import {
  interviewSchema,
  orderSchema,
  recordFromRow,
  recordOf,
  reservationSchema,
  rowOf,
} from "../db/records.ts";
import { interviews, orders, reservations } from "../db/schema.ts";
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

Deno.test("[architecture] a KV record that mirrors its table is derived from it, column by column", () => {
  for (
    const [table, schema, extra] of [
      [orders, orderSchema, ["paymentUrl"]],
      [reservations, reservationSchema, ["taken"]],
      [interviews, interviewSchema, []],
    ] as const
  ) {
    const columns = Object.keys(getTableColumns(table));
    assert.deepEqual(Object.keys(schema.shape).sort(), [...columns, ...extra].sort());
  }
  const stored = orderSchema.parse({
    id: "o",
    userId: "u",
    kind: "membership",
    reservationId: null,
    tier: "pro",
    description: "Pro",
    amountCents: 900,
    currency: "USD",
    status: "pending",
    provider: "sandbox",
    version: 1,
    createdAt: 1,
    updatedAt: 1,
    paidAt: null,
    refundedAt: null,
    paymentUrl: null,
  });
  assert.equal(stored.amountCents, 900);
  assert.throws(() => orderSchema.parse({ ...stored, status: "shipped" }), "enums are kept");
  assert.throws(() => orderSchema.parse({ ...stored, createdAt: new Date() }), "times are numbers");
  assert.throws(() => orderSchema.parse({ ...stored, tier: undefined }), "nullable, not optional");
  const row = rowOf(orders, { ...stored, paidAt: 5 });
  assert.deepEqual([row.createdAt, row.paidAt, "paymentUrl" in row], [
    new Date(1),
    new Date(5),
    false,
  ]);
  const { paymentUrl: _kvOnly, ...columns } = stored;
  assert.deepEqual(recordFromRow(row), { ...columns, paidAt: 5 }, "a row's record: times in ms");
  // @ts-expect-error: orders.status is declared with $type (an enum), so its schema must be given.
  recordOf(orders, { kind: z.enum(["reservation", "membership"]) });
});
