// Flash-sale stock in KV: a sale's definition, its stock split over a few shard counters per item,
// and the reservation commit that checks stock and the buyer's count, takes the units and records
// the hold in one atomic commit, so no item is ever oversold, whatever the concurrency.
import { commitDecision } from "../decisions.ts";
import type { Reservation, Sale, SaleItem, SaleStatus } from "../../db/records.ts";
import { Conflict, Gone, Invalid, NotFound, TooEarly, Unprocessable } from "../../errors.ts";
import { newId } from "../../ids.ts";
import { backoff, busy } from "../backoff.ts";
import { ofApp, Remembered } from "../remembered.ts";
import {
  reservationDueKey,
  reservationIdempotencyKey,
  reservationKey,
  saleBuyerKey,
  saleKey,
  salePurchaseKey,
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

/**
 * Stores a new sale and its full stock, split evenly over the shards of each item, with `records`
 * (what its creation causes) in the same commit.
 */
export async function createSaleStock(
  deps: Coordination,
  sale: Sale,
  records: OutboxRecord[] = [],
): Promise<void> {
  const atomic = deps.kv.atomic().check({ key: saleKey(sale.id), versionstamp: null })
    .set(saleKey(sale.id), sale).set(saleStockHeadKey(sale.id), sale.createdAt);
  for (const item of sale.items) {
    splitStock(item.stock, shardsOf(sale, item)).forEach((units, shard) => {
      atomic.set(saleStockKey(sale.id, item.productId, shard), new Deno.KvU64(BigInt(units)));
    });
  }
  if (!await commitDecision(deps, atomic, { records, operation: "sales.create" })) {
    throw new Error(`sale ${sale.id} exists already`);
  }
}

/**
 * Sales' definitions as this isolate first read them. Only what never changes is taken from them:
 * a sale's items and their shards. What an admin may change (its times and limit, its prices
 * before the start, its end, restocked units) is read with the stock: a hold reads the definition
 * with its counters and checks it in its commit, and a page reads it fresh (`readSaleNow`).
 */
const definitions = new WeakMap<Deno.Kv, Map<string, Sale>>();

/** A sale's definition as it is now (an admin may have ended or restocked it). */
export async function readSaleNow(
  kv: Deno.Kv,
  saleId: string,
  consistency: Deno.KvConsistencyLevel = "eventual",
): Promise<Sale | null> {
  return (await kv.get<Sale>(saleKey(saleId), { consistency })).value ??
    (consistency === "eventual" ? (await kv.get<Sale>(saleKey(saleId))).value : null);
}

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
  sale: Pick<Sale, "id"> & { items: Pick<SaleItem, "productId">[] },
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

/**
 * Over: its time is up, or an admin ended it early (whatever this isolate's clock says: another
 * isolate's may be a little behind the one that ended it).
 */
function hasEnded(sale: Sale, now: number): boolean {
  return now >= sale.endsAt || sale.endedEarlyAt !== undefined;
}

/** 410 `sale-ended`. */
function saleEnded(sale: Sale) {
  return new Gone(`The sale ended at ${new Date(sale.endsAt).toISOString()}.`, "sale-ended", {
    endsAt: new Date(sale.endsAt).toISOString(),
  });
}

export function saleStatus(sale: Sale, left: Map<string, number>, now: number): SaleStatus {
  if (sale.cancelledAt !== undefined) return "cancelled";
  if (hasEnded(sale, now)) return "ended";
  if (now < sale.startsAt) return "scheduled";
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
  // The definition is read with the counters, and checked in the commit: an admin's end of the
  // sale is seen by every hold that commits after it.
  const keys = [saleKey(sale.id), ...stockKeys(sale, item), saleBuyerKey(sale.id, request.userId)];
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
    // wait for their shard's next turn in this isolate, which commits every hold waiting for it
    // at once (see nextTurn); between isolates, the checks decide.
    const read = await deps.kv.getMany(keys);
    const first = assess(request, item, read, deps.now());
    if ("earlier" in first) return await replayed(first.earlier);
    const outcome = await nextTurn(deps, effects, {
      request,
      item,
      read,
      shard: first.taken[0][0],
    });
    if (outcome && "earlier" in outcome) return await replayed(outcome.earlier);
    if (outcome) return { reservation: outcome.reservation, replayed: false };
    if (deps.now() > deadline) throw busy("This item's stock");
    await backoff(attempt, 20);
  }
}

/** What one read of the counters allows: an earlier hold to return, or the units to take. */
type Assessment =
  | { earlier: IdempotentRequest }
  | {
    taken: [number, number][];
    /** The item as the definition read with the counters has it (its price). */
    item: SaleItem;
    buyer: Deno.KvEntryMaybe<Deno.KvU64>;
    shards: Deno.KvEntryMaybe<Deno.KvU64>[];
    idempotency: Deno.KvEntryMaybe<IdempotentRequest> | null;
  };

/**
 * Reads `entries` (the sale's definition, the item's shards, the buyer's count, then the
 * idempotency entry if any) and
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
  const { quantity } = request;
  const rest = [...entries];
  const sale = (rest.shift() as Deno.KvEntryMaybe<Sale>).value ?? request.sale;
  const idempotency = request.idempotencyKey
    ? rest.pop() as Deno.KvEntryMaybe<IdempotentRequest>
    : null;
  if (idempotency?.value) return { earlier: idempotency.value };
  const buyer = rest.pop() as Deno.KvEntryMaybe<Deno.KvU64>;
  const shards = rest as Deno.KvEntryMaybe<Deno.KvU64>[];
  checkWindow(sale, now);
  // The item as the definition read now has it: its price may have been edited before the start.
  const current = sale.items.find((candidate) => candidate.productId === item.productId) ?? item;
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
  return { taken, buyer, shards, idempotency, item: current };
}

/** A hold waiting for its shard's turn: what it asks, and what its buyer's first read saw. */
interface Waiting {
  request: ReserveRequest;
  item: SaleItem;
  read: Deno.KvEntryMaybe<unknown>[];
  /** The shard it takes from first. */
  shard: number;
}

/** A turn's answer to one hold: taken, an earlier one to replay, or null (read and try again). */
type Outcome = { reservation: Reservation } | { earlier: IdempotentRequest } | null;

/**
 * Holds one turn commits at most. Each adds 3 checks (its buyer's count, its idempotency entry,
 * its new reservation) and about 7 mutations to the commit, so 20 stay well within KV's 100
 * checks and 1,000 mutations (and its 800 KiB) with the item's shards and head.
 */
export const HOLDS_PER_TURN = 20;

interface Turns {
  waiting: { hold: Waiting; settle: (outcome: Outcome) => void; fail: (error: unknown) => void }[];
}

/** Per app (see ofApp): each shard's holds waiting for a turn, while its turns run. */
const shardTurns = new WeakMap<object, Map<string, Turns>>();

/**
 * Waits for the next turn of `hold`'s shard in this isolate. Turns of one shard run one after the
 * other; each takes the holds that arrived while the one before it committed (up to
 * HOLDS_PER_TURN, one per buyer) and commits all of them at once, checked against every counter
 * they read. So a burst of buyers costs a few commits instead of one each: at the edge, where a
 * commit is a round trip to KV's primary region, a shard sells about HOLDS_PER_TURN units per
 * round trip and isolate instead of one.
 */
function nextTurn(deps: Coordination, effects: ReserveEffects, hold: Waiting): Promise<Outcome> {
  const { sale } = hold.request;
  const key = `${sale.id}/${hold.item.productId}/${hold.shard}`;
  const turns = ofApp(shardTurns, deps.outbox, () => new Map<string, Turns>());
  const { promise, resolve, reject } = Promise.withResolvers<Outcome>();
  let shard = turns.get(key);
  if (!shard) {
    turns.set(key, shard = { waiting: [] });
    void runTurns(deps, effects, key, shard, turns);
  }
  shard.waiting.push({ hold, settle: resolve, fail: reject });
  return promise;
}

async function runTurns(
  deps: Coordination,
  effects: ReserveEffects,
  key: string,
  shard: Turns,
  turns: Map<string, Turns>,
) {
  try {
    // The first turn starts once the current task is over, so holds read together go together.
    await Promise.resolve();
    while (shard.waiting.length > 0) {
      const buyers = new Set<string>();
      const group: Turns["waiting"] = [];
      const later: Turns["waiting"] = [];
      for (const waiter of shard.waiting) {
        // A buyer's second hold goes to the next turn: it must see the count the first one left.
        const buyer = waiter.hold.request.userId;
        if (group.length < HOLDS_PER_TURN && !buyers.has(buyer)) {
          buyers.add(buyer);
          group.push(waiter);
        } else later.push(waiter);
      }
      shard.waiting = later;
      try {
        const outcomes = await commitHolds(deps, group.map((waiter) => waiter.hold), effects);
        group.forEach((waiter, i) => {
          const outcome = outcomes[i];
          if (outcome instanceof Error) waiter.fail(outcome);
          else waiter.settle(outcome);
        });
      } catch (error) {
        for (const waiter of group) waiter.fail(error);
      }
    }
  } finally {
    turns.delete(key);
  }
}

/**
 * One turn's commit: decides each hold in order against the counters as the ones before it left
 * them (the newest this isolate knows: the holds' reads, or what its own later commits left), and
 * commits every hold it takes at once. A hold refused (sold out, over its limit) gets its error;
 * when the commit loses to a change made meanwhile, every hold in it is answered null.
 */
async function commitHolds(
  deps: Coordination,
  holds: Waiting[],
  effects: ReserveEffects,
): Promise<(Outcome | Error)[]> {
  const now = deps.now();
  // Every key the turn read, as the newest read or own commit left it; shards as decided so far.
  const known = new Map<string, Deno.KvEntryMaybe<unknown>>();
  for (const entry of holds.flatMap((hold) => latestKnown(deps, hold.read, now))) {
    const id = JSON.stringify(entry.key);
    const had = known.get(id);
    if (!had || (entry.versionstamp ?? "") > (had.versionstamp ?? "")) known.set(id, entry);
  }
  const base = new Map(known);
  const atomic = deps.kv.atomic();
  const records: OutboxRecord[] = [];
  const outcomes: (Outcome | Error)[] = [];
  const changed = new Set<string>();
  /** Entries the turn writes besides its counters: each hold's idempotency entry. */
  const written: { key: Deno.KvKey; value: unknown }[] = [];
  for (const hold of holds) {
    const entries = hold.read.map((entry) => known.get(JSON.stringify(entry.key))!);
    let decided: Assessment;
    try {
      decided = assess(hold.request, hold.item, entries, now, hold.shard);
    } catch (error) {
      outcomes.push(error instanceof Error ? error : new Error(String(error)));
      continue;
    }
    if ("earlier" in decided) {
      outcomes.push(decided);
      continue;
    }
    const { reservation, idempotency } = newHold(hold.request, decided.item, decided.taken, now);
    const { buyer, shards } = decided;
    const quantity = BigInt(hold.request.quantity);
    taking(known, changed, buyer, (buyer.value?.value ?? 0n) + quantity);
    for (const [shard, units] of decided.taken) {
      taking(known, changed, shards[shard], shards[shard].value!.value - BigInt(units));
    }
    if (idempotency && decided.idempotency) {
      atomic.check(decided.idempotency)
        .set(decided.idempotency.key, idempotency, { expireIn: IDEMPOTENCY_TTL_MS });
      written.push({ key: decided.idempotency.key, value: idempotency });
    }
    atomic.check({ key: reservationKey(reservation.id), versionstamp: null })
      .set(reservationKey(reservation.id), reservation)
      .set(reservationDueKey(reservation.expiresAt, reservation.id), reservation.id);
    records.push(...effects(reservation));
    outcomes.push({ reservation });
  }
  if (changed.size === 0) return outcomes;
  // Each counter is checked as the turn first knew it and set to what its holds left; the sale's
  // definition as its holds read it (an admin's change since sends them back to read again).
  for (const id of changed) {
    const entry = known.get(id) as Deno.KvEntry<Deno.KvU64>;
    atomic.check(base.get(id)!).set(entry.key, entry.value);
  }
  atomic.check(base.get(JSON.stringify(saleKey(holds[0].request.sale.id)))!);
  atomic.set(saleStockHeadKey(holds[0].request.sale.id), now);
  const committed = await commitDecision(deps, atomic, { records, operation: "sales.hold" });
  if (!committed) return outcomes.map((outcome) => outcome instanceof Error ? outcome : null);
  // What the turn left, for the next turns' holds whose reads came before it (a buyer's second
  // hold, a retry with the same Idempotency-Key): they decide on it instead of losing the commit.
  for (const id of changed) remember(deps, { ...known.get(id)!, ...committed });
  for (const entry of written) {
    remember(deps, { ...entry, ...committed }, now + IDEMPOTENCY_TTL_MS);
  }
  return outcomes;
}

/** Sets counter `entry` to `value` in the turn's known state. */
function taking(
  known: Map<string, Deno.KvEntryMaybe<unknown>>,
  changed: Set<string>,
  entry: Deno.KvEntryMaybe<unknown>,
  value: bigint,
) {
  const id = JSON.stringify(entry.key);
  known.set(id, { ...entry, value: new Deno.KvU64(value) } as Deno.KvEntryMaybe<unknown>);
  changed.add(id);
}

/** A new hold of `taken` units, and what its `Idempotency-Key` will remember. */
function newHold(request: ReserveRequest, item: SaleItem, taken: [number, number][], now: number) {
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
  const idempotency: IdempotentRequest | null = request.idempotencyKey
    ? { reservationId: reservation.id, productId: item.productId, quantity }
    : null;
  return { reservation, idempotency };
}

/** Entries of holds an isolate remembers at most; the oldest are forgotten first. */
const REMEMBERED_ENTRIES = 10_000;

/** An entry a hold wrote, with its commit's versionstamp, until KV lets it expire (ms). */
type Left = Deno.KvEntry<unknown> & { until: number };

/**
 * Per app (see ofApp): each counter (a stock shard, a buyer's count) and idempotency entry as this
 * isolate's last hold on it left it.
 */
const heldEntries = new WeakMap<object, Remembered<string, Left>>();

const heldEntriesOf = (deps: Coordination) =>
  ofApp(heldEntries, deps.outbox, () => new Remembered<string, Left>(REMEMBERED_ENTRIES));

function remember(deps: Coordination, entry: Deno.KvEntry<unknown>, until = Infinity) {
  heldEntriesOf(deps).set(JSON.stringify(entry.key), { ...entry, until });
}

/**
 * `read` with each entry replaced by what a later hold of this isolate left there, where that is
 * newer (versionstamps order commits) and has not expired.
 */
function latestKnown(deps: Coordination, read: Deno.KvEntryMaybe<unknown>[], now: number) {
  const held = heldEntriesOf(deps);
  return read.map((entry): Deno.KvEntryMaybe<unknown> => {
    const left = held.get(JSON.stringify(entry.key));
    if (!left || now >= left.until) return entry;
    if (entry.versionstamp !== null && left.versionstamp <= entry.versionstamp) return entry;
    return { key: left.key, value: left.value, versionstamp: left.versionstamp };
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
  if (hasEnded(sale, now)) throw saleEnded(sale);
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

/** What a change of a sale's definition causes (its history row), written into its commit. */
export type SaleEffects = (sale: Sale) => OutboxRecord[];

const CHANGE_ATTEMPTS = 20;

/**
 * An admin's change of a live or scheduled sale: `change` gets the definition as it is and
 * returns the new one (or throws the refusal), and `atomic` gets what else to write. One commit,
 * checked against the definition, sets both and the stock head (its watchers see it at once).
 */
async function changeSale(
  deps: Coordination,
  saleId: string,
  operation: string,
  effects: SaleEffects,
  change: (sale: Sale, now: number, atomic: Deno.AtomicOperation) => Sale,
): Promise<Sale> {
  for (let attempt = 0; attempt < CHANGE_ATTEMPTS; attempt++) {
    const entry = await deps.kv.get<Sale>(saleKey(saleId));
    if (!entry.value) throw new NotFound("No sale has this id.");
    const now = deps.now();
    if (hasEnded(entry.value, now)) throw saleEnded(entry.value);
    const atomic = deps.kv.atomic().check(entry);
    const changed = {
      ...change(entry.value, now, atomic),
      version: (entry.value.version ?? 1) + 1,
    };
    atomic.set(saleKey(saleId), changed).set(saleStockHeadKey(saleId), now);
    if (await commitDecision(deps, atomic, { records: effects(changed), operation })) {
      return changed;
    }
    await backoff(attempt);
  }
  throw busy("This sale");
}

/**
 * Adds `units` of an item to a sale that has not ended, spread over its shards with `sum`: a
 * hold that read a shard before is sent back to read it again (its check fails), so whatever the
 * race, the units sold are at most those stocked plus those added.
 */
export async function restockItem(
  deps: Coordination,
  saleId: string,
  productId: string,
  units: number,
  effects: SaleEffects,
): Promise<Sale> {
  return await changeSale(deps, saleId, "sales.restock", effects, (sale, _now, atomic) => {
    const item = sale.items.find((candidate) => candidate.productId === productId);
    if (!item) {
      throw new Invalid("This sale does not offer that product.", [
        { path: "productId", message: "not one of this sale's items" },
      ]);
    }
    splitStock(units, shardsOf(sale, item)).forEach((added, shard) => {
      if (added > 0) atomic.sum(saleStockKey(sale.id, productId, shard), BigInt(added));
    });
    return {
      ...sale,
      items: sale.items.map((other) =>
        other === item ? { ...item, restocked: (item.restocked ?? 0) + units } : other
      ),
    };
  });
}

/**
 * Ends a sale now, before its time, or (`cancel`) calls it off: no hold commits after this one
 * (every hold checks the definition it read). Its open holds are released by what `effects` add
 * to the commit (see `heldReservations`).
 */
export async function endSaleEarly(
  deps: Coordination,
  saleId: string,
  effects: SaleEffects,
  cancel = false,
): Promise<Sale> {
  return await changeSale(
    deps,
    saleId,
    cancel ? "sales.cancel" : "sales.end",
    effects,
    (sale, now) => ({
      ...sale,
      startsAt: Math.min(sale.startsAt, now),
      endsAt: now,
      endedEarlyAt: now,
      ...(cancel ? { cancelledAt: now } : {}),
    }),
  );
}

/** What an admin may change of a sale before it starts. */
export interface SaleEdit {
  startsAt?: number;
  endsAt?: number;
  perUserLimit?: number;
  /** New sale prices by product. */
  prices?: { productId: string; priceCents: number }[];
}

/**
 * Edits a sale that has not started (409 `sale-started` once it has): its times, its per-buyer
 * limit, its prices. No hold exists before the start, and a hold that starts with it reads the
 * definition (and its prices) in its commit, so none is taken at an old price.
 */
export async function editSale(
  deps: Coordination,
  saleId: string,
  edit: SaleEdit,
  effects: SaleEffects,
): Promise<Sale> {
  return await changeSale(deps, saleId, "sales.edit", effects, (sale, now) => {
    if (now >= sale.startsAt) {
      throw new Conflict(
        "This sale has started: only its stock can change now (restock), or it can end.",
        "sale-started",
      );
    }
    const startsAt = edit.startsAt ?? sale.startsAt;
    const endsAt = edit.endsAt ?? sale.endsAt;
    if (startsAt < now) {
      throw new Invalid("A sale cannot be moved into the past.", [
        { path: "startsAt", message: "must not be in the past" },
      ]);
    }
    if (endsAt <= startsAt) {
      throw new Invalid("The sale would be over before it starts.", [
        { path: "endsAt", message: "must be after startsAt" },
      ]);
    }
    const prices = new Map(edit.prices?.map((price) => [price.productId, price.priceCents]));
    const unknown = edit.prices?.findIndex((price) =>
      !sale.items.some((item) =>
        item.productId === price.productId
      )
    ) ?? -1;
    if (unknown >= 0) {
      throw new Invalid("This sale does not offer that product.", [
        { path: `prices.${unknown}.productId`, message: "not one of this sale's items" },
      ]);
    }
    return {
      ...sale,
      startsAt,
      endsAt,
      perUserLimit: edit.perUserLimit ?? sale.perUserLimit,
      items: sale.items.map((item) => ({
        ...item,
        priceCents: prices.get(item.productId) ?? item.priceCents,
      })),
    };
  });
}

/** What a sale's live feed shows of its latest purchase: never who bought. */
export interface SalePurchase {
  /** Purchases recorded so far: a viewer's next line counts those it did not show. */
  seq: number;
  item: string;
  /** The buyer's city as their profile gives it, or null ("a buyer"). */
  place: string | null;
  at: number;
}

/** A purchase is kept for the feed this long (a viewer joining later is not shown old ones). */
const PURCHASE_TTL_MS = 60 * 60 * 1000;

/** Records a paid purchase for the sale's live feed (its viewers' rooms watch the key). */
export async function recordPurchase(
  kv: Deno.Kv,
  saleId: string,
  purchase: Omit<SalePurchase, "seq">,
) {
  for (let attempt = 0; attempt < CHANGE_ATTEMPTS; attempt++) {
    const entry = await kv.get<SalePurchase>(salePurchaseKey(saleId));
    const next = { ...purchase, seq: (entry.value?.seq ?? 0) + 1 };
    const committed = await kv.atomic().check(entry)
      .set(entry.key, next, { expireIn: PURCHASE_TTL_MS }).commit();
    if (committed.ok) return;
    await backoff(attempt);
  }
  throw busy("This sale's feed");
}

export async function readPurchase(kv: Deno.Kv, saleId: string): Promise<SalePurchase | null> {
  return (await kv.get<SalePurchase>(salePurchaseKey(saleId), { consistency: "eventual" })).value;
}
