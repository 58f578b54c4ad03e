// Flash sales and payments: the catalogue, sales and their stock, reservations and their expiry,
// checkout through the payment provider, webhooks, memberships, and what each KV decision causes
// (history rows in Postgres, expiry and refund jobs, membership grants, order notifications).
import { z } from "zod";
import type { Deps } from "../deps.ts";
import {
  findProducts,
  grantMembership,
  insertProduct,
  insertSale,
  productView,
  recordOrders,
  recordPayment,
  recordReservations,
} from "../db/sales.ts";
import { findUserById } from "../db/users.ts";
import { Invalid, NotFound, Unauthorized } from "../errors.ts";
import { newId } from "../ids.ts";
import { listDue } from "../kv/due.ts";
import { reservationDuePrefix } from "../kv/keys.ts";
import {
  applyPayment,
  checkoutReservation,
  createOrder,
  expireReservation,
  type PaymentResult,
  releaseReservation,
  setPaymentUrl,
  type SettlementEffects,
} from "../kv/sales/orders.ts";
import { coordination } from "../kv/outbox.ts";
import {
  createSaleStock,
  readSale,
  reserveStock,
  saleStatus,
  stockRemaining,
} from "../kv/sales/stock.ts";
import {
  type Order,
  orderSchema,
  type Reservation,
  reservationSchema,
  type Sale,
} from "../db/records.ts";
import { enqueueAll, PermanentJobError } from "./jobs.ts";
import { notifyRecords } from "./notifications.ts";
import { jobRecord } from "./outbox-jobs.ts";
import { id, storableTime } from "../input.ts";
import { inSpan, instruments } from "../telemetry.ts";

const RESERVATION_RECORD = "reservation-record";
const ORDER_RECORD = "order-record";
const PAYMENT_RECORD = "payment-record";
const MEMBERSHIP_GRANT = "membership-grant";
const EXPIRE_JOB = "reservation-expire";
const REFUND_JOB = "payment-refund";
const SWEEP_BATCH = 500;

/**
 * Stock counters per sale item. `deno run -A bench/sales.ts` (500 buyers on one item): 1 shard
 * ran at 0.39–0.40× the one-key floor, 4 at 0.71–0.77×, 8 at 0.50–0.58× (each try reads every shard).
 */
export const SALE_SHARDS = 4;

/** Membership tiers at their server-side prices; a request names the tier, never the price. */
export const MEMBERSHIP_TIERS = {
  pro: { name: "Convene Pro membership", amountCents: 900, currency: "USD" },
  patron: { name: "Convene Patron membership", amountCents: 2900, currency: "USD" },
} as const;

export type MembershipTier = keyof typeof MEMBERSHIP_TIERS;

const currency = z.string().trim().toUpperCase().regex(/^[A-Z]{3}$/, "an ISO 4217 code like USD");
const cents = z.number().int().min(1).max(100_000_000);
const instant = storableTime.transform((text) => Date.parse(text));

export const productInput = z.strictObject({
  name: z.string().trim().min(1, "must not be empty").max(200),
  description: z.string().trim().max(4000).optional(),
  priceCents: cents,
  currency,
});

export const saleInput = z.strictObject({
  items: z.array(z.strictObject({
    productId: id,
    stock: z.number().int().min(1).max(1_000_000),
    priceCents: cents,
  })).min(1).max(20).refine(
    (items) => new Set(items.map((item) => item.productId)).size === items.length,
    "each product at most once",
  ),
  startsAt: instant,
  endsAt: instant,
  perUserLimit: z.number().int().min(1).max(1000),
}).refine((sale) => sale.endsAt > sale.startsAt, {
  path: ["endsAt"],
  message: "must be after startsAt",
});

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

const expireJob = z.object({ reservationId: id });
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
    type: z.enum(["succeeded", "failed"]),
    orderId: z.string(),
    amountCents: z.number().int(),
    currency: z.string(),
    reference: z.string(),
  }),
  outcome: z.enum(["paid", "refunded", "cancelled", "ignored"]),
  buyerId: z.string(),
  at: z.number(),
});
const grantPayload = z.object({ userId: z.string(), tier: z.string(), at: z.number() });

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
  deps.registry.register(EXPIRE_JOB, expireJob, async ({ reservationId }) => {
    await expireReservation(coordination(deps), reservationId, settlementEffects(deps));
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

/** What a new hold causes: its Postgres row, then (from that record) its expiry job. */
function reserveEffects(deps: Deps) {
  return (reservation: Reservation) => [deps.outbox.record(RESERVATION_RECORD, reservation)];
}

/** What each settlement causes, written into its commit. */
function settlementEffects(deps: Deps): SettlementEffects {
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
      records.push(deps.outbox.record(PAYMENT_RECORD, {
        event: payment.event,
        outcome: payment.outcome,
        buyerId,
        at: deps.clock.now(),
      }));
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

export async function createProduct(
  deps: Deps,
  adminId: string,
  input: z.infer<typeof productInput>,
) {
  const row = await insertProduct(deps.database.db, {
    id: newId(deps.clock.now()),
    name: input.name,
    description: input.description ?? null,
    priceCents: input.priceCents,
    currency: input.currency,
    createdBy: adminId,
    createdAt: new Date(deps.clock.now()),
  });
  return productView(row);
}

export async function createSale(deps: Deps, adminId: string, input: z.infer<typeof saleInput>) {
  const now = deps.clock.now();
  if (input.endsAt <= now) {
    throw new Invalid("The sale would be over before it starts.", [
      { path: "endsAt", message: "must be in the future" },
    ]);
  }
  const products = new Map(
    (await findProducts(deps.database.db, input.items.map((item) => item.productId)))
      .map((product) => [product.id, product]),
  );
  const unknown = input.items.findIndex((item) => !products.has(item.productId));
  if (unknown >= 0) {
    throw new Invalid("No product has this id.", [
      { path: `items.${unknown}.productId`, message: "unknown product" },
    ]);
  }
  const sale: Sale = {
    id: newId(now),
    startsAt: input.startsAt,
    endsAt: input.endsAt,
    perUserLimit: input.perUserLimit,
    shards: SALE_SHARDS,
    items: input.items.map((item) => {
      const product = products.get(item.productId)!;
      return { ...item, name: product.name, currency: product.currency };
    }),
    createdAt: now,
  };
  // Postgres first: a sale KV never stocked is invisible, while stock without its rows is not.
  await insertSale(deps.database.db, sale, adminId);
  await createSaleStock(deps.kv, sale);
  return await saleView(deps, sale.id, "strong");
}

/** A sale's public page: from the nearest replica unless the caller just changed it. */
export async function saleView(
  deps: Deps,
  saleId: string,
  consistency: Deno.KvConsistencyLevel = "eventual",
) {
  const sale = await readSale(deps.kv, saleId);
  if (!sale) throw new NotFound("No sale has this id.");
  const left = await stockRemaining(deps.kv, sale, consistency);
  return {
    id: sale.id,
    status: saleStatus(sale, left, deps.clock.now()),
    startsAt: new Date(sale.startsAt).toISOString(),
    endsAt: new Date(sale.endsAt).toISOString(),
    perUserLimit: sale.perUserLimit,
    items: sale.items.map((item) => ({
      productId: item.productId,
      name: item.name,
      priceCents: item.priceCents,
      currency: item.currency,
      stock: item.stock,
      stockRemaining: left.get(item.productId) ?? 0,
    })),
  };
}

/** The `stock-update` frame of a sale, sent to its subscribers whenever its stock changes. */
export async function stockUpdate(deps: Deps, saleId: string) {
  const view = await saleView(deps, saleId);
  return {
    type: "stock-update",
    data: {
      saleId,
      status: view.status,
      stockRemaining: view.items.reduce((sum, item) => sum + item.stockRemaining, 0),
      items: view.items.map(({ productId, stockRemaining }) => ({ productId, stockRemaining })),
    },
  };
}

export function reservationView(reservation: Reservation) {
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
    const event = await deps.payments.verify(headers, rawBody, deps.clock.now());
    if (!event) {
      span.setAttribute("convene.outcome", "ignored");
      return { outcome: "ignored", order: null, repeated: false, eventId: null };
    }
    const result = await applyPayment(coordination(deps), event, settlementEffects(deps));
    const outcome = result.repeated ? "repeated" : result.outcome;
    span.setAttributes({ "convene.outcome": outcome, "convene.order.id": event.orderId });
    instruments.payments.add(1, { "convene.provider": provider, "convene.outcome": outcome });
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
