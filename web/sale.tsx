// Flash sales: the catalogue (live and upcoming sales, their stock live), a sale with live stock
// (the socket's stock-update), a hold with a countdown to its expiry, checkout on the payment page
// (the sandbox one locally), and one's orders, an unpaid one cancelled with a click.
/// <reference lib="dom" />
import { useEffect, useState } from "preact/hooks";
import { api, explain, go, liveSocket, ok, secondsUntil, time, useEvent } from "./session.ts";

type Sale = Awaited<ReturnType<typeof loadSale>>;
type Reservation = Awaited<ReturnType<typeof reserve>>;

const loadSale = (id: string) => ok(api.api.sales[":id"].$get({ param: { id } }));
const reserve = (id: string, productId: string) =>
  ok(api.api.sales[":id"].reservations.$post(
    { param: { id }, json: { productId, quantity: 1 } },
    { headers: { "idempotency-key": crypto.randomUUID() } },
  ));

/** `sale` with what a `stock-update` says of it (another sale's update leaves it as it is). */
function withStock(
  sale: Sale,
  update: {
    saleId: string;
    status: Sale["status"];
    items: { productId: string; stockRemaining: number }[];
  },
): Sale {
  if (sale.id !== update.saleId) return sale;
  return {
    ...sale,
    status: update.status,
    items: sale.items.map((item) => ({
      ...item,
      stockRemaining: update.items.find((i) => i.productId === item.productId)?.stockRemaining ??
        item.stockRemaining,
    })),
  };
}

const money = (cents: number, currency: string) => `${(cents / 100).toFixed(2)} ${currency}`;

export function SalePage(props: { saleId?: string }) {
  return props.saleId ? <LiveSale saleId={props.saleId} /> : <Catalogue />;
}

const loadSales = (when: "live" | "upcoming") =>
  ok(api.api.sales.$get({ query: { when, limit: "20" } }));

/** "1 h 5 min", "4 min 10 s", "12 s": a countdown a person reads at a glance. */
function countdown(seconds: number) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${s} s` : `${s} s`;
}

/** Live and upcoming sales, their stock kept live over the socket; a click opens one. */
function Catalogue() {
  const [sales, setSales] = useState<{ live: Sale[]; upcoming: Sale[] } | null>(null);
  const [message, setMessage] = useState("");
  const [, tick] = useState(0);
  useEffect(() => {
    Promise.all([loadSales("live"), loadSales("upcoming")]).then(
      ([live, upcoming]) => setSales({ live: live.items, upcoming: upcoming.items }),
      (error) => setMessage(explain(error)),
    );
    const timer = setInterval(() => tick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, []);
  const ids = sales ? [...sales.live, ...sales.upcoming].map((sale) => sale.id) : [];
  useEffect(() => {
    const socket = liveSocket();
    for (const id of ids) socket.subscribe(id);
    return () => ids.forEach((id) => socket.unsubscribe(id));
  }, [ids.join()]);
  useEvent("stock-update", (event) => {
    const apply = (sale: Sale) => withStock(sale, event.data);
    setSales((known) =>
      known && { live: known.live.map(apply), upcoming: known.upcoming.map(apply) }
    );
  });
  if (!sales) return <p role="status">{message || "Loading…"}</p>;
  const card = (sale: Sale, upcoming: boolean) => (
    <li class="card item" data-testid="catalogue-sale" key={sale.id}>
      <div>
        <strong>
          {sale.items.map((item) =>
            item.name
          ).join(", ")}
        </strong>
        <br />
        {sale.items.map((item) => (
          <span key={item.productId}>
            {money(item.priceCents, item.currency)} ·{" "}
            <span data-testid="catalogue-stock">{item.stockRemaining}</span> of {item.stock} left
            {" "}
          </span>
        ))}
        <br />
        <small>
          {upcoming
            ? `starts in ${countdown(secondsUntil(sale.startsAt))}`
            : sale.status === "sold-out"
            ? "sold out"
            : `ends in ${countdown(secondsUntil(sale.endsAt))}`}
        </small>
      </div>
      <button
        type="button"
        onClick={() =>
          go("sale", sale.id)}
      >
        Open
      </button>
    </li>
  );
  return (
    <section aria-labelledby="sale-title">
      <h1 id="sale-title">Flash sales</h1>
      <h2>On now</h2>
      {sales.live.length === 0 && <p>No sale is on now.</p>}
      <ul class="list" aria-label="Sales on now">
        {sales.live.map((sale) => card(sale, false))}
      </ul>
      <h2>Coming up</h2>
      {sales.upcoming.length === 0 && <p>Nothing announced yet.</p>}
      <ul class="list" aria-label="Sales coming up">
        {sales.upcoming.map((sale) => card(sale, true))}
      </ul>
    </section>
  );
}

function LiveSale(props: { saleId: string }) {
  const [sale, setSale] = useState<Sale | null>(null);
  const [hold, setHold] = useState<Reservation | null>(null);
  const [left, setLeft] = useState(0);
  const [message, setMessage] = useState("");
  const [line, setLine] = useState("");
  useEffect(() => {
    loadSale(props.saleId).then(setSale, (error) => setMessage(explain(error)));
    const socket = liveSocket();
    socket.subscribe(props.saleId);
    return () => socket.unsubscribe(props.saleId);
  }, [props.saleId]);
  useEvent("stock-update", (event) => {
    if (event.data.saleId !== props.saleId) return;
    setSale((known) => known && withStock(known, event.data));
  }, [props.saleId]);
  useEvent("purchase", (event) => {
    if (event.data.saleId !== props.saleId) return;
    const { place, item, others } = event.data;
    setLine(
      `${place ? `Someone in ${place}` : "A buyer"} just bought ${item}` +
        (others > 0 ? `, and ${others} more since` : ""),
    );
  }, [props.saleId]);
  useEffect(() => {
    if (!hold) return;
    const timer = setInterval(() => setLeft(secondsUntil(hold.expiresAt)), 250);
    return () => clearInterval(timer);
  }, [hold?.id]);

  async function take(productId: string) {
    setMessage("");
    try {
      const reservation = await reserve(props.saleId, productId);
      setHold(reservation);
      setLeft(secondsUntil(reservation.expiresAt));
    } catch (failure) {
      setMessage(explain(failure));
    }
  }
  async function pay() {
    if (!hold) return;
    try {
      const { paymentUrl } = await ok(
        api.api.reservations[":id"].checkout.$post({ param: { id: hold.id } }),
      );
      location.assign(paymentUrl);
    } catch (failure) {
      setMessage(explain(failure));
    }
  }
  if (!sale) return <p role="status">{message || "Loading…"}</p>;
  return (
    <section aria-labelledby="sale-title">
      <h1 id="sale-title">Flash sale</h1>
      <p>
        Status: <strong data-testid="sale-status">{sale.status}</strong> · ends {time(sale.endsAt)}
        {" "}
        · at most {sale.perUserLimit} per buyer
      </p>
      <ul class="list" aria-label="Items">
        {sale.items.map((item) => (
          <li class="card item" data-testid="sale-item" key={item.productId}>
            <strong>{item.name}</strong> · {money(item.priceCents, item.currency)} ·{" "}
            <span data-testid="stock" aria-live="polite">{item.stockRemaining}</span> of{" "}
            {item.stock} left
            <button
              type="button"
              disabled={item.stockRemaining === 0 || sale.status !== "live" || hold !== null}
              onClick={() =>
                take(item.productId)}
            >
              Reserve
            </button>
          </li>
        ))}
      </ul>
      <p aria-live="polite" data-testid="purchase-feed" class="meta">{line}</p>
      {hold && (
        <div class="card" data-testid="hold">
          <p>
            Held: {hold.quantity} for {money(hold.amountCents, hold.currency)} ·{" "}
            <span data-testid="hold-countdown">{left}</span> s to pay
          </p>
          <button type="button" onClick={pay} disabled={left === 0}>Checkout</button>
        </div>
      )}
      {message && <p role="alert" class="error">{message}</p>}
    </section>
  );
}

type Order = Awaited<ReturnType<typeof loadOrders>>["items"][number];
const loadOrders = () => ok(api.api.orders.$get({ query: { limit: "50" } }));

export function OrdersPage() {
  const [orders, setOrders] = useState<Order[] | null>(null);
  const [message, setMessage] = useState("");
  const reload = () => loadOrders().then((page) => setOrders(page.items));
  useEffect(() => {
    reload();
  }, []);
  useEvent("notification", (event) => {
    if (event.data.type === "order") reload();
  });
  async function cancel(order: Order) {
    setMessage("");
    try {
      await ok(api.api.orders[":id"].cancel.$post({ param: { id: order.id } }));
      await reload();
    } catch (failure) {
      setMessage(explain(failure));
    }
  }
  return (
    <section aria-labelledby="orders-title">
      <h1 id="orders-title">Orders</h1>
      {message && <p role="alert" class="error">{message}</p>}
      {orders?.length === 0 && <p>No orders yet.</p>}
      <ul class="list" aria-label="Orders">
        {orders?.map((order) => (
          <li class="card" data-testid="order" data-status={order.status} key={order.id}>
            {order.description} · {money(order.amountCents, order.currency)} ·{" "}
            <strong>{order.status}</strong> · {time(order.createdAt)}
            {order.status === "pending" && (
              <button
                type="button"
                aria-label={`Cancel order for ${order.description}`}
                onClick={() => cancel(order)}
              >
                Cancel
              </button>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}
