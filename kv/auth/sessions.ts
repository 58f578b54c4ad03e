// Token revocation and session generations: what makes logout and password change immediate.
//
// Every request checks its session, so the check must not cost a round trip to KV's primary
// region. Each isolate keeps what it last read of a token and of its user's generation, and trusts
// it for SESSION_TRUST_MS; a miss or an older entry is read from the nearest replica (eventual).
// A logout or a generation change updates this isolate's memory in the same call and tells every
// other isolate over BroadcastChannel, so there it takes effect as soon as the message arrives.
// Where no message arrives (an isolate the channel does not reach), a revoked session is refused
// at most SESSION_TRUST_MS plus the replica's lag after the revocation.
import { commitDecision } from "../decisions.ts";
import {
  revokedTokenKey,
  sessionGenerationKey,
  sessionRecordKey,
  sessionRecordPrefix,
  sessionSeenKey,
} from "../keys.ts";
import type { Coordination, OutboxRecord } from "../outbox.ts";
import { Remembered } from "../remembered.ts";

/** How long an isolate trusts what it read of a session without reading it again (ms). */
export const SESSION_TRUST_MS = 5_000;
/** Entries an isolate remembers at most; the oldest are forgotten first. */
const REMEMBERED = 50_000;
const CHANNEL = "convene:sessions";

type Notice =
  | { kind: "revoked"; jti: string }
  | { kind: "generation"; userId: string; generation: Generation };

interface Known<T> {
  value: T;
  /** When it was read (ms, the app's clock). */
  at: number;
}

/** This isolate's memory of sessions: revoked tokens and users' generations (one per isolate). */
export class SessionMemory {
  readonly revoked = new Remembered<string, Known<boolean>>(REMEMBERED);
  readonly generations = new Remembered<string, Known<Generation>>(REMEMBERED);
  /** When this isolate last wrote each session's "last seen" (ms). */
  readonly seen = new Remembered<string, number>(REMEMBERED);
  #channel: BroadcastChannel | null = null;

  /** Starts listening to other isolates' notices (on the first check, not at import). */
  listen() {
    if (this.#channel) return;
    this.#channel = new BroadcastChannel(CHANNEL);
    this.#channel.onmessage = (event: MessageEvent<Notice>) => this.learn(event.data, true);
  }

  /** Applies a notice; `heard` ones came from another isolate and are not passed on again. */
  learn(notice: Notice, heard = false) {
    // A notice is final until its token expires: it never goes stale.
    if (notice.kind === "revoked") remember(this.revoked, notice.jti, true, Infinity);
    else remember(this.generations, notice.userId, notice.generation, Infinity);
    if (!heard) {
      this.listen();
      this.#channel!.postMessage(notice);
    }
  }

  close() {
    this.#channel?.close();
    this.#channel = null;
  }
}

function remember<T>(map: Map<string, Known<T>>, key: string, value: T, at: number) {
  map.set(key, { value, at });
}

interface Generation {
  generation: number;
  /** The one token of the previous generation that stays alive (the session that changed it). */
  keep: string | null;
}

/** Marks a token dead until `expiresAt` (ms), after which it would fail verification anyway. */
export async function revokeToken(
  kv: Deno.Kv,
  memory: SessionMemory,
  jti: string,
  expiresAt: number,
  now: number,
) {
  const expireIn = Math.max(1000, expiresAt - now);
  await kv.set(revokedTokenKey(jti), true, { expireIn });
  memory.learn({ kind: "revoked", jti });
}

export async function currentGeneration(kv: Deno.Kv, userId: string): Promise<number> {
  const entry = await kv.get<Generation>(sessionGenerationKey(userId));
  return entry.value?.generation ?? 0;
}

/**
 * True when the token is neither revoked nor from a generation that was ended, as this isolate
 * knows it (see the top of this file): no round trip to the primary region, and none at all while
 * what it read is younger than SESSION_TRUST_MS.
 */
export async function isTokenLive(
  kv: Deno.Kv,
  memory: SessionMemory,
  token: { jti: string; sub: string; gen: number },
  now: number,
): Promise<boolean> {
  memory.listen();
  let revoked = memory.revoked.get(token.jti);
  let generation = memory.generations.get(token.sub);
  if (!fresh(revoked, now) || !fresh(generation, now)) {
    const [storedRevoked, storedGeneration] = await kv.getMany<[boolean, Generation]>(
      [revokedTokenKey(token.jti), sessionGenerationKey(token.sub)],
      { consistency: "eventual" },
    );
    // A notice that arrived during the read is newer than the read.
    if (!memory.revoked.get(token.jti)?.value) {
      remember(memory.revoked, token.jti, storedRevoked.value ?? false, now);
    }
    if (!newer(memory.generations.get(token.sub), storedGeneration.value)) {
      remember(
        memory.generations,
        token.sub,
        storedGeneration.value ?? { generation: 0, keep: null },
        now,
      );
    }
    revoked = memory.revoked.get(token.jti);
    generation = memory.generations.get(token.sub);
  }
  if (revoked?.value) return false;
  const current = generation?.value ?? { generation: 0, keep: null };
  return token.gen >= current.generation || token.jti === current.keep;
}

function fresh(known: Known<unknown> | undefined, now: number): boolean {
  return known !== undefined && now - known.at < SESSION_TRUST_MS;
}

/** True when what this isolate knows is a later generation than `stored`. */
function newer(known: Known<Generation> | undefined, stored: Generation | null): boolean {
  return known !== undefined && known.value.generation > (stored?.generation ?? 0);
}

/**
 * Ends every session of the user except the token `keepJti` (null: every one); returns the new
 * generation. The same commit carries `records` (e.g. a confirmation email's job) and whatever
 * `also` adds.
 */
export async function endOtherSessions(
  deps: Coordination,
  memory: SessionMemory,
  userId: string,
  keepJti: string | null,
  effects: { records?: OutboxRecord[]; also?: (atomic: Deno.AtomicOperation) => void } = {},
): Promise<number> {
  const key = sessionGenerationKey(userId);
  for (;;) {
    const entry = await deps.kv.get<Generation>(key);
    const next = { generation: (entry.value?.generation ?? 0) + 1, keep: keepJti };
    const atomic = deps.kv.atomic().check(entry).set(key, next);
    effects.also?.(atomic);
    if (
      await commitDecision(deps, atomic, {
        records: effects.records,
        operation: "sessions.end-others",
      })
    ) {
      memory.learn({ kind: "generation", userId, generation: next });
      return next.generation;
    }
  }
}

/** A session as its owner sees it in their list: never its token. */
export interface SessionRecord {
  jti: string;
  generation: number;
  createdAt: number;
  expiresAt: number;
  userAgent: string | null;
  /** An approximate place, when the platform in front of the server gives one. */
  place: string | null;
}

/** A session's "last seen" is written at most this often per isolate (ms). */
export const SEEN_EVERY_MS = 60_000;
/** Keys read per `getMany` (KV's limit). */
const READ_BATCH = 10;

/** Records a new session for its owner's list, until its token expires. */
export async function recordSession(kv: Deno.Kv, userId: string, record: SessionRecord) {
  const expireIn = Math.max(1000, record.expiresAt - record.createdAt);
  await kv.atomic()
    .set(sessionRecordKey(userId, record.jti), record, { expireIn })
    .set(sessionSeenKey(userId, record.jti), record.createdAt, { expireIn })
    .commit();
}

/**
 * Notes that a session was used now: a write of one number, at most every SEEN_EVERY_MS per
 * isolate, that the request does not wait for (a lost one only makes "last seen" older).
 */
export function touchSession(
  kv: Deno.Kv,
  memory: SessionMemory,
  token: { sub: string; jti: string; exp: number },
  now: number,
) {
  const last = memory.seen.get(token.jti);
  if (last !== undefined && now - last < SEEN_EVERY_MS) return;
  memory.seen.set(token.jti, now);
  const expireIn = Math.max(1000, token.exp * 1000 - now);
  kv.set(sessionSeenKey(token.sub, token.jti), now, { expireIn }).catch(() => {
    memory.seen.delete(token.jti); // try again on the next request
  });
}

/**
 * The user's live sessions, newest first, each with when it was last seen: records whose token
 * was neither revoked nor ended with its generation, and has not expired.
 */
export async function listSessions(
  kv: Deno.Kv,
  userId: string,
  now: number,
): Promise<(SessionRecord & { lastSeenAt: number })[]> {
  const records: SessionRecord[] = [];
  for await (const entry of kv.list<SessionRecord>({ prefix: sessionRecordPrefix(userId) })) {
    if (entry.value.expiresAt > now) records.push(entry.value);
  }
  const generation = (await kv.get<Generation>(sessionGenerationKey(userId))).value ??
    { generation: 0, keep: null };
  const live: (SessionRecord & { lastSeenAt: number })[] = [];
  const perRead = READ_BATCH / 2;
  for (let start = 0; start < records.length; start += perRead) {
    const batch = records.slice(start, start + perRead);
    const read = await kv.getMany(
      batch.flatMap((record) => [revokedTokenKey(record.jti), sessionSeenKey(userId, record.jti)]),
    );
    batch.forEach((record, i) => {
      const revoked = read[2 * i].value === true;
      const current = record.generation >= generation.generation ||
        record.jti === generation.keep;
      if (revoked || !current) return;
      const seen = read[2 * i + 1].value;
      live.push({ ...record, lastSeenAt: typeof seen === "number" ? seen : record.createdAt });
    });
  }
  return live.sort((a, b) => b.createdAt - a.createdAt);
}

/** The record of one of the user's sessions, or null (another user's, or gone). */
export async function readSessionRecord(
  kv: Deno.Kv,
  userId: string,
  jti: string,
): Promise<SessionRecord | null> {
  return (await kv.get<SessionRecord>(sessionRecordKey(userId, jti))).value;
}
