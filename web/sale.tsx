// A flash sale: live stock (the socket's stock-update), a hold with a countdown to its expiry,
// checkout on the payment page (the sandbox one locally), and one's orders.
/// <reference lib="dom" />
import { Field } from "./field.tsx";
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

const money = (cents: number, currency: string) => `${(cents / 100).toFixed(2)} ${currency}`;

export function SalePage(props: { saleId?: string }) {
  const [saleId, setSaleId] = useState(props.saleId ?? "");
  if (!props.saleId) {
    return (
      <section aria-labelledby="sale-title">
        <h1 id="sale-title">Flash sale</h1>
        <form
          class="row"
          aria-label="Open a sale"
          onSubmit={(event: Event) => {
            event.preventDefault();
            go("sale", saleId);
          }}
        >
          <Field label="Sale id" required value={saleId} onValue={setSaleId} />
          <button type="submit">Open</button>
        </form>
      </section>
    );
  }
  return <LiveSale saleId={props.saleId} />;
}

function LiveSale(props: { saleId: string }) {
  const [sale, setSale] = useState<Sale | null>(null);
  const [hold, setHold] = useState<Reservation | null>(null);
  const [left, setLeft] = useState(0);
  const [message, setMessage] = useState("");
  useEffect(() => {
    loadSale(props.saleId).then(setSale, (error) => setMessage(explain(error)));
    const socket = liveSocket();
    socket.subscribe(props.saleId);
    return () => socket.unsubscribe(props.saleId);
  }, [props.saleId]);
  useEvent("stock-update", (event) => {
    if (event.data.saleId !== props.saleId) return;
    setSale((known) =>
      known && {
        ...known,
        status: event.data.status,
        items: known.items.map((item) => ({
          ...item,
          stockRemaining: event.data.items.find((i) => i.productId === item.productId)
            ?.stockRemaining ?? item.stockRemaining,
        })),
      }
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
  useEffect(() => {
    loadOrders().then((page) => setOrders(page.items));
  }, []);
  useEvent("notification", (event) => {
    if (event.data.type === "order") loadOrders().then((page) => setOrders(page.items));
  });
  return (
    <section aria-labelledby="orders-title">
      <h1 id="orders-title">Orders</h1>
      {orders?.length === 0 && <p>No orders yet.</p>}
      <ul class="list" aria-label="Orders">
        {orders?.map((order) => (
          <li class="card" data-testid="order" data-status={order.status} key={order.id}>
            {order.description} · {money(order.amountCents, order.currency)} ·{" "}
            <strong>{order.status}</strong> · {time(order.createdAt)}
          </li>
        ))}
      </ul>
    </section>
  );
}
