// What an isolate remembers of KV (sessions it read, budgets it spent, the counters and heads its
// own commits left) is bounded: at most a fixed number of entries, the one set longest ago
// forgotten first, however many keys the isolate meets.

/** A Map of at most `limit` entries: `set` makes an entry the newest and forgets the oldest. */
export class Remembered<K, V> extends Map<K, V> {
  constructor(readonly limit: number) {
    super();
  }

  override set(key: K, value: V): this {
    super.delete(key);
    super.set(key, value);
    if (this.size > this.limit) super.delete(this.keys().next().value!);
    return this;
  }
}

/**
 * The one `T` in `table` of an app in this isolate, found by something the app has exactly one of
 * (its outbox): tests run two apps on one KV as two isolates, and each keeps its own.
 */
export function ofApp<T>(table: WeakMap<object, T>, owner: object, create: () => T): T {
  let value = table.get(owner);
  if (value === undefined) table.set(owner, value = create());
  return value;
}
