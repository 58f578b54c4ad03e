// The catalogue: products, sales and their stock as buyers see them (public pages, the live
// stock frame), made by administrators.
import { z } from "zod";
import type { Deps } from "../../deps.ts";
import {
  findProducts,
  insertProduct,
  insertSale,
  listProducts,
  listSaleIds,
  productView,
  type SaleWindow,
  updateProduct,
} from "../../db/sales.ts";
import { findUserById } from "../../db/users.ts";
import { Invalid, NotFound } from "../../errors.ts";
import { newId } from "../../ids.ts";
import {
  createSaleStock,
  editSale,
  endSaleEarly,
  readSaleNow,
  restockItem,
  saleStatus,
  stockRemaining,
} from "../../kv/sales/stock.ts";
import { coordination } from "../../kv/outbox.ts";
import { saleEffects } from "./effects.ts";
import type { Sale } from "../../db/records.ts";
import { id, storableTime } from "../../input.ts";
import { insertAdminActions } from "../../db/audit.ts";
import { inTransaction } from "../../db/client.ts";
import { auditRecord, auditRow } from "../audit.ts";
import { unverified, verificationRequired } from "../auth/verification.ts";

/**
 * Stock counters per sale item. `deno run -A bench/sales.ts` (500 buyers on one item): 1 shard
 * ran at 0.39–0.40× the one-key floor, 4 at 0.71–0.77×, 8 at 0.50–0.58× (each try reads every shard).
 */
export const SALE_SHARDS = 4;

const currency = z.string().trim().toUpperCase().regex(/^[A-Z]{3}$/, "an ISO 4217 code like USD");
const cents = z.number().int().min(1).max(100_000_000);
const instant = storableTime.transform((text) => Date.parse(text));

export const productInput = z.strictObject({
  name: z.string().trim().min(1, "must not be empty").max(200),
  description: z.string().trim().max(4000).optional(),
  priceCents: cents,
  currency,
});

export const saleInput = z.strictObject({
  items: z.array(z.strictObject({
    productId: id,
    stock: z.number().int().min(1).max(1_000_000),
    priceCents: cents,
  })).min(1).max(20).refine(
    (items) => new Set(items.map((item) => item.productId)).size === items.length,
    "each product at most once",
  ),
  startsAt: instant,
  endsAt: instant,
  perUserLimit: z.number().int().min(1).max(1000),
}).refine((sale) => sale.endsAt > sale.startsAt, {
  path: ["endsAt"],
  message: "must be after startsAt",
});

/** An admin sells only once their address is confirmed. */
async function mustBeVerified(deps: Deps, adminId: string) {
  if (!verificationRequired(deps.config)) return;
  const admin = await findUserById(deps.database.db, adminId);
  if (!admin?.emailVerifiedAt) throw unverified("selling (products and sales)");
}

export async function createProduct(
  deps: Deps,
  adminId: string,
  input: z.infer<typeof productInput>,
) {
  await mustBeVerified(deps, adminId);
  const id = newId(deps.clock.now());
  const row = await inTransaction(deps.database.db, async (tx) => {
    const row = await insertProduct(tx, {
      id,
      name: input.name,
      description: input.description ?? null,
      priceCents: input.priceCents,
      currency: input.currency,
      createdBy: adminId,
      createdAt: new Date(deps.clock.now()),
    });
    await insertAdminActions(tx, [auditRow(deps, {
      actorId: adminId,
      action: "product.create",
      subject: { type: "product", id },
      detail: input,
    })]);
    return row;
  });
  return productView(row);
}

export async function createSale(deps: Deps, adminId: string, input: z.infer<typeof saleInput>) {
  await mustBeVerified(deps, adminId);
  const now = deps.clock.now();
  if (input.endsAt <= now) {
    throw new Invalid("The sale would be over before it starts.", [
      { path: "endsAt", message: "must be in the future" },
    ]);
  }
  const products = new Map(
    (await findProducts(deps.database.db, input.items.map((item) => item.productId)))
      .map((product) => [product.id, product]),
  );
  const unknown = input.items.findIndex((item) => !products.has(item.productId));
  if (unknown >= 0) {
    throw new Invalid("No product has this id.", [
      { path: `items.${unknown}.productId`, message: "unknown product" },
    ]);
  }
  const archived = input.items.findIndex((item) => products.get(item.productId)!.archivedAt);
  if (archived >= 0) {
    throw new Invalid("This product is archived: no new sale may offer it.", [
      { path: `items.${archived}.productId`, message: "archived product" },
    ]);
  }
  const sale: Sale = {
    id: newId(now),
    startsAt: input.startsAt,
    endsAt: input.endsAt,
    perUserLimit: input.perUserLimit,
    shards: SALE_SHARDS,
    items: input.items.map((item) => {
      const product = products.get(item.productId)!;
      return { ...item, name: product.name, currency: product.currency };
    }),
    createdAt: now,
  };
  // Postgres first: a sale KV never stocked is invisible, while stock without its rows is not.
  await insertSale(deps.database.db, sale, adminId);
  await createSaleStock(coordination(deps), sale, [auditRecord(deps, {
    actorId: adminId,
    action: "sale.create",
    subject: { type: "sale", id: sale.id },
    detail: input,
  })]);
  return await saleView(deps, sale.id, "strong");
}

/** A sale's public page: from the nearest replica unless the caller just changed it. */
export async function saleView(
  deps: Deps,
  saleId: string,
  consistency: Deno.KvConsistencyLevel = "eventual",
) {
  // Fresh: an admin may have ended or restocked it since this isolate first read it.
  const [sale, left] = await Promise.all([
    readSaleNow(deps.kv, saleId, consistency),
    stockRemaining(deps.kv, { id: saleId, items: [] }, consistency),
  ]);
  if (!sale) throw new NotFound("No sale has this id.");
  return {
    id: sale.id,
    status: saleStatus(sale, left, deps.clock.now()),
    startsAt: new Date(sale.startsAt).toISOString(),
    endsAt: new Date(sale.endsAt).toISOString(),
    perUserLimit: sale.perUserLimit,
    items: sale.items.map((item) => ({
      productId: item.productId,
      name: item.name,
      priceCents: item.priceCents,
      currency: item.currency,
      stock: item.stock + (item.restocked ?? 0),
      stockRemaining: left.get(item.productId) ?? 0,
    })),
  };
}

/** The `stock-update` frame of a sale, sent to its subscribers whenever its stock changes. */
export async function stockUpdate(deps: Deps, saleId: string) {
  const view = await saleView(deps, saleId);
  return {
    type: "stock-update",
    data: {
      saleId,
      status: view.status,
      stockRemaining: view.items.reduce((sum, item) => sum + item.stockRemaining, 0),
      items: view.items.map(({ productId, stockRemaining }) => ({ productId, stockRemaining })),
    },
  };
}

/** Which sales the catalogue lists: `live` (sold-out ones too), `upcoming` or `ended`. */
export const catalogueQuery = z.object({
  when: z.enum(["live", "upcoming", "ended"]).default("live"),
});

/**
 * A catalogue page: sales in a window, each as its public page shows it (live stock from the
 * nearest KV replica). Which sales is Postgres's answer; what each holds is KV's.
 */
export async function listSales(
  deps: Deps,
  when: SaleWindow,
  page: { cursor?: string; limit: number },
) {
  const { items, nextCursor } = await listSaleIds(
    deps.database.db,
    when,
    new Date(deps.clock.now()),
    page,
  );
  const views = await Promise.all(
    items.map((id) =>
      saleView(deps, id).catch((error) => error instanceof NotFound ? null : Promise.reject(error))
    ),
  );
  // A sale whose rows were written but whose stock was not (a create cut short) is not on sale.
  return { items: views.filter((view) => view !== null), nextCursor };
}

/** Products, newest first: every one for an admin, those in sales not yet ended for anyone else. */
export async function productsFor(
  deps: Deps,
  viewerId: string | null,
  page: { cursor?: string; limit: number },
) {
  const viewer = viewerId ? await findUserById(deps.database.db, viewerId) : null;
  const visibleAt = viewer?.role === "admin" ? null : new Date(deps.clock.now());
  return await listProducts(deps.database.db, visibleAt, page);
}

export const restockInput = z.strictObject({
  productId: id,
  units: z.number().int().min(1).max(1_000_000),
});

/** An admin adds units of an item to a sale not yet ended; viewers see them at once. */
export async function restock(
  deps: Deps,
  adminId: string,
  saleId: string,
  input: z.infer<typeof restockInput>,
) {
  const action = saleAction(adminId, "sale.restock", saleId, input);
  await restockItem(
    coordination(deps),
    saleId,
    input.productId,
    input.units,
    saleEffects(deps, action),
  );
  return await saleView(deps, saleId, "strong");
}

/**
 * An admin ends a sale now, or (`cancel`) calls it off: no hold is taken after this; its open
 * holds are released and their buyers notified (by a job, within moments).
 */
export async function endSale(deps: Deps, adminId: string, saleId: string, cancel = false) {
  const action = saleAction(adminId, cancel ? "sale.cancel" : "sale.end", saleId);
  await endSaleEarly(coordination(deps), saleId, saleEffects(deps, action), cancel);
  return await saleView(deps, saleId, "strong");
}

export const saleEdit = z.strictObject({
  startsAt: instant.optional(),
  endsAt: instant.optional(),
  perUserLimit: z.number().int().min(1).max(1000).optional(),
  prices: z.array(z.strictObject({ productId: id, priceCents: cents })).min(1).max(20).optional(),
}).refine(
  (edit) => Object.keys(edit).length > 0,
  "startsAt, endsAt, perUserLimit or prices",
);

/** An admin edits a sale that has not started: its times, its per-buyer limit, its prices. */
export async function reviseSale(
  deps: Deps,
  adminId: string,
  saleId: string,
  edit: z.infer<typeof saleEdit>,
) {
  const action = saleAction(adminId, "sale.edit", saleId, edit);
  await editSale(coordination(deps), saleId, edit, saleEffects(deps, action));
  return await saleView(deps, saleId, "strong");
}

const saleAction = (actorId: string, action: string, saleId: string, detail?: unknown) => ({
  actorId,
  action,
  subject: { type: "sale", id: saleId },
  detail,
});

export const productChange = z.strictObject({
  name: z.string().trim().min(1, "must not be empty").max(200).optional(),
  description: z.string().trim().max(4000).nullable().optional(),
  priceCents: cents.optional(),
  archived: z.boolean().optional(),
}).refine((change) => Object.keys(change).length > 0, "name, description, priceCents or archived");

/**
 * An admin edits or archives a product. Its list price and name are for new sales: a sale keeps
 * the name and price it was created with. An archived product leaves the public lists and no new
 * sale may offer it; the sales offering it go on.
 */
export async function editProduct(
  deps: Deps,
  adminId: string,
  id: string,
  change: z.infer<typeof productChange>,
) {
  const { archived, ...fields } = change;
  const row = await inTransaction(deps.database.db, async (tx) => {
    const row = await updateProduct(tx, id, {
      ...fields,
      ...(archived === undefined
        ? {}
        : { archivedAt: archived ? new Date(deps.clock.now()) : null }),
    });
    if (!row) throw new NotFound("No product has this id.");
    await insertAdminActions(tx, [auditRow(deps, {
      actorId: adminId,
      action: archived === undefined
        ? "product.edit"
        : archived
        ? "product.archive"
        : "product.restore",
      subject: { type: "product", id },
      detail: change,
    })]);
    return row;
  });
  return productView(row);
}
