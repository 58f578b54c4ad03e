// Buying: holds, checkout through the payment provider, memberships, provider webhooks, and the
// sweep that expires overdue holds.
import { z } from "zod";
import type { Deps } from "../../deps.ts";
import { listPendingOrders, listReservations } from "../../db/sales.ts";
import { findUserById } from "../../db/users.ts";
import { keptPayload, recordFromRow } from "../../db/records.ts";
import { settledHistory } from "../history.ts";
import { NotFound, Unauthorized } from "../../errors.ts";
import { newId } from "../../ids.ts";
import { listDue } from "../../kv/due.ts";
import { reservationDuePrefix } from "../../kv/keys.ts";
import {
  applyPayment,
  cancelOrder,
  checkoutReservation,
  createOrder,
  expireReservation,
  type PaymentResult,
  readOrder,
  refundPaidOrder,
  releaseReservation,
  setPaymentUrl,
} from "../../kv/sales/orders.ts";
import { coordination } from "../../kv/outbox.ts";
import { readSale, reserveStock } from "../../kv/sales/stock.ts";
import type { Order, PaymentEvent, Reservation } from "../../db/records.ts";
import { id } from "../../input.ts";
import { inSpan, instruments } from "../../telemetry.ts";
import { paymentRecord, reserveEffects, settlementEffects } from "./effects.ts";
import { auditRecord } from "../audit.ts";

const SWEEP_BATCH = 500;

/** Membership tiers at their server-side prices; a request names the tier, never the price. */
export const MEMBERSHIP_TIERS = {
  pro: { name: "Convene Pro membership", amountCents: 900, currency: "USD" },
  patron: { name: "Convene Patron membership", amountCents: 2900, currency: "USD" },
} as const;

export type MembershipTier = keyof typeof MEMBERSHIP_TIERS;

export const reservationInput = z.strictObject({
  productId: id,
  quantity: z.number().int().min(1).max(1000).default(1),
  // A price or amount in the body is ignored: the hold's amount is the sale's price × quantity.
});

export const membershipInput = z.strictObject({
  tier: z.enum(Object.keys(MEMBERSHIP_TIERS) as [MembershipTier, ...MembershipTier[]]),
  // A price in the body is ignored: tiers have server-side prices.
});

/** An `Idempotency-Key` header: 1–200 visible ASCII characters. */
export const idempotencyKey = z.string().regex(
  /^[\x21-\x7e]{1,200}$/,
  "1–200 visible ASCII characters",
);

/** A hold as its buyer sees it (from KV, or from its history row made a record). */
export function reservationView(reservation: Omit<Reservation, "taken" | "version" | "updatedAt">) {
  return {
    id: reservation.id,
    saleId: reservation.saleId,
    productId: reservation.productId,
    quantity: reservation.quantity,
    amountCents: reservation.amountCents,
    currency: reservation.currency,
    status: reservation.status,
    orderId: reservation.orderId,
    expiresAt: new Date(reservation.expiresAt).toISOString(),
    createdAt: new Date(reservation.createdAt).toISOString(),
  };
}

export async function reserve(
  deps: Deps,
  userId: string,
  saleId: string,
  input: z.infer<typeof reservationInput>,
  key: string | undefined,
) {
  const sale = await readSale(deps.kv, saleId);
  if (!sale) throw new NotFound("No sale has this id.");
  return await reserveStock(coordination(deps), {
    sale,
    userId,
    productId: input.productId,
    quantity: input.quantity,
    idempotencyKey: key,
    ttlMs: deps.config.RESERVATION_TTL_SECONDS * 1000,
  }, reserveEffects(deps));
}

export async function release(deps: Deps, userId: string, reservationId: string) {
  return await releaseReservation(
    coordination(deps),
    userId,
    reservationId,
    settlementEffects(deps),
  );
}

/** An admin refunds a paid order through its provider; the buyer is notified. */
export async function refund(deps: Deps, adminId: string, orderId: string) {
  return await refundPaidOrder(coordination(deps), orderId, (settlement) => [
    ...settlementEffects(deps)(settlement),
    auditRecord(deps, {
      actorId: adminId,
      action: "order.refund",
      subject: { type: "order", id: orderId },
      detail: { amountCents: settlement.order?.after.amountCents },
    }),
  ]);
}

/** The buyer cancels their unpaid order; its hold's units go back on sale at once. */
export async function cancel(deps: Deps, userId: string, orderId: string) {
  return await cancelOrder(coordination(deps), userId, orderId, settlementEffects(deps));
}

/**
 * The order paying for a hold, and where to pay it. A first checkout starts the payment with the
 * provider and stores the order with its payment page in one commit (the buyer's email is read
 * meanwhile); a repeated one answers the stored order.
 */
export async function checkout(deps: Deps, userId: string, reservationId: string) {
  const buyer = findUserById(deps.database.db, userId);
  buyer.catch(() => {}); // awaited only for a new order; a failure is met there
  const order = await checkoutReservation(
    coordination(deps),
    userId,
    reservationId,
    async (reservation, now) => {
      const item = (await readSale(deps.kv, reservation.saleId))?.items
        .find((candidate) => candidate.productId === reservation.productId);
      const order = newOrder(deps, {
        userId,
        kind: "reservation",
        reservationId: reservation.id,
        tier: null,
        description: `${reservation.quantity} × ${item?.name ?? reservation.productId}`,
        amountCents: reservation.amountCents,
        currency: reservation.currency,
      }, now);
      return { ...order, paymentUrl: await paymentPage(deps, order, await buyer) };
    },
    settlementEffects(deps),
  );
  return await startPayment(deps, order);
}

export async function buyMembership(deps: Deps, userId: string, tier: MembershipTier) {
  const price = MEMBERSHIP_TIERS[tier];
  const order = await createOrder(
    coordination(deps),
    newOrder(deps, {
      userId,
      kind: "membership",
      reservationId: null,
      tier,
      description: price.name,
      amountCents: price.amountCents,
      currency: price.currency,
    }, deps.clock.now()),
    settlementEffects(deps),
  );
  return await startPayment(deps, order);
}

function newOrder(
  deps: Deps,
  order: Pick<
    Order,
    "userId" | "kind" | "reservationId" | "tier" | "description" | "amountCents" | "currency"
  >,
  now: number,
): Order {
  return {
    ...order,
    id: newId(now),
    status: "pending",
    provider: deps.payments.name,
    paymentUrl: null,
    version: 1,
    createdAt: now,
    updatedAt: now,
    paidAt: null,
    refundedAt: null,
  };
}

/** Where to pay `order`: stored with it, or started now and stored (an order made without one). */
async function startPayment(deps: Deps, order: Order) {
  if (order.paymentUrl) return { orderId: order.id, paymentUrl: order.paymentUrl };
  const paymentUrl = await paymentPage(
    deps,
    order,
    await findUserById(deps.database.db, order.userId),
  );
  await setPaymentUrl(deps.kv, order.id, paymentUrl);
  return { orderId: order.id, paymentUrl };
}

/** Starts the payment of `order` with the provider: the page where its buyer pays. */
function paymentPage(deps: Deps, order: Order, buyer: { email: string } | null | undefined) {
  if (!buyer) throw new Unauthorized("This account no longer exists.");
  return deps.payments.start({
    orderId: order.id,
    amountCents: order.amountCents,
    currency: order.currency,
    email: buyer.email,
    description: order.description,
  });
}

/**
 * A webhook delivery: verified on its raw body by the provider, then applied once; a `webhook`
 * span under the request's, with what it came to.
 */
export function receiveWebhook(
  deps: Deps,
  provider: string,
  headers: Headers,
  rawBody: string,
): Promise<PaymentResult & { eventId: string | null }> {
  return inSpan("webhook", { "convene.webhook.source": provider }, async (span) => {
    if (provider !== deps.payments.name) {
      throw new NotFound(
        `Payments go through ${deps.payments.name}; ${provider} is not configured.`,
      );
    }
    const receivedAt = deps.clock.now();
    const verified = await deps.payments.verify(headers, rawBody, receivedAt);
    const event = verified && { ...verified, receivedAt, payload: keptPayload(rawBody) };
    if (!event) {
      span.setAttribute("convene.outcome", "ignored");
      return { outcome: "ignored", order: null, repeated: false, eventId: null };
    }
    const result = event.type === "refund-completed" || event.type === "refund-failed"
      ? await recordRefundOutcome(deps, event)
      : await applyPayment(coordination(deps), event, settlementEffects(deps));
    const outcome = result.repeated ? "repeated" : result.outcome;
    span.setAttributes({ "convene.outcome": outcome, "convene.order.id": event.orderId });
    instruments.payments.add(1, {
      "convene.provider": provider,
      "convene.outcome": outcome,
      "convene.via": "webhook",
    });
    if (result.outcome === "unknown-order") {
      deps.log({
        level: "warn",
        msg: "payment for an unknown order",
        eventId: event.id,
        orderId: event.orderId,
      });
    }
    return { ...result, eventId: event.id };
  });
}

/**
 * What became of a refund asked for: a payment row of its own (once per event id), deciding
 * nothing; a failed one is logged as an error, for an admin to return the money by hand.
 */
async function recordRefundOutcome(deps: Deps, event: PaymentEvent): Promise<PaymentResult> {
  const order = await readOrder(deps.kv, event.orderId);
  if (!order) return { outcome: "unknown-order", order: null, repeated: false };
  await deps.outbox.send(
    paymentRecord(deps, { event, outcome: "recorded", buyerId: order.userId }),
  );
  if (event.type === "refund-failed") {
    deps.log({
      level: "error",
      msg: "refund failed: return the money by hand",
      orderId: order.id,
      provider: event.provider,
      amountCents: event.amountCents,
    });
  }
  return { outcome: "recorded", order, repeated: false };
}

/** The cron sweep: expires every overdue hold whose job has not (a lost or late message). */
export async function sweepReservations(deps: Deps) {
  const due = await listDue<string>(deps.kv, reservationDuePrefix(), deps.clock.now(), SWEEP_BATCH);
  let expired = 0;
  for (const entry of due) {
    const reservation = await expireReservation(
      coordination(deps),
      entry.value,
      settlementEffects(deps),
    );
    if (reservation) expired++;
  }
  if (expired > 0) deps.log({ level: "info", msg: "reservations swept", expired });
  return { expired };
}

/** The buyer's holds, newest first (history, once what they just decided is written). */
export async function myReservations(
  deps: Deps,
  userId: string,
  page: { cursor?: string; limit: number },
) {
  const { items, nextCursor } = await listReservations(
    await settledHistory(deps),
    userId,
    page,
  );
  return { items: items.map((row) => reservationView(recordFromRow(row))), nextCursor };
}

/** An order pending this long is asked about: its webhook may have been lost. */
export const RECONCILE_AFTER_MS = 5 * 60 * 1000;
/** Orders older than this are no longer asked about (a membership order never expires). */
const RECONCILE_WITHIN_MS = 24 * 60 * 60 * 1000;
/** Orders asked about per sweep, at most (a minute's worth of provider calls). */
const RECONCILE_BATCH = 50;

/**
 * The reconciliation sweep: for each order pending between RECONCILE_AFTER_MS and a day, asks the
 * provider how its payment went and applies the answer as its webhook would have been (the same
 * event id, so a webhook that does arrive after is a repeat). A lost webhook still ends in `paid`
 * or `cancelled` (or `refunded`, when the hold expired first).
 */
export async function reconcilePayments(deps: Deps) {
  const now = deps.clock.now();
  const pending = await listPendingOrders(
    deps.database.db,
    deps.payments.name,
    new Date(now - RECONCILE_WITHIN_MS),
    new Date(now - RECONCILE_AFTER_MS),
    RECONCILE_BATCH,
  );
  const outcomes: Record<string, number> = {};
  for (const { id } of pending) {
    // History may lag KV: an order settled meanwhile is not asked about.
    if ((await readOrder(deps.kv, id))?.status !== "pending") continue;
    const found = await deps.payments.status(id).catch((error) => {
      deps.log({ level: "warn", msg: "payment status unknown", orderId: id, error: String(error) });
      return null;
    });
    if (!found) continue;
    const event = { ...found, receivedAt: deps.clock.now() };
    const result = await applyPayment(coordination(deps), event, settlementEffects(deps));
    const outcome = result.repeated ? "repeated" : result.outcome;
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    instruments.payments.add(1, {
      "convene.provider": deps.payments.name,
      "convene.outcome": outcome,
      "convene.via": "reconciliation",
    });
  }
  if (Object.keys(outcomes).length > 0) {
    deps.log({ level: "info", msg: "payments reconciled", ...outcomes });
  }
  return outcomes;
}
