// The embedded database runs in a worker of its own (db/pglite-worker.ts): through it, drizzle
// still gets dates, SQLSTATEs and transactions that hold the one connection to themselves.
import assert from "node:assert/strict";
import { eq, sql } from "drizzle-orm";
import { isUniqueViolation, openPglite } from "../db/client.ts";
import { users } from "../db/schema.ts";

Deno.test("[pglite worker] migrated on open; dates, SQLSTATEs, rollback, and a transaction's turn on the one connection", async () => {
  const database = await openPglite();
  const at = new Date("2026-12-06T10:00:00.123Z");
  const ada = {
    id: "u-ada",
    email: "ada@example.com",
    name: "Ada",
    passwordHash: "x",
    createdAt: at,
    updatedAt: at,
    lastActiveAt: at,
  };
  try {
    await database.db.insert(users).values(ada);
    const [row] = await database.db.select().from(users).where(eq(users.id, ada.id));
    assert.deepEqual(row.createdAt, at, "a timestamp comes back as the same Date");

    const duplicate = await database.db.insert(users).values(ada).catch((error) => error);
    assert.ok(isUniqueViolation(duplicate), "the SQLSTATE crosses the worker");

    const failed = await database.db.transaction(async (tx) => {
      await tx.update(users).set({ name: "Changed" }).where(eq(users.id, ada.id));
      throw new Error("changed my mind");
    }).catch((error) => error);
    assert.equal(failed.message, "changed my mind");
    const [after] = await database.db.select({ name: users.name }).from(users);
    assert.equal(after.name, "Ada", "rolled back");

    // A statement sent while a transaction is open waits for it, then sees all of it.
    const seen: string[] = [];
    await Promise.all([
      database.db.transaction(async (tx) => {
        await tx.update(users).set({ name: "Half" });
        await new Promise((resolve) => setTimeout(resolve, 50));
        await tx.update(users).set({ name: "Whole" });
      }),
      (async () => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        const result = await database.db.execute(sql`select name from users`);
        seen.push(...(result as unknown as { rows: { name: string }[] }).rows.map((r) => r.name));
      })(),
    ]);
    assert.deepEqual(seen, ["Whole"]);
    await database.ping();
    await database.maintain();
  } finally {
    await database.close();
  }
  await assert.rejects(database.ping(), /closed/, "a closed database refuses, never hangs");
});
