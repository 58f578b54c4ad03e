import assert from "node:assert/strict";
import { eq } from "drizzle-orm";
import { orders, payments, reservations, saleItems } from "../db/schema.ts";
import { reservationKey, saleBuyerKey } from "../kv/keys.ts";
import { recordFromRow, type Reservation } from "../db/records.ts";
import { recordOrders, recordReservations } from "../db/sales.ts";
import { signSandbox } from "../providers/payments.ts";
import { sweepReservations } from "../workflows/sales/orders.ts";
import { PURCHASE_LINE_MS } from "../realtime/frames.ts";
import { type Answer, assertProblem, createTestApp, type HttpClient } from "./helpers/app.ts";
import { heldJobs } from "./helpers/held-jobs.ts";
import { type Member, members } from "./helpers/members.ts";
import { TestSocket } from "./helpers/sockets.ts";
import { twoIsolates } from "./helpers/isolates.ts";
import { holdingKv } from "./helpers/kv-trips.ts";
import { z } from "zod";
import { Outbox } from "../kv/outbox.ts";
import { openKv } from "../kv/store.ts";
import {
  createSaleStock,
  endSaleEarly,
  HOLDS_PER_TURN,
  reserveStock,
  stockRemaining,
} from "../kv/sales/stock.ts";

type Options = Parameters<typeof createTestApp>[0];
type TestApp = Awaited<ReturnType<typeof createTestApp>>;

const MINUTE = 60_000;

/** An app with an admin, and helpers to stock a sale and buy from it. */
async function shop(options: Options = {}) {
  const t0 = await createTestApp(options);
  const [admin] = await members(t0.deps, 1, { name: () => "Admin", role: "admin" });
  const [ada, bob] = await members(t0.deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  return { ...t0, admin, ada, bob, ...saleHelpers(t0, admin) };
}

/**
 * Two isolates (tests/helpers/isolates.ts), each with its own KV connection, hub and shard locks,
 * accepting the same tokens; the shop's admin and members live on the first.
 */
async function twoShops() {
  const isolates = await twoIsolates();
  const { first, second } = isolates;
  const [admin] = await members(first.deps, 1, { name: () => "Admin", role: "admin" });
  const [ada, bob] = await members(first.deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  return {
    first: { ...first, admin, ada, bob, ...saleHelpers(first, admin) },
    second,
    [Symbol.asyncDispose]: () => isolates[Symbol.asyncDispose](),
  };
}

function saleHelpers(t0: Pick<TestApp, "http" | "clock">, admin: Member) {
  const http = t0.http;
  async function product(priceCents = 2500, currency = "USD") {
    const answer = await http("POST", "/api/products", {
      token: admin.token,
      body: { name: `Keyboard ${crypto.randomUUID().slice(0, 4)}`, priceCents, currency },
    });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    return answer.body.id as string;
  }
  async function sale(
    items: { stock: number; priceCents?: number }[],
    options: { perUserLimit?: number; startsInMs?: number; lastsMs?: number } = {},
  ) {
    const productIds = await Promise.all(items.map(() => product()));
    const startsAt = t0.clock.now() + (options.startsInMs ?? -MINUTE);
    const answer = await http("POST", "/api/sales", {
      token: admin.token,
      body: {
        items: items.map((item, i) => ({
          productId: productIds[i],
          stock: item.stock,
          priceCents: item.priceCents ?? 1999,
        })),
        startsAt: new Date(startsAt).toISOString(),
        endsAt: new Date(startsAt + (options.lastsMs ?? 60 * MINUTE)).toISOString(),
        perUserLimit: options.perUserLimit ?? 5,
      },
    });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    return { id: answer.body.id as string, productIds };
  }
  return { product, sale };
}

function reserve(
  http: HttpClient,
  who: Member,
  saleId: string,
  body: Record<string, unknown>,
  key?: string,
) {
  return http("POST", `/api/sales/${saleId}/reservations`, {
    token: who.token,
    body,
    headers: key ? { "idempotency-key": key } : {},
  });
}

async function reserved(http: HttpClient, who: Member, saleId: string, productId: string) {
  const answer = await reserve(http, who, saleId, { productId, quantity: 1 });
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  return answer.body;
}

/** Resolves once either app's job has released the open holds of an ended sale. */
function saleClosed(apps: Pick<TestApp, "waitForLog">[], saleId: string) {
  return Promise.race(
    apps.map((app) =>
      app.waitForLog((record) => record.msg === "sale closed" && record.saleId === saleId)
    ),
  );
}

async function stockLeft(http: HttpClient, saleId: string) {
  const answer = await http("GET", `/api/sales/${saleId}`);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body as {
    status: string;
    items: { productId: string; stockRemaining: number }[];
  };
}

async function checkout(http: HttpClient, who: Member, reservationId: string) {
  const answer = await http("POST", `/api/reservations/${reservationId}/checkout`, {
    token: who.token,
  });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body as { orderId: string; paymentUrl: string };
}

/** A webhook signed exactly as the sandbox signs it (`at` in ms; default now). */
async function sandboxWebhook(
  t0: Pick<TestApp, "http" | "clock" | "deps">,
  event: { id?: string; type?: string; orderId: string; amountCents: number; currency?: string },
  options: { at?: number; secret?: string; rawBody?: string } = {},
) {
  const rawBody = options.rawBody ?? JSON.stringify({
    id: event.id ?? `evt_${crypto.randomUUID()}`,
    type: event.type ?? "payment.succeeded",
    data: {
      orderId: event.orderId,
      amountCents: event.amountCents,
      currency: event.currency ?? "USD",
    },
  });
  const t = Math.floor((options.at ?? t0.clock.now()) / 1000);
  const signature = await signSandbox(
    options.secret ?? t0.deps.config.PAYMENTS_SANDBOX_SECRET,
    rawBody,
    t,
  );
  return await t0.http("POST", "/api/payments/webhook/sandbox", {
    raw: rawBody,
    headers: { "content-type": "application/json", "convene-signature": signature },
  });
}

async function orderOf(http: HttpClient, who: Member, orderId: string) {
  const answer = await http("GET", `/api/orders/${orderId}`, { token: who.token });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

Deno.test("[sales] 1,000 concurrent buyers of 100 units on two isolates: exactly 100 holds, 900 × 409 sold-out", async () => {
  await using isolates = await twoShops();
  const { first: t0, second: other } = isolates;
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 100 }], {
    perUserLimit: 1,
  });
  const buyers = await members(t0.deps, 1000);
  const answers = await Promise.all(
    buyers.map((buyer, i) =>
      reserve(i % 2 ? other.http : t0.http, buyer, saleId, { productId, quantity: 1 })
    ),
  );
  const held = answers.filter((answer) => answer.status === 201);
  const refused = answers.filter((answer) => answer.status === 409);
  assert.equal(held.length, 100);
  assert.equal(refused.length, 900);
  for (const answer of refused) assert.equal(answer.body.type, "/problems/sold-out");
  assert.equal(new Set(held.map((answer) => answer.body.id)).size, 100);
  const view = await stockLeft(t0.http, saleId);
  assert.equal(view.items[0].stockRemaining, 0);
  assert.equal(view.status, "sold-out");
  await Promise.all([t0.deps.outbox.flush(), other.deps.outbox.flush()]);
  const rows = await t0.deps.database.db.select().from(reservations)
    .where(eq(reservations.saleId, saleId));
  assert.equal(rows.length, 100);
  assert.ok(rows.every((row) => row.status === "held" && row.amountCents === 1999));
});

/**
 * A sale of `stock` units in KV alone, every commit held 20 ms as at the edge (buyers arrive while
 * the shard's turn is out), and a way to reserve from it.
 */
async function heldSale(stock: number, perUserLimit: number) {
  const store = await openKv(":memory:");
  const kv = holdingKv(
    store,
    (call) => call === "commit" ? new Promise((resolve) => setTimeout(resolve, 20)) : undefined,
  );
  const outbox = new Outbox(kv, { now: Date.now }, () => {});
  outbox.register("held", z.unknown(), async () => {});
  const sale = {
    id: "together",
    startsAt: 0,
    endsAt: Date.now() + MINUTE,
    perUserLimit,
    shards: 1,
    items: [{ productId: "p", name: "Keyboard", priceCents: 100, currency: "USD", stock }],
    createdAt: Date.now(),
  };
  await createSaleStock({ kv, outbox, now: Date.now }, sale);
  const reserve = (userId: string, idempotencyKey?: string) =>
    reserveStock(
      { kv, outbox, now: Date.now },
      { sale, userId, productId: "p", quantity: 1, ttlMs: MINUTE, idempotencyKey },
      (reservation) => [outbox.record("held", reservation.id)],
    );
  /** The commits that stored these holds (each hold's versionstamp is its commit's). */
  const commitsOf = async (held: { reservation: Reservation }[]) => {
    const commits = new Set<string>();
    for (const { reservation } of held) {
      const stored = await kv.get(reservationKey(reservation.id));
      assert.deepEqual(stored.value, reservation);
      commits.add(stored.versionstamp!);
    }
    return commits.size;
  };
  // `store`: the same KV without the held commits.
  return { kv, store, sale, reserve, commitsOf, [Symbol.dispose]: () => store.close() };
}

const settled = <T>(answers: PromiseSettledResult<T>[]) => ({
  held: answers.flatMap((answer) => answer.status === "fulfilled" ? [answer.value] : []),
  refused: answers.flatMap((answer) =>
    answer.status === "rejected" ? [(answer.reason as { type: string }).type] : []
  ),
});

Deno.test("[sales] buyers arriving together share a commit, and every unit still goes once", async () => {
  using shop = await heldSale(80, 2);
  // 100 buyers at once, the first of them four times: the limit of 2 holds for them.
  const buyers = ["u0", "u0", "u0", ...Array.from({ length: 100 }, (_, i) => `u${i}`)];
  const { held, refused } = settled(
    await Promise.allSettled(buyers.map((userId) => shop.reserve(userId))),
  );
  assert.equal(held.length, 80);
  assert.equal(refused.filter((type) => type === "limit-reached").length, 2);
  assert.equal(refused.filter((type) => type === "sold-out").length, 21);
  assert.equal(held.filter((hold) => hold.reservation.userId === "u0").length, 2);
  assert.equal(new Set(held.map((hold) => hold.reservation.id)).size, 80);
  assert.equal((await stockRemaining(shop.kv, shop.sale)).get("p"), 0);
  // One commit per hold would be 80; turns of up to HOLDS_PER_TURN (20) make a handful.
  const commits = await shop.commitsOf(held);
  assert.ok(commits <= 8, `${commits} commits for 80 holds (${HOLDS_PER_TURN} a turn)`);
});

Deno.test("[sales] retries with one Idempotency-Key in one burst make one hold", async () => {
  using shop = await heldSale(100, 5);
  const others = Array.from({ length: 30 }, (_, i) => shop.reserve(`other${i}`));
  const retries = Array.from({ length: 10 }, () => shop.reserve("ada", "same-key"));
  const { held, refused } = settled(await Promise.allSettled([...others, ...retries]));
  assert.deepEqual(refused, []);
  const ada = held.filter((hold) => hold.reservation.userId === "ada");
  assert.equal(new Set(ada.map((hold) => hold.reservation.id)).size, 1);
  assert.equal(ada.filter((hold) => !hold.replayed).length, 1);
  assert.equal((await stockRemaining(shop.kv, shop.sale)).get("p"), 100 - 31);
});

Deno.test("[sales] a two-item sale never oversells either item, and the per-user limit holds under concurrency", async (t) => {
  await using t0 = await shop();

  await t.step("200 buyers each want both items at once", async () => {
    const { id: saleId, productIds: [a, b] } = await t0.sale([{ stock: 30 }, { stock: 20 }]);
    const buyers = await members(t0.deps, 200);
    const answers = await Promise.all(buyers.flatMap((buyer) => [
      reserve(t0.http, buyer, saleId, { productId: a, quantity: 1 }),
      reserve(t0.http, buyer, saleId, { productId: b, quantity: 1 }),
    ]));
    const won = (productId: string) =>
      answers.filter((answer) => answer.status === 201 && answer.body.productId === productId);
    assert.equal(won(a).length, 30);
    assert.equal(won(b).length, 20);
    assert.equal(answers.filter((answer) => answer.status === 409).length, 350);
    const view = await stockLeft(t0.http, saleId);
    assert.deepEqual(view.items.map((item) => item.stockRemaining), [0, 0]);
  });

  await t.step(
    "quantities larger than one take from several stock counters, never too many",
    async () => {
      const { id: saleId, productIds: [a] } = await t0.sale([{ stock: 50 }], { perUserLimit: 10 });
      const buyers = await members(t0.deps, 40);
      const answers = await Promise.all(
        buyers.map((buyer, i) =>
          reserve(t0.http, buyer, saleId, { productId: a, quantity: 1 + i % 3 })
        ),
      );
      const units = answers.filter((answer) => answer.status === 201)
        .reduce((sum, answer) => sum + answer.body.quantity, 0);
      const left = (await stockLeft(t0.http, saleId)).items[0].stockRemaining;
      assert.equal(units + left, 50);
      assert.ok(left < 3, `only a remainder smaller than a request may be left, got ${left}`);
    },
  );

  await t.step(
    "one buyer firing 30 requests at once over two items gets exactly the limit",
    async () => {
      const { id: saleId, productIds: [a, b] } = await t0.sale([{ stock: 100 }, { stock: 100 }], {
        perUserLimit: 3,
      });
      const [carl] = await members(t0.deps, 1);
      const answers = await Promise.all(
        Array.from(
          { length: 30 },
          (_, i) => reserve(t0.http, carl, saleId, { productId: i % 2 ? a : b, quantity: 1 }),
        ),
      );
      assert.equal(
        answers.filter((answer) => answer.status === 201).length,
        3,
      );
      const refused = answers.filter((answer) => answer.status === 409);
      assert.equal(refused.length, 27);
      for (const answer of refused) assert.equal(answer.body.type, "/problems/limit-reached");
      const view = await stockLeft(t0.http, saleId);
      assert.equal(view.items[0].stockRemaining + view.items[1].stockRemaining, 197);
    },
  );
});

Deno.test("[sales] expiry returns the stock once, whether the job, the sweep or both run", async (t) => {
  const held = heldJobs(["reservation-expire"]);
  await using t0 = await shop({ jobs: held.jobs, env: { RESERVATION_TTL_SECONDS: "600" } });
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 3 }]);
  const hold = await reserved(t0.http, t0.ada, saleId, productId);
  const { orderId } = await checkout(t0.http, t0.ada, hold.id);

  await t.step("the expiry job is enqueued for the end of the hold", async () => {
    await t0.deps.outbox.flush(); // the hold's history row enqueues it, a moment after the answer
    const job = held.held.find((job) =>
      (job.payload as { reservationId: string }).reservationId === hold.id
    );
    assert.ok(job, "an expiry job was enqueued");
    assert.equal(job.options.delaySeconds, 600);
  });

  await t.step("an early job or sweep changes nothing", async () => {
    await held.deliver(held.held[0]);
    await t0.jobsSettled("reservation-expire", 1);
    assert.deepEqual(await sweepReservations(t0.deps), { expired: 0 });
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 2);
  });

  await t.step(
    "at the deadline, 10 jobs and 10 sweeps race; the units come back once",
    async () => {
      t0.clock.advance(600_000);
      const job = held.held[0];
      await Promise.all([
        ...Array.from({ length: 10 }, () => held.deliver(job)),
        ...Array.from({ length: 10 }, () => sweepReservations(t0.deps)),
      ]);
      await t0.jobsSettled("reservation-expire", 11);
      assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 3);
      const buyer = await t0.deps.kv.get<Deno.KvU64>(saleBuyerKey(saleId, t0.ada.user.id));
      assert.equal(buyer.value?.value, 0n);
      const reservation = await t0.http("GET", `/api/reservations/${hold.id}`, {
        token: t0.ada.token,
      });
      assert.equal(reservation.body.status, "expired");
      assert.equal((await orderOf(t0.http, t0.ada, orderId)).status, "expired");
      const [row] = await t0.deps.database.db.select().from(reservations)
        .where(eq(reservations.id, hold.id));
      assert.equal(row.status, "expired");
    },
  );

  await t.step("checkout of an expired hold is 410; releasing it is a no-op 204", async () => {
    const answer = await t0.http("POST", `/api/reservations/${hold.id}/checkout`, {
      token: t0.ada.token,
    });
    assert.equal(assertProblem(answer, 410).type, "/problems/reservation-expired");
    const release = await t0.http("DELETE", `/api/reservations/${hold.id}`, {
      token: t0.ada.token,
    });
    assert.equal(release.status, 204);
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 3);
  });

  await t.step("history applied late never goes back a version", async () => {
    const db = t0.deps.database.db;
    const read = async () => ({
      hold: (await db.select().from(reservations).where(eq(reservations.id, hold.id)))[0],
      order: (await db.select().from(orders).where(eq(orders.id, orderId)))[0],
    });
    const before = await read();
    // The versions before the current ones, as a retried outbox record may bring them late.
    const older = <R extends { version: number }>(row: R, status: string) =>
      ({ ...recordFromRow(row), version: row.version - 1, status }) as never;
    await recordReservations(db, [older(before.hold, "held")]);
    await recordOrders(db, [older(before.order, "pending")]);
    assert.deepEqual(await read(), before);
  });
});

Deno.test("[sales] payments: paid before expiry, refunded after, released on failure", async (t) => {
  const held = heldJobs(["reservation-expire"]);
  await using t0 = await shop({ jobs: held.jobs });
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 5, priceCents: 4200 }]);

  await t.step(
    "success before expiry: order paid, the hold a sale, stock stays taken",
    async () => {
      const hold = await reserved(t0.http, t0.ada, saleId, productId);
      const { orderId, paymentUrl } = await checkout(t0.http, t0.ada, hold.id);
      assert.equal(paymentUrl, `http://convene.test/sandbox/pay/${orderId}`);
      assert.deepEqual(await checkout(t0.http, t0.ada, hold.id), { orderId, paymentUrl });
      const answer = await sandboxWebhook(t0, { orderId, amountCents: 4200 });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal(answer.body.outcome, "paid");
      const order = await orderOf(t0.http, t0.ada, orderId);
      assert.equal(order.status, "paid");
      assert.equal(order.amountCents, 4200);
      const reservation = await t0.http("GET", `/api/reservations/${hold.id}`, {
        token: t0.ada.token,
      });
      assert.equal(reservation.body.status, "sold");
      assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 4);
      // A sold hold never expires, and cannot be released.
      t0.clock.advance(11 * MINUTE);
      await sweepReservations(t0.deps);
      assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 4);
      const release = await t0.http("DELETE", `/api/reservations/${hold.id}`, {
        token: t0.ada.token,
      });
      assert.equal(assertProblem(release, 409).type, "/problems/reservation-paid");
      await t0.waitForLog((record) => record.msg === "job done" && record.job === "notify");
    },
  );

  await t.step(
    "success after the hold expired (job never ran): refunded, no stock taken",
    async () => {
      const hold = await reserved(t0.http, t0.bob, saleId, productId);
      const { orderId } = await checkout(t0.http, t0.bob, hold.id);
      assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 3);
      t0.clock.advance(10 * MINUTE);
      const answer = await sandboxWebhook(t0, { orderId, amountCents: 4200 });
      assert.equal(answer.status, 200);
      assert.equal(answer.body.outcome, "refunded");
      const order = await orderOf(t0.http, t0.bob, orderId);
      assert.equal(order.status, "refunded");
      assert.deepEqual(order.payments.map((payment: { outcome: string }) => payment.outcome), [
        "refunded",
      ]);
      // The overdue hold expired in the same commit: its unit is back on sale, not sold.
      assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 4);
      await t0.waitForLog((record) =>
        record.msg === "payment refunded" && record.orderId === orderId
      );
    },
  );

  await t.step("success after the sweep expired the hold: refunded, stock untouched", async () => {
    const [cy] = await members(t0.deps, 1);
    const hold = await reserved(t0.http, cy, saleId, productId);
    const { orderId } = await checkout(t0.http, cy, hold.id);
    t0.clock.advance(10 * MINUTE);
    assert.deepEqual(await sweepReservations(t0.deps), { expired: 1 });
    assert.equal((await orderOf(t0.http, cy, orderId)).status, "expired");
    const answer = await sandboxWebhook(t0, { orderId, amountCents: 4200 });
    assert.equal(answer.body.outcome, "refunded");
    assert.equal((await orderOf(t0.http, cy, orderId)).status, "refunded");
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 4);
  });

  await t.step("failure: order cancelled, the hold released at once", async () => {
    const [dee] = await members(t0.deps, 1);
    const hold = await reserved(t0.http, dee, saleId, productId);
    const { orderId } = await checkout(t0.http, dee, hold.id);
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 3);
    const answer = await sandboxWebhook(t0, { orderId, amountCents: 4200, type: "payment.failed" });
    assert.equal(answer.body.outcome, "cancelled");
    assert.equal((await orderOf(t0.http, dee, orderId)).status, "cancelled");
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 4);
    // A success arriving after the failure cannot take the released unit: refunded.
    const late = await sandboxWebhook(t0, { orderId, amountCents: 4200 });
    assert.equal(late.body.outcome, "refunded");
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 4);
  });

  await t.step(
    "an amount short of the order's is refunded, never taken as payment, and its hold released at once",
    async () => {
      const [eve] = await members(t0.deps, 1);
      const before = (await stockLeft(t0.http, saleId)).items[0].stockRemaining;
      const hold = await reserved(t0.http, eve, saleId, productId);
      const { orderId } = await checkout(t0.http, eve, hold.id);
      const answer = await sandboxWebhook(t0, { orderId, amountCents: 1 });
      assert.equal(answer.body.outcome, "refunded");
      assert.notEqual((await orderOf(t0.http, eve, orderId)).status, "paid");
      const reservation = await t0.http("GET", `/api/reservations/${hold.id}`, {
        token: eve.token,
      });
      assert.equal(reservation.body.status, "released");
      assert.equal(
        (await stockLeft(t0.http, saleId)).items[0].stockRemaining,
        before,
        "the unit is back on sale before the hold would have expired",
      );
    },
  );

  await t.step(
    "GET /api/orders lists the caller's orders, newest first, with their status",
    async () => {
      const answer = await t0.http("GET", "/api/orders", { token: t0.bob.token });
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body.items.map((order: { status: string }) => order.status), [
        "refunded",
      ]);
      assert.equal(answer.body.nextCursor, null);
      const other = await t0.http("GET", `/api/orders/${answer.body.items[0].id}`, {
        token: t0.ada.token,
      });
      assertProblem(other, 404);
    },
  );
});

Deno.test("[sales] webhooks: five concurrent deliveries change once; bad or stale signatures are 401", async (t) => {
  await using t0 = await shop();
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 5 }]);
  const hold = await reserved(t0.http, t0.ada, saleId, productId);
  const { orderId } = await checkout(t0.http, t0.ada, hold.id);
  const event = { id: "evt_once", orderId, amountCents: 1999 };

  await t.step(
    "a bad, missing, stale or future signature is refused and changes nothing",
    async () => {
      assertProblem(await sandboxWebhook(t0, event, { secret: "not-the-secret-at-all" }), 401);
      assertProblem(await sandboxWebhook(t0, event, { at: t0.clock.now() - 6 * MINUTE }), 401);
      assertProblem(await sandboxWebhook(t0, event, { at: t0.clock.now() + 6 * MINUTE }), 401);
      const unsigned = await t0.http("POST", "/api/payments/webhook/sandbox", {
        body: {
          id: "evt_x",
          type: "payment.succeeded",
          data: { orderId, amountCents: 1999, currency: "USD" },
        },
      });
      assertProblem(unsigned, 401);
      // Signed, then tampered with: the amount changed after signing.
      const signed = JSON.stringify({
        id: "evt_t",
        type: "payment.succeeded",
        data: { orderId, amountCents: 1999, currency: "USD" },
      });
      const signature = await signSandbox(
        t0.deps.config.PAYMENTS_SANDBOX_SECRET,
        signed,
        Math.floor(t0.clock.now() / 1000),
      );
      const tampered = await t0.http("POST", "/api/payments/webhook/sandbox", {
        raw: signed.replace("1999", "1"),
        headers: { "convene-signature": signature },
      });
      assertProblem(tampered, 401);
      assert.equal((await orderOf(t0.http, t0.ada, orderId)).status, "pending");
    },
  );

  await t.step("the signature covers the raw bytes, not a re-serialised body", async () => {
    const spaced =
      `{ "id" : "evt_raw", "type": "payment.failed",\n "data": {"orderId": "${orderId}", ` +
      `"amountCents": 1999, "currency": "USD"} }`;
    const answer = await sandboxWebhook(t0, { orderId, amountCents: 0 }, {
      rawBody: spaced,
      at: t0.clock.now(),
    });
    // A failure on a pending order would cancel it: check the signature verified, then undo nothing.
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.outcome, "cancelled");
  });

  await t.step("the same success delivered 5 times at once: one change, five 200s", async () => {
    const hold2 = await reserved(t0.http, t0.bob, saleId, productId);
    const { orderId: second } = await checkout(t0.http, t0.bob, hold2.id);
    const answers = await Promise.all(
      Array.from(
        { length: 5 },
        () => sandboxWebhook(t0, { id: "evt_5x", orderId: second, amountCents: 1999 }),
      ),
    );
    assert.deepEqual(answers.map((answer) => answer.status), [200, 200, 200, 200, 200]);
    assert.deepEqual(answers.map((answer) => answer.body.outcome), Array(5).fill("paid"));
    assert.equal(answers.filter((answer) => !answer.body.repeated).length, 1);
    const order = await orderOf(t0.http, t0.bob, second);
    assert.equal(order.status, "paid");
    assert.equal(order.payments.length, 1);
    const rows = await t0.deps.database.db.select().from(payments).where(
      eq(payments.orderId, second),
    );
    assert.equal(rows.length, 1);
    const [row] = await t0.deps.database.db.select().from(orders).where(eq(orders.id, second));
    assert.equal(row.status, "paid");
    // Delivered again later, still nothing new.
    const again = await sandboxWebhook(t0, { id: "evt_5x", orderId: second, amountCents: 1999 });
    assert.equal(again.body.repeated, true);
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 4);
    await t0.waitForLog((record) => record.msg === "job done" && record.job === "notify");
  });

  await t.step("an unknown provider is 404", async () => {
    assertProblem(await t0.http("POST", "/api/payments/webhook/stripe", { body: {} }), 404);
  });
});

Deno.test("[sales] amounts and tiers come from the server; Idempotency-Key replays the same hold", async (t) => {
  await using t0 = await shop();
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 10, priceCents: 1500 }]);

  await t.step(
    "a price in the reservation body is refused, naming it; the server's applies",
    async () => {
      const spoofed = await reserve(t0.http, t0.ada, saleId, {
        productId,
        quantity: 2,
        priceCents: 1,
        amountCents: 1,
      });
      assert.deepEqual(assertProblem(spoofed, 400).errors.map((e: { path: string }) => e.path), [
        "priceCents",
        "amountCents",
      ]);
      assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 10, "nothing held");
      const answer = await reserve(t0.http, t0.ada, saleId, { productId, quantity: 2 });
      assert.equal(answer.status, 201);
      assert.equal(answer.body.amountCents, 3000);
      const { orderId } = await checkout(t0.http, t0.ada, answer.body.id);
      assert.equal((await orderOf(t0.http, t0.ada, orderId)).amountCents, 3000);
    },
  );

  await t.step(
    "membership: the tier's price is the server's, and paying grants it on /me",
    async () => {
      const spoofed = await t0.http("POST", "/api/payments/membership", {
        token: t0.bob.token,
        body: { tier: "pro", amountCents: 1, priceCents: 1 },
      });
      assert.deepEqual(assertProblem(spoofed, 400).errors.map((e: { path: string }) => e.path), [
        "amountCents",
        "priceCents",
      ]);
      const answer = await t0.http("POST", "/api/payments/membership", {
        token: t0.bob.token,
        body: { tier: "pro" },
      });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const order = await orderOf(t0.http, t0.bob, answer.body.orderId);
      assert.equal(order.amountCents, 900);
      assert.equal(order.kind, "membership");
      let me = await t0.http("GET", "/api/auth/me", { token: t0.bob.token });
      assert.equal(me.body.user.membership, null);
      const paid = await sandboxWebhook(t0, { orderId: order.id, amountCents: 900 });
      assert.equal(paid.body.outcome, "paid");
      me = await t0.http("GET", "/api/auth/me", { token: t0.bob.token });
      assert.equal(me.body.user.membership.tier, "pro");
      const unknown = await t0.http("POST", "/api/payments/membership", {
        token: t0.bob.token,
        body: { tier: "platinum" },
      });
      assert.equal(assertProblem(unknown, 400).errors[0].path, "tier");
      await t0.waitForLog((record) => record.msg === "job done" && record.job === "notify");
    },
  );

  await t.step("20 concurrent retries with one Idempotency-Key make one hold", async () => {
    const [cy] = await members(t0.deps, 1);
    const answers = await Promise.all(
      Array.from(
        { length: 20 },
        () => reserve(t0.http, cy, saleId, { productId, quantity: 1 }, "cart-42"),
      ),
    );
    assert.deepEqual(new Set(answers.map((answer) => answer.status)), new Set([201]));
    assert.equal(new Set(answers.map((answer) => answer.body.id)).size, 1);
    assert.equal(answers.filter((answer) => answer.headers.get("idempotent-replayed")).length, 19);
    const buyer = await t0.deps.kv.get<Deno.KvU64>(saleBuyerKey(saleId, cy.user.id));
    assert.equal(buyer.value?.value, 1n);
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 7);
    const reused = await reserve(t0.http, cy, saleId, { productId, quantity: 2 }, "cart-42");
    assert.equal(assertProblem(reused, 422).type, "/problems/idempotency-key-reused");
    const bad = await reserve(t0.http, cy, saleId, { productId, quantity: 1 }, "a b");
    assert.equal(assertProblem(bad, 400).errors[0].path, "Idempotency-Key");
  });
});

Deno.test("[sales] catalogue and windows: admin only, 425 before the start, 410 after the end", async (t) => {
  await using t0 = await shop();

  await t.step("only admins create products and sales; input is validated", async () => {
    const body = { name: "Mug", priceCents: 900, currency: "usd" };
    assertProblem(await t0.http("POST", "/api/products", { body }), 401);
    assertProblem(await t0.http("POST", "/api/products", { token: t0.ada.token, body }), 403);
    const created = await t0.http("POST", "/api/products", { token: t0.admin.token, body });
    assert.equal(created.status, 201);
    assert.equal(created.body.currency, "USD");
    const invalid = await t0.http("POST", "/api/sales", {
      token: t0.admin.token,
      body: {
        items: [{ productId: "nope", stock: 1, priceCents: 1 }],
        startsAt: new Date(t0.clock.now()).toISOString(),
        endsAt: new Date(t0.clock.now() - 1000).toISOString(),
        perUserLimit: 1,
      },
    });
    assert.equal(assertProblem(invalid, 400).errors[0].path, "endsAt");
    const unknown = await t0.http("POST", "/api/sales", {
      token: t0.admin.token,
      body: {
        items: [{ productId: "nope", stock: 1, priceCents: 1 }],
        startsAt: new Date(t0.clock.now()).toISOString(),
        endsAt: new Date(t0.clock.now() + MINUTE).toISOString(),
        perUserLimit: 1,
      },
    });
    assert.equal(assertProblem(unknown, 400).errors[0].path, "items.0.productId");
  });

  await t.step("scheduled → live → ended, with 425 and 410 outside the window", async () => {
    const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 2 }], {
      startsInMs: 5 * MINUTE,
      lastsMs: 10 * MINUTE,
    });
    assert.equal((await stockLeft(t0.http, saleId)).status, "scheduled");
    const early = await reserve(t0.http, t0.ada, saleId, { productId, quantity: 1 });
    assert.equal(assertProblem(early, 425).type, "/problems/sale-not-started");
    assert.equal(early.headers.get("retry-after"), "300");
    t0.clock.advance(5 * MINUTE);
    assert.equal((await stockLeft(t0.http, saleId)).status, "live");
    await reserved(t0.http, t0.ada, saleId, productId);
    t0.clock.advance(10 * MINUTE);
    assert.equal((await stockLeft(t0.http, saleId)).status, "ended");
    const late = await reserve(t0.http, t0.bob, saleId, { productId, quantity: 1 });
    assert.equal(assertProblem(late, 410).type, "/problems/sale-ended");
    assertProblem(await t0.http("GET", "/api/sales/nope"), 404);
    const foreign = await reserve(t0.http, t0.bob, saleId, { productId: "other", quantity: 1 });
    assert.equal(assertProblem(foreign, 400).errors[0].path, "productId");
  });

  await t.step("DELETE releases at once; only the buyer sees or touches a hold", async () => {
    const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 1 }]);
    const hold = await reserved(t0.http, t0.ada, saleId, productId);
    assert.equal((await stockLeft(t0.http, saleId)).status, "sold-out");
    for (
      const [method, path] of [
        ["GET", `/api/reservations/${hold.id}`],
        ["DELETE", `/api/reservations/${hold.id}`],
        ["POST", `/api/reservations/${hold.id}/checkout`],
      ]
    ) {
      assertProblem(await t0.http(method, path, { token: t0.bob.token }), 404);
    }
    const release = await t0.http("DELETE", `/api/reservations/${hold.id}`, {
      token: t0.ada.token,
    });
    assert.equal(release.status, 204);
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 1);
    const entry = await t0.deps.kv.get<Reservation>(reservationKey(hold.id));
    assert.equal(entry.value?.status, "released");
    const again = await t0.http("DELETE", `/api/reservations/${hold.id}`, { token: t0.ada.token });
    assert.equal(again.status, 204);
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 1);
    const gone = await t0.http("POST", `/api/reservations/${hold.id}/checkout`, {
      token: t0.ada.token,
    });
    assert.equal(assertProblem(gone, 410).type, "/problems/reservation-released");
  });
});

Deno.test("[sales] subscribers get stock-update on every isolate, one watch per sale per isolate", async () => {
  await using isolates = await twoShops();
  const { first, second } = isolates;
  const { id: saleId, productIds: [productId] } = await first.sale([{ stock: 10 }]);
  {
    await using watcher = await TestSocket.open(second.url, first.ada.token);
    await using other = await TestSocket.open(second.url, first.bob.token);
    watcher.send("subscribe", { saleId });
    other.send("subscribe", { saleId });
    await watcher.waitFor("stock-update");
    await other.waitFor("stock-update");
    assert.equal(watcher.received("stock-update")[0].data.stockRemaining, 10);
    assert.equal(second.deps.hub.roomSize(`sale:${saleId}`), 2);

    // A reservation on the first isolate reaches sockets on the second.
    await reserved(first.http, first.bob, saleId, productId);
    const [, update] = await watcher.waitFor("stock-update", () => true, 2);
    assert.deepEqual(update.data.items, [{ productId, stockRemaining: 9 }]);
    assert.equal(update.data.saleId, saleId);

    other.send("unsubscribe", { saleId });
    await other.roundTrip();
    assert.equal(second.deps.hub.roomSize(`sale:${saleId}`), 1);
    await reserved(first.http, first.ada, saleId, productId);
    await watcher.waitFor("stock-update", (frame) => frame.data.stockRemaining === 8);
    await other.roundTrip();
    assert.ok(other.received("stock-update").every((frame) => frame.data.stockRemaining !== 8));

    // A subscription handled after its socket closed leaves no room (and no watch) behind.
    const late = await second.deps.hub.connect(
      { sub: first.ada.user.id, jti: "late", gen: 0, iat: 0, exp: 4_000_000_000 },
      { send() {}, close() {}, readyState: 1 },
    );
    await second.deps.hub.disconnect(late);
    await second.deps.hub.join(
      late,
      "sale:late",
      [["late"]],
      () => Promise.resolve([{ type: "x", data: null }]),
    );
    assert.equal(second.deps.hub.roomSize("sale:late"), 0);

    watcher.send("subscribe", { saleId: "nope" }, "s1");
    const [error] = await watcher.waitFor("error", (frame) => frame.data.ref === "s1");
    assert.equal(error.data.code, "not-found");
  }
});

Deno.test("[sales] racing decisions on one hold: each unit is sold or returned exactly once", async (t) => {
  const held = heldJobs(["reservation-expire"]);
  await using t0 = await shop({ jobs: held.jobs });
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 20 }], {
    perUserLimit: 20,
  });
  const stock = async () => (await stockLeft(t0.http, saleId)).items[0].stockRemaining;
  const paymentRows = (orderId: string) =>
    t0.deps.database.db.select().from(payments).where(eq(payments.orderId, orderId));

  await t.step("20 concurrent checkouts of one hold make one order", async () => {
    const hold = await reserved(t0.http, t0.ada, saleId, productId);
    const answers = await Promise.all(
      Array.from(
        { length: 20 },
        () => t0.http("POST", `/api/reservations/${hold.id}/checkout`, { token: t0.ada.token }),
      ),
    );
    assert.deepEqual(new Set(answers.map((answer) => answer.status)), new Set([200]));
    assert.equal(new Set(answers.map((answer) => answer.body.orderId)).size, 1);
    await t0.deps.outbox.flush();
    const rows = await t0.deps.database.db.select().from(orders)
      .where(eq(orders.reservationId, hold.id));
    assert.equal(rows.length, 1);
    const released = await t0.http("DELETE", `/api/reservations/${hold.id}`, {
      token: t0.ada.token,
    });
    assert.equal(released.status, 204, JSON.stringify(released.body));
  });

  await t.step(
    "at the deadline, 5 webhook deliveries, 10 expiry jobs and 5 sweeps race",
    async () => {
      const before = await stock();
      const hold = await reserved(t0.http, t0.bob, saleId, productId);
      const { orderId } = await checkout(t0.http, t0.bob, hold.id);
      await t0.deps.outbox.flush();
      const job = held.held.find((job) =>
        (job.payload as { reservationId: string }).reservationId === hold.id
      )!;
      t0.clock.advance(10 * MINUTE);
      const settled =
        t0.logs.filter((record) => record.msg === "job done" && record.job === "reservation-expire")
          .length;
      const answers = await Promise.all([
        ...Array.from(
          { length: 5 },
          () => sandboxWebhook(t0, { id: "evt_race", orderId, amountCents: 1999 }),
        ),
        ...Array.from({ length: 10 }, () => held.deliver(job)),
        ...Array.from({ length: 5 }, () => sweepReservations(t0.deps)),
      ]);
      await t0.jobsSettled("reservation-expire", settled + 10);
      for (const answer of answers.slice(0, 5) as { status: number; body: { outcome: string } }[]) {
        assert.equal(answer.status, 200);
        assert.equal(answer.body.outcome, "refunded");
      }
      assert.equal(await stock(), before, "the unit came back once, and was not sold");
      const buyer = await t0.deps.kv.get<Deno.KvU64>(saleBuyerKey(saleId, t0.bob.user.id));
      assert.equal(buyer.value?.value, 0n);
      assert.equal((await orderOf(t0.http, t0.bob, orderId)).status, "refunded");
      const rows = await paymentRows(orderId);
      assert.deepEqual(rows.map((row) => row.outcome), ["refunded"]);
    },
  );

  await t.step(
    "before the deadline, a payment and 10 releases race: paid or released, never both",
    async () => {
      for (let round = 0; round < 8; round++) {
        const [buyer] = await members(t0.deps, 1);
        const before = await stock();
        const hold = await reserved(t0.http, buyer, saleId, productId);
        const { orderId } = await checkout(t0.http, buyer, hold.id);
        const [payment, ...releases] = await Promise.all([
          sandboxWebhook(t0, { orderId, amountCents: 1999 }),
          ...Array.from(
            { length: 10 },
            () => t0.http("DELETE", `/api/reservations/${hold.id}`, { token: buyer.token }),
          ),
        ]);
        const order = await orderOf(t0.http, buyer, orderId);
        const reservation = await t0.deps.kv.get<Reservation>(reservationKey(hold.id));
        if (order.status === "paid") {
          assert.equal(payment.body.outcome, "paid");
          assert.equal(reservation.value?.status, "sold");
          assert.equal(await stock(), before - 1);
          for (const release of releases) {
            assert.equal(release.status, 409);
          }
        } else {
          assert.equal(order.status, "refunded");
          assert.equal(payment.body.outcome, "refunded");
          assert.equal(reservation.value?.status, "released");
          assert.equal(await stock(), before);
          for (const release of releases) assert.equal(release.status, 204);
        }
        assert.equal((await paymentRows(orderId)).length, 1);
      }
    },
  );
});

Deno.test("[sales] the buyer is notified of their orders: paid, refunded after a late payment, a membership", async () => {
  await using t0 = await shop();
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 5, priceCents: 1500 }]);
  /** The buyer's `order` notifications, once `jobs` notify jobs have run. */
  const orderNotifications = async (jobs: number) => {
    await t0.jobsSettled("notify", jobs);
    const list = await t0.http("GET", "/api/notifications", { token: t0.ada.token });
    return list.body.items
      .filter((item: { type: string }) => item.type === "order")
      .map((
        item: { subjectId: string; actor: { id: string }; read: boolean },
      ) => [item.subjectId, item.actor.id, item.read]);
  };

  const paid = await checkout(
    t0.http,
    t0.ada,
    (await reserved(t0.http, t0.ada, saleId, productId)).id,
  );
  assert.equal(
    (await sandboxWebhook(t0, { orderId: paid.orderId, amountCents: 1500 })).body.outcome,
    "paid",
  );
  assert.deepEqual(await orderNotifications(1), [[paid.orderId, t0.ada.user.id, false]]);

  const late = await checkout(
    t0.http,
    t0.ada,
    (await reserved(t0.http, t0.ada, saleId, productId)).id,
  );
  t0.clock.advance(11 * MINUTE);
  assert.equal(
    (await sandboxWebhook(t0, { orderId: late.orderId, amountCents: 1500 })).body.outcome,
    "refunded",
  );
  assert.deepEqual(await orderNotifications(2), [
    [late.orderId, t0.ada.user.id, false],
    [paid.orderId, t0.ada.user.id, false],
  ]);

  const membership = await t0.http("POST", "/api/payments/membership", {
    token: t0.ada.token,
    body: { tier: "pro" },
  });
  const { orderId } = membership.body;
  assert.equal((await sandboxWebhook(t0, { orderId, amountCents: 900 })).body.outcome, "paid");
  assert.equal((await orderNotifications(3))[0][0], orderId);
  const unread = await t0.http("GET", "/api/notifications/unread-count", { token: t0.ada.token });
  assert.equal(unread.body.count, 3);
});

Deno.test("[sales] a buyer cancels an unpaid order: the units go back at once; a cancel racing its payment never leaves a released hold paid for", async (t) => {
  await using t0 = await shop();
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 30, priceCents: 1500 }]);

  await t.step("a pending order: cancelled, its hold released, the unit back on sale", async () => {
    const hold = await reserved(t0.http, t0.ada, saleId, productId);
    const { orderId } = await checkout(t0.http, t0.ada, hold.id);
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 29);
    const stranger = await t0.http("POST", `/api/orders/${orderId}/cancel`, {
      token: t0.bob.token,
    });
    assertProblem(stranger, 404);
    const answer = await t0.http("POST", `/api/orders/${orderId}/cancel`, {
      token: t0.ada.token,
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.status, "cancelled");
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 30);
    const reservation = await t0.http("GET", `/api/reservations/${hold.id}`, {
      token: t0.ada.token,
    });
    assert.equal(reservation.body.status, "released");
    // Again: the same answer, nothing more returned.
    const again = await t0.http("POST", `/api/orders/${orderId}/cancel`, { token: t0.ada.token });
    assert.equal(again.body.status, "cancelled");
    assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 30);
  });

  await t.step("a paid order cannot be cancelled: 409 order-paid", async () => {
    const hold = await reserved(t0.http, t0.ada, saleId, productId);
    const { orderId } = await checkout(t0.http, t0.ada, hold.id);
    assert.equal((await sandboxWebhook(t0, { orderId, amountCents: 1500 })).body.outcome, "paid");
    const answer = await t0.http("POST", `/api/orders/${orderId}/cancel`, {
      token: t0.ada.token,
    });
    assert.equal(assertProblem(answer, 409).type, "/problems/order-paid");
    assert.equal((await orderOf(t0.http, t0.ada, orderId)).status, "paid");
  });

  await t.step(
    "20 cancels racing their payments: each order is paid or refunded, never both",
    async () => {
      const buyers = await members(t0.deps, 20);
      const before = (await stockLeft(t0.http, saleId)).items[0].stockRemaining;
      const orders = await Promise.all(buyers.map(async (buyer) => {
        const hold = await reserved(t0.http, buyer, saleId, productId);
        return { buyer, hold, ...await checkout(t0.http, buyer, hold.id) };
      }));
      // Each pair starts within a few ms of each other, half with the cancel first and half with
      // the payment (which has a signature to check), so both sides win some of the races.
      const after = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      const raced = await Promise.all(orders.map(({ buyer, orderId }, i) =>
        Promise.all([
          after(i % 2 ? 0 : i % 5).then(() =>
            t0.http("POST", `/api/orders/${orderId}/cancel`, { token: buyer.token })
          ),
          after(i % 2 ? i % 5 : 0).then(() => sandboxWebhook(t0, { orderId, amountCents: 1500 })),
        ])
      ));
      let paid = 0;
      for (const [i, [cancelled, payment]] of raced.entries()) {
        const { buyer, hold, orderId } = orders[i];
        const order = await orderOf(t0.http, buyer, orderId);
        const reservation = await t0.http("GET", `/api/reservations/${hold.id}`, {
          token: buyer.token,
        });
        if (payment.body.outcome === "paid") {
          paid++;
          assert.equal(assertProblem(cancelled, 409).type, "/problems/order-paid");
          assert.deepEqual([order.status, reservation.body.status], ["paid", "sold"]);
        } else {
          // The cancel won: the money that came after it goes back, and the hold stays released.
          assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
          assert.equal(payment.body.outcome, "refunded");
          assert.deepEqual([order.status, reservation.body.status], ["refunded", "released"]);
        }
      }
      const left = (await stockLeft(t0.http, saleId)).items[0].stockRemaining;
      assert.equal(left, before - paid, "every unit not paid for is back on sale");
    },
  );
});

Deno.test("[sales] the catalogue: live, upcoming and ended sales in keyset pages, products on sale, and my holds", async (t) => {
  await using t0 = await shop();
  // Created in an order unlike the lists' own: ends in 30, 10 and 20 minutes; starts in 5 and 1 hours;
  // one that lasts a minute (ended once the clock moves on).
  const endsIn30 = await t0.sale([{ stock: 3 }], { lastsMs: 31 * MINUTE });
  const endsIn10 = await t0.sale([{ stock: 4 }], { lastsMs: 11 * MINUTE });
  const endsIn20 = await t0.sale([{ stock: 5 }], { lastsMs: 21 * MINUTE });
  const later = await t0.sale([{ stock: 6 }], { startsInMs: 300 * MINUTE });
  const sooner = await t0.sale([{ stock: 7 }], { startsInMs: 60 * MINUTE });
  const brief = await t0.sale([{ stock: 8 }], { lastsMs: 2 * MINUTE });
  const unsold = await t0.product();
  await reserved(t0.http, t0.ada, endsIn10.id, endsIn10.productIds[0]);
  t0.clock.advance(2 * MINUTE); // `brief` has ended

  /** Every page of a list, following nextCursor; the ids in order. */
  async function walk(path: string, token?: string) {
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const separator = path.includes("?") ? "&" : "?";
      const answer: Answer = await t0.http(
        "GET",
        `${path}${separator}limit=2${cursor ? `&cursor=${cursor}` : ""}`,
        { token },
      );
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      ids.push(...answer.body.items.map((item: { id: string }) => item.id));
      cursor = answer.body.nextCursor;
    } while (cursor);
    return ids;
  }

  await t.step(
    "live sales, ending soonest first, with their stock left; anyone may look",
    async () => {
      assert.deepEqual(await walk("/api/sales"), [endsIn10.id, endsIn20.id, endsIn30.id]);
      const first = await t0.http("GET", "/api/sales?when=live&limit=1");
      assert.equal(first.body.items[0].status, "live");
      assert.equal(first.body.items[0].items[0].stockRemaining, 3, "Ada holds one of 4");
    },
  );

  await t.step("upcoming sales, starting soonest first; ended ones, latest first", async () => {
    assert.deepEqual(await walk("/api/sales?when=upcoming"), [sooner.id, later.id]);
    const upcoming = await t0.http("GET", "/api/sales?when=upcoming");
    assert.ok(upcoming.body.items.every((sale: { status: string }) => sale.status === "scheduled"));
    assert.deepEqual(await walk("/api/sales?when=ended"), [brief.id]);
    assertProblem(await t0.http("GET", "/api/sales?when=someday"), 400);
  });

  await t.step(
    "products: an admin sees every one, anyone else those in sales not ended",
    async () => {
      const all = await walk("/api/products", t0.admin.token);
      assert.equal(all.length, 7);
      assert.ok(all.includes(unsold) && all.includes(brief.productIds[0]));
      const onSale = await walk("/api/products");
      assert.deepEqual(
        new Set(onSale),
        new Set([endsIn30, endsIn10, endsIn20, later, sooner].map((sale) => sale.productIds[0])),
      );
      assert.deepEqual(await walk("/api/products", t0.ada.token), onSale, "a member is no admin");
    },
  );

  await t.step("my holds, newest first; nobody else's", async () => {
    const second = await reserved(t0.http, t0.ada, endsIn20.id, endsIn20.productIds[0]);
    const mine = await t0.http("GET", "/api/reservations", { token: t0.ada.token });
    assert.equal(mine.status, 200);
    assert.equal(mine.body.items.length, 2);
    assert.equal(mine.body.items[0].id, second.id);
    assert.equal(mine.body.items[0].status, "held");
    const bobs = await t0.http("GET", "/api/reservations", { token: t0.bob.token });
    assert.deepEqual(bobs.body.items, []);
    assertProblem(await t0.http("GET", "/api/reservations"), 401);
  });
});

Deno.test("[sales] a payment's history keeps the provider's payload and when it was processed; an admin reads any order's payments", async () => {
  await using t0 = await shop();
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 5, priceCents: 1200 }]);
  const hold = await reserved(t0.http, t0.ada, saleId, productId);
  const { orderId } = await checkout(t0.http, t0.ada, hold.id);
  const sent = {
    id: `evt_${crypto.randomUUID()}`,
    type: "payment.succeeded",
    data: { orderId, amountCents: 1200, currency: "USD" },
    livemode: false,
  };
  const paid = await sandboxWebhook(t0, { orderId, amountCents: 1200 }, {
    rawBody: JSON.stringify(sent),
  });
  assert.equal(paid.body.outcome, "paid");
  // A second, oversized event for the same order (paid already: refunded): kept as its size.
  t0.clock.advance(1000);
  const big = { ...sent, id: `evt_${crypto.randomUUID()}`, padding: "x".repeat(20_000) };
  const refunded = await sandboxWebhook(t0, { orderId, amountCents: 1200 }, {
    rawBody: JSON.stringify(big),
  });
  assert.equal(refunded.body.outcome, "refunded");

  assertProblem(await t0.http("GET", `/api/admin/orders/${orderId}`, { token: t0.ada.token }), 403);
  const answer = await t0.http("GET", `/api/admin/orders/${orderId}`, { token: t0.admin.token });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answer.body.buyerId, t0.ada.user.id);
  assert.equal(answer.body.status, "paid");
  const [first, second] = answer.body.payments;
  assert.deepEqual(first.payload, sent, "the provider's event, as it sent it");
  assert.equal(first.outcome, "paid");
  assert.ok(Date.parse(first.processedAt) >= Date.parse(first.receivedAt));
  assert.deepEqual(second.payload, {
    truncated: true,
    bytes: new TextEncoder().encode(JSON.stringify(big)).length,
  });
  assert.equal(second.outcome, "refunded");
  assertProblem(
    await t0.http("GET", "/api/admin/orders/no-such-order", { token: t0.admin.token }),
    404,
  );

  // The buyer sees when each payment was processed, not the provider's payload.
  const own = await orderOf(t0.http, t0.ada, orderId);
  assert.equal(own.payments.length, 2);
  assert.equal(own.payments[0].processedAt, first.processedAt);
  assert.ok(!("payload" in own.payments[0]));
});

Deno.test("[sales] an admin refunds a paid order once, however often asked at once: the buyer is notified, a membership ends", async (t) => {
  await using t0 = await shop();
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 5, priceCents: 1500 }]);
  const refunds = () =>
    t0.logs.filter((record) => record.msg === "payment refunded").map((record) => record.orderId);

  await t.step(
    "10 concurrent refunds of one paid order: one refund, every answer refunded",
    async () => {
      const hold = await reserved(t0.http, t0.ada, saleId, productId);
      const { orderId } = await checkout(t0.http, t0.ada, hold.id);
      assert.equal((await sandboxWebhook(t0, { orderId, amountCents: 1500 })).body.outcome, "paid");
      assertProblem(
        await t0.http("POST", `/api/admin/orders/${orderId}/refund`, { token: t0.ada.token }),
        403,
      );
      const answers = await Promise.all(Array.from(
        { length: 10 },
        () => t0.http("POST", `/api/admin/orders/${orderId}/refund`, { token: t0.admin.token }),
      ));
      assert.deepEqual(new Set(answers.map((answer) => answer.status)), new Set([200]));
      assert.ok(answers.every((answer) => answer.body.status === "refunded"));
      await t0.jobsSettled("payment-refund");
      await t0.jobsSettled("notify", 2); // paid, then refunded
      assert.deepEqual(refunds(), [orderId]);
      const order = await orderOf(t0.http, t0.ada, orderId);
      assert.equal(order.status, "refunded");
      assert.ok(order.refundedAt);
      // Its unit stays sold: a refund is not a restock.
      assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 4);
      const notes = await t0.http("GET", "/api/notifications", { token: t0.ada.token });
      const about = notes.body.items.filter((item: { subjectId: string }) =>
        item.subjectId === orderId
      );
      assert.equal(about.length, 1, "one notification per order, counted up");
      assert.equal(about[0].count, 2);
    },
  );

  await t.step("an unpaid order is not refunded: 409 order-not-paid", async () => {
    const hold = await reserved(t0.http, t0.ada, saleId, productId);
    const { orderId } = await checkout(t0.http, t0.ada, hold.id);
    const answer = await t0.http("POST", `/api/admin/orders/${orderId}/refund`, {
      token: t0.admin.token,
    });
    assert.equal(assertProblem(answer, 409).type, "/problems/order-not-paid");
    assert.equal((await orderOf(t0.http, t0.ada, orderId)).status, "pending");
  });

  await t.step("a refunded membership ends", async () => {
    const membership = await t0.http("POST", "/api/payments/membership", {
      token: t0.bob.token,
      body: { tier: "pro" },
    });
    const { orderId } = membership.body;
    assert.equal((await sandboxWebhook(t0, { orderId, amountCents: 900 })).body.outcome, "paid");
    await t0.deps.outbox.flush();
    const me = () => t0.http("GET", "/api/auth/me", { token: t0.bob.token });
    assert.equal((await me()).body.user.membership?.tier, "pro");
    const answer = await t0.http("POST", `/api/admin/orders/${orderId}/refund`, {
      token: t0.admin.token,
    });
    assert.equal(answer.body.status, "refunded");
    await t0.deps.outbox.flush();
    assert.equal((await me()).body.user.membership, null);
  });
});

Deno.test("[sales] merchant operations: a restock racing 1,000 buyers on two isolates sells stocked + restocked, never more; an early end stops every later hold", async (t) => {
  await using isolates = await twoShops();
  const { first: t0, second: other } = isolates;

  await t.step(
    "100 units, 5 restocks of 10 racing 1,000 buyers who try until it is gone",
    async () => {
      const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 100 }], {
        perUserLimit: 1,
      });
      const buyers = await members(t0.deps, 1000);
      // Refused buyers try again until a try that began after every restock had landed is
      // refused too, so the units added are sold as well.
      let restocking = true;
      const buying = Promise.all(buyers.map(async (buyer, i) => {
        const http = i % 2 ? other.http : t0.http;
        for (;;) {
          const last = !restocking;
          const answer = await reserve(http, buyer, saleId, { productId, quantity: 1 });
          if (answer.status === 201) return answer;
          assert.equal(answer.body.type, "/problems/sold-out", JSON.stringify(answer.body));
          if (last) return answer;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }));
      const restocks = [];
      for (let i = 0; i < 5; i++) {
        const http = i % 2 ? other.http : t0.http;
        restocks.push(
          await http("POST", `/api/admin/sales/${saleId}/restock`, {
            token: t0.admin.token,
            body: { productId, units: 10 },
          }),
        );
      }
      restocking = false;
      const answers = await buying;
      assert.deepEqual(restocks.map((answer) => answer.status), [200, 200, 200, 200, 200]);
      const held = answers.filter((answer) => answer.status === 201);
      const view = await stockLeft(t0.http, saleId);
      assert.equal(held.length + view.items[0].stockRemaining, 150, "sold + left = 100 + 5 × 10");
      assert.equal(held.length, 150, "every unit found a buyer");
      assert.equal(new Set(held.map((answer) => answer.body.id)).size, 150);
      const page = await t0.http("GET", `/api/sales/${saleId}`);
      assert.equal(
        page.body.items[0].stock,
        150,
        "the page shows the units offered, restocks included",
      );
      await Promise.all([t0.deps.outbox.flush(), other.deps.outbox.flush()]);
      const [row] = await t0.deps.database.db.select().from(saleItems)
        .where(eq(saleItems.saleId, saleId));
      assert.equal(row.stock, 150, "history has it too");
    },
  );

  await t.step(
    "an early end racing 200 buyers: after its answer, every hold is 410 sale-ended",
    async () => {
      const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 1000 }], {
        perUserLimit: 1,
      });
      const early = await reserved(t0.http, t0.ada, saleId, productId);
      const buyers = await members(t0.deps, 200);
      const racing = Promise.all(
        buyers.slice(0, 100).map((buyer, i) =>
          reserve(i % 2 ? other.http : t0.http, buyer, saleId, { productId, quantity: 1 })
        ),
      );
      const ended = await other.http("POST", `/api/admin/sales/${saleId}/end`, {
        token: t0.admin.token,
      });
      assert.equal(ended.status, 200, JSON.stringify(ended.body));
      assert.equal(ended.body.status, "ended");
      const raced = await racing;
      assert.ok(raced.every((answer) => answer.status === 201 || answer.status === 410));
      // Both isolates know the sale's old definition: neither takes a hold now.
      const after = await Promise.all(
        buyers.slice(100).map((buyer, i) =>
          reserve(i % 2 ? other.http : t0.http, buyer, saleId, { productId, quantity: 1 })
        ),
      );
      assert.deepEqual(
        new Set(after.map((answer) => answer.body.type)),
        new Set(["/problems/sale-ended"]),
      );
      // The holds made before the end are released by its job, and their units go back.
      await saleClosed([t0, other], saleId);
      assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 1000);
      const released = await t0.http("POST", `/api/reservations/${early.id}/checkout`, {
        token: t0.ada.token,
      });
      assert.equal(assertProblem(released, 410).type, "/problems/reservation-released");
      const again = await t0.http("POST", `/api/admin/sales/${saleId}/end`, {
        token: t0.admin.token,
      });
      assert.equal(assertProblem(again, 410).type, "/problems/sale-ended");
      assertProblem(
        await t0.http("POST", `/api/admin/sales/${saleId}/restock`, {
          token: t0.admin.token,
          body: { productId, units: 5 },
        }),
        410,
      );
      assertProblem(
        await t0.http("POST", `/api/admin/sales/${saleId}/end`, { token: t0.ada.token }),
        403,
      );
    },
  );
});

Deno.test("[sales] a hold that read the sale before an early end cannot commit after it", async () => {
  using held = await heldSale(10, 1);
  // The hold reads, then its commit waits 20 ms (as at the edge); the end commits meanwhile.
  const holding = held.reserve("late-buyer");
  await new Promise((resolve) => setTimeout(resolve, 5));
  const outbox = new Outbox(held.store, { now: Date.now }, () => {});
  outbox.register("sale-record", z.unknown(), async () => {});
  await endSaleEarly(
    { kv: held.store, outbox, now: Date.now },
    held.sale.id,
    (sale) => [outbox.record("sale-record", sale.id)],
  );
  await assert.rejects(holding, (error: { type?: string }) => {
    assert.equal(error.type, "sale-ended");
    return true;
  });
  const left = await stockRemaining(held.kv, held.sale);
  assert.equal(left.get("p"), 10, "no unit was taken after the end");
});

Deno.test("[sales] a sale's live feed: a line per paid unit with the buyer's city, never who; at most one every 2 s, counting the rest", async () => {
  await using isolates = await twoShops();
  const { first, second } = isolates;
  const { id: saleId, productIds: [productId] } = await first.sale([{ stock: 10 }]);
  const [carol] = await members(first.deps, 1, { name: () => "Carol Buyer" });
  assert.equal(
    (await first.http("PATCH", "/api/profile", { token: carol.token, body: { location: "Lagos" } }))
      .status,
    200,
  );
  await using watcher = await TestSocket.open(second.url, first.bob.token);
  watcher.send("subscribe", { saleId });
  await watcher.waitFor("stock-update");

  /** `who` holds a unit and pays for it. */
  const buy = async (who: Member) => {
    const hold = await reserved(first.http, who, saleId, productId);
    const { orderId } = await checkout(first.http, who, hold.id);
    const paid = await sandboxWebhook(first, { orderId, amountCents: 1999 });
    assert.equal(paid.body.outcome, "paid");
  };
  await buy(carol);
  const [line] = await watcher.waitFor("purchase");
  assert.equal(line.data.saleId, saleId);
  assert.equal(line.data.place, "Lagos");
  assert.match(line.data.item, /^Keyboard /);
  assert.equal(line.data.others, 0);
  const text = JSON.stringify(line);
  for (const secret of [carol.user.id, "Carol", first.ada.user.id]) {
    assert.ok(!text.includes(secret), `the line names the buyer: ${text}`);
  }

  // Three more within the next 2 s: no second line yet; the next one counts them.
  const started = Date.now();
  await buy(first.ada);
  await buy(first.ada);
  await buy(first.ada);
  await first.deps.outbox.flush();
  if (Date.now() - started < PURCHASE_LINE_MS - 200) {
    await watcher.roundTrip();
    assert.equal(watcher.received("purchase").length, 1, "at most one line every 2 s");
  }
  await new Promise((resolve) => setTimeout(resolve, PURCHASE_LINE_MS));
  await buy(first.ada);
  const [, next] = await watcher.waitFor("purchase", () => true, 2);
  assert.equal(next.data.place, null, "Ada has no city: a buyer");
  assert.equal(next.data.others, 3);
});

Deno.test("[sales] an admin edits and archives a product: off the public lists, offered by no new sale, its sales unchanged", async () => {
  await using t0 = await shop();
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 5, priceCents: 1500 }]);
  const edit = (body: unknown, token = t0.admin.token) =>
    t0.http("PATCH", `/api/admin/products/${productId}`, { token, body });
  assertProblem(await edit({ archived: true }, t0.ada.token), 403);
  assertProblem(await edit({}), 400);
  const renamed = await edit({ name: "Keyboard, mark II", priceCents: 3000 });
  assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
  assert.deepEqual([renamed.body.name, renamed.body.priceCents], ["Keyboard, mark II", 3000]);

  const archived = await edit({ archived: true });
  assert.ok(archived.body.archivedAt);
  const publicList = await t0.http("GET", "/api/products");
  assert.ok(!publicList.body.items.some((item: { id: string }) => item.id === productId));
  const adminList = await t0.http("GET", "/api/products", { token: t0.admin.token });
  assert.ok(adminList.body.items.some((item: { id: string }) => item.id === productId));
  const refused = await t0.http("POST", "/api/sales", {
    token: t0.admin.token,
    body: {
      items: [{ productId, stock: 3, priceCents: 1000 }],
      startsAt: new Date(t0.clock.now()).toISOString(),
      endsAt: new Date(t0.clock.now() + 60 * MINUTE).toISOString(),
      perUserLimit: 1,
    },
  });
  assert.equal(assertProblem(refused, 400).errors[0].path, "items.0.productId");
  // The sale that offers it goes on, at its own name and price.
  const sale = await stockLeft(t0.http, saleId);
  assert.equal(sale.status, "live");
  const hold = await reserved(t0.http, t0.ada, saleId, productId);
  assert.equal(hold.amountCents, 1500);
  assert.equal((await edit({ archived: false })).body.archivedAt, null);
  assertProblem(
    await t0.http("PATCH", "/api/admin/products/no-such-product", {
      token: t0.admin.token,
      body: { archived: true },
    }),
    404,
  );
});

Deno.test("[sales] a cancel racing checkouts and payments: every open hold is released and its buyer told, none released is paid for, the rest stay sold", async () => {
  await using t0 = await shop();
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 100 }], {
    perUserLimit: 1,
  });
  const buyers = await members(t0.deps, 40);
  const holds = await Promise.all(
    buyers.map((buyer) => reserved(t0.http, buyer, saleId, productId)),
  );
  // Half have checked out already; 15 of the others check out while the admin calls the sale off,
  // and 30 pay at once. Five with an order and five without never pay: their holds are open.
  const early = await Promise.all(
    buyers.slice(0, 20).map((buyer, i) => checkout(t0.http, buyer, holds[i].id)),
  );
  const pay = (orderId: string) => sandboxWebhook(t0, { orderId, amountCents: 1999 });
  const racing = [
    ...early.slice(0, 15).map(({ orderId }) => pay(orderId)),
    ...buyers.slice(20, 35).map(async (buyer, i) => {
      const answer = await t0.http("POST", `/api/reservations/${holds[20 + i].id}/checkout`, {
        token: buyer.token,
      });
      if (answer.status !== 200) {
        assert.equal(answer.body.type, "/problems/reservation-released");
        return null;
      }
      return await pay(answer.body.orderId);
    }),
  ];
  const cancelled = await t0.http("POST", `/api/admin/sales/${saleId}/cancel`, {
    token: t0.admin.token,
  });
  assert.equal(cancelled.status, 200, JSON.stringify(cancelled.body));
  assert.equal(cancelled.body.status, "cancelled");
  const paidAnswers = await Promise.all(racing);
  await saleClosed([t0], saleId);

  let sold = 0;
  let released = 0;
  for (const [i, hold] of holds.entries()) {
    const reservation = (await t0.deps.kv.get<Reservation>(reservationKey(hold.id))).value!;
    const order = reservation.orderId
      ? (await t0.http("GET", `/api/orders/${reservation.orderId}`, { token: buyers[i].token }))
        .body
      : null;
    if (reservation.status === "sold") {
      sold++;
      assert.equal(order?.status, "paid");
    } else {
      released++;
      assert.equal(reservation.status, "released", `hold ${i} is ${reservation.status}`);
      assert.notEqual(order?.status, "paid", `a released hold's order was paid for (hold ${i})`);
      if (order) assert.ok(["cancelled", "refunded"].includes(order.status), order.status);
    }
  }
  assert.equal(sold + released, 40);
  assert.ok(released >= 10, "the cancel released the holds no one paid for");
  const refunded = paidAnswers.filter((answer) => answer?.body.outcome === "refunded").length;
  const paid = paidAnswers.filter((answer) => answer?.body.outcome === "paid").length;
  assert.equal(paid, sold, "every unit sold is a payment applied, and no other");
  assert.equal((await stockLeft(t0.http, saleId)).items[0].stockRemaining, 100 - sold);

  // Every buyer whose hold was released is told so. (Buyers who paid are notified too, so a count
  // of notify jobs says nothing of these: each buyer's own notifications are asked, until told.)
  await t0.deps.outbox.flush();
  for (const [i, hold] of holds.entries()) {
    const reservation = (await t0.deps.kv.get<Reservation>(reservationKey(hold.id))).value!;
    if (reservation.status !== "released") continue;
    const told = async () => {
      const notes = await t0.http("GET", "/api/notifications", { token: buyers[i].token });
      return notes.body.items.some((note: { type: string }) => note.type === "order");
    };
    const deadline = Date.now() + 10_000;
    while (!await told() && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(await told(), `buyer ${i} was not told`);
  }
  assert.equal(
    refunded,
    paidAnswers.filter((answer) => answer !== null).length - paid,
    "every payment not applied to a hold is refunded",
  );
  const ended = await t0.http("GET", "/api/sales?when=ended");
  assert.equal(
    ended.body.items.find((item: { id: string }) => item.id === saleId)?.status,
    "cancelled",
  );
});

Deno.test("[sales] an admin edits a sale before it starts (a hold takes the new price, on an isolate that read the old one); not after; every admin action is in the audit log", async () => {
  await using isolates = await twoShops();
  const { first: t0, second: other } = isolates;
  const { id: saleId, productIds: [productId] } = await t0.sale([{ stock: 10 }], {
    startsInMs: 60 * MINUTE,
  });
  // The second isolate reads the sale (and keeps its definition) before the edit.
  assertProblem(await reserve(other.http, t0.ada, saleId, { productId, quantity: 1 }), 425);
  const edit = (body: Record<string, unknown>, token = t0.admin.token) =>
    t0.http("PATCH", `/api/admin/sales/${saleId}`, { token, body });

  const startsAt = t0.clock.now() + 30 * MINUTE;
  const edited = await edit({
    startsAt: new Date(startsAt).toISOString(),
    perUserLimit: 1,
    prices: [{ productId, priceCents: 1499 }],
  });
  assert.equal(edited.status, 200, JSON.stringify(edited.body));
  assert.equal(edited.body.startsAt, new Date(startsAt).toISOString());
  assert.equal(edited.body.items[0].priceCents, 1499);
  assert.equal(edited.body.perUserLimit, 1);
  const past = await edit({ startsAt: new Date(t0.clock.now() - MINUTE).toISOString() });
  assert.equal(assertProblem(past, 400).errors[0].path, "startsAt");
  const backwards = await edit({ endsAt: new Date(startsAt - MINUTE).toISOString() });
  assert.equal(assertProblem(backwards, 400).errors[0].path, "endsAt");
  const stranger = await edit({
    prices: [{ productId: "0199e4c0-0000-7000-8000-000000000000", priceCents: 1 }],
  });
  assert.equal(assertProblem(stranger, 400).errors[0].path, "prices.0.productId");
  assertProblem(await edit({ perUserLimit: 2 }, t0.ada.token), 403);

  t0.clock.advance(30 * MINUTE);
  other.clock.advance(30 * MINUTE);
  const held = await reserve(other.http, t0.ada, saleId, { productId, quantity: 1 });
  assert.equal(held.status, 201, JSON.stringify(held.body));
  assert.equal(held.body.amountCents, 1499, "the new price, not the one the isolate read first");
  const over = await reserve(other.http, t0.ada, saleId, { productId, quantity: 1 });
  assert.equal(assertProblem(over, 409).type, "/problems/limit-reached");
  const started = await edit({ perUserLimit: 3 });
  assert.equal(assertProblem(started, 409).type, "/problems/sale-started");

  await Promise.all([t0.deps.outbox.flush(), other.deps.outbox.flush()]);
  const [item] = await t0.deps.database.db.select().from(saleItems)
    .where(eq(saleItems.saleId, saleId));
  assert.equal(item.priceCents, 1499, "history has the new price");

  const { orderId } = await checkout(other.http, t0.ada, held.body.id);
  assert.equal((await sandboxWebhook(t0, { orderId, amountCents: 1499 })).body.outcome, "paid");
  const refunded = await t0.http("POST", `/api/admin/orders/${orderId}/refund`, {
    token: t0.admin.token,
  });
  assert.equal(refunded.status, 200);
  const paidList = await t0.http("GET", "/api/admin/orders?status=refunded", {
    token: t0.admin.token,
  });
  assert.ok(paidList.body.items.some((order: { id: string }) => order.id === orderId));
  assertProblem(await t0.http("GET", "/api/admin/orders", { token: t0.ada.token }), 403);

  const log = await t0.http("GET", "/api/admin/audit?limit=10", { token: t0.admin.token });
  assert.equal(log.status, 200, JSON.stringify(log.body));
  const actions = log.body.items.map((entry: { action: string }) => entry.action);
  assert.deepEqual(actions.slice(0, 4), [
    "order.refund",
    "sale.edit",
    "sale.create",
    "product.create",
  ], "newest first; refused edits are not actions");
  const [refundEntry, editEntry] = log.body.items;
  assert.deepEqual(refundEntry.actor, { id: t0.admin.user.id, name: "Admin" });
  assert.deepEqual(refundEntry.subject, { type: "order", id: orderId });
  assert.deepEqual(editEntry.subject, { type: "sale", id: saleId });
  assert.equal(editEntry.detail.perUserLimit, 1);
  assertProblem(await t0.http("GET", "/api/admin/audit", { token: t0.ada.token }), 403);
  // The refund's job ends before the isolates do.
  await Promise.race(
    [t0, other].map((app) =>
      app.waitForLog((record) => record.msg === "payment refunded" && record.orderId === orderId)
    ),
  );
});
