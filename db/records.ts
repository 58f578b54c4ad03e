// The records KV decides and the outbox carries to Postgres, declared once, below the decisions
// (kv/) that make them and the history (db/<feature>.ts) that stores them, and imported upward.
// A record that mirrors its table is derived from it (`recordOf`), so a column is added in one
// place; the others differ from their rows in shape (nested participants, a sale's items).
import { type Column, getTableColumns, type InferInsertModel, type Table } from "drizzle-orm";
import { z } from "zod";
import {
  type AttachmentRef,
  type ConnectionStatus,
  GENDERS,
  INTERVIEW_STATES,
  interviews,
  ORDER_STATUSES,
  orders,
  RESERVATION_STATUSES,
  reservations,
} from "./schema.ts";

/** A column's value as KV holds it: times as milliseconds since the epoch. */
type Stored<C extends Column> = C["_"]["data"] extends Date ? number : C["_"]["data"];
type FieldOf<C extends Column> = C["_"]["notNull"] extends true ? Stored<C> : Stored<C> | null;
type Columns<T extends Table> = T["_"]["columns"];

/** Whether a column's TypeScript type is all its SQL type holds (no $type: no enum, no JSON shape). */
type Wide<D> = unknown extends D ? false
  : string extends D ? true
  : number extends D ? true
  : boolean extends D ? true
  : Date extends D ? true
  : string[] extends D ? true
  : false;

/** The columns whose schema must be given: enums and JSON shapes declared with `$type`. */
type Narrowed<T extends Table> = {
  [K in keyof Columns<T>]: Wide<Columns<T>[K]["_"]["data"]> extends true ? never : K;
}[keyof Columns<T>];

/**
 * The zod schema of a record that mirrors `table`, one field per column. A column declared with a
 * narrower type than its SQL one (an enum, a JSON shape) must be given its schema in `narrowed`:
 * the compiler asks for exactly those.
 */
export function recordOf<
  T extends Table,
  N extends { [K in Narrowed<T>]: z.ZodType<FieldOf<Columns<T>[K]>> },
>(
  table: T,
  narrowed: N,
): z.ZodObject<{ [K in keyof Columns<T>]: z.ZodType<FieldOf<Columns<T>[K]>> }> {
  const shape: Record<string, z.ZodType> = {};
  for (const [name, column] of Object.entries(getTableColumns(table)) as [string, Column][]) {
    const given = (narrowed as Record<string, z.ZodType>)[name];
    const field = given ?? fieldOf(column);
    shape[name] = column.notNull || given ? field : field.nullable();
  }
  return z.object(shape) as never;
}

/** The row `table` stores for `record` (which may carry more, KV-only fields): times as Dates. */
export function rowOf<T extends Table>(
  table: T,
  record: { [K in keyof Columns<T>]: FieldOf<Columns<T>[K]> },
): InferInsertModel<T> {
  const row: Record<string, unknown> = {};
  for (const [name, column] of Object.entries(getTableColumns(table)) as [string, Column][]) {
    const value = (record as Record<string, unknown>)[name];
    row[name] = column.dataType === "date" && typeof value === "number" ? new Date(value) : value;
  }
  return row as InferInsertModel<T>;
}

type Millis<V> = V extends Date ? number : V;

/** The record a row holds: times as milliseconds since the epoch. */
export function recordFromRow<R extends Record<string, unknown>>(
  row: R,
): { [K in keyof R]: Millis<R[K]> } {
  return Object.fromEntries(
    Object.entries(row).map((
      [name, value],
    ) => [name, value instanceof Date ? value.getTime() : value]),
  ) as { [K in keyof R]: Millis<R[K]> };
}

function fieldOf(column: Column): z.ZodType {
  switch (column.dataType) {
    case "string":
      return z.string();
    case "number":
      return column.columnType === "PgInteger" ? z.number().int() : z.number();
    case "boolean":
      return z.boolean();
    case "date":
      return z.number();
    case "array":
      return z.array(z.string());
    default:
      throw new Error(`column ${column.name}: give its schema (${column.dataType})`);
  }
}

export interface ChatMessage {
  id: string;
  conversationId: string;
  /** Position in the conversation; the order both participants see. */
  seq: number;
  fromUserId: string;
  toUserId: string;
  text: string;
  tempId: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** Private files sent with it (absent in records from before attachments). */
  attachments?: AttachmentRef[];
}

export interface ConnectionRequest {
  id: string;
  fromUserId: string;
  toUserId: string;
  message: string | null;
  status: ConnectionStatus;
  /** 1 when sent; +1 on every transition. */
  version: number;
  /** Milliseconds since the epoch. */
  createdAt: number;
  updatedAt: number;
}

/** A decided transition: the request as it now is, and the status it left. */
export interface ConnectionTransition {
  request: ConnectionRequest;
  from: ConnectionStatus | null;
  actorId: string;
}

/**
 * An interview as KV holds it and as the outbox carries it to Postgres (parsed when applied): its
 * row, times in milliseconds since the epoch; `weightedScore` is Σ weight × score / Σ weight on the
 * 0..10 scale, rounded to two decimals; `expiresAt` is `startedAt` + the time limit.
 */
export const interviewSchema = recordOf(interviews, {
  rubric: z.array(z.object({ criterion: z.string(), weight: z.number() })),
  state: z.enum(INTERVIEW_STATES),
  metrics: z.object({
    answerLength: z.number(),
    wordCount: z.number(),
    criteriaMentioned: z.array(z.string()),
    rubricCoverage: z.number(),
  }).nullable(),
  scores: z.array(z.object({ criterion: z.string(), score: z.number() })).nullable(),
  /** Records from before media have none. */
  mediaIds: z.array(z.string()).default([]),
});

export type Interview = z.infer<typeof interviewSchema>;

export const INTERVIEW_ACTIONS = [
  "start",
  "submit",
  "evaluate",
  "score",
  "cancel",
  "expire",
] as const;

export type InterviewAction = (typeof INTERVIEW_ACTIONS)[number];

/** A decided transition: the interview as it now is, and what it was. */
export const interviewTransitionSchema = z.object({
  interview: interviewSchema,
  action: z.enum(["create", ...INTERVIEW_ACTIONS]),
  from: z.enum(INTERVIEW_STATES).nullable(),
  /** Null when the system moved it (evaluation, expiry). */
  actorId: z.string().nullable(),
});

export type InterviewTransition = z.infer<typeof interviewTransitionSchema>;

export const participantSchema = z.object({
  id: z.string(),
  name: z.string(),
  /** From the stored profile at the time of joining; never from the client. */
  gender: z.enum(GENDERS),
});

export type Participant = z.infer<typeof participantSchema>;

export const END_REASONS = ["timeout", "ended", "blocked"] as const;
export type EndReason = (typeof END_REASONS)[number];

/** A match as KV holds it and as the outbox carries it to Postgres. */
export const matchSchema = z.object({
  id: z.string(),
  intent: z.string(),
  /** The member who waited longer; makes the WebRTC offer. */
  offerer: participantSchema,
  answerer: participantSchema,
  state: z.enum(["live", "ended"]),
  /** 1 when paired; +1 on every decision. */
  version: z.number().int(),
  /** Milliseconds since the epoch (these and every time below). */
  startedAt: z.number(),
  endsAt: z.number(),
  endedAt: z.number().nullable(),
  endReason: z.enum(END_REASONS).nullable(),
  /** The participant who ended it (hung up or blocked); null when time ran out. */
  endedBy: z.string().nullable(),
  /** Participants who asked to connect (when both must). */
  connectAsks: z.array(z.string()),
  connectedAt: z.number().nullable(),
  videoRequestedBy: z.string().nullable(),
  videoApprovedAt: z.number().nullable(),
  videoApprovedBy: z.string().nullable(),
});

export type Match = z.infer<typeof matchSchema>;

/** The outcome history records: a block, else a connection, else how the call ended. */
export function outcomeOf(match: Match) {
  if (match.state !== "ended") return null;
  if (match.endReason === "blocked") return "blocked" as const;
  if (match.connectedAt !== null) return "connected" as const;
  return match.endReason!;
}

/** An order as KV holds it: its row, and where the buyer pays. */
export const orderSchema = recordOf(orders, {
  kind: z.enum(["reservation", "membership"]),
  status: z.enum(ORDER_STATUSES),
}).extend({
  /** Where the buyer pays, once the provider has given it. */
  paymentUrl: z.string().nullable(),
});

export type Order = z.infer<typeof orderSchema>;

/** A provider's verified notification about an order's payment. */
export interface PaymentEvent {
  provider: string;
  /** The provider's event id: applied once. */
  id: string;
  /** A payment's outcome, or (recorded, deciding nothing) what became of a refund asked for. */
  type: typeof PAYMENT_EVENT_TYPES[number];
  orderId: string;
  amountCents: number;
  currency: string;
  /** The provider's own reference for the charge (what a refund names). */
  reference: string;
  /** When the webhook arrived (ms); absent on events recorded before payloads were kept. */
  receivedAt?: number;
  /** The provider's event as it sent it, kept with its history row (see `keptPayload`). */
  payload?: unknown;
}

/** A provider's event body is kept whole up to this many bytes, else as a note of its size. */
export const PAYLOAD_KEPT_BYTES = 16 * 1024;

/**
 * What a payment's history row keeps of the provider's raw event body: the JSON itself, or, past
 * PAYLOAD_KEPT_BYTES (it travels in a KV value on its way), `{ truncated: true, bytes }`.
 */
export function keptPayload(rawBody: string): unknown {
  const bytes = new TextEncoder().encode(rawBody).length;
  if (bytes > PAYLOAD_KEPT_BYTES) return { truncated: true, bytes };
  return JSON.parse(rawBody);
}

/**
 * What a payment event did: `paid` (the order is paid), `refunded` (money came for something that
 * cannot be delivered, and goes back), `cancelled` (a failed payment released the hold), `ignored`;
 * `recorded` for a refund's outcome, which changes no order.
 */
export const PAYMENT_OUTCOMES = ["paid", "refunded", "cancelled", "ignored", "recorded"] as const;
export type PaymentOutcome = typeof PAYMENT_OUTCOMES[number];
export const PAYMENT_EVENT_TYPES = [
  "succeeded",
  "failed",
  "refund-completed",
  "refund-failed",
] as const;

export const saleSchema = z.object({
  id: z.string(),
  /** Milliseconds since the epoch (these and every time below). */
  startsAt: z.number(),
  endsAt: z.number(),
  /** Units one buyer may hold or have bought in this sale, all items together. */
  perUserLimit: z.number().int(),
  /** Stock counters per item (fewer when an item has less stock than this). */
  shards: z.number().int(),
  items: z.array(z.object({
    productId: z.string(),
    name: z.string(),
    priceCents: z.number().int(),
    currency: z.string(),
    /** Units it went on sale with (its shards are counted from this). */
    stock: z.number().int(),
    /** Units an admin added during the sale (spread over its shards). */
    restocked: z.number().int().optional(),
  })),
  createdAt: z.number(),
  /** When an admin ended it before its time (`endsAt` is then that time too). */
  endedEarlyAt: z.number().optional(),
  /** When an admin called it off (it ended then too: `endedEarlyAt`). */
  cancelledAt: z.number().optional(),
  /** Counts the definition's changes (absent: 1, as created): history keeps the newest. */
  version: z.number().int().optional(),
});

export type Sale = z.infer<typeof saleSchema>;
export type SaleItem = Sale["items"][number];
export const SALE_STATUSES = ["scheduled", "live", "sold-out", "ended", "cancelled"] as const;
export type SaleStatus = typeof SALE_STATUSES[number];

/** A hold as KV holds it: its row, and the units it took from each stock shard. */
export const reservationSchema = recordOf(reservations, {
  status: z.enum(RESERVATION_STATUSES),
}).extend({
  /** The units taken from each stock shard, as [shard, units]; a release returns them there. */
  taken: z.array(z.tuple([z.number().int(), z.number().int()])),
});

export type Reservation = z.infer<typeof reservationSchema>;
