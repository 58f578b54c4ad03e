// Orders and the fate of a hold, decided in KV: checkout, release, expiry and provider payments.
// Each decision is one commit checked against the reservation, its order and the buyer's count,
// so an expiry racing a payment, or a webhook delivered five times at once, decides once. Units
// go back to the shards they came from with `sum` (adding never goes below zero).
import { commitDecision } from "../decisions.ts";
import type { Order, PaymentEvent, PaymentOutcome, Reservation } from "../../db/records.ts";
import { Conflict, Gone, NotFound } from "../../errors.ts";
import { backoff, busy } from "../backoff.ts";
import {
  orderKey,
  paymentEventKey,
  reservationDueKey,
  reservationDuePrefix,
  reservationKey,
  saleBuyerKey,
  saleStockHeadKey,
  saleStockKey,
} from "../keys.ts";
import type { Coordination, OutboxRecord } from "../outbox.ts";

export interface PaymentResult {
  outcome: PaymentOutcome | "unknown-order";
  order: Order | null;
  /** The event had been applied before: nothing changed now. */
  repeated: boolean;
}

/** One decided change: the reservation and order as they were and now are, and the payment. */
export interface Settlement {
  reservation?: { before: Reservation | null; after: Reservation };
  order?: { before: Order | null; after: Order };
  payment?: { event: PaymentEvent; outcome: PaymentOutcome; buyerId: string };
}

/** The outbox records a settlement causes (history rows, refunds, grants), written into it. */
export type SettlementEffects = (settlement: Settlement) => OutboxRecord[];

/** A provider event id is remembered this long (providers redeliver for days at most). */
const PAYMENT_EVENT_TTL_MS = 30 * 24 * 60 * 60 * 1000;
const ATTEMPTS = 50;

interface Holding {
  reservation: Deno.KvEntryMaybe<Reservation> | null;
  order: Deno.KvEntryMaybe<Order> | null;
  buyer: Deno.KvEntryMaybe<Deno.KvU64> | null;
}

/**
 * A reservation with its order, or an order with its reservation, and the buyer's count, in one
 * strong read. Which keys a holding spans is first read from the nearest replica (a reservation's
 * sale and buyer never change, an order's reservation neither; only a reservation's order appears
 * later): when the strong read shows an order the replica did not, it is read again.
 */
async function readHolding(
  kv: Deno.Kv,
  start: { reservationId: string } | { orderId: string },
): Promise<Holding> {
  let consistency: Deno.KvConsistencyLevel = "eventual";
  for (;;) {
    const span = await spanOf(kv, start, consistency);
    const keys = [
      span.reservationId ? reservationKey(span.reservationId) : null,
      span.orderId ? orderKey(span.orderId) : null,
      span.buyer ? saleBuyerKey(span.buyer.saleId, span.buyer.userId) : null,
    ];
    const read = await kv.getMany<unknown[]>(keys.filter((key) => key !== null));
    const entries = keys.map((key) => key === null ? null : read.shift()!);
    const [reservation, order, buyer] = entries as [
      Holding["reservation"],
      Holding["order"],
      Holding["buyer"],
    ];
    const orderId = "orderId" in start ? start.orderId : reservation?.value?.orderId ?? null;
    const reservationId = "reservationId" in start
      ? start.reservationId
      : order?.value?.reservationId ?? null;
    const spanned = orderId === span.orderId && reservationId === span.reservationId &&
      (reservation?.value ? buyer !== null : true);
    if (spanned) return { reservation, order, buyer };
    consistency = "strong"; // the replica was behind: ask the primary where the holding is
  }
}

interface Span {
  reservationId: string | null;
  orderId: string | null;
  buyer: { saleId: string; userId: string } | null;
}

async function spanOf(
  kv: Deno.Kv,
  start: { reservationId: string } | { orderId: string },
  consistency: Deno.KvConsistencyLevel,
): Promise<Span> {
  if ("reservationId" in start) {
    const reservation = await kv.get<Reservation>(reservationKey(start.reservationId), {
      consistency,
    });
    const held = reservation.value;
    return {
      reservationId: start.reservationId,
      orderId: held?.orderId ?? null,
      buyer: held ? { saleId: held.saleId, userId: held.userId } : null,
    };
  }
  const order = (await kv.get<Order>(orderKey(start.orderId), { consistency })).value;
  const reservationId = order?.reservationId ?? null;
  const held = reservationId
    ? (await kv.get<Reservation>(reservationKey(reservationId), { consistency })).value
    : null;
  return {
    reservationId,
    orderId: start.orderId,
    buyer: held ? { saleId: held.saleId, userId: held.userId } : null,
  };
}

/** What a decision on a holding wants: the new reservation and order, and a value to return. */
interface Decision<T> {
  reservation?: Reservation;
  order?: Order;
  payment?: Settlement["payment"];
  answer: T;
}

/**
 * Reads the holding, lets `decide` choose, and commits the choice checked against everything it
 * read (and against `eventKey` not being set yet). Lost races decide again on fresh state.
 */
async function settle<T>(
  deps: Coordination,
  start: { reservationId: string } | { orderId: string },
  effects: SettlementEffects,
  decide: (holding: Holding, now: number) => Decision<T> | Promise<Decision<T>>,
  eventKey?: Deno.KvKey,
): Promise<T> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const [event, holding] = await Promise.all([
      eventKey ? deps.kv.get(eventKey) : null,
      readHolding(deps.kv, start),
    ]);
    if (event?.value) throw new EventApplied(event.value as PaymentOutcome);
    const now = deps.now();
    const decision = await decide(holding, now);
    const atomic = deps.kv.atomic();
    for (const entry of [event, holding.reservation, holding.order, holding.buyer]) {
      if (entry) atomic.check(entry);
    }
    const settlement: Settlement = {};
    const before = holding.reservation?.value ?? null;
    if (decision.reservation) {
      settlement.reservation = { before, after: decision.reservation };
      writeReservation(atomic, before, decision.reservation, holding.buyer, now);
    }
    if (decision.order) {
      const previous = holding.order?.value ?? null;
      if (!previous) atomic.check({ key: orderKey(decision.order.id), versionstamp: null });
      atomic.set(orderKey(decision.order.id), decision.order);
      settlement.order = { before: previous, after: decision.order };
    }
    if (decision.payment) {
      settlement.payment = decision.payment;
      atomic.set(eventKey!, decision.payment.outcome, { expireIn: PAYMENT_EVENT_TTL_MS });
    }
    if (!settlement.reservation && !settlement.order && !settlement.payment) {
      return decision.answer;
    }
    const records = effects(settlement);
    if (await commitDecision(deps, atomic, { records, operation: "sales.settle" })) {
      return decision.answer;
    }
    await backoff(attempt);
  }
  throw busy("This reservation");
}

/** Writes a reservation's new state; a hold that ends unsold gives its units and count back. */
function writeReservation(
  atomic: Deno.AtomicOperation,
  before: Reservation | null,
  after: Reservation,
  buyer: Deno.KvEntryMaybe<Deno.KvU64> | null,
  now: number,
) {
  atomic.set(reservationKey(after.id), after);
  if (before?.status !== "held" || after.status === "held") return;
  atomic.delete(reservationDueKey(before.expiresAt, before.id));
  if (after.status === "sold") return;
  for (const [shard, units] of before.taken) {
    atomic.sum(saleStockKey(before.saleId, before.productId, shard), BigInt(units));
  }
  const count = buyer?.value?.value ?? 0n;
  atomic.set(
    saleBuyerKey(before.saleId, before.userId),
    new Deno.KvU64(count > BigInt(before.quantity) ? count - BigInt(before.quantity) : 0n),
  );
  atomic.set(saleStockHeadKey(before.saleId), now);
}

const moved = <R extends { version: number; updatedAt: number }>(
  record: R,
  now: number,
  change: Partial<R>,
): R => ({ ...record, ...change, version: record.version + 1, updatedAt: now });

/** A held reservation whose time is up becomes `expired`, and its pending order with it. */
function lapse(holding: Holding, now: number): Pick<Decision<unknown>, "reservation" | "order"> {
  const reservation = holding.reservation?.value;
  if (reservation?.status !== "held" || now < reservation.expiresAt) return {};
  const order = holding.order?.value;
  return {
    reservation: moved(reservation, now, { status: "expired" }),
    order: order?.status === "pending" ? moved(order, now, { status: "expired" }) : undefined,
  };
}

/** The reservation, for its buyer only (404 for everyone else). */
export async function readReservation(
  kv: Deno.Kv,
  reservationId: string,
  userId: string,
): Promise<Reservation> {
  const reservation = (await kv.get<Reservation>(reservationKey(reservationId))).value;
  if (!reservation || reservation.userId !== userId) throw noSuchReservation();
  return reservation;
}

/**
 * The expiry job and the sweep: an overdue hold expires and returns its units, once. Returns the
 * expired reservation, or null when there was nothing to expire (not due, or settled already).
 */
export async function expireReservation(
  deps: Coordination,
  reservationId: string,
  effects: SettlementEffects,
): Promise<Reservation | null> {
  return await settle(deps, { reservationId }, effects, (holding, now) => {
    const lapsed = lapse(holding, now);
    return { ...lapsed, answer: lapsed.reservation ?? null };
  });
}

/** Reservations read per `getMany` (KV's limit). */
const READ_BATCH = 10;

/**
 * The holds of a sale still held, as KV has them now: every hold in the due index (which holds
 * only the live ones of every sale) read and kept when it is this sale's. For a sale that has
 * ended, no hold is added after the read starts.
 */
export async function heldReservations(kv: Deno.Kv, saleId: string): Promise<Reservation[]> {
  const ids: string[] = [];
  for await (const entry of kv.list<string>({ prefix: reservationDuePrefix() })) {
    ids.push(entry.value);
  }
  const held: Reservation[] = [];
  for (let start = 0; start < ids.length; start += READ_BATCH) {
    const read = await kv.getMany<Reservation[]>(
      ids.slice(start, start + READ_BATCH).map((id) => reservationKey(id)),
    );
    for (const { value } of read) {
      if (value?.saleId === saleId && value.status === "held") held.push(value);
    }
  }
  return held;
}

/** The buyer lets a hold go: its units return at once, and a pending order is cancelled. */
export async function releaseReservation(
  deps: Coordination,
  userId: string,
  reservationId: string,
  effects: SettlementEffects,
): Promise<Reservation> {
  return await settle(deps, { reservationId }, effects, (holding, now) => {
    const reservation = ownReservation(holding, userId);
    if (reservation.status === "sold") throw alreadyPaid(reservation);
    const lapsed = lapse(holding, now);
    if (lapsed.reservation) return { ...lapsed, answer: lapsed.reservation };
    if (reservation.status !== "held") return { answer: reservation };
    const order = holding.order?.value;
    const released = moved(reservation, now, { status: "released" });
    return {
      reservation: released,
      order: order?.status === "pending" ? moved(order, now, { status: "cancelled" }) : undefined,
      answer: released,
    };
  });
}

/**
 * The buyer cancels an unpaid order: a pending order becomes `cancelled` and its live hold is
 * released, so its units go back on sale at once (a hold already past its time expires instead).
 * A paid order is refused (money goes back by an admin's refund); an order already ended is
 * answered as it is. A payment arriving after the cancel is refunded (`applyPayment`).
 */
export async function cancelOrder(
  deps: Coordination,
  userId: string,
  orderId: string,
  effects: SettlementEffects,
): Promise<Order> {
  return await settle(deps, { orderId }, effects, (holding, now) => {
    const order = holding.order?.value;
    if (!order || order.userId !== userId) throw new NotFound("No order of yours has this id.");
    if (order.status === "paid") {
      throw new Conflict(
        "This order has been paid for: ask for a refund instead.",
        "order-paid",
        { orderId: order.id },
      );
    }
    if (order.status !== "pending") return { answer: order };
    const lapsed = lapse(holding, now);
    if (lapsed.order) return { ...lapsed, answer: lapsed.order };
    const reservation = holding.reservation?.value;
    const cancelled = moved(order, now, { status: "cancelled" });
    return {
      reservation: reservation?.status === "held"
        ? moved(reservation, now, { status: "released" })
        : undefined,
      order: cancelled,
      answer: cancelled,
    };
  });
}

/**
 * An admin refunds a paid order: it becomes `refunded` (the money goes back through the provider,
 * by the refund job its effects enqueue). Its units stay sold: what was bought may have been
 * delivered, and an admin restocks a sale on purpose. A refunded order is answered as it is; one
 * that was never paid is refused (409 `order-not-paid`).
 */
export async function refundPaidOrder(
  deps: Coordination,
  orderId: string,
  effects: SettlementEffects,
): Promise<Order> {
  return await settle(deps, { orderId }, effects, (holding, now) => {
    const order = holding.order?.value;
    if (!order) throw new NotFound("No order has this id.");
    if (order.status === "refunded") return { answer: order };
    if (order.status !== "paid") {
      throw new Conflict(
        `This order is ${order.status}: only a paid order can be refunded.`,
        "order-not-paid",
        { status: order.status },
      );
    }
    const refunded = moved(order, now, { status: "refunded", refundedAt: now });
    return { order: refunded, answer: refunded };
  });
}

/**
 * The order that pays for a live hold: created on the first checkout, the same one after. The
 * amount is the hold's, decided when it was made. `newOrder` may start the payment with the
 * provider before the order is committed (so it is stored with where to pay, in the same commit);
 * a payment started for an order that then loses a race is never shown to anyone.
 */
export async function checkoutReservation(
  deps: Coordination,
  userId: string,
  reservationId: string,
  newOrder: (reservation: Reservation, now: number) => Promise<Order>,
  effects: SettlementEffects,
): Promise<Order> {
  return await settle(deps, { reservationId }, effects, async (holding, now) => {
    const reservation = ownReservation(holding, userId);
    if (reservation.status === "sold") throw alreadyPaid(reservation);
    if (reservation.status !== "held" || now >= reservation.expiresAt) {
      throw gone(reservation.status === "released" ? "released" : "expired");
    }
    const existing = holding.order?.value;
    if (existing) return { answer: existing };
    const order = await newOrder(reservation, now);
    return {
      reservation: moved(reservation, now, { orderId: order.id }),
      order,
      answer: order,
    };
  });
}

/** Stores a new order that holds no stock (a membership). */
export async function createOrder(
  deps: Coordination,
  order: Order,
  effects: SettlementEffects,
): Promise<Order> {
  return await settle(deps, { orderId: order.id }, effects, (holding) => {
    if (holding.order?.value) throw new Error(`order ${order.id} exists already`);
    return { order, answer: order };
  });
}

/** Remembers where the buyer pays (not a change of state: the version stays). */
export async function setPaymentUrl(kv: Deno.Kv, orderId: string, paymentUrl: string) {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const entry = await kv.get<Order>(orderKey(orderId));
    if (!entry.value || entry.value.paymentUrl) return;
    const updated = { ...entry.value, paymentUrl };
    if ((await kv.atomic().check(entry).set(entry.key, updated).commit()).ok) return;
    await backoff(attempt);
  }
}

/** The order as KV holds it (callers check who may see it). */
export async function readOrder(kv: Deno.Kv, orderId: string): Promise<Order | null> {
  return (await kv.get<Order>(orderKey(orderId))).value;
}

/**
 * Applies a verified provider event, once per event id. Success on a pending order whose hold is
 * still live makes it `paid` and the hold a sale; success on anything else (the hold expired or
 * was released, the order was cancelled, or it was paid already) is refunded and takes no stock.
 * Failure cancels a pending order and releases its hold. A repeated event changes nothing.
 */
export async function applyPayment(
  deps: Coordination,
  event: PaymentEvent,
  effects: SettlementEffects,
): Promise<PaymentResult> {
  const eventKey = paymentEventKey(event.provider, event.id);
  return await settle<PaymentResult>(deps, { orderId: event.orderId }, effects, (holding, now) => {
    const order = holding.order?.value;
    if (!order) return { answer: { outcome: "unknown-order", order: null, repeated: false } };
    const decided = decidePayment(holding, order, event, now);
    const after = decided.order ?? order;
    return {
      ...decided,
      payment: { event, outcome: decided.outcome, buyerId: order.userId },
      answer: { outcome: decided.outcome, order: after, repeated: false },
    };
  }, eventKey).catch(async (error) => {
    if (!(error instanceof EventApplied)) throw error;
    // Applied before, or by a concurrent delivery in the meantime: its outcome is the answer.
    return {
      outcome: error.outcome,
      order: await readOrder(deps.kv, event.orderId),
      repeated: true,
    };
  });
}

function decidePayment(
  holding: Holding,
  order: Order,
  event: PaymentEvent,
  now: number,
): Pick<Decision<unknown>, "reservation" | "order"> & { outcome: PaymentOutcome } {
  const reservation = holding.reservation?.value ?? null;
  if (event.type === "failed") {
    if (order.status !== "pending") return { outcome: "ignored" };
    const lapsed = lapse(holding, now);
    return {
      reservation: lapsed.reservation ??
        (reservation?.status === "held"
          ? moved(reservation, now, { status: "released" })
          : undefined),
      order: moved(order, now, { status: "cancelled" }),
      outcome: "cancelled",
    };
  }
  const wholeAmount = event.amountCents === order.amountCents &&
    event.currency.toUpperCase() === order.currency.toUpperCase();
  const live = order.status === "pending" &&
    (order.kind === "membership" ||
      (reservation?.status === "held" && now < reservation.expiresAt));
  if (live && wholeAmount) {
    return {
      reservation: reservation ? moved(reservation, now, { status: "sold" }) : undefined,
      order: moved(order, now, { status: "paid", paidAt: now }),
      outcome: "paid",
    };
  }
  // Money arrived for something that cannot be delivered (or not in full): it goes back, and no
  // stock is taken. An order that was paid already stays paid; this second charge is returned.
  // A hold still live (the amount was wrong) is released at once: its stock goes back on sale
  // now, not when it would have expired.
  const lapsed = lapse(holding, now);
  const refundOrder = order.status !== "paid" && order.status !== "refunded";
  return {
    reservation: lapsed.reservation ??
      (refundOrder && reservation?.status === "held"
        ? moved(reservation, now, { status: "released" })
        : undefined),
    order: refundOrder ? moved(order, now, { status: "refunded", refundedAt: now }) : undefined,
    outcome: "refunded",
  };
}

/** The event a settlement was to apply has been applied already (maybe by a concurrent delivery). */
class EventApplied extends Error {
  constructor(readonly outcome: PaymentOutcome) {
    super("payment event applied already");
  }
}

function ownReservation(holding: Holding, userId: string): Reservation {
  const reservation = holding.reservation?.value;
  if (!reservation || reservation.userId !== userId) throw noSuchReservation();
  return reservation;
}

function noSuchReservation() {
  return new NotFound("No reservation of yours has this id.");
}

function alreadyPaid(reservation: Reservation) {
  return new Conflict("This reservation has been paid for.", "reservation-paid", {
    orderId: reservation.orderId,
  });
}

function gone(how: "expired" | "released") {
  return new Gone(
    how === "expired"
      ? "This reservation expired and its stock went back on sale; reserve again."
      : "This reservation was released; reserve again.",
    `reservation-${how}`,
  );
}
