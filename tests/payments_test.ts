import assert from "node:assert/strict";
import { assertProblem, createTestApp, type HttpClient } from "./helpers/app.ts";
import { type Member, members } from "./helpers/members.ts";
import { RECONCILE_AFTER_MS, reconcilePayments } from "../workflows/sales/orders.ts";

const SECRET = "sk_test_convene_0123456789";

/** A stand-in for Paystack's API: records every call, answers like Paystack does. */
function paystackStandIn() {
  const calls: { path: string; authorization: string | null; body: Record<string, unknown> }[] = [];
  let refuseNext = false;
  /** Transactions as Paystack's verify reports them, by reference (set by the test). */
  const transactions = new Map<string, { id: number; status: string; amount: number }>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const response = await answer(req);
    // No keep-alive: shutting the stand-in down need not wait for idle connections.
    response.headers.set("connection", "close");
    return response;
  });
  async function answer(req: Request): Promise<Response> {
    const body = req.method === "GET" ? {} : await req.json();
    const path = new URL(req.url).pathname;
    calls.push({ path, authorization: req.headers.get("authorization"), body });
    if (refuseNext) {
      refuseNext = false;
      return Response.json({ status: false, message: "Invalid currency" }, { status: 400 });
    }
    if (path === "/transaction/initialize") {
      return Response.json({
        status: true,
        message: "Authorization URL created",
        data: {
          authorization_url: `https://checkout.example/${body.reference}`,
          access_code: "ac_1",
          reference: body.reference,
        },
      });
    }
    const verify = path.match(/^\/transaction\/verify\/(.+)$/);
    if (verify) {
      const reference = decodeURIComponent(verify[1]);
      const found = transactions.get(reference);
      if (!found) {
        return Response.json({ status: false, message: "Transaction reference not found" }, {
          status: 404,
        });
      }
      return Response.json({
        status: true,
        message: "Verification successful",
        data: { ...found, reference, currency: "USD", gateway_response: "Approved" },
      });
    }
    if (path === "/refund") {
      return Response.json({ status: true, message: "Refund has been queued" });
    }
    return Response.json({ status: false, message: "not found" }, { status: 404 });
  }
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    calls,
    refuseNext: () => void (refuseNext = true),
    transactions,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** An app paying through Paystack's stand-in at `url`. */
function paystackApp(url: string) {
  return createTestApp({
    env: { PAYMENTS_PROVIDER: "paystack", PAYSTACK_SECRET_KEY: SECRET, PAYSTACK_API_URL: url },
  });
}

async function hmacSha512(secret: string, body: string) {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-512" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(body));
  return Array.from(new Uint8Array(mac), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function paystackWebhook(
  http: HttpClient,
  event: { event?: string; id: number; reference: string; amount: number },
  secret = SECRET,
) {
  const rawBody = JSON.stringify({
    event: event.event ?? "charge.success",
    data: {
      id: event.id,
      status: "success",
      reference: event.reference,
      amount: event.amount,
      currency: "USD",
      customer: { email: "someone@example.com" },
    },
  });
  return await http("POST", "/api/payments/webhook/paystack", {
    raw: rawBody,
    headers: {
      "content-type": "application/json",
      "x-paystack-signature": await hmacSha512(secret, rawBody),
    },
  });
}

/** A live one-item sale of `stock` units at 19.99 USD, stocked by an admin. */
async function liveSale(t0: Awaited<ReturnType<typeof createTestApp>>, stock: number) {
  const [admin] = await members(t0.deps, 1, { role: "admin" });
  const product = await t0.http("POST", "/api/products", {
    token: admin.token,
    body: { name: "Mechanical keyboard", priceCents: 2500, currency: "USD" },
  });
  const sale = await t0.http("POST", "/api/sales", {
    token: admin.token,
    body: {
      items: [{ productId: product.body.id, stock, priceCents: 1999 }],
      startsAt: new Date(t0.clock.now() - 1000).toISOString(),
      endsAt: new Date(t0.clock.now() + 3_600_000).toISOString(),
      perUserLimit: 2,
    },
  });
  assert.equal(sale.status, 201, JSON.stringify(sale.body));
  return { saleId: sale.body.id as string, productId: product.body.id as string };
}

async function hold(http: HttpClient, who: Member, sale: { saleId: string; productId: string }) {
  const answer = await http("POST", `/api/sales/${sale.saleId}/reservations`, {
    token: who.token,
    body: { productId: sale.productId, quantity: 1 },
  });
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  return answer.body.id as string;
}

Deno.test("[payments] Paystack: initialize over fetch, HMAC-SHA512 webhooks, refunds of late payments", async (t) => {
  await using paystack = paystackStandIn();
  await using t0 = await paystackApp(paystack.url);
  const sale = await liveSale(t0, 5);
  const [ada, bob] = await members(t0.deps, 2);

  await t.step(
    "checkout initializes one transaction at the server's amount, with the order as reference",
    async () => {
      const reservationId = await hold(t0.http, ada, sale);
      paystack.refuseNext();
      const refused = await t0.http("POST", `/api/reservations/${reservationId}/checkout`, {
        token: ada.token,
      });
      assert.equal(assertProblem(refused, 502).type, "/problems/payment-provider-error");
      const first = await t0.http("POST", `/api/reservations/${reservationId}/checkout`, {
        token: ada.token,
      });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const { orderId, paymentUrl } = first.body;
      assert.equal(paymentUrl, `https://checkout.example/${orderId}`);
      const again = await t0.http("POST", `/api/reservations/${reservationId}/checkout`, {
        token: ada.token,
      });
      assert.deepEqual(again.body, { orderId, paymentUrl });
      const initializes = paystack.calls.filter((call) => call.path === "/transaction/initialize");
      assert.equal(initializes.length, 2, "one refused, one accepted; the repeat reuses the page");
      const call = initializes[1];
      assert.equal(call.authorization, `Bearer ${SECRET}`);
      assert.equal(call.body.amount, 1999);
      assert.equal(call.body.currency, "USD");
      assert.equal(call.body.reference, orderId);
      assert.match(String(call.body.email), /@example\.com$/);

      const unsigned = await paystackWebhook(
        t0.http,
        { id: 1, reference: orderId, amount: 1999 },
        "sk_wrong",
      );
      assertProblem(unsigned, 401);
      const paid = await paystackWebhook(t0.http, { id: 7001, reference: orderId, amount: 1999 });
      assert.equal(paid.status, 200, JSON.stringify(paid.body));
      assert.equal(paid.body.outcome, "paid");
      const repeated = await paystackWebhook(t0.http, {
        id: 7001,
        reference: orderId,
        amount: 1999,
      });
      assert.equal(repeated.body.repeated, true);
      const other = await paystackWebhook(t0.http, {
        event: "transfer.success",
        id: 9,
        reference: "tr_1",
        amount: 5,
      });
      assert.equal(other.status, 200);
      assert.equal(other.body.outcome, "ignored");
    },
  );

  await t.step(
    "a charge that lands after the hold expired is refunded through Paystack",
    async () => {
      const reservationId = await hold(t0.http, bob, sale);
      const { body } = await t0.http("POST", `/api/reservations/${reservationId}/checkout`, {
        token: bob.token,
      });
      t0.clock.advance(t0.deps.config.RESERVATION_TTL_SECONDS * 1000);
      const late = await paystackWebhook(t0.http, {
        id: 7002,
        reference: body.orderId,
        amount: 1999,
      });
      assert.equal(late.body.outcome, "refunded");
      await t0.waitForLog((record) =>
        record.msg === "payment refunded" && record.orderId === body.orderId
      );
      const refunds = paystack.calls.filter((call) => call.path === "/refund");
      assert.deepEqual(refunds.map((call) => call.body), [{ transaction: body.orderId }]);
      const view = await t0.http("GET", `/api/sales/${sale.saleId}`);
      assert.equal(view.body.items[0].stockRemaining, 4, "only Ada's paid unit is gone");

      // Paystack tells how the refund went: a row in the order's payment history.
      const rawBody = JSON.stringify({
        event: "refund.processed",
        data: {
          status: "processed",
          transaction_reference: body.orderId,
          amount: 1999,
          currency: "USD",
        },
      });
      const processed = await t0.http("POST", "/api/payments/webhook/paystack", {
        raw: rawBody,
        headers: { "x-paystack-signature": await hmacSha512(SECRET, rawBody) },
      });
      assert.equal(processed.body.outcome, "recorded", JSON.stringify(processed.body));
      const [admin] = await members(t0.deps, 1, { role: "admin" });
      const history = await t0.http("GET", `/api/admin/orders/${body.orderId}`, {
        token: admin.token,
      });
      assert.deepEqual(
        history.body.payments.map((payment: { type: string }) => payment.type),
        ["succeeded", "refund-completed"],
      );
    },
  );

  await t.step("the sandbox's page and webhook do not exist with Paystack configured", async () => {
    assertProblem(await t0.http("GET", "/sandbox/pay/anything"), 404);
    assertProblem(await t0.http("POST", "/api/payments/webhook/sandbox", { body: {} }), 404);
  });
});

Deno.test("[payments] the sandbox pay page posts a signed webhook: Pay pays, Fail releases", async () => {
  await using t0 = await createTestApp();
  const sale = await liveSale(t0, 2);
  const [ada] = await members(t0.deps, 1);

  const first = await hold(t0.http, ada, sale);
  const { body } = await t0.http("POST", `/api/reservations/${first}/checkout`, {
    token: ada.token,
  });
  const path = new URL(body.paymentUrl).pathname;
  const page = await t0.http("GET", path);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /text\/html/);
  assert.match(page.body, /19\.99 USD/);
  assert.match(page.body, /value="pay"/);
  const paid = await t0.http("POST", path, {
    raw: new URLSearchParams({ outcome: "pay" }),
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  assert.equal(paid.status, 200);
  assert.match(paid.body, /is now paid/);

  const second = await hold(t0.http, ada, sale);
  const checkout = await t0.http("POST", `/api/reservations/${second}/checkout`, {
    token: ada.token,
  });
  const failed = await t0.http("POST", new URL(checkout.body.paymentUrl).pathname, {
    raw: new URLSearchParams({ outcome: "fail" }),
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  assert.match(failed.body, /is now cancelled/);
  const view = await t0.http("GET", `/api/sales/${sale.saleId}`);
  assert.equal(view.body.items[0].stockRemaining, 1);
  const listed = await t0.http("GET", "/api/orders", { token: ada.token });
  assert.deepEqual(listed.body.items.map((order: { status: string }) => order.status), [
    "cancelled",
    "paid",
  ]);
  const bogus = await t0.http("POST", path, {
    raw: new URLSearchParams({ outcome: "maybe" }),
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  assertProblem(bogus, 400);
  await t0.waitForLog((record) => record.msg === "job done" && record.job === "notify");
});

Deno.test("[payments] reconciliation: a lost webhook still ends the order paid or cancelled, asking Paystack once it has waited 5 minutes", async (t) => {
  await using paystack = paystackStandIn();
  await using t0 = await paystackApp(paystack.url);
  const sale = await liveSale(t0, 5);
  const [ada, bob, cy] = await members(t0.deps, 3);
  const order = async (who: Member) => {
    const reservationId = await hold(t0.http, who, sale);
    const answer = await t0.http("POST", `/api/reservations/${reservationId}/checkout`, {
      token: who.token,
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body.orderId as string;
  };
  const statusOf = async (who: Member, orderId: string) =>
    (await t0.http("GET", `/api/orders/${orderId}`, { token: who.token })).body.status;
  const verifies = () =>
    paystack.calls.filter((call) => call.path.startsWith("/transaction/verify"));

  // Ada pays and Bob's card is declined at Paystack; neither webhook arrives. Cy has not paid yet.
  const paid = await order(ada);
  const declined = await order(bob);
  const undecided = await order(cy);
  paystack.transactions.set(paid, { id: 8001, status: "success", amount: 1999 });
  paystack.transactions.set(declined, { id: 8002, status: "failed", amount: 1999 });
  paystack.transactions.set(undecided, { id: 8003, status: "ongoing", amount: 1999 });
  await t0.deps.outbox.flush();

  await t.step("orders younger than 5 minutes are not asked about", async () => {
    assert.deepEqual(await reconcilePayments(t0.deps), {});
    assert.equal(verifies().length, 0);
  });

  await t.step(
    "after 5 minutes: paid, cancelled (its unit back), and the undecided left pending",
    async () => {
      t0.clock.advance(RECONCILE_AFTER_MS + 1000);
      assert.deepEqual(await reconcilePayments(t0.deps), { paid: 1, cancelled: 1 });
      assert.equal(verifies().length, 3);
      assert.equal(await statusOf(ada, paid), "paid");
      assert.equal(await statusOf(bob, declined), "cancelled");
      assert.equal(await statusOf(cy, undecided), "pending");
      const view = await t0.http("GET", `/api/sales/${sale.saleId}`);
      assert.equal(view.body.items[0].stockRemaining, 3, "Ada's unit sold, Bob's back, Cy's held");
    },
  );

  await t.step(
    "the webhook that arrives after is a repeat; settled orders are not asked again",
    async () => {
      const late = await paystackWebhook(t0.http, { id: 8001, reference: paid, amount: 1999 });
      assert.equal(late.body.repeated, true);
      await t0.deps.outbox.flush();
      const before = verifies().length;
      await reconcilePayments(t0.deps);
      assert.equal(verifies().length - before, 1, "only Cy's order, still undecided");
      const history = await t0.http("GET", `/api/admin/orders/${paid}`, {
        token: (await members(t0.deps, 1, { role: "admin" }))[0].token,
      });
      assert.equal(history.body.payments.length, 1);
      assert.equal(history.body.payments[0].payload.message, "Verification successful");
    },
  );
});
