// Flash sales, reservations, orders and payments (API.md "Flash sales, orders, payments").
import { Hono } from "hono";
import { z } from "zod";
import type { AppEnv, Deps } from "../app.ts";
import { listOrders, orderView, paymentsOf } from "../db/sales.ts";
import { Invalid, NotFound } from "../errors.ts";
import { zodFieldErrors } from "../input.ts";
import { readOrder, readReservation } from "../kv/orders.ts";
import {
  buyMembership,
  checkout,
  createProduct,
  createSale,
  idempotencyKey,
  membershipInput,
  productInput,
  receiveWebhook,
  release,
  reservationInput,
  reservationView,
  reserve,
  saleInput,
  saleView,
} from "../sales/sales.ts";
import { requireAdmin, requireSession, signedIn } from "./middleware/session.ts";
import { body, pageQuery, params, query } from "./middleware/validate.ts";
import { idParam } from "./profiles.ts";

const providerParam = z.object({ provider: z.string().min(1).max(40) });

export function saleRoutes(deps: Deps) {
  const admin = requireAdmin(deps);
  return new Hono<AppEnv>()
    .use("/sales/:id/reservations", signedIn)
    .use("/reservations/*", signedIn)
    .use("/orders", signedIn)
    .use("/orders/*", signedIn)
    .use("/payments/membership", signedIn)
    .post("/products", admin, body(productInput), async (c) => {
      const adminId = requireSession(c).sub;
      return c.json(await createProduct(deps, adminId, c.req.valid("json")), 201);
    })
    .post("/sales", admin, body(saleInput), async (c) => {
      const adminId = requireSession(c).sub;
      return c.json(await createSale(deps, adminId, c.req.valid("json")), 201);
    })
    // Public: a sale's page and its stock are for anyone to see.
    .get("/sales/:id", params(idParam), async (c) => {
      return c.json(await saleView(deps, c.req.valid("param").id));
    })
    .post("/sales/:id/reservations", params(idParam), body(reservationInput), async (c) => {
      const userId = requireSession(c).sub;
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
    })
    .get("/reservations/:id", params(idParam), async (c) => {
      const userId = requireSession(c).sub;
      return c.json(
        reservationView(await readReservation(deps.kv, c.req.valid("param").id, userId)),
      );
    })
    .delete("/reservations/:id", params(idParam), async (c) => {
      await release(deps, requireSession(c).sub, c.req.valid("param").id);
      return c.body(null, 204);
    })
    .post("/reservations/:id/checkout", params(idParam), async (c) => {
      const userId = requireSession(c).sub;
      return c.json(await checkout(deps, userId, c.req.valid("param").id));
    })
    .post("/payments/membership", body(membershipInput), async (c) => {
      const userId = requireSession(c).sub;
      return c.json(await buyMembership(deps, userId, c.req.valid("json").tier));
    })
    // Authenticated by the provider's signature over the raw body, not by a session.
    .post("/payments/webhook/:provider", params(providerParam), async (c) => {
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
    })
    .get("/orders", query(pageQuery), async (c) => {
      const userId = requireSession(c).sub;
      return c.json(await listOrders(deps.database.db, userId, c.req.valid("query")));
    })
    .get("/orders/:id", params(idParam), async (c) => {
      const userId = requireSession(c).sub;
      const order = await readOrder(deps.kv, c.req.valid("param").id);
      if (!order || order.userId !== userId) throw new NotFound("No order of yours has this id.");
      const payments = await paymentsOf(deps.database.db, order.id);
      return c.json({
        ...orderView(order),
        paymentUrl: order.status === "pending" ? order.paymentUrl : null,
        payments: payments.map((payment) => ({
          eventId: payment.eventId,
          type: payment.type,
          outcome: payment.outcome,
          amountCents: payment.amountCents,
          currency: payment.currency,
          receivedAt: payment.receivedAt.toISOString(),
        })),
      });
    });
}
