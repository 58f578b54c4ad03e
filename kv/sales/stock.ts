// Flash-sale stock in KV: a sale's definition, its stock split over a few shard counters per item,
// and the reservation commit that checks stock and the buyer's count, takes the units and records
// the hold in one atomic commit, so no item is ever oversold, whatever the concurrency.
import { commitDecision } from "../decisions.ts";
import { type Reservation, type Sale, type SaleItem, type SaleStatus } from "../../db/records.ts";
import { Conflict, Gone, Invalid, TooEarly, Unprocessable } from "../../errors.ts";
import { newId } from "../../ids.ts";
import { backoff, busy } from "../backoff.ts";
import { locksOf } from "../keyed-lock.ts";
import { ofApp, Remembered } from "../remembered.ts";
import {
  reservationDueKey,
  reservationIdempotencyKey,
  reservationKey,
  saleBuyerKey,
  saleKey,
  saleStockHeadKey,
  saleStockKey,
} from "../keys.ts";
import type { Coordination, OutboxRecord } from "../outbox.ts";

/** Stock counters per item, at most: the reservation commit reads them with one `getMany`. */
export const MAX_SHARDS = 8;
/** How long a contended reservation keeps trying before answering 409 `busy`. */
const RESERVE_BUDGET_MS = 20_000;
/** An `Idempotency-Key` is remembered this long. */
const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/** The shards an item's stock is split over: at most MAX_SHARDS, never more than its units, at least one. */
export function shardsOf(sale: Sale, item: SaleItem): number {
  return Math.max(1, Math.min(sale.shards, MAX_SHARDS, item.stock));
}

/** `stock` units over `shards` counters, as evenly as whole units allow, the larger ones first. */
export function splitStock(stock: number, shards: number): number[] {
  return Array.from(
    { length: shards },
    (_, shard) => Math.floor(stock / shards) + (shard < stock % shards ? 1 : 0),
  );
}

function stockKeys(sale: Sale, item: SaleItem): Deno.KvKey[] {
  return Array.from(
    { length: shardsOf(sale, item) },
    (_, shard) => saleStockKey(sale.id, item.productId, shard),
  );
}

/** Stores a new sale and its full stock, split evenly over the shards of each item. */
export async function createSaleStock(kv: Deno.Kv, sale: Sale): Promise<void> {
  const atomic = kv.atomic().check({ key: saleKey(sale.id), versionstamp: null })
    .set(saleKey(sale.id), sale).set(saleStockHeadKey(sale.id), sale.createdAt);
  for (const item of sale.items) {
    splitStock(item.stock, shardsOf(sale, item)).forEach((units, shard) => {
      atomic.set(saleStockKey(sale.id, item.productId, shard), new Deno.KvU64(BigInt(units)));
    });
  }
  if (!(await atomic.commit()).ok) throw new Error(`sale ${sale.id} exists already`);
}

/** A sale's definition; it never changes, so each isolate keeps the ones it has read. */
const definitions = new WeakMap<Deno.Kv, Map<string, Sale>>();

export async function readSale(kv: Deno.Kv, saleId: string): Promise<Sale | null> {
  let known = definitions.get(kv);
  if (!known) definitions.set(kv, known = new Map());
  const cached = known.get(saleId);
  if (cached) return cached;
  // The nearest replica first: a definition never changes once it exists, so only one created a
  // moment ago can be missing there, and the primary is asked then.
  const sale = (await kv.get<Sale>(saleKey(saleId), { consistency: "eventual" })).value ??
    (await kv.get<Sale>(saleKey(saleId))).value;
  if (sale) {
    if (known.size > 1000) known.clear();
    known.set(saleId, sale);
  }
  return sale;
}

/**
 * Units left per item (a consistent snapshot of every shard). A page showing the stock may read
 * the nearest replica (`eventual`, a moment behind; its viewers' socket room is live); decisions
 * never read it this way.
 */
export async function stockRemaining(
  kv: Deno.Kv,
  sale: Sale,
  consistency: Deno.KvConsistencyLevel = "strong",
): Promise<Map<string, number>> {
  const left = new Map(sale.items.map((item) => [item.productId, 0]));
  const shards = kv.list<Deno.KvU64>({ prefix: ["sale_stock", sale.id] }, { consistency });
  for await (const entry of shards) {
    const productId = String(entry.key[2]);
    left.set(productId, (left.get(productId) ?? 0) + Number(entry.value.value));
  }
  return left;
}

export function saleStatus(sale: Sale, left: Map<string, number>, now: number): SaleStatus {
  if (now < sale.startsAt) return "scheduled";
  if (now >= sale.endsAt) return "ended";
  return [...left.values()].every((units) => units === 0) ? "sold-out" : "live";
}

export interface ReserveRequest {
  sale: Sale;
  userId: string;
  productId: string;
  quantity: number;
  /** The buyer's `Idempotency-Key`: the same key returns the same hold. */
  idempotencyKey?: string;
  ttlMs: number;
}

interface IdempotentRequest {
  reservationId: string;
  /** What the key was first used for; the same key for anything else is refused. */
  productId: string;
  quantity: number;
}

/** What a new hold causes (its Postgres row and its expiry job), written into its commit. */
export type ReserveEffects = (reservation: Reservation) => OutboxRecord[];

/**
 * Reserves `quantity` units of one item for the buyer: checks the window, the buyer's count and
 * the stock, and takes the units in one commit checked against every counter it read. Returns the
 * hold, and whether it is an earlier one returned again for the same `Idempotency-Key`.
 */
export async function reserveStock(
  deps: Coordination,
  request: ReserveRequest,
  effects: ReserveEffects,
): Promise<{ reservation: Reservation; replayed: boolean }> {
  const { sale } = request;
  const item = sale.items.find((candidate) => candidate.productId === request.productId);
  if (!item) {
    throw new Invalid("This sale does not offer that product.", [
      { path: "productId", message: `not one of this sale's items` },
    ]);
  }
  const keys = [...stockKeys(sale, item), saleBuyerKey(sale.id, request.userId)];
  if (request.idempotencyKey) {
    keys.push(reservationIdempotencyKey(request.userId, request.idempotencyKey));
  }
  const replayed = async (earlier: IdempotentRequest) => ({
    reservation: await replay(deps.kv, earlier, request),
    replayed: true,
  });
  const deadline = deps.now() + RESERVE_BUDGET_MS;
  for (let attempt = 0;; attempt++) {
    // A first read answers sold-out, over-limit and replayed requests without waiting. The rest
    // take turns on one shard in this isolate, so local buyers do not all read one versionstamp
    // and all but one lose the commit; between isolates, the checks decide.
    const locks = locksOf(deps.outbox);
    const mark = locks.mark();
    const read = await deps.kv.getMany(keys);
    const first = assess(request, item, read, deps.now());
    if ("earlier" in first) return await replayed(first.earlier);
    const shard = first.taken[0][0];
    const result = await locks.run(
      `stock:${sale.id}/${item.productId}/${shard}`,
      async (waited) => {
        // Nobody here took a turn on this shard since the first read: it is still the latest this
        // isolate knows, so the commit goes on it (one round trip less). Otherwise the turns
        // before this one left their counters behind (heldShards): the read with those in place
        // is the latest this isolate knows, and again the commit goes on it. The checks decide.
        const now = deps.now();
        const fresh = waited ? assess(request, item, latestKnown(deps, read), now, shard) : first;
        if ("earlier" in fresh) return await replayed(fresh.earlier);
        return await commitHold(deps, request, item, fresh, now, effects);
      },
      mark,
    );
    if (result) return result;
    if (deps.now() > deadline) throw busy("This item's stock");
    await backoff(attempt, 20);
  }
}

/** What one read of the counters allows: an earlier hold to return, or the units to take. */
type Assessment =
  | { earlier: IdempotentRequest }
  | {
    taken: [number, number][];
    buyer: Deno.KvEntryMaybe<Deno.KvU64>;
    shards: Deno.KvEntryMaybe<Deno.KvU64>[];
    idempotency: Deno.KvEntryMaybe<IdempotentRequest> | null;
  };

/**
 * Reads `entries` (the item's shards, the buyer's count, then the idempotency entry if any) and
 * throws the refusal they call for: outside the window, over the limit, not enough stock. Takes
 * from shard `prefer` first when it has the units.
 */
function assess(
  request: ReserveRequest,
  item: SaleItem,
  entries: Deno.KvEntryMaybe<unknown>[],
  now: number,
  prefer?: number,
): Assessment {
  const { sale, quantity } = request;
  const rest = [...entries];
  const idempotency = request.idempotencyKey
    ? rest.pop() as Deno.KvEntryMaybe<IdempotentRequest>
    : null;
  if (idempotency?.value) return { earlier: idempotency.value };
  const buyer = rest.pop() as Deno.KvEntryMaybe<Deno.KvU64>;
  const shards = rest as Deno.KvEntryMaybe<Deno.KvU64>[];
  checkWindow(sale, now);
  const held = Number(buyer.value?.value ?? 0n);
  if (held + quantity > sale.perUserLimit) {
    throw new Conflict(
      `At most ${sale.perUserLimit} units per buyer in this sale; you hold or bought ${held}.`,
      "limit-reached",
      { limit: sale.perUserLimit, held },
    );
  }
  const units = shards.map((shard) => Number(shard.value?.value ?? 0n));
  const taken = take(units, quantity, prefer);
  if (!taken) {
    const left = units.reduce((sum, n) => sum + n, 0);
    throw new Conflict(
      left === 0 ? `${item.name} is sold out.` : `Only ${left} of ${item.name} left.`,
      "sold-out",
      { stockRemaining: left },
    );
  }
  return { taken, buyer, shards, idempotency };
}

/** The reservation commit; null when a counter it read changed meanwhile (decide again). */
async function commitHold(
  deps: Coordination,
  request: ReserveRequest,
  item: SaleItem,
  { taken, buyer, shards, idempotency }: Extract<Assessment, { taken: unknown }>,
  now: number,
  effects: ReserveEffects,
): Promise<{ reservation: Reservation; replayed: boolean } | null> {
  const { sale, userId, quantity } = request;
  const reservation: Reservation = {
    id: newId(now),
    saleId: sale.id,
    productId: item.productId,
    userId,
    quantity,
    amountCents: item.priceCents * quantity,
    currency: item.currency,
    taken,
    status: "held",
    version: 1,
    orderId: null,
    expiresAt: now + request.ttlMs,
    createdAt: now,
    updatedAt: now,
  };
  const atomic = deps.kv.atomic().check(buyer)
    .set(buyer.key, new Deno.KvU64((buyer.value?.value ?? 0n) + BigInt(quantity)));
  for (const [shard, units] of taken) {
    const entry = shards[shard];
    atomic.check(entry).set(entry.key, new Deno.KvU64(entry.value!.value - BigInt(units)));
  }
  if (idempotency) {
    const remembered: IdempotentRequest = {
      reservationId: reservation.id,
      productId: item.productId,
      quantity,
    };
    atomic.check(idempotency).set(idempotency.key, remembered, { expireIn: IDEMPOTENCY_TTL_MS });
  }
  atomic.check({ key: reservationKey(reservation.id), versionstamp: null })
    .set(reservationKey(reservation.id), reservation)
    .set(reservationDueKey(reservation.expiresAt, reservation.id), reservation.id)
    .set(saleStockHeadKey(sale.id), now);
  const records = effects(reservation);
  const committed = await commitDecision(deps, atomic, { records });
  if (!committed) return null;
  for (const [shard, units] of taken) {
    const { key, value } = shards[shard];
    remember(deps, { key, value: new Deno.KvU64(value!.value - BigInt(units)), ...committed });
  }
  return { reservation, replayed: false };
}

/** Shard counters an isolate remembers at most; the oldest are forgotten first. */
const REMEMBERED_SHARDS = 10_000;

/**
 * Per app (see ofApp): each stock shard's counter as this isolate's last hold on it left it, with
 * that commit's versionstamp.
 */
const heldShards = new WeakMap<object, Remembered<string, Deno.KvEntry<Deno.KvU64>>>();

const heldShardsOf = (deps: Coordination) =>
  ofApp(heldShards, deps.outbox, () => new Remembered(REMEMBERED_SHARDS));

function remember(deps: Coordination, entry: Deno.KvEntry<Deno.KvU64>) {
  heldShardsOf(deps).set(JSON.stringify(entry.key), entry);
}

/**
 * `read` with each shard counter replaced by what a later hold of this isolate left there, where
 * that is newer (versionstamps order commits).
 */
function latestKnown(deps: Coordination, read: Deno.KvEntryMaybe<unknown>[]) {
  const shards = heldShardsOf(deps);
  return read.map((entry) => {
    const held = shards.get(JSON.stringify(entry.key));
    return held && (entry.versionstamp === null || held.versionstamp > entry.versionstamp)
      ? held
      : entry;
  });
}

/** 425 before the sale starts, 410 once it has ended. */
function checkWindow(sale: Sale, now: number) {
  if (now < sale.startsAt) {
    const seconds = Math.ceil((sale.startsAt - now) / 1000);
    throw new TooEarly(
      `The sale starts at ${new Date(sale.startsAt).toISOString()}.`,
      "sale-not-started",
      seconds,
      { startsAt: new Date(sale.startsAt).toISOString() },
    );
  }
  if (now >= sale.endsAt) {
    throw new Gone(`The sale ended at ${new Date(sale.endsAt).toISOString()}.`, "sale-ended", {
      endsAt: new Date(sale.endsAt).toISOString(),
    });
  }
}

/**
 * Which shards to take `quantity` units from: starting at a random shard, so concurrent buyers
 * spread over the counters, and taking from as few as it can. Null when there are not enough.
 */
export function take(
  units: number[],
  quantity: number,
  prefer?: number,
): [number, number][] | null {
  if (units.reduce((sum, n) => sum + n, 0) < quantity) return null;
  const start = prefer ?? Math.floor(Math.random() * units.length);
  const order = units.map((_, i) => (start + i) % units.length);
  const whole = order.find((shard) => units[shard] >= quantity);
  if (whole !== undefined) return [[whole, quantity]];
  const taken: [number, number][] = [];
  let missing = quantity;
  for (const shard of order) {
    if (missing === 0) break;
    const part = Math.min(units[shard], missing);
    if (part > 0) taken.push([shard, part]);
    missing -= part;
  }
  return taken;
}

async function replay(
  kv: Deno.Kv,
  earlier: IdempotentRequest,
  request: ReserveRequest,
): Promise<Reservation> {
  if (earlier.productId !== request.productId || earlier.quantity !== request.quantity) {
    throw new Unprocessable(
      "This Idempotency-Key was used for a different reservation; use a new key for a new request.",
      "idempotency-key-reused",
    );
  }
  const reservation = (await kv.get<Reservation>(reservationKey(earlier.reservationId))).value;
  if (!reservation) throw new Error(`reservation ${earlier.reservationId} vanished`);
  return reservation;
}
