// Administration: products, flash sales (their share links, edits before the start, restocks,
// early ends and cancellations), refunds of paid orders, reports and moderation (resolve, take a
// post down, suspend and restore a member), the audit log of admin actions, and the dead letters
// of jobs and the outbox.
/// <reference lib="dom" />
import { Field } from "./field.tsx";
import { useEffect, useState } from "preact/hooks";
import { api, done, explain, ok, time } from "./session.ts";

type Letter = Awaited<ReturnType<typeof letters>>["items"][number];
type Sale = Awaited<ReturnType<typeof liveSales>>["items"][number];
const liveSales = () => ok(api.api.sales.$get({ query: { when: "live" } }));

/** The link a sale is shared by: the console's page of it, on this origin. */
const shareLink = (saleId: string) => `${location.origin}/#/sale/${saleId}`;

/** One sale: its share link, each item's stock with a restock, an edit before it starts, its end. */
function SaleCard(props: { sale: Sale; act: (action: () => Promise<unknown>) => void }) {
  const { sale, act } = props;
  const [units, setUnits] = useState("10");
  const [startsIn, setStartsIn] = useState("30");
  const [limit, setLimit] = useState(String(sale.perUserLimit));
  return (
    <li class="card" data-testid="admin-sale">
      <p>
        <strong>{sale.status}</strong> · {time(sale.startsAt)}–{time(sale.endsAt)} · share{" "}
        <a href={`#/sale/${sale.id}`} data-testid="share-link">{shareLink(sale.id)}</a>
      </p>
      {sale.items.map((item) => (
        <p key={item.productId}>
          {item.name}: <span data-testid="admin-stock">{item.stockRemaining}</span> of {item.stock}
          {" "}
          left{" "}
          <button
            type="button"
            onClick={() =>
              act(() =>
                ok(api.api.admin.sales[":id"].restock.$post({
                  param: { id: sale.id },
                  json: { productId: item.productId, units: Number(units) },
                }))
              )}
          >
            Restock {item.name}
          </button>
        </p>
      ))}
      <Field label="Units to add" type="number" min={1} value={units} onValue={setUnits} />
      {sale.status === "scheduled" && (
        <fieldset>
          <legend>Before it starts</legend>
          <Field
            label="Starts in (minutes)"
            type="number"
            min={0}
            value={startsIn}
            onValue={setStartsIn}
          />
          <Field label="Limit per buyer" type="number" min={1} value={limit} onValue={setLimit} />
          <button
            type="button"
            onClick={() =>
              act(() =>
                ok(api.api.admin.sales[":id"].$patch({
                  param: { id: sale.id },
                  json: {
                    startsAt: new Date(Date.now() + Number(startsIn) * 60_000).toISOString(),
                    perUserLimit: Number(limit),
                  },
                }))
              )}
          >
            Save changes
          </button>
        </fieldset>
      )}
      <button
        type="button"
        onClick={() =>
          act(() => ok(api.api.admin.sales[":id"].end.$post({ param: { id: sale.id } })))}
      >
        End now
      </button>
      <button
        type="button"
        onClick={() =>
          act(() => ok(api.api.admin.sales[":id"].cancel.$post({ param: { id: sale.id } })))}
      >
        Call off
      </button>
    </li>
  );
}
const letters = () => ok(api.api.admin["dead-letters"].$get({ query: { limit: "50" } }));
const reportsPage = () => ok(api.api.admin.reports.$get({ query: { limit: "50" } }));
type Report = Awaited<ReturnType<typeof reportsPage>>["items"][number];

/** One report: resolve it with a note, take its post down, suspend or restore the member. */
function ReportCard(props: { report: Report; act: (action: () => Promise<string>) => void }) {
  const { report, act } = props;
  const [note, setNote] = useState("");
  const who = report.user.name;
  return (
    <li class="card" data-testid="admin-report">
      <p>
        <strong>{report.reporter.name}</strong> reported <strong>{who}</strong>: {report.reason}
        {report.postId && <span class="meta">(a post)</span>} · {time(report.createdAt)}
      </p>
      {report.resolution
        ? <p data-testid="report-resolution">Resolved: {report.resolution.note}</p>
        : (
          <>
            <Field label={`Note on ${who}'s report`} value={note} onValue={setNote} />
            <button
              type="button"
              onClick={() =>
                act(async () => {
                  await ok(api.api.admin.reports[":id"].resolve.$post({
                    param: { id: report.id },
                    json: { note },
                  }));
                  return "Resolved.";
                })}
            >
              Resolve
            </button>
          </>
        )}
      {report.postId && (
        <button
          type="button"
          onClick={() =>
            act(async () => {
              await ok(api.api.admin.posts[":id"].takedown.$post({
                param: { id: report.postId! },
                json: { reason: report.reason },
              }));
              return "The post is down; its author was told.";
            })}
        >
          Take down the post
        </button>
      )}
      <button
        type="button"
        onClick={() =>
          act(async () => {
            await ok(api.api.admin.users[":id"].suspend.$post({
              param: { id: report.user.id },
              json: { reason: report.reason },
            }));
            return `${who} is suspended.`;
          })}
      >
        Suspend {who}
      </button>
      <button
        type="button"
        onClick={() =>
          act(async () => {
            const answer = await ok(
              api.api.admin.users[":id"].restore.$post({ param: { id: report.user.id } }),
            );
            return answer.restored ? `${who} is restored.` : `${who} was not suspended.`;
          })}
      >
        Restore {who}
      </button>
    </li>
  );
}

const paidOrders = () => ok(api.api.admin.orders.$get({ query: { status: "paid", limit: "50" } }));
const auditLog = () => ok(api.api.admin.audit.$get({ query: { limit: "50" } }));
type Order = Awaited<ReturnType<typeof paidOrders>>["items"][number];
type Entry = Awaited<ReturnType<typeof auditLog>>["items"][number];

const money = (cents: number, currency: string) => `${(cents / 100).toFixed(2)} ${currency}`;

export function AdminPage() {
  const [message, setMessage] = useState("");
  const [name, setName] = useState("");
  const [price, setPrice] = useState("10.00");
  const [products, setProducts] = useState<
    { id: string; name: string; archivedAt: string | null }[]
  >([]);
  const [stock, setStock] = useState("10");
  const [minutes, setMinutes] = useState("60");
  const [startsIn, setStartsIn] = useState("0");
  const [dead, setDead] = useState<Letter[]>([]);
  const [sales, setSales] = useState<Sale[]>([]);
  const [orders, setOrders] = useState<Order[]>([]);
  const [entries, setEntries] = useState<Entry[]>([]);
  const [reports, setReports] = useState<Report[]>([]);
  const refresh = () => letters().then((page) => setDead(page.items));
  const refreshShop = () =>
    Promise.all([
      ok(api.api.products.$get({ query: { limit: "100" } })),
      ok(api.api.sales.$get({ query: { when: "live", limit: "50" } })),
      ok(api.api.sales.$get({ query: { when: "upcoming", limit: "50" } })),
      paidOrders(),
      auditLog(),
      reportsPage(),
    ]).then(([catalogue, live, upcoming, paid, log, filed]) => {
      setProducts(catalogue.items);
      setSales([...live.items, ...upcoming.items]);
      setOrders(paid.items);
      setEntries(log.items);
      setReports(filed.items);
    });
  useEffect(() => {
    refresh();
    refreshShop();
  }, []);
  async function act(action: () => Promise<string>) {
    try {
      setMessage(await action());
    } catch (failure) {
      setMessage(explain(failure));
    }
  }
  const cents = Math.round(Number(price) * 100);
  return (
    <section aria-labelledby="admin-title">
      <h1 id="admin-title">Admin</h1>
      {message && <p role="status" data-testid="admin-message">{message}</p>}
      <form
        class="card"
        aria-label="New product"
        onSubmit={(event: Event) => {
          event.preventDefault();
          act(async () => {
            const product = await ok(
              api.api.products.$post({ json: { name, priceCents: cents, currency: "USD" } }),
            );
            await refreshShop();
            return `Product ${product.name} created.`;
          });
        }}
      >
        <h2>Products</h2>
        <Field label="Name" required value={name} onValue={setName} />
        <Field label="Price (USD)" required inputMode="decimal" value={price} onValue={setPrice} />
        <button type="submit">Create product</button>
        <ul class="list" aria-label="Products">
          {products.map((product) => (
            <li key={product.id} data-testid="admin-product">
              {product.name}
              {product.archivedAt && " (archived)"}{" "}
              <button
                type="button"
                onClick={() =>
                  act(async () => {
                    await ok(api.api.admin.products[":id"].$patch({
                      param: { id: product.id },
                      json: { archived: !product.archivedAt },
                    }));
                    await refreshShop();
                    return product.archivedAt ? "Restored." : "Archived.";
                  })}
              >
                {product.archivedAt ? `Restore ${product.name}` : `Archive ${product.name}`}
              </button>
            </li>
          ))}
        </ul>
      </form>
      <form
        class="card"
        aria-label="New sale"
        onSubmit={(event: Event) => {
          event.preventDefault();
          act(async () => {
            const now = Date.now() + Number(startsIn) * 60_000;
            const sale = await ok(api.api.sales.$post({
              json: {
                items: products.filter((product) => !product.archivedAt).map((product) => ({
                  productId: product.id,
                  stock: Number(stock),
                  priceCents: cents,
                })),
                startsAt: new Date(now).toISOString(),
                endsAt: new Date(now + Number(minutes) * 60_000).toISOString(),
                perUserLimit: 2,
              },
            }));
            await refreshShop();
            const when = sale.status === "scheduled" ? "is announced" : "is live";
            return `The sale ${when}: share ${shareLink(sale.id)}.`;
          });
        }}
      >
        <h2>Flash sale of the products above</h2>
        <Field
          label="Stock of each"
          type="number"
          min={1}
          required
          value={stock}
          onValue={setStock}
        />
        <Field
          label="Starts in (minutes)"
          type="number"
          min={0}
          required
          value={startsIn}
          onValue={setStartsIn}
        />
        <Field
          label="Minutes"
          type="number"
          min={1}
          required
          value={minutes}
          onValue={setMinutes}
        />
        <button type="submit" disabled={products.length === 0}>Start sale</button>
      </form>
      <h2>Sales on now and coming up</h2>
      <ul class="list" aria-label="Sales">
        {sales.length === 0 && <li class="meta">No sale is on or announced.</li>}
        {sales.map((sale) => (
          <SaleCard
            key={sale.id}
            sale={sale}
            act={(action) => act(async () => (await action(), await refreshShop(), "Done."))}
          />
        ))}
      </ul>
      <h2>Paid orders</h2>
      <ul class="list" aria-label="Paid orders">
        {orders.length === 0 && <li class="meta">No paid order to refund.</li>}
        {orders.map((order) => (
          <li class="card" key={order.id} data-testid="admin-order">
            {order.description} · {money(order.amountCents, order.currency)} · paid{" "}
            {order.paidAt && time(order.paidAt)}{" "}
            <button
              type="button"
              onClick={() =>
                act(async () => {
                  await ok(api.api.admin.orders[":id"].refund.$post({ param: { id: order.id } }));
                  await refreshShop();
                  return `Refunded ${money(order.amountCents, order.currency)}.`;
                })}
            >
              Refund {order.description}
            </button>
          </li>
        ))}
      </ul>
      <h2>Reports</h2>
      <ul class="list" aria-label="Reports">
        {reports.length === 0 && <li class="meta">No report filed.</li>}
        {reports.map((report) => (
          <ReportCard
            key={report.id}
            report={report}
            act={(action) =>
              act(async () => {
                const said = await action();
                await refreshShop();
                return said;
              })}
          />
        ))}
      </ul>
      <h2>Audit log</h2>
      <ul class="list" aria-label="Audit log">
        {entries.length === 0 && <li class="meta">No admin action yet.</li>}
        {entries.map((entry) => (
          <li key={entry.id} data-testid="audit-entry">
            {time(entry.at)} · {entry.actor.name ?? "a former admin"} ·{" "}
            <strong>{entry.action}</strong> · {entry.subject.type} <code>{entry.subject.id}</code>
          </li>
        ))}
      </ul>
      <h2>Dead letters</h2>
      <ul class="list" aria-label="Dead letters">
        {dead.length === 0 && <li class="meta">None: every job and record went through.</li>}
        {dead.map((letter) => (
          <li class="card" key={letter.id}>
            <strong>{letter.name}</strong> ({letter.source}) · {letter.attempts} attempts ·{" "}
            {letter.failedAt && time(letter.failedAt)}
            <p class="meta">{letter.lastError}</p>
            <button
              type="button"
              onClick={() =>
                act(async () => {
                  await ok(
                    api.api.admin["dead-letters"][":id"].replay.$post({ param: { id: letter.id } }),
                  );
                  refresh();
                  return "Replayed.";
                })}
            >
              Replay
            </button>
            <button
              type="button"
              onClick={() =>
                act(async () => {
                  await done(
                    api.api.admin["dead-letters"][":id"].$delete({ param: { id: letter.id } }),
                  );
                  refresh();
                  return "Discarded.";
                })}
            >
              Discard
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}
