// The audit log of admin actions: rows written behind each action (idempotent by id), listed
// newest first with the admin's name.
import { desc, eq } from "drizzle-orm";
import { afterPosition } from "./keyset.ts";
import { decodeCursor, keysetPage, timeCursor } from "../cursor.ts";
import type { Database } from "./client.ts";
import { adminActions, users } from "./schema.ts";

export type AdminAction = typeof adminActions.$inferInsert;

export async function insertAdminActions(db: Database, actions: AdminAction[]) {
  if (actions.length === 0) return;
  await db.insert(adminActions).values(actions).onConflictDoNothing();
}

/** Admin actions, newest first, each with its admin's name (null once the account is gone). */
export async function listAdminActions(db: Database, page: { cursor?: string; limit: number }) {
  const after = page.cursor ? decodeCursor(page.cursor, timeCursor) : null;
  const rows = await db.select({ action: adminActions, actorName: users.name })
    .from(adminActions)
    .leftJoin(users, eq(users.id, adminActions.actorId))
    .where(afterPosition(adminActions.at, adminActions.id, after))
    .orderBy(desc(adminActions.at), desc(adminActions.id))
    .limit(page.limit + 1);
  return keysetPage(
    rows,
    page.limit,
    ({ action, actorName }) => ({
      id: action.id,
      actor: { id: action.actorId, name: actorName },
      action: action.action,
      subject: { type: action.subjectType, id: action.subjectId },
      detail: action.detail ?? null,
      at: action.at.toISOString(),
    }),
    ({ action }) => [action.at.toISOString(), action.id],
  );
}
