// The transactional outbox: a side effect is written into the same KV commit that decides it,
// applied right after that commit, and applied by the sweep if the process died in between. A
// record that keeps failing becomes a dead letter, so it never holds back the others.
import type { z } from "zod";
import { isPermanentFailure, PermanentFailure } from "../errors.ts";
import { idTime, newId } from "../ids.ts";
import { addDeadLetter, type DeadLetterRecord } from "./dead-letters.ts";
import { outboxKey, outboxPrefix } from "./keys.ts";

export interface OutboxRecord {
  id: string;
  kind: string;
  payload: unknown;
  /** Milliseconds since the epoch. */
  createdAt: number;
  attempts: number;
  lastError?: string;
}

/** Applies one record's side effect. Must be idempotent, keyed by `record.id`: it may run twice. */
type Applier = (payload: unknown, record: OutboxRecord) => Promise<void>;

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

/** Records younger than this are left to the request that wrote them. */
export const SWEEP_GRACE_MS = 30_000;
/** Failed applies before a record becomes a dead letter (about one per sweep, so ~5 minutes). */
export const OUTBOX_MAX_ATTEMPTS = 5;
/** The sweep reads the outbox in pages of this many, past any that fail. */
const SWEEP_PAGE = 500;

type Outcome = "applied" | "failed" | "deadLettered";
export type SweepResult = Record<Outcome, number>;

export class Outbox {
  #appliers = new Map<string, Applier>();

  constructor(
    private readonly kv: Deno.Kv,
    private readonly clock: { now(): number },
    private readonly log: (record: Record<string, unknown>) => void,
  ) {}

  register<S extends z.ZodType>(
    kind: string,
    schema: S,
    apply: (payload: z.infer<S>, record: OutboxRecord) => Promise<void>,
  ): this {
    if (this.#appliers.has(kind)) throw new Error(`outbox kind "${kind}" is registered twice`);
    this.#appliers.set(kind, (payload, record) => apply(schema.parse(payload), record));
    return this;
  }

  /** A new record; write it with `write` inside the deciding commit, then `apply` it. */
  record(kind: string, payload: unknown): OutboxRecord {
    if (!this.#appliers.has(kind)) throw new Error(`outbox kind "${kind}" is not registered`);
    const now = this.clock.now();
    return { id: newId(now), kind, payload, createdAt: now, attempts: 0 };
  }

  /** Adds the records to a commit that has not run yet. */
  write(atomic: Deno.AtomicOperation, ...records: OutboxRecord[]): Deno.AtomicOperation {
    for (const record of records) atomic.set(outboxKey(record.id), record);
    return atomic;
  }

  /**
   * For a decision made outside KV (a Postgres write that already committed): stores the
   * records in their own commit, then applies them, so a failed apply is retried by the sweep.
   */
  async send(...records: OutboxRecord[]): Promise<void> {
    if (records.length === 0) return;
    const result = await this.write(this.kv.atomic(), ...records).commit();
    if (!result.ok) throw new Error("outbox records could not be stored");
    await this.apply(...records);
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
    await this.send(record);
  }

  /**
   * Applies records right after their commit succeeded. Never throws: the decision they belong
   * to has already been made, so a failure is logged and the record stays for the sweep.
   */
  async apply(...records: OutboxRecord[]): Promise<void> {
    await Promise.all(records.map(async (record) => {
      try {
        const entry = await this.kv.get<OutboxRecord>(outboxKey(record.id));
        if (entry.value) await this.#applyEntry(entry as Deno.KvEntry<OutboxRecord>);
      } catch (error) {
        this.#logFailure(record, record.attempts, error, "left to the sweep");
      }
    }));
  }

  /**
   * Applies every record older than the grace period, oldest first, paging past the ones that
   * fail (the cron sweep). `graceMs: 0` takes every record: safe at any time, since applying is
   * idempotent, and what start-up does to finish a crashed predecessor's work at once.
   */
  async sweep(options: { graceMs?: number } = {}): Promise<SweepResult> {
    const cutoff = this.clock.now() - (options.graceMs ?? SWEEP_GRACE_MS);
    const result: SweepResult = { applied: 0, failed: 0, deadLettered: 0 };
    let cursor: string | undefined;
    pages: for (;;) {
      const page = this.kv.list<OutboxRecord>({ prefix: [...outboxPrefix()] }, {
        limit: SWEEP_PAGE,
        cursor,
      });
      let seen = 0;
      for await (const entry of page) {
        seen++;
        // Ids are time-ordered: once one record is too young, so are the rest.
        if (entry.value.createdAt > cutoff) break pages;
        result[await this.#applyEntry(entry)]++;
      }
      if (seen < SWEEP_PAGE) break;
      cursor = page.cursor;
    }
    if (result.applied + result.failed + result.deadLettered > 0) {
      this.log({ level: "info", msg: "outbox swept", ...result });
    }
    return result;
  }

  /** Applies one stored record and settles it; never throws. */
  async #applyEntry(entry: Deno.KvEntry<OutboxRecord>): Promise<Outcome> {
    const record = entry.value;
    try {
      const apply = this.#appliers.get(record.kind);
      if (!apply) throw new PermanentFailure(`no applier for outbox kind "${record.kind}"`);
      await apply(record.payload, record);
    } catch (error) {
      return await this.#failed(entry, error);
    }
    // A concurrent apply may have deleted it already; the effect is idempotent either way.
    await this.#settle(record, this.kv.atomic().check(entry).delete(entry.key));
    return "applied";
  }

  /** Counts the failure on the record, or moves it to the dead letters when retrying is over. */
  async #failed(entry: Deno.KvEntry<OutboxRecord>, error: unknown): Promise<Outcome> {
    const record = entry.value;
    const attempts = record.attempts + 1;
    const dead = attempts >= OUTBOX_MAX_ATTEMPTS || isPermanentFailure(error);
    const lastError = this.#logFailure(record, attempts, error, dead ? "dead-lettered" : "retried");
    const atomic = this.kv.atomic().check(entry);
    if (dead) {
      addDeadLetter(
        atomic.delete(entry.key),
        { id: record.id, name: record.kind, payload: record.payload, source: "outbox" },
        { attempts, error: lastError, failedAt: this.clock.now() },
      );
    } else {
      atomic.set(entry.key, { ...record, attempts, lastError });
    }
    await this.#settle(record, atomic);
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
