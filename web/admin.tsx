// Administration: products, flash sales, and the dead letters of jobs and the outbox.
/// <reference lib="dom" />
import { Field } from "./field.tsx";
import { useEffect, useState } from "preact/hooks";
import { api, done, explain, ok, time } from "./session.ts";

type Letter = Awaited<ReturnType<typeof letters>>["items"][number];
const letters = () => ok(api.api.admin["dead-letters"].$get({ query: { limit: "50" } }));

export function AdminPage() {
  const [message, setMessage] = useState("");
  const [name, setName] = useState("");
  const [price, setPrice] = useState("10.00");
  const [products, setProducts] = useState<{ id: string; name: string }[]>([]);
  const [stock, setStock] = useState("10");
  const [minutes, setMinutes] = useState("60");
  const [dead, setDead] = useState<Letter[]>([]);
  const refresh = () => letters().then((page) => setDead(page.items));
  useEffect(() => {
    refresh();
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
            setProducts([...products, product]);
            return `Product ${product.name} created.`;
          });
        }}
      >
        <h2>Products</h2>
        <Field label="Name" required value={name} onValue={setName} />
        <Field label="Price (USD)" required inputMode="decimal" value={price} onValue={setPrice} />
        <button type="submit">Create product</button>
      </form>
      <form
        class="card"
        aria-label="New sale"
        onSubmit={(event: Event) => {
          event.preventDefault();
          act(async () => {
            const now = Date.now();
            const sale = await ok(api.api.sales.$post({
              json: {
                items: products.map((product) => ({
                  productId: product.id,
                  stock: Number(stock),
                  priceCents: cents,
                })),
                startsAt: new Date(now).toISOString(),
                endsAt: new Date(now + Number(minutes) * 60_000).toISOString(),
                perUserLimit: 2,
              },
            }));
            return `Sale ${sale.id} is live: share #/sale/${sale.id}.`;
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
          label="Minutes"
          type="number"
          min={1}
          required
          value={minutes}
          onValue={setMinutes}
        />
        <button type="submit" disabled={products.length === 0}>Start sale</button>
      </form>
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
