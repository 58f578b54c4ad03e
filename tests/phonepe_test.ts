import assert from "node:assert/strict";
import { assertProblem, createTestApp, type HttpClient } from "./helpers/app.ts";
import { type Member, members } from "./helpers/members.ts";
import { RECONCILE_AFTER_MS, reconcilePayments } from "../workflows/sales/orders.ts";

const CLIENT = {
  PHONEPE_CLIENT_ID: "CONVENEUAT_2612",
  PHONEPE_CLIENT_SECRET: "c2VjcmV0LXNlY3JldA",
  PHONEPE_CLIENT_VERSION: "1",
};
const HOOK_USER = "convene_hooks";
const HOOK_PASSWORD = "hooks2026secret";

/**
 * A stand-in for PhonePe's standard checkout, laid out like its sandbox: OAuth tokens that expire,
 * payments, order status, refunds and their status. Records every call.
 */
function phonepeStandIn() {
  const calls: {
    method: string;
    path: string;
    authorization: string | null;
    body: Record<string, unknown>;
  }[] = [];
  let tokens = 0;
  /** Tokens PhonePe no longer accepts (the test revokes them, as an expiry would). */
  const revoked = new Set<string>();
  /** Orders by merchantOrderId, as PhonePe's order status reports them. */
  const orders = new Map<string, { orderId: string; state: string; amount: number }>();
  const refunds = new Map<string, { state: string; amount: number; order: string }>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const response = await answer(req);
    response.headers.set("connection", "close");
    return response;
  });
  async function answer(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    const authorization = req.headers.get("authorization");
    if (path === "/v1/oauth/token") {
      const form = Object.fromEntries(new URLSearchParams(await req.text()));
      calls.push({ method: req.method, path, authorization, body: form });
      if (form.client_secret !== CLIENT.PHONEPE_CLIENT_SECRET) {
        return Response.json({ code: "INVALID_CLIENT" }, { status: 401 });
      }
      const token = `tok-${++tokens}`;
      return Response.json({
        access_token: token,
        encrypted_access_token: token,
        expires_in: null,
        issued_at: Math.floor(Date.now() / 1000),
        expires_at: Math.floor(Date.now() / 1000) + 3600,
        token_type: "O-Bearer",
      });
    }
    const body = req.method === "GET" ? {} : await req.json();
    calls.push({ method: req.method, path, authorization, body });
    const token = authorization?.replace(/^O-Bearer /, "") ?? "";
    if (!/^tok-\d+$/.test(token) || revoked.has(token)) {
      return Response.json({ code: "UNAUTHORIZED", message: "token expired" }, { status: 401 });
    }
    if (path === "/checkout/v2/pay") {
      const orderId = `OMO${body.merchantOrderId}`;
      orders.set(String(body.merchantOrderId), {
        orderId,
        state: "PENDING",
        amount: Number(body.amount),
      });
      return Response.json({
        orderId,
        state: "PENDING",
        expireAt: Date.now() + 1_200_000,
        redirectUrl: `https://mercury-uat.phonepe.example/transact?token=${body.merchantOrderId}`,
      });
    }
    const status = path.match(/^\/checkout\/v2\/order\/(.+)\/status$/);
    if (status) {
      const found = orders.get(decodeURIComponent(status[1]));
      if (!found) return Response.json({ code: "ORDER_NOT_FOUND" }, { status: 404 });
      return Response.json({ ...found, expireAt: Date.now() + 1_200_000, paymentDetails: [] });
    }
    if (path === "/payments/v2/refund") {
      const id = String(body.merchantRefundId);
      if (refunds.has(id)) return Response.json({ code: "DUPLICATE_REQUEST" }, { status: 409 });
      refunds.set(id, {
        state: "PENDING",
        amount: Number(body.amount),
        order: String(body.originalMerchantOrderId),
      });
      return Response.json({ refundId: `OMR${id}`, amount: body.amount, state: "PENDING" });
    }
    const refund = path.match(/^\/payments\/v2\/refund\/(.+)\/status$/);
    if (refund) {
      const found = refunds.get(decodeURIComponent(refund[1]));
      if (!found) return Response.json({ code: "REFUND_NOT_FOUND" }, { status: 404 });
      return Response.json({
        originalMerchantOrderId: found.order,
        amount: found.amount,
        state: found.state,
        refundId: `OMR${refund[1]}`,
      });
    }
    return Response.json({ code: "NOT_FOUND" }, { status: 404 });
  }
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    calls,
    orders,
    refunds,
    revokeTokens: () => {
      for (let n = 1; n <= tokens; n++) revoked.add(`tok-${n}`);
    },
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

function phonepeApp(url: string) {
  return createTestApp({
    env: {
      PAYMENTS_PROVIDER: "phonepe",
      ...CLIENT,
      PHONEPE_WEBHOOK_USERNAME: HOOK_USER,
      PHONEPE_WEBHOOK_PASSWORD: HOOK_PASSWORD,
      PHONEPE_API_URL: url,
    },
  });
}

async function sha256Hex(text: string) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** A webhook as PhonePe sends it: `Authorization: SHA256(username:password)`. */
async function phonepeWebhook(
  http: HttpClient,
  event: string,
  payload: Record<string, unknown>,
  credentials = `${HOOK_USER}:${HOOK_PASSWORD}`,
) {
  return await http("POST", "/api/payments/webhook/phonepe", {
    raw: JSON.stringify({ event, payload }),
    headers: { "content-type": "application/json", authorization: await sha256Hex(credentials) },
  });
}

/** A live one-item sale at `priceCents` in `currency`, stocked by an admin. */
async function liveSale(
  t0: Awaited<ReturnType<typeof createTestApp>>,
  admin: Member,
  currency: string,
) {
  const product = await t0.http("POST", "/api/products", {
    token: admin.token,
    body: { name: `Conference pass (${currency})`, priceCents: 49900, currency },
  });
  const sale = await t0.http("POST", "/api/sales", {
    token: admin.token,
    body: {
      items: [{ productId: product.body.id, stock: 10, priceCents: 49900 }],
      startsAt: new Date(t0.clock.now() - 1000).toISOString(),
      endsAt: new Date(t0.clock.now() + 3_600_000).toISOString(),
      perUserLimit: 2,
    },
  });
  assert.equal(sale.status, 201, JSON.stringify(sale.body));
  return { saleId: sale.body.id as string, productId: product.body.id as string };
}

async function checkout(
  http: HttpClient,
  who: Member,
  sale: { saleId: string; productId: string },
) {
  const held = await http("POST", `/api/sales/${sale.saleId}/reservations`, {
    token: who.token,
    body: { productId: sale.productId, quantity: 1 },
  });
  assert.equal(held.status, 201, JSON.stringify(held.body));
  return await http("POST", `/api/reservations/${held.body.id}/checkout`, { token: who.token });
}

Deno.test("[payments] PhonePe: OAuth token, standard checkout, SHA256 webhooks, refunds, reconciliation", async (t) => {
  await using phonepe = phonepeStandIn();
  await using t0 = await phonepeApp(phonepe.url);
  const [admin] = await members(t0.deps, 1, { role: "admin" });
  const [ada, bob, cy] = await members(t0.deps, 3);
  const rupees = await liveSale(t0, admin, "INR");
  const tokenCalls = () => phonepe.calls.filter((call) => call.path === "/v1/oauth/token");
  let adaOrder = "";

  await t.step(
    "checkout fetches one token and creates the payment; its page is PhonePe's",
    async () => {
      const first = await checkout(t0.http, ada, rupees);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      adaOrder = first.body.orderId;
      assert.equal(
        first.body.paymentUrl,
        `https://mercury-uat.phonepe.example/transact?token=${adaOrder}`,
      );
      const second = await checkout(t0.http, bob, rupees);
      assert.equal(second.status, 200);
      assert.equal(tokenCalls().length, 1, "the token is kept for the next calls");
      assert.deepEqual(tokenCalls()[0].body, {
        client_id: CLIENT.PHONEPE_CLIENT_ID,
        client_version: "1",
        client_secret: CLIENT.PHONEPE_CLIENT_SECRET,
        grant_type: "client_credentials",
      });
      const pay = phonepe.calls.find((call) =>
        call.path === "/checkout/v2/pay" && call.body.merchantOrderId === adaOrder
      )!;
      assert.equal(pay.authorization, "O-Bearer tok-1");
      assert.equal(pay.body.amount, 49900, "in paise, the server's price");
      assert.deepEqual(pay.body.paymentFlow, {
        type: "PG_CHECKOUT",
        message: "1 × Conference pass (INR)",
        merchantUrls: { redirectUrl: `${t0.deps.config.PUBLIC_URL}/#/orders` },
      });
    },
  );

  await t.step("a token PhonePe no longer accepts is fetched again, once", async () => {
    phonepe.revokeTokens();
    const answer = await checkout(t0.http, cy, rupees);
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(tokenCalls().length, 2);
  });

  await t.step("an order PhonePe cannot take is refused before it is made", async () => {
    const dollars = await liveSale(t0, admin, "USD");
    const refused = await checkout(t0.http, ada, dollars);
    assert.equal(assertProblem(refused, 422).type, "/problems/currency-not-supported");
  });

  await t.step(
    "webhooks: SHA256(username:password) or 401; the payload's state decides",
    async () => {
      const completed = {
        merchantId: "CONVENEUAT",
        merchantOrderId: adaOrder,
        orderId: `OMO${adaOrder}`,
        state: "COMPLETED",
        amount: 49900,
        expireAt: Date.now() + 1000,
        paymentDetails: [{ paymentMode: "UPI_QR", transactionId: "OM1", amount: 49900 }],
      };
      assertProblem(
        await phonepeWebhook(t0.http, "checkout.order.completed", completed, `${HOOK_USER}:wrong1`),
        401,
      );
      const unsigned = await t0.http("POST", "/api/payments/webhook/phonepe", {
        body: { event: "checkout.order.completed", payload: completed },
      });
      assertProblem(unsigned, 401);
      const paid = await phonepeWebhook(t0.http, "checkout.order.completed", completed);
      assert.equal(paid.status, 200, JSON.stringify(paid.body));
      assert.equal(paid.body.outcome, "paid");
      assert.equal(paid.body.orderStatus, "paid");
      const repeated = await phonepeWebhook(t0.http, "checkout.order.completed", completed);
      assert.equal(repeated.body.repeated, true);
      const attempt = await phonepeWebhook(t0.http, "pg.transaction.failed", { state: "PENDING" });
      assert.equal(attempt.body.outcome, "ignored");
    },
  );

  await t.step("an admin's refund goes to PhonePe once, named after the order", async () => {
    const refunded = await t0.http("POST", `/api/admin/orders/${adaOrder}/refund`, {
      token: admin.token,
    });
    assert.equal(refunded.status, 200, JSON.stringify(refunded.body));
    assert.equal(refunded.body.status, "refunded");
    await t0.waitForLog((record) =>
      record.msg === "payment refunded" && record.orderId === adaOrder
    );
    // The job runs again (a retry after a lost answer): PhonePe is asked, and not charged twice.
    await t0.deps.payments.refund({ orderId: adaOrder, reference: adaOrder, amountCents: 49900 });
    const asked = phonepe.calls.filter((call) => call.path === "/payments/v2/refund");
    assert.deepEqual(asked.map((call) => call.body), [{
      merchantRefundId: `refund-${adaOrder}`,
      originalMerchantOrderId: adaOrder,
      amount: 49900,
    }]);

    const done = await phonepeWebhook(t0.http, "pg.refund.completed", {
      merchantId: "CONVENEUAT",
      merchantRefundId: `refund-${adaOrder}`,
      originalMerchantOrderId: adaOrder,
      refundId: `OMRrefund-${adaOrder}`,
      state: "COMPLETED",
      amount: 49900,
      timestamp: Date.now(),
    });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.outcome, "recorded");
    const history = await t0.http("GET", `/api/admin/orders/${adaOrder}`, { token: admin.token });
    assert.deepEqual(
      history.body.payments.map((payment: { type: string; outcome: string }) => [
        payment.type,
        payment.outcome,
      ]),
      [["succeeded", "paid"], ["refund-completed", "recorded"]],
    );
  });

  await t.step("reconciliation asks PhonePe about orders pending 5 minutes", async () => {
    const bobOrder = [...phonepe.orders.keys()].find((id) => id !== adaOrder)!;
    phonepe.orders.get(bobOrder)!.state = "COMPLETED";
    const cyOrder = [...phonepe.orders.keys()].at(-1)!;
    phonepe.orders.get(cyOrder)!.state = "FAILED";
    await t0.deps.outbox.flush();
    t0.clock.advance(RECONCILE_AFTER_MS + 1000);
    assert.deepEqual(await reconcilePayments(t0.deps), { paid: 1, cancelled: 1 });
    const bobs = await t0.http("GET", `/api/orders/${bobOrder}`, { token: bob.token });
    assert.equal(bobs.body.status, "paid");
    const late = await phonepeWebhook(t0.http, "checkout.order.completed", {
      merchantOrderId: bobOrder,
      orderId: `OMO${bobOrder}`,
      state: "COMPLETED",
      amount: 49900,
    });
    assert.equal(late.body.repeated, true, "the webhook after the status answer is a repeat");
  });
});
