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

    // Statements sent together run in the order sent, each answered with its own rows; a
    // transaction sent among them takes its turn and ends (it must not wait for those behind it).
    const names = Array.from({ length: 20 }, (_, i) => `Name ${i}`);
    const [answers, inside] = await within(
      5000,
      Promise.all([
        Promise.all(
          names.map((name) =>
            database.db.update(users).set({ name }).returning({ name: users.name })
          ),
        ),
        database.db.transaction(async (tx) => (await tx.select({ name: users.name }).from(users))),
      ]),
    );
    assert.deepEqual(answers.map(([row]) => row.name), names);
    assert.equal(inside.length, 1);
    const [final] = await database.db.select({ name: users.name }).from(users);
    assert.equal(final.name, "Name 19");
    await database.ping();
    await database.maintain();
  } finally {
    await within(5000, database.close());
  }
  await assert.rejects(database.ping(), /closed/, "a closed database refuses, never hangs");
});

/** `promise`, or a failure once `ms` have passed: a hung connection fails the test, never stalls it. */
function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`still waiting after ${ms} ms: the connection hung`)),
      ms,
    );
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
