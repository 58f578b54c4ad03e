import assert from "node:assert/strict";
import { assertProblem, createTestApp, type HttpClient } from "./helpers/app.ts";
import { type Member, members } from "./helpers/members.ts";

const SECRET = "sk_test_convene_0123456789";

/** A stand-in for Paystack's API: records every call, answers like Paystack does. */
function paystackStandIn() {
  const calls: { path: string; authorization: string | null; body: Record<string, unknown> }[] = [];
  let refuseNext = false;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const response = await answer(req);
    // No keep-alive: shutting the stand-in down need not wait for idle connections.
    response.headers.set("connection", "close");
    return response;
  });
  async function answer(req: Request): Promise<Response> {
    const body = await req.json();
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
    if (path === "/refund") {
      return Response.json({ status: true, message: "Refund has been queued" });
    }
    return Response.json({ status: false, message: "not found" }, { status: 404 });
  }
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    calls,
    refuseNext: () => void (refuseNext = true),
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
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
  await using t0 = await createTestApp({
    env: {
      PAYMENTS_PROVIDER: "paystack",
      PAYSTACK_SECRET_KEY: SECRET,
      PAYSTACK_API_URL: paystack.url,
    },
  });
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
