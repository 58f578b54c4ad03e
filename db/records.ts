// The records KV decides and the outbox carries to Postgres, declared once, below the decisions
// (kv/) that make them and the history (db/<feature>.ts) that stores them, and imported upward.
// A record's enums come from the tables (schema.ts).
import { z } from "zod";
import {
  type ConnectionStatus,
  GENDERS,
  INTERVIEW_STATES,
  ORDER_STATUSES,
  RESERVATION_STATUSES,
} from "./schema.ts";

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

/** An interview as KV holds it and as the outbox carries it to Postgres (parsed when applied). */
export const interviewSchema = z.object({
  id: z.string(),
  interviewerId: z.string(),
  candidateId: z.string(),
  skill: z.string(),
  prompt: z.string(),
  rubric: z.array(z.object({ criterion: z.string(), weight: z.number() })),
  timeLimitMinutes: z.number().int(),
  state: z.enum(INTERVIEW_STATES),
  /** 1 when created; +1 on every transition. */
  version: z.number().int(),
  answer: z.string().nullable(),
  /** Files the candidate submitted with the answer (records from before media have none). */
  mediaIds: z.array(z.string()).default([]),
  metrics: z.object({
    answerLength: z.number(),
    wordCount: z.number(),
    criteriaMentioned: z.array(z.string()),
    rubricCoverage: z.number(),
  }).nullable(),
  scores: z.array(z.object({ criterion: z.string(), score: z.number() })).nullable(),
  feedback: z.string().nullable(),
  /** Σ weight × score / Σ weight, on the 0..10 scale, rounded to two decimals. */
  weightedScore: z.number().nullable(),
  passed: z.boolean().nullable(),
  /** Milliseconds since the epoch (these and every time below). */
  createdAt: z.number(),
  updatedAt: z.number(),
  startedAt: z.number().nullable(),
  /** The deadline of a started interview: `startedAt` + the time limit. */
  expiresAt: z.number().nullable(),
  submittedAt: z.number().nullable(),
  scoredAt: z.number().nullable(),
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

export const orderSchema = z.object({
  id: z.string(),
  userId: z.string(),
  kind: z.enum(["reservation", "membership"]),
  reservationId: z.string().nullable(),
  tier: z.string().nullable(),
  description: z.string(),
  /** Decided by the server, never taken from a request. */
  amountCents: z.number().int(),
  currency: z.string(),
  status: z.enum(ORDER_STATUSES),
  provider: z.string(),
  /** Where the buyer pays, once the provider has given it. */
  paymentUrl: z.string().nullable(),
  /** 1 when created; +1 on every status change. */
  version: z.number().int(),
  /** Milliseconds since the epoch. */
  createdAt: z.number(),
  updatedAt: z.number(),
  paidAt: z.number().nullable(),
  refundedAt: z.number().nullable(),
});

export type Order = z.infer<typeof orderSchema>;

/** A provider's verified notification about an order's payment. */
export interface PaymentEvent {
  provider: string;
  /** The provider's event id: applied once. */
  id: string;
  type: "succeeded" | "failed";
  orderId: string;
  amountCents: number;
  currency: string;
  /** The provider's own reference for the charge (what a refund names). */
  reference: string;
}

/**
 * What a payment event did: `paid` (the order is paid), `refunded` (money came for something that
 * cannot be delivered, and goes back), `cancelled` (a failed payment released the hold), `ignored`.
 */
export type PaymentOutcome = "paid" | "refunded" | "cancelled" | "ignored";

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
    stock: z.number().int(),
  })),
  createdAt: z.number(),
});

export type Sale = z.infer<typeof saleSchema>;
export type SaleItem = Sale["items"][number];
export type SaleStatus = "scheduled" | "live" | "ended" | "sold-out";

export const reservationSchema = z.object({
  id: z.string(),
  saleId: z.string(),
  productId: z.string(),
  userId: z.string(),
  quantity: z.number().int(),
  /** Decided by the server: the sale price × quantity. */
  amountCents: z.number().int(),
  currency: z.string(),
  /** The units taken from each stock shard, as [shard, units]; a release returns them there. */
  taken: z.array(z.tuple([z.number().int(), z.number().int()])),
  status: z.enum(RESERVATION_STATUSES),
  /** 1 when created; +1 on every change. */
  version: z.number().int(),
  orderId: z.string().nullable(),
  expiresAt: z.number(),
  createdAt: z.number(),
  updatedAt: z.number(),
});

export type Reservation = z.infer<typeof reservationSchema>;
