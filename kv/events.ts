// Per-user durable event logs: every event a user must receive (a message, an ack, a receipt, a
// notification) is appended to that user's log inside the commit that decides it. Sequence
// numbers come from a head key that every append checks, so a log's order is its commit order and
// a reader that has seen event n has seen every event before it.
import { backoff, busy } from "./backoff.ts";
import { eventHeadKey, eventKey, eventPrefix } from "./keys.ts";
import { traceparent } from "../telemetry.ts";

/** How long an event stays replayable by `resume`. */
export const EVENT_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

/** Appends racing others on the same logs retry this often (with jittered backoff). */
const APPEND_ATTEMPTS = 100;

export interface EventDraft {
  userId: string;
  type: string;
  data: unknown;
}

interface StoredEvent {
  type: string;
  data: unknown;
  /** Milliseconds since the epoch. */
  at: number;
  /** The span of the decision that appended it, when traced: its deliveries join that trace. */
  traceparent?: string;
}

export interface LoggedEvent extends StoredEvent {
  seq: number;
}

/** An event of `userId`'s log, as its commit wrote it. */
export interface CommittedEvent extends LoggedEvent {
  userId: string;
}

/**
 * Told when a commit of this isolate that appends events has settled: its events when it
 * succeeded, else (nothing appended) the users it would have appended to.
 */
export type CommittedListener = (events: CommittedEvent[], failedFor: string[]) => void;

const appended = new WeakMap<Deno.AtomicOperation, CommittedEvent[]>();
const committedListeners = new Set<CommittedListener>();
/** Users with events in commits of this isolate under way, and how many such commits. */
const committing = new Map<string, number>();

/**
 * Listens to the events this isolate's commits append (its hub delivers them to its own sockets
 * at once, from the commit's own data, instead of reading them back from the log). Returns the
 * way to stop.
 */
export function onCommittedEvents(listener: CommittedListener): () => void {
  committedListeners.add(listener);
  return () => committedListeners.delete(listener);
}

/**
 * Whether a commit of this isolate that appends to `userId`'s log is under way: a watch that
 * wakes for it meanwhile need not read the log, since the commit's listeners will be told.
 */
export function isCommittingFor(userId: string): boolean {
  return committing.has(userId);
}

/** Runs `operation`'s `commit` (kv/store.ts), telling the listeners what it appended. */
export async function commitAnnounced(
  operation: Deno.AtomicOperation,
  commit: () => Promise<Deno.KvCommitResult | Deno.KvCommitError>,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  const events = appended.get(operation);
  if (!events) return await commit();
  appended.delete(operation);
  const users = [...new Set(events.map((event) => event.userId))];
  for (const userId of users) committing.set(userId, (committing.get(userId) ?? 0) + 1);
  let ok = false;
  try {
    const result = await commit();
    ok = result.ok;
    return result;
  } finally {
    for (const userId of users) {
      const left = committing.get(userId)! - 1;
      if (left > 0) committing.set(userId, left);
      else committing.delete(userId);
    }
    for (const listener of committedListeners) listener(ok ? events : [], ok ? [] : users);
  }
}

/** The head keys to read (e.g. in the deciding commit's `getMany`) before appending. */
export function headKeys(userIds: Iterable<string>): Deno.KvKey[] {
  return [...new Set(userIds)].map(eventHeadKey);
}

/**
 * Adds `drafts` to a commit under construction. `heads` are the current head entries of every
 * recipient (read with `headKeys`); each is checked, so a concurrent append fails this commit and
 * the caller decides again. Returns the sequence numbers given to the drafts, in order.
 */
export function appendEvents(
  atomic: Deno.AtomicOperation,
  heads: Deno.KvEntryMaybe<unknown>[],
  drafts: EventDraft[],
  now: number,
): number[] {
  const next = new Map<string, number>();
  const committed = appended.get(atomic) ?? [];
  const parent = traceparent();
  const byUser = new Map(heads.map((head) => [String(head.key[1]), head]));
  const seqs = drafts.map((draft) => {
    const head = byUser.get(draft.userId);
    if (!head) throw new Error(`the head of ${draft.userId}'s event log was not read`);
    const seq = (next.get(draft.userId) ?? headSeq(head)) + 1;
    next.set(draft.userId, seq);
    const event: StoredEvent = { type: draft.type, data: draft.data, at: now };
    if (parent) event.traceparent = parent;
    atomic.set(eventKey(draft.userId, seq), event, { expireIn: EVENT_RETENTION_MS });
    committed.push({ ...event, seq, userId: draft.userId });
    return seq;
  });
  appended.set(atomic, committed);
  for (const [userId, seq] of next) {
    atomic.check(byUser.get(userId)!).set(eventHeadKey(userId), seq);
  }
  return seqs;
}

/** Appends events in a commit of their own, for decisions already made elsewhere. */
export async function appendEventsNow(
  kv: Deno.Kv,
  drafts: EventDraft[],
  now: () => number,
): Promise<number[]> {
  if (drafts.length === 0) return [];
  for (let attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
    const heads = await kv.getMany(headKeys(drafts.map((draft) => draft.userId)));
    const atomic = kv.atomic();
    const seqs = appendEvents(atomic, heads, drafts, now());
    if ((await atomic.commit()).ok) return seqs;
    // Another append to one of these logs won the race: back off a little and read again.
    await backoff(attempt);
  }
  throw busy(`The event log of ${drafts[0].userId}`);
}

export function headSeq(head: Deno.KvEntryMaybe<unknown>): number {
  return typeof head.value === "number" ? head.value : 0;
}

export async function currentHead(kv: Deno.Kv, userId: string): Promise<number> {
  return headSeq(await kv.get(eventHeadKey(userId)));
}

/** Up to `limit` events of `userId` after `afterSeq`, oldest first. */
export async function readEvents(
  kv: Deno.Kv,
  userId: string,
  afterSeq: number,
  limit: number,
): Promise<LoggedEvent[]> {
  const events: LoggedEvent[] = [];
  const iterator = kv.list<StoredEvent>({
    start: eventKey(userId, afterSeq + 1),
    end: [...eventPrefix(userId), Number.MAX_SAFE_INTEGER],
  }, { limit });
  for await (const entry of iterator) {
    events.push({ seq: entry.key[2] as number, ...entry.value });
  }
  return events;
}

/**
 * Tells every isolate to recheck the user's socket sessions now (after a logout or password
 * change); sockets whose token is no longer live are closed. Not forwarded to clients as is.
 */
export async function announceSessionsChanged(kv: Deno.Kv, userId: string, now: () => number) {
  await appendEventsNow(kv, [{ userId, type: "session-ended", data: {} }], now);
}
