// The transactional outbox: a side effect is written into the same KV commit that decides it,
// applied right after that commit, and applied by the sweep if the process died in between.
import type { z } from "zod";
import type { Clock, Deps, Logger } from "../app.ts";
import { newId } from "../ids.ts";
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

export const coordination = (deps: Pick<Deps, "kv" | "outbox" | "clock">): Coordination => ({
  kv: deps.kv,
  outbox: deps.outbox,
  now: deps.clock.now,
});

/** Records younger than this are left to the request that wrote them. */
export const SWEEP_GRACE_MS = 30_000;
/** At most this many records per sweep, so one sweep stays well inside a cron tick. */
const SWEEP_BATCH = 1000;

export class Outbox {
  #appliers = new Map<string, Applier>();

  constructor(
    private readonly kv: Deno.Kv,
    private readonly clock: Clock,
    private readonly log: Logger,
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
   * Applies records right after their commit succeeded. Never throws: a failure is logged and the
   * record stays for the sweep, because the decision it belongs to has already been made.
   */
  async apply(...records: OutboxRecord[]): Promise<void> {
    await Promise.all(records.map(async (record) => {
      const entry = await this.kv.get<OutboxRecord>(outboxKey(record.id));
      if (entry.value) await this.#applyEntry(entry as Deno.KvEntry<OutboxRecord>);
    }));
  }

  /** Applies every record older than the grace period, oldest first (the cron sweep). */
  async sweep(): Promise<{ applied: number; failed: number }> {
    const cutoff = this.clock.now() - SWEEP_GRACE_MS;
    let applied = 0;
    let failed = 0;
    for await (
      const entry of this.kv.list<OutboxRecord>({ prefix: [...outboxPrefix()] }, {
        limit: SWEEP_BATCH,
      })
    ) {
      // Ids are time-ordered: once one record is too young, so are the rest.
      if (entry.value.createdAt > cutoff) break;
      if (await this.#applyEntry(entry)) applied++;
      else failed++;
    }
    if (applied + failed > 0) this.log({ level: "info", msg: "outbox swept", applied, failed });
    return { applied, failed };
  }

  async #applyEntry(entry: Deno.KvEntry<OutboxRecord>): Promise<boolean> {
    const record = entry.value;
    const apply = this.#appliers.get(record.kind);
    try {
      if (!apply) throw new Error(`no applier for outbox kind "${record.kind}"`);
      await apply(record.payload, record);
    } catch (error) {
      const lastError = error instanceof Error ? error.message : String(error);
      this.log({
        level: "error",
        msg: "outbox apply failed",
        kind: record.kind,
        recordId: record.id,
        attempts: record.attempts + 1,
        error: lastError,
      });
      await this.kv.atomic().check(entry)
        .set(entry.key, { ...record, attempts: record.attempts + 1, lastError })
        .commit();
      return false;
    }
    // A concurrent apply may have deleted it already; the effect is idempotent either way.
    await this.kv.atomic().check(entry).delete(entry.key).commit();
    return true;
  }
}
