// Presence: which users have a live socket, kept in KV so every isolate agrees, and their status.
// Each socket holds an entry with its own expiry, refreshed by the hub's heartbeat; a crashed
// isolate's sockets simply stop being refreshed, and readers treat expired entries as gone.
// What a connected user is doing (queuing, in a call) is not stored here: it is read from their
// matchmaking membership with the record, so a matchmaking decision never waits to update it.
import { backoff, busy } from "./backoff.ts";
import { KeyedLock } from "./keyed-lock.ts";
import { matchMemberKey, presenceKey, presencePrefix } from "./keys.ts";
import { getAll } from "./store.ts";

export const PRESENCE_STATUSES = ["online", "offline", "in-call", "queuing"] as const;
export type PresenceStatus = (typeof PRESENCE_STATUSES)[number];

export interface PresenceRecord {
  /** Socket id → expiry (ms since the epoch). */
  sockets: Record<string, number>;
}

/** What presence reads of a matchmaking membership (kv/matches/match.ts): its status. */
interface MemberStatus {
  status: "queuing" | "in-call";
}

const ATTEMPTS = 50;

/** One isolate's changes to one user's presence take turns (a burst of connects, say). */
const locks = new WeakMap<Deno.Kv, KeyedLock>();

function lockOf(kv: Deno.Kv): KeyedLock {
  let lock = locks.get(kv);
  if (!lock) locks.set(kv, lock = new KeyedLock());
  return lock;
}

/**
 * The status others see: offline unless some socket's entry is still unexpired; then queuing or
 * in-call as the member's matchmaking state says, else online.
 */
export function presenceStatus(
  record: PresenceRecord | null,
  now: number,
  member: MemberStatus | null = null,
): PresenceStatus {
  if (!record) return "offline";
  return Object.values(record.sockets).some((expiresAt) => expiresAt > now)
    ? member?.status ?? "online"
    : "offline";
}

/**
 * Applies `change` to a user's sockets in one checked commit (retried when a concurrent change to
 * the same user wins). Returns whether the user was connected before and after, as "online" or
 * "offline" (readPresence says what a connected user is doing).
 */
function changePresence(
  kv: Deno.Kv,
  userId: string,
  now: number,
  change: (record: PresenceRecord) => PresenceRecord,
): Promise<{ before: PresenceStatus; after: PresenceStatus }> {
  return lockOf(kv).run(userId, async () => {
    const key = presenceKey(userId);
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(attempt); // another isolate won: spread out
      const entry = await kv.get<PresenceRecord>(key);
      const live = Object.fromEntries(
        Object.entries(entry.value?.sockets ?? {}).filter(([, expiresAt]) => expiresAt > now),
      );
      const next = change({ sockets: live });
      const before = presenceStatus(entry.value, now);
      if (sameRecord(entry.value, next)) return { before, after: before }; // nothing to write
      const atomic = kv.atomic().check(entry);
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
  return sockets.length === Object.keys(stored.sockets).length &&
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
    return full ? record : { sockets: { ...record.sockets, [socketId]: expiresAt } };
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
    sockets: { ...record.sockets, ...Object.fromEntries(socketIds.map((id) => [id, expiresAt])) },
  }));
}

export function releasePresence(kv: Deno.Kv, userId: string, socketId: string, now: number) {
  return changePresence(kv, userId, now, (record) => {
    const sockets = { ...record.sockets };
    delete sockets[socketId];
    return { sockets };
  });
}

/** Each user's status, read with their matchmaking membership (two keys a user). */
export async function readPresence(
  kv: Deno.Kv,
  userIds: string[],
  now: number,
  consistency: Deno.KvConsistencyLevel = "strong",
): Promise<Map<string, PresenceStatus>> {
  const entries = await getAll<unknown[]>(
    kv,
    userIds.flatMap((userId) => [presenceKey(userId), matchMemberKey(userId)]),
    { consistency },
  );
  return new Map(userIds.map((userId, i) => {
    const record = entries[2 * i].value as PresenceRecord | null;
    const member = entries[2 * i + 1].value as MemberStatus | null;
    return [userId, presenceStatus(record, now, member)];
  }));
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
