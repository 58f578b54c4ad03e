// The transactional outbox and its history writer: a side effect is written into the same KV commit
// that decides it, written behind in batches right after that commit (no request waits for it),
// and applied by the sweep if the process died in between. A record that keeps failing becomes a
// dead letter, so it never holds back the others. A database that cannot be reached is not a failing
// record: the writer pauses and tries again by itself, and no record's attempts are spent on it.
import type { z } from "zod";
import { isPermanentFailure, isUnreachable, PermanentFailure, Unavailable } from "../errors.ts";
import { idTime, newId } from "../ids.ts";
import { inSpan, instruments, linkTo, traceparent } from "../telemetry.ts";
import { addDeadLetter, countDeadLetters, type DeadLetterRecord } from "./dead-letters.ts";
import { outboxKey, outboxPrefix } from "./keys.ts";

export interface OutboxRecord {
  id: string;
  kind: string;
  payload: unknown;
  /** Milliseconds since the epoch. */
  createdAt: number;
  attempts: number;
  lastError?: string;
  /** The W3C traceparent of the span that decided it, when traced: its history span links to it. */
  traceparent?: string;
}

/** What a KV decision needs: the store, the outbox its commit carries, and the time. */
export interface Coordination {
  kv: Deno.Kv;
  outbox: Outbox;
  now: () => number;
}

export const coordination = (
  deps: { kv: Deno.Kv; outbox: Outbox; clock: { now(): number } },
): Coordination => ({
  kv: deps.kv,
  outbox: deps.outbox,
  now: deps.clock.now,
});

/** Records younger than this are left to the writer of the isolate that committed them. */
export const SWEEP_GRACE_MS = 30_000;
/**
 * Failed applies before a record becomes a dead letter (about one per sweep, so ~5 minutes).
 * Only refusals count: an apply that could not reach the database is not an attempt.
 */
export const OUTBOX_MAX_ATTEMPTS = 5;
/** While the database cannot be reached, the writer tries again after this long, doubling... */
export const OUTAGE_FIRST_RETRY_MS = 250;
/** ...up to this, so history catches up within seconds of the database coming back. */
export const OUTAGE_MAX_RETRY_MS = 5_000;
/** The writer waits at most this long for more records before writing a batch... */
export const BATCH_WAIT_MS = 5;
/** ...and writes at once when this many are waiting; the sweep reads pages of the same size. */
export const BATCH_MAX = 500;
/** Links a history span keeps to the spans of the decisions in its batch, at most. */
const MAX_LINKS = 128;
/** Outbox deletions per KV commit (a commit holds at most 1,000 mutations). */
const DELETES_PER_COMMIT = 500;

type Outcome = "applied" | "failed" | "deadLettered";
/** What a write did: records applied, counted as failed, dead-lettered (and, when the database
 * could not be reached, how many were put off without counting: `deferred`). */
export type SweepResult = Record<Outcome, number> & { deferred?: number };

interface Outage {
  since: number;
  retryInMs: number;
  error: string;
}

/** Applies the records of one kind, in order, as one write where the kind allows it. */
type BatchApplier = (payloads: unknown[], records: OutboxRecord[]) => Promise<void>;

interface Kind {
  parse: (payload: unknown) => unknown;
  /** Writes a batch of the kind's records together (registerBatch)... */
  batch?: BatchApplier;
  /** ...or each record on its own, all of a batch's at once (register). */
  each?: (payload: unknown, record: OutboxRecord) => Promise<void>;
}

/**
 * The outbox and its history writer. A decision's commit carries its records (`write`); once it
 * succeeded, `afterCommit` hands them to this isolate's writer, which drains them in batches (at
 * most BATCH_WAIT_MS after the first, at most BATCH_MAX at a time): kinds side by side, a
 * `registerBatch` kind in one write (one multi-row statement per table), a `register` kind's
 * records each on its own and at once; then one KV commit deleting them. A batch write that fails
 * is retried record by record, so one bad record fails alone. Whatever a crash left behind is
 * applied by the sweep (cron, and start-up with no grace).
 */
export class Outbox {
  #kinds = new Map<string, Kind>();
  #buffer: OutboxRecord[] = [];
  /** Ids handed to this isolate's writer and not yet written (buffered or in the running batch). */
  #pending = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #draining: Promise<void> | null = null;
  /** Set while the database cannot be reached: the writer waits `retryInMs` between tries. */
  #outage: Outage | null = null;
  /** Ends the writer's wait between tries early (a read that needs history now, a recovery). */
  #wake: (() => void) | null = null;
  /** Resolved after each pass of the writer over a batch. */
  #pass: PromiseWithResolvers<void> | null = null;
  #closed = false;

  constructor(
    private readonly kv: Deno.Kv,
    private readonly clock: { now(): number },
    private readonly log: (record: Record<string, unknown>) => void,
  ) {}

  /**
   * A kind whose records are applied one by one, a batch's records concurrently (as concurrent
   * requests would): `apply` must be idempotent by record id and tolerate records of one entity
   * arriving out of order (e.g. a versioned upsert that never goes back).
   */
  register<S extends z.ZodType>(
    kind: string,
    schema: S,
    apply: (payload: z.infer<S>, record: OutboxRecord) => Promise<void>,
  ): this {
    return this.#add(kind, schema, { each: apply as Kind["each"] });
  }

  /**
   * A kind whose records are applied together: `apply` gets every record of the kind in a batch,
   * oldest first, and must write them idempotently by record id (the same record may come twice,
   * in one batch or in two).
   */
  registerBatch<S extends z.ZodType>(
    kind: string,
    schema: S,
    apply: (payloads: z.infer<S>[], records: OutboxRecord[]) => Promise<void>,
  ): this {
    return this.#add(kind, schema, { batch: apply as BatchApplier });
  }

  #add(kind: string, schema: z.ZodType, applier: Omit<Kind, "parse">): this {
    if (this.#kinds.has(kind)) throw new Error(`outbox kind "${kind}" is registered twice`);
    this.#kinds.set(kind, { parse: (payload) => schema.parse(payload), ...applier });
    return this;
  }

  /** A new record; write it with `write` inside the deciding commit, then hand it over. */
  record(kind: string, payload: unknown): OutboxRecord {
    if (!this.#kinds.has(kind)) throw new Error(`outbox kind "${kind}" is not registered`);
    const now = this.clock.now();
    const record: OutboxRecord = { id: newId(now), kind, payload, createdAt: now, attempts: 0 };
    const parent = traceparent();
    if (parent) record.traceparent = parent;
    return record;
  }

  /** Adds the records to a commit that has not run yet. */
  write(atomic: Deno.AtomicOperation, ...records: OutboxRecord[]): Deno.AtomicOperation {
    for (const record of records) atomic.set(outboxKey(record.id), record);
    return atomic;
  }

  /**
   * Hands records whose commit succeeded to this isolate's writer and returns at once: the
   * decision is durable, its history follows within milliseconds (or from the sweep, after a
   * crash). Reads that must show it call `flush` first.
   */
  afterCommit(...records: OutboxRecord[]): void {
    for (const record of records) {
      this.#buffer.push(record);
      this.#pending.add(record.id);
    }
    if (this.#closed) return;
    // While the database is unreachable, the paused writer takes them when it tries again.
    if (this.#outage) {
      if (!this.#draining) this.#drain();
      return;
    }
    if (this.#buffer.length >= BATCH_MAX) this.#drain();
    else if (this.#timer === undefined && !this.#draining && this.#buffer.length > 0) {
      this.#timer = setTimeout(() => this.#drain(), BATCH_WAIT_MS);
    }
  }

  /** Whether the writer is paused because the database cannot be reached, and since when. */
  /** Records handed to this isolate's writer and not written yet. */
  get buffered(): number {
    return this.#pending.size;
  }

  get outage(): Readonly<Outage> | null {
    return this.#outage;
  }

  /**
   * For a decision made outside KV (a Postgres write that already committed): stores the
   * records in their own commit and hands them to the writer; a failed write is the sweep's.
   */
  async send(...records: OutboxRecord[]): Promise<void> {
    if (records.length === 0) return;
    const result = await this.write(this.kv.atomic(), ...records).commit();
    if (!result.ok) throw new Error("outbox records could not be stored");
    this.afterCommit(...records);
  }

  /**
   * A dead letter of the outbox, back in the outbox as it was made (same id, so its effect is still
   * applied once) with fresh attempts, and applied at once.
   */
  async replay(letter: DeadLetterRecord): Promise<void> {
    const record: OutboxRecord = {
      id: letter.id,
      kind: letter.name,
      payload: letter.payload,
      // Its id's time, as when it was first written: the sweep's "ids are time-ordered" holds.
      createdAt: idTime(letter.id),
      attempts: 0,
    };
    const result = await this.write(this.kv.atomic(), record).commit();
    if (!result.ok) throw new Error("outbox records could not be stored");
    await this.apply(record);
  }

  /**
   * Applies records whose commit succeeded now, as one batch, and waits for them. Never throws:
   * the decision they belong to has already been made, so a failure is counted on the record
   * and left to the sweep.
   */
  async apply(...records: OutboxRecord[]): Promise<SweepResult> {
    return await this.#write(records);
  }

  /**
   * Read your writes: returns once every record handed to this isolate's writer before the call
   * is written, and every record any other isolate committed and has not tried yet is written
   * too. Reads of history that a client may have just changed call this first. While the database
   * cannot be reached it tries once more and then throws Unavailable (the read answers 503).
   */
  async flush(): Promise<void> {
    await this.#writeHanded("refuse");
    const result = await this.#sweepWith(
      this.clock.now(),
      // A record that failed before waits for the sweep: a read must not spend its attempts.
      (record) => !this.#pending.has(record.id) && record.attempts === 0,
    );
    if (result.deferred) throw historyUnavailable();
  }

  /**
   * Writes what this isolate's writer holds and stops it (a stopping server). While the database
   * cannot be reached it stops at once: the records are safe in KV, and the next start's sweep
   * writes them.
   */
  async close(): Promise<void> {
    await this.#writeHanded("stop");
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wake?.();
    await this.#draining;
  }

  /**
   * Returns once every record handed to this isolate's writer before the call is written. During
   * an outage, "stop" returns at once; "refuse" wakes the writer for one more try and throws
   * Unavailable if the database still cannot be reached.
   */
  async #writeHanded(duringOutage: "refuse" | "stop") {
    const waiting = [...this.#pending];
    const done = () => waiting.every((id) => !this.#pending.has(id));
    while (!done()) {
      if (this.#closed || (this.#outage && duringOutage === "stop")) return;
      const tried = this.#outage !== null;
      const pass = (this.#pass ??= Promise.withResolvers()).promise;
      this.#drain();
      await pass;
      if (tried && this.#outage && !done()) throw historyUnavailable();
    }
  }

  /**
   * Applies every record older than the grace period, oldest first, a page at a time, past the
   * ones that fail (the cron sweep). `graceMs: 0` takes every record: safe at any time, since
   * applying is idempotent, and what start-up does to finish a crashed predecessor's work at once.
   */
  async sweep(options: { graceMs?: number } = {}): Promise<SweepResult> {
    const result = await this.#sweepWith(
      this.clock.now() - (options.graceMs ?? SWEEP_GRACE_MS),
      () => true,
    );
    if (result.applied + result.failed + result.deadLettered > 0) {
      this.log({ level: "info", msg: "outbox swept", ...result });
    }
    return result;
  }

  async #sweepWith(cutoff: number, take: (record: OutboxRecord) => boolean) {
    const result: SweepResult = { applied: 0, failed: 0, deadLettered: 0 };
    let cursor: string | undefined;
    pages: for (;;) {
      const page = this.kv.list<OutboxRecord>({ prefix: [...outboxPrefix()] }, {
        limit: BATCH_MAX,
        cursor,
      });
      const batch: OutboxRecord[] = [];
      let seen = 0;
      let young = false;
      for await (const entry of page) {
        seen++;
        // Ids are time-ordered: once one record is too young, so are the rest.
        if (entry.value.createdAt > cutoff) {
          young = true;
          break;
        }
        if (take(entry.value)) batch.push(entry.value);
      }
      const written = await this.#write(batch);
      for (const outcome of ["applied", "failed", "deadLettered"] as const) {
        result[outcome] += written[outcome];
      }
      // The database cannot be reached: the rest waits for the next sweep, uncounted.
      if (written.deferred) {
        result.deferred = (result.deferred ?? 0) + written.deferred;
        break pages;
      }
      if (young || seen < BATCH_MAX) break pages;
      cursor = page.cursor;
    }
    return result;
  }

  /**
   * Starts the writer unless it is running (or wakes it from its wait during an outage); it runs
   * until the buffer is empty. Records the database could not take go back to the front of the
   * buffer, and the writer waits before it tries again.
   */
  #drain() {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#draining) return this.#wake?.();
    this.#draining = (async () => {
      while (this.#buffer.length > 0 && !this.#closed) {
        const batch = this.#buffer.splice(0, BATCH_MAX);
        const put = new Set((await this.#write(batch, { keepDeferred: true })).deferredIds);
        for (const record of batch) if (!put.has(record.id)) this.#pending.delete(record.id);
        this.#buffer.unshift(...batch.filter((record) => put.has(record.id)));
        this.#passed();
        if (put.size > 0 && this.#outage) await this.#waitToRetry(this.#outage.retryInMs);
      }
    })().finally(() => {
      this.#draining = null;
      this.#passed();
      // Records handed over while the last batch was being written and the loop was ending.
      if (this.#buffer.length > 0 && !this.#outage && !this.#closed) this.#drain();
    });
  }

  #passed() {
    const pass = this.#pass;
    this.#pass = null;
    pass?.resolve();
  }

  #waitToRetry(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        if (this.#wake === wake) this.#wake = null;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#wake = wake;
    });
  }

  /** The database could not take a write: pause the writer, or wait longer if it was paused. */
  #unreachable(error: unknown) {
    const message = error instanceof Error ? error.message : String(error);
    if (this.#outage) {
      this.#outage.retryInMs = Math.min(OUTAGE_MAX_RETRY_MS, this.#outage.retryInMs * 2);
      this.#outage.error = message;
      return;
    }
    this.#outage = { since: this.clock.now(), retryInMs: OUTAGE_FIRST_RETRY_MS, error: message };
    this.log({
      level: "warn",
      msg: "history writer paused: the database cannot be reached",
      buffered: this.#buffer.length,
      retryInMs: OUTAGE_FIRST_RETRY_MS,
      error: message,
    });
  }

  /** A write went through after an outage: resume at once. */
  #reachable() {
    if (!this.#outage) return;
    this.log({
      level: "info",
      msg: "history writer resumed: the database answers again",
      pausedMs: this.clock.now() - this.#outage.since,
      buffered: this.#buffer.length,
    });
    this.#outage = null;
    this.#wake?.();
    if (!this.#draining && this.#buffer.length > 0 && !this.#closed) this.#drain();
  }

  /**
   * Writes a batch: each batch kind's records through its applier in one call (a call that fails
   * is retried record by record, so only the records that fail alone count as failed), each
   * single kind's records concurrently. The written records leave the outbox in a few commits.
   * Never throws.
   */
  async #write(
    records: OutboxRecord[],
    options: { keepDeferred?: boolean } = {},
  ): Promise<SweepResult & { deferredIds?: string[] }> {
    if (records.length === 0) return { applied: 0, failed: 0, deadLettered: 0 };
    // One span a batch, linked to the spans whose decisions made its records.
    const links = [...new Set(records.map((record) => record.traceparent))]
      .slice(0, MAX_LINKS).flatMap((parent) => linkTo(parent) ?? []);
    const kinds = [...new Set(records.map((record) => record.kind))];
    const started = performance.now();
    return await inSpan(
      "history.write",
      { "convene.history.records": records.length, "convene.history.kinds": kinds },
      async (span) => {
        const result = await this.#writeBatch(records, options);
        span.setAttributes({
          "convene.history.applied": result.applied,
          "convene.history.failed": result.failed,
          "convene.history.deferred": result.deferred ?? 0,
        });
        instruments.historyBatches.record(performance.now() - started);
        // The lag of rows written: a batch put off by an outage, or failing, wrote none of its
        // rows yet (or not all), and counts when it does.
        if (result.applied === records.length) {
          const now = this.clock.now();
          for (const record of records) instruments.historyLag.record(now - record.createdAt);
        }
        return result;
      },
      links,
    );
  }

  async #writeBatch(
    records: OutboxRecord[],
    options: { keepDeferred?: boolean },
  ): Promise<SweepResult & { deferredIds?: string[] }> {
    const result: SweepResult = { applied: 0, failed: 0, deadLettered: 0 };
    const done: OutboxRecord[] = [];
    const failures: [OutboxRecord, unknown][] = [];
    const deferred: OutboxRecord[] = [];
    let unreachable: unknown = null;
    const failed = (record: OutboxRecord, error: unknown) => {
      if (isUnreachable(error)) {
        deferred.push(record);
        unreachable = error;
      } else failures.push([record, error]);
    };
    // Kinds are written side by side, so a slow kind never holds back a fast one.
    await Promise.all([...groupByKind(records)].map(async ([kind, group]) => {
      const handler = this.#kinds.get(kind);
      const parsed: { record: OutboxRecord; payload: unknown }[] = [];
      for (const record of group) {
        try {
          if (!handler) throw new PermanentFailure(`no applier for outbox kind "${kind}"`);
          parsed.push({ record, payload: handler.parse(record.payload) });
        } catch (error) {
          failures.push([
            record,
            isPermanentFailure(error) ? error : new PermanentFailure(
              `outbox record does not match its kind: ${
                error instanceof Error ? error.message : String(error)
              }`,
            ),
          ]);
        }
      }
      if (!handler || parsed.length === 0) return;
      const alone = async (item: (typeof parsed)[number]) => {
        try {
          if (handler.each) await handler.each(item.payload, item.record);
          else await handler.batch!([item.payload], [item.record]);
          done.push(item.record);
        } catch (error) {
          failed(item.record, error);
        }
      };
      if (handler.each || parsed.length === 1) {
        await Promise.all(parsed.map(alone));
        return;
      }
      try {
        await handler.batch!(parsed.map((item) => item.payload), parsed.map((item) => item.record));
        done.push(...parsed.map((item) => item.record));
      } catch (error) {
        // Nothing to single out when the database cannot be reached: the whole batch waits.
        if (isUnreachable(error)) {
          for (const item of parsed) failed(item.record, error);
          return;
        }
        this.log({
          level: "warn",
          msg: "outbox batch failed; retrying its records one by one",
          kind,
          records: parsed.length,
          error: error instanceof Error ? error.message : String(error),
        });
        for (const item of parsed) await alone(item);
      }
    }));
    result.applied = done.length;
    if (deferred.length > 0) this.#unreachable(unreachable);
    else if (done.length > 0) this.#reachable();
    await this.#forget(done);
    for (const [record, error] of failures) {
      result[await this.#failed(record, error)]++;
    }
    if (deferred.length === 0) return result;
    return {
      ...result,
      deferred: deferred.length,
      ...(options.keepDeferred ? { deferredIds: deferred.map((record) => record.id) } : {}),
    };
  }

  /** Deletes written records from the outbox; a failure here only means the sweep sees them again. */
  async #forget(records: OutboxRecord[]) {
    for (let start = 0; start < records.length; start += DELETES_PER_COMMIT) {
      const chunk = records.slice(start, start + DELETES_PER_COMMIT);
      const atomic = this.kv.atomic();
      for (const record of chunk) atomic.delete(outboxKey(record.id));
      await this.#settle(chunk[0], atomic);
    }
  }

  /**
   * Counts the failure on the stored record, or moves it to the dead letters when retrying is over
   * (or cannot help). A record already gone was written by someone else.
   */
  async #failed(record: OutboxRecord, error: unknown): Promise<Outcome> {
    let entry: Deno.KvEntryMaybe<OutboxRecord>;
    try {
      entry = await this.kv.get<OutboxRecord>(outboxKey(record.id));
    } catch (readError) {
      this.#logFailure(record, record.attempts, error, "left to the sweep");
      this.#logFailure(record, record.attempts, readError, "bookkeeping failed, left to the sweep");
      return "failed";
    }
    const stored = entry.value ?? record;
    const attempts = stored.attempts + 1;
    const dead = attempts >= OUTBOX_MAX_ATTEMPTS || isPermanentFailure(error);
    const lastError = this.#logFailure(stored, attempts, error, dead ? "dead-lettered" : "retried");
    if (!entry.value) return dead ? "deadLettered" : "failed";
    const atomic = this.kv.atomic().check(entry);
    if (dead) {
      addDeadLetter(
        atomic.delete(entry.key),
        { id: stored.id, name: stored.kind, payload: stored.payload, source: "outbox" },
        { attempts, error: lastError, failedAt: this.clock.now() },
      );
    } else {
      atomic.set(entry.key, { ...stored, attempts, lastError });
    }
    await this.#settle(stored, atomic);
    return dead ? "deadLettered" : "failed";
  }

  /** Commits a record's bookkeeping; a failure here only means the sweep sees it again. */
  async #settle(record: OutboxRecord, atomic: Deno.AtomicOperation) {
    try {
      await atomic.commit();
    } catch (error) {
      this.#logFailure(record, record.attempts, error, "bookkeeping failed, left to the sweep");
    }
  }

  #logFailure(record: OutboxRecord, attempts: number, error: unknown, outcome: string): string {
    const message = error instanceof Error ? error.message : String(error);
    this.log({
      level: outcome === "retried" ? "warn" : "error",
      msg: "outbox apply failed",
      kind: record.kind,
      recordId: record.id,
      attempts,
      outcome,
      error: message,
    });
    return message;
  }
}

function historyUnavailable() {
  return new Unavailable(
    "History is being written behind while the database cannot be reached; nothing acknowledged is lost. Try again shortly.",
  );
}

/** Records grouped by kind, each group in the order given, groups in order of first appearance. */
function groupByKind(records: OutboxRecord[]): Map<string, OutboxRecord[]> {
  const groups = new Map<string, OutboxRecord[]>();
  for (const record of records) {
    const group = groups.get(record.kind);
    if (group) group.push(record);
    else groups.set(record.kind, [record]);
  }
  return groups;
}

/**
 * Outbox records and dead letters counted at most: the operations page polls every few seconds,
 * and counting reads each record. At the limit the page shows "1000+".
 */
export const BACKLOG_COUNT_LIMIT = 1_000;

/** Work the store still holds, over every isolate, each count stopping at its `limit`. */
export interface StoreBacklog {
  /** Outbox records the history writers have still to write. */
  outboxRecords: number;
  /** Seconds since the oldest of them was decided; null when there is none. */
  oldestOutboxAgeSeconds: number | null;
  /** Jobs and outbox records that failed every retry. */
  deadLetters: number;
}

/**
 * What the store still holds (the operations page and the backlog gauges), counted up to `limit`
 * each, since counting reads every record. Strong, so a record just applied is gone.
 */
export async function storeBacklog(kv: Deno.Kv, now: number, limit: number): Promise<StoreBacklog> {
  let outboxRecords = 0;
  let oldestAt: number | null = null;
  const counting = countDeadLetters(kv, limit);
  for await (const entry of kv.list<OutboxRecord>({ prefix: outboxPrefix() }, { limit })) {
    // Ids are time-ordered, so the first is the oldest.
    oldestAt ??= entry.value.createdAt;
    outboxRecords++;
  }
  return {
    outboxRecords,
    oldestOutboxAgeSeconds: oldestAt === null
      ? null
      : Math.max(0, Math.round((now - oldestAt) / 1000)),
    deadLetters: await counting,
  };
}
