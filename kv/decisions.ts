// The one way a decision commits. A decision reads what it checks (one batched read), builds an
// atomic operation with its checks and its new state, and hands it here with what it causes: the
// events for its participants' logs (appended after the heads it read with the rest) and the
// outbox records of its history, notifications and jobs. One commit writes all of it; once it
// succeeded, the records go to this isolate's history writer and the events to this isolate's
// sockets (kv/store.ts tells the hub). A lost race changes nothing and the caller decides again.
import { appendEvents, type EventDraft } from "./events.ts";
import type { Coordination, OutboxRecord } from "./outbox.ts";
import { inSpan, instruments } from "../telemetry.ts";

/** What a decision causes besides its own state. */
export interface Effects {
  events?: EventDraft[];
  /** The head entries of every recipient of `events`, read with the decision's checks. */
  heads?: Deno.KvEntryMaybe<unknown>[];
  /** When the events happened (ms); the decision's clock by default. */
  at?: number;
  records?: OutboxRecord[];
  /** What is decided, for its span and counter (`chat.send`, `sales.hold`, `match.pair`, …). */
  operation?: string;
}

/**
 * Commits `atomic` with its effects: the commit's result (its versionstamp is every written key's)
 * when it committed, null when a check failed.
 */
export function commitDecision(
  deps: Coordination,
  atomic: Deno.AtomicOperation,
  effects: Effects = {},
): Promise<Deno.KvCommitResult | null> {
  const { events = [], heads = [], records = [], operation = "decision" } = effects;
  return inSpan("kv.decision", {
    "convene.operation": operation,
    "convene.events": events.length,
    "convene.records": records.length,
  }, async (span) => {
    if (events.length > 0) appendEvents(atomic, heads, events, effects.at ?? deps.now());
    deps.outbox.write(atomic, ...records);
    const result = await atomic.commit();
    const outcome = result.ok ? "committed" : "lost";
    span.setAttribute("convene.outcome", outcome);
    instruments.decisions.add(1, { "convene.operation": operation, "convene.outcome": outcome });
    if (!result.ok) return null;
    deps.outbox.afterCommit(...records);
    return result;
  });
}
