// A member's standing: an admin's suspension, for a time or for good, decided in KV. The commit
// that suspends also ends every session of the member (their generation moves on), and every
// message a member sends checks their standing in its own commit, so nothing they send commits
// after the suspension does.
import { endOtherSessions, type SessionMemory } from "./auth/sessions.ts";
import { commitDecision } from "./decisions.ts";
import { memberStandingKey } from "./keys.ts";
import type { Coordination, OutboxRecord } from "./outbox.ts";

export interface Suspension {
  /** When it began (ms). */
  at: number;
  /** When it ends (ms); null: for good, until an admin restores the member. */
  until: number | null;
  reason: string;
  /** The admin who decided it. */
  by: string;
}

/** True while `suspension` lasts at `now`. */
export function suspended(suspension: Suspension | null | undefined, now: number): boolean {
  return !!suspension && (suspension.until === null || now < suspension.until);
}

/** The member's suspension, if any (it may have run out: see `suspended`). */
export async function readSuspension(kv: Deno.Kv, userId: string): Promise<Suspension | null> {
  return (await kv.get<Suspension>(memberStandingKey(userId))).value;
}

/**
 * Suspends a member: their standing and a new session generation (every session ends) in one
 * commit, with `records` (history, audit). A suspension for a time expires from KV with it.
 */
export async function suspendMember(
  deps: Coordination,
  memory: SessionMemory,
  userId: string,
  suspension: Suspension,
  records: OutboxRecord[],
) {
  await endOtherSessions(deps, memory, userId, null, {
    records,
    also: (atomic) =>
      atomic.set(
        memberStandingKey(userId),
        suspension,
        suspension.until === null
          ? {}
          : { expireIn: Math.max(1000, suspension.until - deps.now()) },
      ),
  });
}

/** Ends a member's suspension, with `records`; false when they were not suspended. */
export async function restoreMember(
  deps: Coordination,
  userId: string,
  records: (suspension: Suspension) => OutboxRecord[],
): Promise<boolean> {
  for (;;) {
    const entry = await deps.kv.get<Suspension>(memberStandingKey(userId));
    if (!entry.value) return false;
    const atomic = deps.kv.atomic().check(entry).delete(entry.key);
    const committed = await commitDecision(deps, atomic, {
      records: records(entry.value),
      operation: "moderation.restore",
    });
    if (committed) return true;
  }
}
