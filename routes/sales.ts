// Flash sales, reservations, orders and payments (the reference's "Flash sales and payments"
// group). The sandbox provider's pay page is routes/sandbox.ts.
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv, SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { listOrders, orderView, paymentsOf } from "../db/sales.ts";
import { Invalid, NotFound } from "../errors.ts";
import { zodFieldErrors } from "../input.ts";
import { readOrder, readReservation } from "../kv/sales/orders.ts";
import {
  catalogueQuery,
  createProduct,
  createSale,
  editProduct,
  endSale,
  listSales,
  productChange,
  productInput,
  productsFor,
  restock,
  restockInput,
  reviseSale,
  saleEdit,
  saleInput,
  saleView,
} from "../workflows/sales/catalogue.ts";
import {
  buyMembership,
  cancel,
  checkout,
  idempotencyKey,
  membershipInput,
  myReservations,
  receiveWebhook,
  refund,
  release,
  reservationInput,
  reservationView,
  reserve,
} from "../workflows/sales/orders.ts";
import { settledHistory } from "../workflows/history.ts";
import { adminOnly, signedIn } from "./middleware/session.ts";
import { body, idParam, pageQuery, params, query } from "./middleware/validate.ts";
import { documented, REPLAYED } from "./middleware/describe.ts";
import { order, page, paymentStart, reservation, sale, timestamp } from "./reference/schemas.ts";
import { ORDER_STATUSES } from "../db/schema.ts";

const describe = documented("Flash sales and payments");

const webhookAck = z.object({
  received: z.literal(true),
  eventId: z.string().nullable(),
  outcome: z.string().meta({
    description: "`paid`, `refunded`, `cancelled`, `ignored`, `recorded`, `unknown-order`",
  }),
  repeated: z.boolean(),
  orderStatus: z.enum(ORDER_STATUSES).nullable(),
});

const paymentRecord = z.object({
  eventId: z.string(),
  type: z.string(),
  outcome: z.string(),
  amountCents: z.int(),
  currency: z.string(),
  receivedAt: timestamp,
  processedAt: timestamp.nullable().meta({
    description: "When the decision it caused was committed (null for payments before 0010).",
  }),
});

const orderDetail = order.extend({
  paymentUrl: z.string().nullable().meta({ description: "Set while the order is pending." }),
  payments: z.array(paymentRecord),
});

const orderHistory = order.extend({
  buyerId: z.string(),
  provider: z.string(),
  payments: z.array(paymentRecord.extend({
    provider: z.string(),
    payload: z.unknown().meta({
      description:
        "The provider's event as it sent it; past 16 KiB, `{ truncated: true, bytes }`. Null before 0010.",
    }),
  })),
});

type PaymentRow = Awaited<ReturnType<typeof paymentsOf>>[number];

/** What the configured provider cannot take (PhonePe: rupees only, at least ₹1). */
const PROVIDER_REFUSALS = ["currency-not-supported", "amount-too-small"];

const paymentView = (payment: PaymentRow) => ({
  eventId: payment.eventId,
  type: payment.type,
  outcome: payment.outcome,
  amountCents: payment.amountCents,
  currency: payment.currency,
  receivedAt: payment.receivedAt.toISOString(),
  processedAt: payment.processedAt?.toISOString() ?? null,
});

const product = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  priceCents: z.int(),
  currency: z.string(),
  createdAt: timestamp,
  archivedAt: timestamp.nullable().meta({
    description: "Set once archived: off the public lists, offered by no new sale.",
  }),
});

const providerParam = z.object({ provider: z.string().min(1).max(40) });

export function saleRoutes(deps: Deps) {
  return new Hono<AppEnv>()
    // Public: the catalogue, a sale's page and its stock are for anyone to see.
    .get(
      "/sales",
      describe({
        summary:
          "The catalogue: live, upcoming or ended sales, with each item's stock left (public)",
        description:
          "`when=live` (the default) lists sales on now, sold-out ones included, ending soonest first; `upcoming` those not started, starting soonest first; `ended` the rest, most recently ended first.",
        answers: { 200: page(sale) },
      }),
      query(pageQuery.extend(catalogueQuery.shape)),
      async (c) => {
        const { when, ...position } = c.req.valid("query");
        return c.json(await listSales(deps, when, position));
      },
    )
    .get(
      "/products",
      describe({
        summary: "Products, newest first: for an admin every one, for anyone else those on sale",
        description:
          "Without an admin's session, only products offered by a sale that has not ended (live or upcoming).",
        answers: { 200: page(product) },
      }),
      query(pageQuery),
      async (c) => {
        return c.json(
          await productsFor(deps, c.var.session?.sub ?? null, c.req.valid("query")),
        );
      },
    )
    .get(
      "/sales/:id",
      describe({
        summary: "A sale and each item's stock left (public)",
        answers: { 200: sale },
        errors: { 404: ["not-found"] },
      }),
      params(idParam),
      async (c) => {
        return c.json(await saleView(deps, c.req.valid("param").id));
      },
    )
    // Authenticated by the provider's signature over the raw body, not by a session.
    .post(
      "/payments/webhook/:provider",
      describe({
        summary: "A payment provider's webhook, verified on its raw body",
        description:
          'Verified as the provider signs it: `Convene-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + rawBody)>` for the sandbox (older than 5 minutes is refused), `x-paystack-signature` (HMAC-SHA512 with the secret key) for Paystack, `Authorization: <hex SHA256(username:password)>` for PhonePe. A payment event id is applied once; a repeat answers 200 with `repeated: true`. What became of a refund (`refund-completed`, `refund-failed`) is recorded in the payment history of its order (`outcome: recorded`) and changes no order.',
        body: { schema: z.unknown(), description: "The provider's event, exactly as signed." },
        answers: { 200: webhookAck },
        errors: { 401: ["unauthorized"], 404: ["not-found"] },
      }),
      params(providerParam),
      async (c) => {
        const rawBody = await c.req.text();
        const result = await receiveWebhook(
          deps,
          c.req.valid("param").provider,
          c.req.raw.headers,
          rawBody,
        );
        return c.json({
          received: true,
          eventId: result.eventId,
          outcome: result.outcome,
          repeated: result.repeated,
          orderStatus: result.order?.status ?? null,
        });
      },
    )
    .route("/", signedIn(buyerRoutes(deps)))
    .route("/", adminOnly(deps, adminRoutes(deps)));
}

/** Holding units, checking out, paying for a membership, and one's own orders. */
function buyerRoutes(deps: Deps) {
  return new Hono<SignedInEnv>()
    .post(
      "/sales/:id/reservations",
      describe({
        summary: "Hold units of an item for RESERVATION_TTL_SECONDS",
        description:
          "Repeating a request with the same `Idempotency-Key` answers the first hold again.",
        headers: {
          "Idempotency-Key": {
            description: "Makes retries of this hold safe (1–200 visible characters).",
            schema: idempotencyKey,
          },
        },
        answers: { 201: { schema: reservation, headers: REPLAYED } },
        errors: {
          404: ["not-found"],
          409: ["sold-out", "limit-reached"],
          410: ["sale-ended"],
          422: ["idempotency-key-reused"],
          425: ["sale-not-started"],
        },
      }),
      params(idParam),
      body(reservationInput),
      async (c) => {
        const userId = c.var.session.sub;
        const key = c.req.header("idempotency-key");
        const parsedKey = key === undefined ? undefined : idempotencyKey.safeParse(key);
        if (parsedKey && !parsedKey.success) {
          throw new Invalid(
            "The Idempotency-Key header is invalid.",
            zodFieldErrors(parsedKey.error)
              .map((error) => ({ ...error, path: "Idempotency-Key" })),
          );
        }
        const { reservation, replayed } = await reserve(
          deps,
          userId,
          c.req.valid("param").id,
          c.req.valid("json"),
          parsedKey?.data,
        );
        if (replayed) c.header("Idempotent-Replayed", "true");
        return c.json(reservationView(reservation), 201);
      },
    )
    .get(
      "/reservations",
      describe({
        summary: "The caller's holds, newest first",
        answers: { 200: page(reservation) },
      }),
      query(pageQuery),
      async (c) => {
        const userId = c.var.session.sub;
        return c.json(await myReservations(deps, userId, c.req.valid("query")));
      },
    )
    .get(
      "/reservations/:id",
      describe({
        summary: "One of the caller's holds",
        answers: { 200: reservation },
        errors: { 404: ["not-found"] },
      }),
      params(idParam),
      async (c) => {
        const userId = c.var.session.sub;
        return c.json(
          reservationView(await readReservation(deps.kv, c.req.valid("param").id, userId)),
        );
      },
    )
    .delete(
      "/reservations/:id",
      describe({
        summary: "Release a hold: the stock returns at once",
        answers: { 204: {} },
        errors: { 404: ["not-found"], 409: ["reservation-paid"] },
      }),
      params(idParam),
      async (c) => {
        await release(deps, c.var.session.sub, c.req.valid("param").id);
        return c.body(null, 204);
      },
    )
    .post(
      "/reservations/:id/checkout",
      describe({
        summary: "Start paying for a hold",
        answers: { 200: paymentStart },
        errors: {
          404: ["not-found"],
          409: ["reservation-paid"],
          410: ["reservation-expired", "reservation-released"],
          422: PROVIDER_REFUSALS,
          502: ["payment-provider-error"],
        },
      }),
      params(idParam),
      async (c) => {
        const userId = c.var.session.sub;
        return c.json(await checkout(deps, userId, c.req.valid("param").id));
      },
    )
    .post(
      "/payments/membership",
      describe({
        summary: "Start paying for a membership tier (priced by the server)",
        answers: { 200: paymentStart },
        errors: { 422: PROVIDER_REFUSALS, 502: ["payment-provider-error"] },
      }),
      body(membershipInput),
      async (c) => {
        const userId = c.var.session.sub;
        return c.json(await buyMembership(deps, userId, c.req.valid("json").tier));
      },
    )
    .get(
      "/orders",
      describe({ summary: "The caller's orders, newest first", answers: { 200: page(order) } }),
      query(pageQuery),
      async (c) => {
        const userId = c.var.session.sub;
        return c.json(
          await listOrders(await settledHistory(deps), { userId }, c.req.valid("query")),
        );
      },
    )
    .post(
      "/orders/:id/cancel",
      describe({
        summary: "Cancel one's unpaid order; its hold's units go back on sale at once",
        description:
          "A pending order becomes `cancelled` and its hold is released. An order already cancelled, expired or refunded is answered as it is. A payment that arrives after the cancel is refunded in full.",
        answers: { 200: order },
        errors: { 404: ["not-found"], 409: ["order-paid"] },
      }),
      params(idParam),
      async (c) => {
        const userId = c.var.session.sub;
        return c.json(orderView(await cancel(deps, userId, c.req.valid("param").id)));
      },
    )
    .get(
      "/orders/:id",
      describe({
        summary: "One of the caller's orders, with its payments",
        answers: { 200: orderDetail },
        errors: { 404: ["not-found"] },
      }),
      params(idParam),
      async (c) => {
        const userId = c.var.session.sub;
        const order = await readOrder(deps.kv, c.req.valid("param").id);
        if (!order || order.userId !== userId) throw new NotFound("No order of yours has this id.");
        const payments = await paymentsOf(await settledHistory(deps), order.id);
        return c.json({
          ...orderView(order),
          paymentUrl: order.status === "pending" ? order.paymentUrl : null,
          payments: payments.map(paymentView),
        });
      },
    );
}

/** Products and sales are made by administrators, who also read any order's payments. */
function adminRoutes(deps: Deps) {
  return new Hono<SignedInEnv>()
    .patch(
      "/admin/products/:id",
      describe({
        summary: "Edit or archive a product (for new sales; a sale keeps its own name and price)",
        answers: { 200: product },
        errors: { 404: ["not-found"] },
      }),
      params(idParam),
      body(productChange),
      async (c) => {
        const adminId = c.var.session.sub;
        return c.json(
          await editProduct(deps, adminId, c.req.valid("param").id, c.req.valid("json")),
        );
      },
    )
    .patch(
      "/admin/sales/:id",
      describe({
        summary: "Edit a sale before it starts: its times, its per-buyer limit, its prices",
        description:
          "One checked commit on the sale's definition. Once the sale has started it is refused with 409 `sale-started` (restock or end it instead); a start in the past or an end before the start is 400 naming the field. Stock is not edited: restock adds units.",
        answers: { 200: sale },
        errors: { 404: ["not-found"], 409: ["sale-started"], 410: ["sale-ended"] },
      }),
      params(idParam),
      body(saleEdit),
      async (c) => {
        const adminId = c.var.session.sub;
        return c.json(
          await reviseSale(deps, adminId, c.req.valid("param").id, c.req.valid("json")),
        );
      },
    )
    .post(
      "/admin/sales/:id/restock",
      describe({
        summary: "Add units of an item to a sale that has not ended; its viewers see them at once",
        description:
          "The units are spread over the item's stock counters in one commit: a hold racing it reads again, so the units sold never exceed those stocked plus those added.",
        answers: { 200: sale },
        errors: { 404: ["not-found"], 410: ["sale-ended"] },
      }),
      params(idParam),
      body(restockInput),
      async (c) => {
        const adminId = c.var.session.sub;
        return c.json(await restock(deps, adminId, c.req.valid("param").id, c.req.valid("json")));
      },
    )
    .post(
      "/admin/sales/:id/end",
      describe({
        summary: "End a sale now, before its time; its open holds are released",
        description:
          "No hold is taken after this answer (every hold checks the sale as it read it in its commit). Within moments, a job releases every hold still open (a pending order is cancelled, and a payment that lands after is refunded) and notifies its buyer. Paid orders stay paid.",
        answers: { 200: sale },
        errors: { 404: ["not-found"], 410: ["sale-ended"] },
      }),
      params(idParam),
      async (c) => {
        return c.json(await endSale(deps, c.var.session.sub, c.req.valid("param").id));
      },
    )
    .post(
      "/admin/sales/:id/cancel",
      describe({
        summary: "Call a sale off, started or not; its open holds are released",
        description:
          "Ends it now as `end` does, and its status becomes `cancelled`. Open holds are released and their buyers notified; paid orders stay paid, for an admin to refund one by one (`POST /api/admin/orders/{id}/refund`).",
        answers: { 200: sale },
        errors: { 404: ["not-found"], 410: ["sale-ended"] },
      }),
      params(idParam),
      async (c) => {
        return c.json(await endSale(deps, c.var.session.sub, c.req.valid("param").id, true));
      },
    )
    .get(
      "/admin/orders",
      describe({
        summary: "Every order, newest first, optionally in one status",
        answers: { 200: page(order) },
      }),
      query(pageQuery.extend({ status: z.enum(ORDER_STATUSES).optional() })),
      async (c) => {
        const { status, ...pageOf } = c.req.valid("query");
        return c.json(await listOrders(await settledHistory(deps), { status }, pageOf));
      },
    )
    .post(
      "/admin/orders/:id/refund",
      describe({
        summary: "Refund a paid order through its payment provider; the buyer is notified",
        description:
          "The order becomes `refunded` at once and the money goes back through the provider (a job, retried until it does; the sandbox holds none). Its units stay sold. Repeating it answers the refunded order and refunds nothing more.",
        answers: { 200: order },
        errors: { 404: ["not-found"], 409: ["order-not-paid"] },
      }),
      params(idParam),
      async (c) => {
        return c.json(orderView(await refund(deps, c.var.session.sub, c.req.valid("param").id)));
      },
    )
    .get(
      "/admin/orders/:id",
      describe({
        summary: "Any order with its buyer and its payment history, providers' payloads included",
        answers: { 200: orderHistory },
        errors: { 404: ["not-found"] },
      }),
      params(idParam),
      async (c) => {
        const order = await readOrder(deps.kv, c.req.valid("param").id);
        if (!order) throw new NotFound("No order has this id.");
        const payments = await paymentsOf(await settledHistory(deps), order.id);
        return c.json({
          ...orderView(order),
          buyerId: order.userId,
          provider: order.provider,
          payments: payments.map((payment) => ({
            ...paymentView(payment),
            provider: payment.provider,
            payload: payment.payload,
          })),
        });
      },
    )
    .post(
      "/products",
      describe({
        summary: "Create a product",
        answers: { 201: product },
        errors: { 403: ["email-unverified"] },
      }),
      body(productInput),
      async (c) => {
        const adminId = c.var.session.sub;
        return c.json(await createProduct(deps, adminId, c.req.valid("json")), 201);
      },
    )
    .post(
      "/sales",
      describe({
        summary: "Create a flash sale of products, each with its stock and price",
        answers: { 201: sale },
        errors: { 403: ["email-unverified"], 404: ["not-found"] },
      }),
      body(saleInput),
      async (c) => {
        const adminId = c.var.session.sub;
        return c.json(await createSale(deps, adminId, c.req.valid("json")), 201);
      },
    );
}
