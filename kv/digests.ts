// Email digests: notifications for a member who is offline wait here, and one scheduled digest
// sends them together (one email, not one per message). A digest is scheduled when the first item
// arrives and none is due; sending it takes every item waiting and clears the schedule in one
// commit, so an item that arrives later schedules the next.
import { commitDecision } from "./decisions.ts";
import { digestDueKey, digestItemKey, digestItemPrefix } from "./keys.ts";
import type { Coordination, OutboxRecord } from "./outbox.ts";

export interface DigestItem {
  type: string;
  actorName: string | null;
  subjectId: string;
  at: number;
}

/** Items wait at most this long (a digest that never ran leaves nothing behind for ever). */
const ITEM_TTL_MS = 7 * 24 * 60 * 60 * 1000;
/** Items one digest takes at most (a commit holds at most 1,000 mutations); older ones beyond it
 * are dropped from the email (they stay in the app). */
const DIGEST_MAX_ITEMS = 500;

/**
 * Adds an item to the member's next digest; returns when that digest is due if this call
 * scheduled it (the caller enqueues its job), null when one was due already.
 */
export async function addDigestItem(
  kv: Deno.Kv,
  userId: string,
  eventId: string,
  item: DigestItem,
  dueAt: number,
): Promise<number | null> {
  for (;;) {
    // The schedule is written with every item, so a digest being taken meanwhile (which checks
    // it) reads again and takes this item too.
    const due = await kv.get<number>(digestDueKey(userId));
    const committed = await kv.atomic().check(due)
      .set(digestItemKey(userId, eventId), item, { expireIn: ITEM_TTL_MS })
      .set(due.key, due.value ?? dueAt, { expireIn: ITEM_TTL_MS })
      .commit();
    if (committed.ok) return due.value === null ? dueAt : null;
  }
}

/**
 * Takes the member's waiting items (newest first, up to DIGEST_MAX_ITEMS) and, in one commit,
 * deletes them, clears the schedule, and writes `records(items)` (the email). Returns the items.
 */
export async function takeDigest(
  deps: Coordination,
  userId: string,
  records: (items: DigestItem[]) => OutboxRecord[],
): Promise<DigestItem[]> {
  for (;;) {
    // The schedule first, then the items: an item added after this read changes the schedule,
    // and this commit, checked against it, reads again.
    const due = await deps.kv.get<number>(digestDueKey(userId));
    const entries: Deno.KvEntry<DigestItem>[] = [];
    for await (const entry of deps.kv.list<DigestItem>({ prefix: digestItemPrefix(userId) })) {
      entries.push(entry);
    }
    entries.sort((a, b) => b.value.at - a.value.at);
    const taken = entries.slice(0, DIGEST_MAX_ITEMS);
    const atomic = deps.kv.atomic().check(due).delete(due.key);
    for (const entry of taken) atomic.delete(entry.key);
    const items = taken.map((entry) => entry.value);
    const committed = await commitDecision(deps, atomic, {
      records: items.length > 0 ? records(items) : [],
      operation: "notifications.digest",
    });
    if (committed) return items;
  }
}
