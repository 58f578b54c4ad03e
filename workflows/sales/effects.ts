// What each sales decision causes, written into its commit: history rows (holds, orders, payments),
// expiry and refund jobs, membership grants and order notifications; and the handlers that apply
// them.
import { z } from "zod";
import type { Deps } from "../../deps.ts";
import {
  grantMembership,
  recordOrders,
  recordPayment,
  recordReservations,
  recordSale,
  revokeMembership,
} from "../../db/sales.ts";
import { readSale, recordPurchase, type SaleEffects } from "../../kv/sales/stock.ts";
import { findUserById } from "../../db/users.ts";
import {
  expireReservation,
  heldReservations,
  releaseReservation,
  type SettlementEffects,
} from "../../kv/sales/orders.ts";
import { Conflict } from "../../errors.ts";
import { type AdminAction, auditRecord } from "../audit.ts";
import { coordination } from "../../kv/outbox.ts";
import {
  orderSchema,
  PAYMENT_EVENT_TYPES,
  PAYMENT_OUTCOMES,
  type PaymentEvent,
  type PaymentOutcome,
  type Reservation,
  reservationSchema,
  saleSchema,
} from "../../db/records.ts";
import { enqueueAll, PermanentJobError } from "../jobs.ts";
import { notifyRecords } from "../notifications.ts";
import { jobRecord } from "../outbox-jobs.ts";
import { id } from "../../input.ts";

const RESERVATION_RECORD = "reservation-record";
const ORDER_RECORD = "order-record";
const PAYMENT_RECORD = "payment-record";
const MEMBERSHIP_GRANT = "membership-grant";
const MEMBERSHIP_REVOKE = "membership-revoke";
const SALE_RECORD = "sale-record";
const SALE_PURCHASE = "sale-purchase";
/** A place longer than this (a profile's free text) is not shown in the feed. */
const PLACE_CHARS = 60;
const EXPIRE_JOB = "reservation-expire";
const REFUND_JOB = "payment-refund";

const SALE_CLOSE_JOB = "sale-close";

const expireJob = z.object({ reservationId: id });
const closeJob = z.object({ saleId: id });
const refundJob = z.object({
  provider: z.string(),
  orderId: z.string(),
  reference: z.string(),
  amountCents: z.number().int(),
});
const paymentPayload = z.object({
  event: z.object({
    provider: z.string(),
    id: z.string(),
    type: z.enum(PAYMENT_EVENT_TYPES),
    orderId: z.string(),
    amountCents: z.number().int(),
    currency: z.string(),
    reference: z.string(),
    receivedAt: z.number().optional(),
    payload: z.unknown().optional(),
  }),
  outcome: z.enum(PAYMENT_OUTCOMES),
  buyerId: z.string(),
  at: z.number(),
});
const grantPayload = z.object({ userId: z.string(), tier: z.string(), at: z.number() });
const revokePayload = z.object({ userId: z.string(), tier: z.string() });
const purchasePayload = z.object({
  saleId: z.string(),
  productId: z.string(),
  buyerId: z.string(),
  at: z.number(),
});

export function registerSales(deps: Deps) {
  const db = deps.database.db;
  deps.outbox.registerBatch(RESERVATION_RECORD, reservationSchema, async (list) => {
    await recordReservations(db, list);
    // The job id is the reservation's: enqueued twice (writer and sweep), it runs once.
    await enqueueAll(
      deps.jobs,
      list.filter((reservation) => reservation.version === 1).map((reservation) => ({
        name: EXPIRE_JOB,
        payload: { reservationId: reservation.id },
        options: {
          jobId: `${EXPIRE_JOB}:${reservation.id}`,
          dedupeId: `${EXPIRE_JOB}:${reservation.id}`,
          delaySeconds: Math.max(0, (reservation.expiresAt - deps.clock.now()) / 1000),
        },
      })),
    );
  });
  deps.outbox.registerBatch(ORDER_RECORD, orderSchema, async (list) => {
    await recordOrders(db, list);
  });
  deps.outbox.register(PAYMENT_RECORD, paymentPayload, async (payment) => {
    await recordPayment(db, { ...payment, at: new Date(payment.at) });
  });
  deps.outbox.register(MEMBERSHIP_GRANT, grantPayload, async ({ userId, tier, at }) => {
    await grantMembership(db, userId, tier, new Date(at));
  });
  deps.outbox.register(SALE_PURCHASE, purchasePayload, async (purchase) => {
    const [buyer, sale] = await Promise.all([
      findUserById(db, purchase.buyerId),
      readSale(deps.kv, purchase.saleId),
    ]);
    const item = sale?.items.find((candidate) => candidate.productId === purchase.productId);
    if (!item) return;
    const place = buyer?.location?.trim() || null;
    await recordPurchase(deps.kv, purchase.saleId, {
      item: item.name,
      place: place && place.length <= PLACE_CHARS ? place : null,
      at: purchase.at,
    });
  });
  deps.outbox.register(SALE_RECORD, saleSchema, async (sale) => {
    await recordSale(db, sale);
  });
  deps.outbox.register(MEMBERSHIP_REVOKE, revokePayload, async ({ userId, tier }) => {
    await revokeMembership(db, userId, tier);
  });
  deps.registry.register(EXPIRE_JOB, expireJob, async ({ reservationId }) => {
    await expireReservation(coordination(deps), reservationId, settlementEffects(deps));
  });
  deps.registry.register(SALE_CLOSE_JOB, closeJob, async ({ saleId }) => {
    await closeSale(deps, saleId);
  });
  deps.registry.register(REFUND_JOB, refundJob, async (charge) => {
    if (charge.provider !== deps.payments.name) {
      throw new PermanentJobError(
        `order ${charge.orderId} was paid through ${charge.provider}, which is no longer ` +
          `configured: refund ${charge.amountCents} by hand`,
      );
    }
    await deps.payments.refund(charge);
    deps.log({ level: "info", msg: "payment refunded", ...charge });
  });
}

/** A payment's history row, processed now. */
export function paymentRecord(
  deps: Deps,
  payment: { event: PaymentEvent; outcome: PaymentOutcome; buyerId: string },
) {
  return deps.outbox.record(PAYMENT_RECORD, { ...payment, at: deps.clock.now() });
}

/**
 * What an admin's change of a sale causes: its history row and its audit entry, and, once it is
 * ended or called off, the job that releases its open holds.
 */
export function saleEffects(deps: Deps, action: AdminAction): SaleEffects {
  return (sale) => [
    deps.outbox.record(SALE_RECORD, sale),
    auditRecord(deps, action),
    ...(sale.endedEarlyAt === undefined
      ? []
      : [jobRecord(deps.outbox, SALE_CLOSE_JOB, { saleId: sale.id })]),
  ];
}

/**
 * Releases every hold a sale ended early (or called off) still has; each buyer is notified, and a
 * pending order of theirs is cancelled (a payment that lands later is refunded). A hold paid for
 * meanwhile stays sold.
 */
async function closeSale(deps: Deps, saleId: string) {
  let released = 0;
  for (const reservation of await heldReservations(deps.kv, saleId)) {
    const effects: SettlementEffects = (settlement) => {
      const records = settlementEffects(deps)(settlement);
      const after = settlement.reservation?.after;
      if (after?.status === "released") {
        records.push(...notifyRecords(deps.outbox, {
          userId: after.userId,
          actorId: after.userId,
          type: "order",
          subjectId: after.orderId ?? after.id,
          eventId: `sale-closed:${after.id}`,
        }));
      }
      return records;
    };
    try {
      const after = await releaseReservation(
        coordination(deps),
        reservation.userId,
        reservation.id,
        effects,
      );
      if (after.status === "released") released++;
    } catch (error) {
      if (!(error instanceof Conflict)) throw error; // paid meanwhile: it stays sold
    }
  }
  deps.log({ level: "info", msg: "sale closed", saleId, released });
}

/** What a new hold causes: its Postgres row, then (from that record) its expiry job. */
export function reserveEffects(deps: Deps) {
  return (reservation: Reservation) => [deps.outbox.record(RESERVATION_RECORD, reservation)];
}

/** What each settlement causes, written into its commit. */
export function settlementEffects(deps: Deps): SettlementEffects {
  return ({ reservation, order, payment }) => {
    const records = [];
    if (reservation) records.push(deps.outbox.record(RESERVATION_RECORD, reservation.after));
    if (order) {
      records.push(deps.outbox.record(ORDER_RECORD, order.after));
      const { before, after } = order;
      if (
        after.status !== before?.status && (after.status === "paid" || after.status === "refunded")
      ) {
        records.push(...notifyRecords(deps.outbox, {
          userId: after.userId,
          actorId: after.userId,
          type: "order",
          subjectId: after.id,
          eventId: `order:${after.id}:${after.status}`,
        }));
      }
      // A unit paid for: a line in its sale's live feed.
      const held = reservation?.after;
      if (after.status === "paid" && before?.status !== "paid" && held) {
        records.push(deps.outbox.record(SALE_PURCHASE, {
          saleId: held.saleId,
          productId: held.productId,
          buyerId: after.userId,
          at: after.paidAt,
        }));
      }
      // An admin's refund of a paid order: the money goes back, and a membership with it.
      if (before?.status === "paid" && after.status === "refunded") {
        records.push(jobRecord(deps.outbox, REFUND_JOB, {
          provider: after.provider,
          orderId: after.id,
          // Every provider here is given the order id as the charge's reference.
          reference: after.id,
          amountCents: after.amountCents,
        }));
        if (after.kind === "membership") {
          records.push(
            deps.outbox.record(MEMBERSHIP_REVOKE, { userId: after.userId, tier: after.tier }),
          );
        }
      }
      if (after.kind === "membership" && after.status === "paid" && before?.status !== "paid") {
        records.push(deps.outbox.record(MEMBERSHIP_GRANT, {
          userId: after.userId,
          tier: after.tier,
          at: after.paidAt,
        }));
      }
    }
    if (payment) {
      const buyerId = order?.after.userId ?? payment.buyerId;
      records.push(paymentRecord(deps, { ...payment, buyerId }));
      if (payment.outcome === "refunded") {
        const { provider, orderId, reference, amountCents } = payment.event;
        records.push(
          jobRecord(deps.outbox, REFUND_JOB, { provider, orderId, reference, amountCents }),
        );
      }
    }
    return records;
  };
}
