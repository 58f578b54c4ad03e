// The audit log of admin actions: who did what to what, and when. Its entry is written with the
// action: an outbox record in the KV commit that decides it (the writer puts it in
// `admin_actions`), a row in the Postgres transaction that does, or, for an action that is neither
// (a dead letter's replay), a record sent right after it.
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { insertAdminActions } from "../db/audit.ts";
import type { OutboxRecord } from "../kv/outbox.ts";
import { newId } from "../ids.ts";

const AUDIT_RECORD = "admin-action";

const auditPayload = z.object({
  id: z.string(),
  actorId: z.string(),
  action: z.string(),
  subject: z.object({ type: z.string(), id: z.string() }),
  detail: z.unknown().optional(),
  at: z.number(),
});

export interface AdminAction {
  /** The admin who acted. */
  actorId: string;
  /** `sale.restock`, `order.refund`, … */
  action: string;
  subject: { type: string; id: string };
  /** What the action was given: the change, the units. */
  detail?: unknown;
}

export function registerAudit(deps: Deps) {
  deps.outbox.registerBatch(AUDIT_RECORD, auditPayload, async (list) => {
    await insertAdminActions(deps.database.db, list.map(rowOf));
  });
}

const rowOf = (entry: z.infer<typeof auditPayload>) => ({
  id: entry.id,
  actorId: entry.actorId,
  action: entry.action,
  subjectType: entry.subject.type,
  subjectId: entry.subject.id,
  detail: entry.detail ?? null,
  at: new Date(entry.at),
});

const stamped = (deps: Deps, action: AdminAction) => {
  const now = deps.clock.now();
  return { ...action, id: newId(now), at: now };
};

/** The audit record of `action`, for the KV commit that decides it. */
export function auditRecord(deps: Deps, action: AdminAction): OutboxRecord {
  return deps.outbox.record(AUDIT_RECORD, stamped(deps, action));
}

/** The audit row of `action`, for the Postgres transaction that decides it. */
export function auditRow(deps: Deps, action: AdminAction) {
  return rowOf(stamped(deps, action));
}

/** Records an action Postgres (or something else outside KV) has decided already. */
export async function audit(deps: Deps, action: AdminAction) {
  await deps.outbox.send(auditRecord(deps, action));
}
