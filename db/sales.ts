// The catalogue, sales, reservations, orders and payments in Postgres: what KV decided, as history,
// and each buyer's list of orders.
import { and, asc, desc, eq, exists, gt, gte, inArray, isNull, lt, lte } from "drizzle-orm";
import { decodeCursor, keysetPage, timeCursor } from "../cursor.ts";
import {
  type Order,
  type PaymentEvent,
  type PaymentOutcome,
  type Reservation,
  rowOf,
  type Sale,
} from "./records.ts";
import type { Database } from "./client.ts";
import { inTransaction, isForeignKeyViolation, upsertVersions } from "./client.ts";
import { afterPosition } from "./keyset.ts";
import {
  orders,
  type OrderStatus,
  payments,
  products,
  reservations,
  saleItems,
  sales,
  users,
} from "./schema.ts";

export type ProductRow = typeof products.$inferSelect;

export async function insertProduct(db: Database, product: typeof products.$inferInsert) {
  const [row] = await db.insert(products).values(product).returning();
  return row;
}

export async function findProducts(db: Database, ids: string[]): Promise<ProductRow[]> {
  if (ids.length === 0) return [];
  return await db.select().from(products).where(inArray(products.id, ids));
}

export function productView(row: ProductRow) {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    priceCents: row.priceCents,
    currency: row.currency,
    createdAt: row.createdAt.toISOString(),
    archivedAt: row.archivedAt?.toISOString() ?? null,
  };
}

/** An admin's change of a product; null when there is none with this id. */
export async function updateProduct(
  db: Database,
  id: string,
  change: Partial<Pick<ProductRow, "name" | "description" | "priceCents" | "archivedAt">>,
): Promise<ProductRow | null> {
  const [row] = await db.update(products).set(change).where(eq(products.id, id)).returning();
  return row ?? null;
}

/** The sale and its items, in one transaction (before KV stocks it). */
export async function insertSale(db: Database, sale: Sale, createdBy: string) {
  await inTransaction(db, async (tx) => {
    await tx.insert(sales).values({
      id: sale.id,
      startsAt: new Date(sale.startsAt),
      endsAt: new Date(sale.endsAt),
      perUserLimit: sale.perUserLimit,
      createdBy,
      createdAt: new Date(sale.createdAt),
    });
    await tx.insert(saleItems).values(sale.items.map((item) => ({
      saleId: sale.id,
      productId: item.productId,
      stock: item.stock,
      priceCents: item.priceCents,
      currency: item.currency,
    })));
  });
}

/**
 * A sale as an admin changed it: its window, and each item's units on offer (restocks included).
 * Records may apply out of order: the end only moves earlier and the units only grow.
 */
export async function recordSale(db: Database, sale: Sale) {
  const version = sale.version ?? 1;
  await inTransaction(db, async (tx) => {
    // Changes may be written out of order: only a newer version is written, over an older one.
    const [newer] = await tx.update(sales).set({
      startsAt: new Date(sale.startsAt),
      endsAt: new Date(sale.endsAt),
      perUserLimit: sale.perUserLimit,
      version,
      cancelledAt: sale.cancelledAt === undefined ? null : new Date(sale.cancelledAt),
    }).where(and(eq(sales.id, sale.id), lt(sales.version, version))).returning({ id: sales.id });
    if (!newer) return;
    for (const item of sale.items) {
      await tx.update(saleItems).set({
        stock: item.stock + (item.restocked ?? 0),
        priceCents: item.priceCents,
      }).where(and(eq(saleItems.saleId, sale.id), eq(saleItems.productId, item.productId)));
    }
  });
}

/** Writes holds as KV decided them, in one statement, never over a newer version. */
export async function recordReservations(db: Database, list: Reservation[]) {
  await ignoringDeletedAccounts(
    db,
    list.map((reservation) => reservation.userId),
    upsertVersions(
      db,
      reservations,
      list.map((reservation) => rowOf(reservations, reservation)),
      ["status", "version", "orderId", "updatedAt"],
    ),
  );
}

/** Writes orders as KV decided them, in one statement, never over a newer version. */
export async function recordOrders(db: Database, list: Order[]) {
  await ignoringDeletedAccounts(
    db,
    list.map((order) => order.userId),
    upsertVersions(
      db,
      orders,
      list.map((order) => rowOf(orders, order)),
      ["status", "version", "updatedAt", "paidAt", "refundedAt"],
    ),
  );
}

/**
 * One row per provider event (the first write wins; a repeat changes nothing): what it did, when
 * it arrived and when its decision was committed (`at`), and the provider's payload.
 */
export async function recordPayment(
  db: Database,
  payment: { event: PaymentEvent; outcome: PaymentOutcome; buyerId: string; at: Date },
) {
  const { event, outcome, at } = payment;
  // The order's row may not be written yet (its outbox record is retried): then this is retried
  // too. Only a deleted buyer (their orders gone with them) leaves nothing to record.
  await ignoringDeletedAccounts(
    db,
    [payment.buyerId],
    db.insert(payments).values({
      provider: event.provider,
      eventId: event.id,
      orderId: event.orderId,
      type: event.type,
      amountCents: event.amountCents,
      currency: event.currency,
      outcome,
      receivedAt: event.receivedAt === undefined ? at : new Date(event.receivedAt),
      processedAt: at,
      payload: event.payload ?? null,
    }).onConflictDoNothing(),
  );
}

/** The payments applied to an order, oldest first. */
export async function paymentsOf(db: Database, orderId: string) {
  return await db.select().from(payments).where(eq(payments.orderId, orderId))
    .orderBy(payments.receivedAt, payments.eventId);
}

/** A paid membership order grants its tier (a later grant of the same order changes nothing). */
export async function grantMembership(db: Database, userId: string, tier: string, since: Date) {
  await db.update(users).set({ membershipTier: tier, membershipSince: since })
    .where(eq(users.id, userId));
}

/** A refunded membership ends, unless the member holds another tier by now. */
export async function revokeMembership(db: Database, userId: string, tier: string) {
  await db.update(users).set({ membershipTier: null, membershipSince: null })
    .where(and(eq(users.id, userId), eq(users.membershipTier, tier)));
}

type Time = Date | number;

/** An order as its buyer sees it, from its Postgres row or from KV (times in ms). */
export function orderView(order: {
  id: string;
  kind: string;
  status: string;
  description: string;
  amountCents: number;
  currency: string;
  reservationId: string | null;
  tier: string | null;
  createdAt: Time;
  updatedAt: Time;
  paidAt: Time | null;
  refundedAt: Time | null;
}) {
  const iso = (time: Time | null) => time === null ? null : new Date(time).toISOString();
  return {
    id: order.id,
    kind: order.kind,
    status: order.status,
    description: order.description,
    amountCents: order.amountCents,
    currency: order.currency,
    reservationId: order.reservationId,
    tier: order.tier,
    createdAt: iso(order.createdAt)!,
    updatedAt: iso(order.updatedAt)!,
    paidAt: iso(order.paidAt),
    refundedAt: iso(order.refundedAt),
  };
}

const orderCursor = timeCursor;

/** The caller's orders, newest first. */
/** Which orders a list shows: one buyer's (theirs), or, for an admin, any in a status. */
export interface OrderFilter {
  userId?: string;
  status?: OrderStatus;
}

export async function listOrders(
  db: Database,
  filter: OrderFilter,
  page: { cursor?: string; limit: number },
) {
  const after = page.cursor ? decodeCursor(page.cursor, orderCursor) : null;
  const rows = await db.select().from(orders)
    .where(and(
      filter.userId === undefined ? undefined : eq(orders.userId, filter.userId),
      filter.status === undefined ? undefined : eq(orders.status, filter.status),
      afterPosition(orders.createdAt, orders.id, after),
    ))
    .orderBy(desc(orders.createdAt), desc(orders.id))
    .limit(page.limit + 1);
  return keysetPage(
    rows,
    page.limit,
    orderView,
    (row) => [row.createdAt.toISOString(), row.id],
  );
}

/** Runs `write`; a foreign-key failure because `userId`'s account was deleted is no failure. */
/**
 * A write whose only failure is that its one user's account was deleted since: there is nothing
 * left to record. A batch for several users rethrows, and is retried record by record.
 */
async function ignoringDeletedAccounts(db: Database, userIds: string[], write: Promise<unknown>) {
  try {
    await write;
  } catch (error) {
    if (!isForeignKeyViolation(error) || userIds.length !== 1) throw error;
    const [user] = await db.select({ id: users.id }).from(users).where(eq(users.id, userIds[0]));
    if (user) throw error;
  }
}

/** Which sales a catalogue page lists, by their window. */
export type SaleWindow = "live" | "upcoming" | "ended";

/**
 * A page of sale ids in `window` at `now`: live ones ending soonest first, upcoming ones starting
 * soonest first, ended ones most recently ended first. Keyset cursor: [that time, id].
 */
export async function listSaleIds(
  db: Database,
  window: SaleWindow,
  now: Date,
  page: { cursor?: string; limit: number },
) {
  const after = page.cursor ? decodeCursor(page.cursor, timeCursor) : null;
  const order = window === "ended" ? "desc" : "asc";
  const time = window === "upcoming" ? sales.startsAt : sales.endsAt;
  const inWindow = window === "live"
    ? and(lte(sales.startsAt, now), gt(sales.endsAt, now))
    : window === "upcoming"
    ? gt(sales.startsAt, now)
    : lte(sales.endsAt, now);
  const direction = order === "asc" ? asc : desc;
  const rows = await db.select({ id: sales.id, at: time }).from(sales)
    .where(and(inWindow, afterPosition(time, sales.id, after, order, order)))
    .orderBy(direction(time), direction(sales.id))
    .limit(page.limit + 1);
  return keysetPage(rows, page.limit, (row) => row.id, (row) => [row.at.toISOString(), row.id]);
}

/**
 * A page of products, newest first: every one, archived too (`visibleAt` null, for admins), or
 * those not archived and offered by a sale not yet ended at `visibleAt` (for everyone else).
 */
export async function listProducts(
  db: Database,
  visibleAt: Date | null,
  page: { cursor?: string; limit: number },
) {
  const after = page.cursor ? decodeCursor(page.cursor, timeCursor) : null;
  const offered = visibleAt === null ? undefined : and(
    isNull(products.archivedAt),
    exists(
      db.select({ one: saleItems.productId }).from(saleItems)
        .innerJoin(sales, eq(sales.id, saleItems.saleId))
        .where(and(eq(saleItems.productId, products.id), gt(sales.endsAt, visibleAt))),
    ),
  );
  const rows = await db.select().from(products)
    .where(and(offered, afterPosition(products.createdAt, products.id, after)))
    .orderBy(desc(products.createdAt), desc(products.id))
    .limit(page.limit + 1);
  return keysetPage(rows, page.limit, productView, (row) => [row.createdAt.toISOString(), row.id]);
}

/** The buyer's holds, newest first, as history has them. */
export async function listReservations(
  db: Database,
  userId: string,
  page: { cursor?: string; limit: number },
) {
  const after = page.cursor ? decodeCursor(page.cursor, timeCursor) : null;
  const rows = await db.select().from(reservations)
    .where(and(
      eq(reservations.userId, userId),
      afterPosition(reservations.createdAt, reservations.id, after),
    ))
    .orderBy(desc(reservations.createdAt), desc(reservations.id))
    .limit(page.limit + 1);
  return keysetPage(
    rows,
    page.limit,
    (row) => row,
    (row) => [row.createdAt.toISOString(), row.id],
  );
}

/**
 * Orders history still shows pending with `provider`, created in [`from`, `to`), oldest first: the
 * ones reconciliation asks the provider about.
 */
export async function listPendingOrders(
  db: Database,
  provider: string,
  from: Date,
  to: Date,
  limit: number,
) {
  return await db.select({ id: orders.id }).from(orders)
    .where(and(
      eq(orders.status, "pending"),
      eq(orders.provider, provider),
      gte(orders.createdAt, from),
      lt(orders.createdAt, to),
    ))
    .orderBy(asc(orders.createdAt), asc(orders.id))
    .limit(limit);
}
