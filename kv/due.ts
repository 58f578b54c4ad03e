// Due indexes: entries keyed `[prefix, dueAt, id]`, so a sweep reads only what is overdue.

/** Up to `limit` entries of a due index whose time has come, most overdue first. */
export async function listDue<T>(
  kv: Deno.Kv,
  prefix: readonly Deno.KvKeyPart[],
  now: number,
  limit: number,
): Promise<Deno.KvEntry<T>[]> {
  const due: Deno.KvEntry<T>[] = [];
  const iterator = kv.list<T>({ start: [...prefix], end: [...prefix, now + 1] }, { limit });
  for await (const entry of iterator) due.push(entry);
  return due;
}
