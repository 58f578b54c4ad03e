// The sandbox payment provider's pay page (in the reference's "Flash sales and payments" group): Pay
// and Fail buttons whose form is turned into a webhook signed exactly as the sandbox signs it, and
// delivered to the same handler as any webhook, signature check included. Mounted only with the
// sandbox provider.
import { Hono } from "hono";
import { html } from "hono/html";
import { plainPage } from "./web.ts";
import { z } from "zod";
import type { AppEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { Invalid, NotFound } from "../errors.ts";
import { newId } from "../ids.ts";
import { id } from "../input.ts";
import { readOrder } from "../kv/sales/orders.ts";
import { SANDBOX_SIGNATURE_HEADER, type SandboxEvent, signSandbox } from "../providers/payments.ts";
import { receiveWebhook } from "../workflows/sales/orders.ts";
import { params } from "./middleware/validate.ts";
import { documented } from "./middleware/describe.ts";

const describe = documented("Flash sales and payments");

const orderParam = z.object({ orderId: id });

const money = (cents: number, currency: string) => `${(cents / 100).toFixed(2)} ${currency}`;

function sandboxPage(title: string, body: unknown) {
  return plainPage(title, html`<p><strong>Sandbox payment</strong>: no money moves.</p>${body}`);
}

export function sandboxRoutes(deps: Deps) {
  return new Hono<AppEnv>()
    .get(
      "/pay/:orderId",
      describe({
        summary: "The sandbox payment page: Pay / Fail buttons",
        answers: { 200: { contentType: "text/html" } },
        errors: { 404: ["not-found"] },
      }),
      params(orderParam),
      async (c) => {
        const order = await readOrder(deps.kv, c.req.valid("param").orderId);
        if (!order) throw new NotFound("No order has this id.");
        const action = `/sandbox/pay/${encodeURIComponent(order.id)}`;
        return c.html(sandboxPage(
          "Pay",
          html`<h1>${order.description}</h1>
<p>${
            money(order.amountCents, order.currency)
          }: order <code>${order.id}</code> is ${order.status}.</p>
<form method="post" action="${action}"><button name="outcome" value="pay">Pay</button>
<button name="outcome" value="fail">Fail</button></form>`,
        ));
      },
    )
    .post(
      "/pay/:orderId",
      describe({
        summary: "Pay or fail an order: sends a signed sandbox webhook",
        body: {
          contentType: "application/x-www-form-urlencoded",
          schema: z.object({ outcome: z.enum(["pay", "fail"]) }),
        },
        answers: { 200: { contentType: "text/html" } },
        errors: { 404: ["not-found"] },
      }),
      params(orderParam),
      async (c) => {
        const order = await readOrder(deps.kv, c.req.valid("param").orderId);
        if (!order) throw new NotFound("No order has this id.");
        const outcome = (await c.req.parseBody()).outcome;
        if (outcome !== "pay" && outcome !== "fail") {
          throw new Invalid("Press Pay or Fail.", [{ path: "outcome", message: "pay or fail" }]);
        }
        const event: SandboxEvent = {
          id: `evt_${newId(deps.clock.now())}`,
          type: outcome === "pay" ? "payment.succeeded" : "payment.failed",
          data: { orderId: order.id, amountCents: order.amountCents, currency: order.currency },
        };
        const rawBody = JSON.stringify(event);
        const signature = await signSandbox(
          deps.config.PAYMENTS_SANDBOX_SECRET,
          rawBody,
          Math.floor(deps.clock.now() / 1000),
        );
        const result = await receiveWebhook(
          deps,
          "sandbox",
          new Headers({ [SANDBOX_SIGNATURE_HEADER]: signature }),
          rawBody,
        );
        return c.html(sandboxPage(
          "Paid",
          html`<h1>${outcome === "pay" ? "Payment sent" : "Payment failed"}</h1>
<p>Order <code>${order.id}</code> is now ${result.order?.status ?? order.status}.</p>
<p><a href="/#/orders">Back to your orders</a></p>`,
        ));
      },
    );
}
