// Presence: which users have a live socket, and their status, kept in KV so every isolate agrees.
// Each socket holds an entry with its own expiry, refreshed by the hub's heartbeat; a crashed
// isolate's sockets simply stop being refreshed, and readers treat expired entries as gone.
import { backoff, busy } from "./backoff.ts";
import { KeyedLock } from "./keyed-lock.ts";
import { presenceKey, presencePrefix } from "./keys.ts";

export const PRESENCE_STATUSES = ["online", "offline", "in-call", "queuing"] as const;
export type PresenceStatus = (typeof PRESENCE_STATUSES)[number];

export interface PresenceRecord {
  /** What the user is doing while connected (matchmaking sets in-call and queuing). */
  status: Exclude<PresenceStatus, "offline">;
  /** Socket id → expiry (ms since the epoch). */
  sockets: Record<string, number>;
}

const ATTEMPTS = 50;

/** One isolate's changes to one user's presence take turns (a burst of connects, say). */
const locks = new WeakMap<Deno.Kv, KeyedLock>();

function lockOf(kv: Deno.Kv): KeyedLock {
  let lock = locks.get(kv);
  if (!lock) locks.set(kv, lock = new KeyedLock());
  return lock;
}

/** The status others see: offline unless some socket's entry is still unexpired. */
export function presenceStatus(record: PresenceRecord | null, now: number): PresenceStatus {
  if (!record) return "offline";
  return Object.values(record.sockets).some((expiresAt) => expiresAt > now)
    ? record.status
    : "offline";
}

/**
 * Applies `change` to a user's presence record in one checked commit (retried when a concurrent
 * change to the same user wins). When `context` is given, that key is read with the record, its
 * value is passed to `change`, and the commit checks it too: a status derived from it (matchmaking
 * sets in-call from the member's match state) can never be written from a stale read.
 * Returns the status before and after.
 */
export function changePresence<C = unknown>(
  kv: Deno.Kv,
  userId: string,
  now: number,
  change: (record: PresenceRecord, context: C | null) => PresenceRecord,
  context?: Deno.KvKey,
): Promise<{ before: PresenceStatus; after: PresenceStatus }> {
  return lockOf(kv).run(userId, async () => {
    const key = presenceKey(userId);
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(attempt); // another isolate won: spread out
      const [entry, decidedBy] = await kv.getMany<unknown[]>(context ? [key, context] : [key]) as [
        Deno.KvEntryMaybe<PresenceRecord>,
        Deno.KvEntryMaybe<C> | undefined,
      ];
      const current = entry.value ?? { status: "online", sockets: {} };
      const live = Object.fromEntries(
        Object.entries(current.sockets).filter(([, expiresAt]) => expiresAt > now),
      );
      const next = change({ status: current.status, sockets: live }, decidedBy?.value ?? null);
      const before = presenceStatus(entry.value, now);
      if (sameRecord(entry.value, next)) return { before, after: before }; // nothing to write
      const atomic = kv.atomic().check(entry);
      if (decidedBy) atomic.check(decidedBy);
      if (Object.keys(next.sockets).length === 0) atomic.delete(key);
      else atomic.set(key, next);
      if ((await atomic.commit()).ok) return { before, after: presenceStatus(next, now) };
    }
    throw busy(`The presence of ${userId}`);
  });
}

/** Whether storing `next` would change nothing (no record and no sockets count as the same). */
function sameRecord(stored: PresenceRecord | null, next: PresenceRecord): boolean {
  const sockets = Object.entries(next.sockets);
  if (!stored) return sockets.length === 0;
  return stored.status === next.status &&
    sockets.length === Object.keys(stored.sockets).length &&
    sockets.every(([id, expiresAt]) => stored.sockets[id] === expiresAt);
}

/**
 * Registers a new socket of a user until `expiresAt`, unless the user already holds `max` live
 * sockets (on any isolate): then nothing changes and `full` is true.
 */
export async function claimPresence(
  kv: Deno.Kv,
  userId: string,
  socketId: string,
  now: number,
  expiresAt: number,
  max: number,
) {
  let full = false;
  const change = await changePresence(kv, userId, now, (record) => {
    full = Object.keys(record.sockets).length >= max;
    return full
      ? record
      : { status: record.status, sockets: { ...record.sockets, [socketId]: expiresAt } };
  });
  return { ...change, full };
}

/** Refreshes sockets of a user until `expiresAt` (the heartbeat). */
export function holdPresence(
  kv: Deno.Kv,
  userId: string,
  socketIds: string[],
  now: number,
  expiresAt: number,
) {
  return changePresence(kv, userId, now, (record) => ({
    status: record.status,
    sockets: { ...record.sockets, ...Object.fromEntries(socketIds.map((id) => [id, expiresAt])) },
  }));
}

export function releasePresence(kv: Deno.Kv, userId: string, socketId: string, now: number) {
  return changePresence(kv, userId, now, (record) => {
    const sockets = { ...record.sockets };
    delete sockets[socketId];
    return { status: record.status, sockets };
  });
}

export async function readPresence(
  kv: Deno.Kv,
  userIds: string[],
  now: number,
  consistency: Deno.KvConsistencyLevel = "strong",
): Promise<Map<string, PresenceStatus>> {
  const statuses = new Map<string, PresenceStatus>();
  for (let start = 0; start < userIds.length; start += 10) {
    const batch = userIds.slice(start, start + 10);
    const entries = await kv.getMany<PresenceRecord[]>(batch.map(presenceKey), { consistency });
    batch.forEach((userId, index) =>
      statuses.set(userId, presenceStatus(entries[index].value, now))
    );
  }
  return statuses;
}

/**
 * Deletes the records whose sockets have all expired (their isolate died without closing them) and
 * returns those users, so the caller can tell their connections they went offline.
 */
export async function sweepPresence(kv: Deno.Kv, now: number): Promise<string[]> {
  const gone: string[] = [];
  for await (const entry of kv.list<PresenceRecord>({ prefix: [...presencePrefix()] })) {
    if (presenceStatus(entry.value, now) !== "offline") continue;
    const result = await kv.atomic().check(entry).delete(entry.key).commit();
    if (result.ok) gone.push(String(entry.key[1]));
  }
  return gone;
}
