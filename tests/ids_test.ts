import assert from "node:assert/strict";
import { idTime, newId } from "../ids.ts";

Deno.test("[ids] newId() gives UUIDv7s that sort in creation order, also within one millisecond", () => {
  const ids = Array.from({ length: 10_000 }, () => newId(1_800_000_000_000));
  for (const id of ids) {
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  }
  assert.equal(new Set(ids).size, ids.length);
  // The random part (the last 48 bits) is fresh for every id, not a reused draw.
  assert.equal(new Set(ids.map((id) => id.slice(-12))).size, ids.length);
  assert.deepEqual([...ids].sort(), ids, "string order is creation order");
  const later = newId(1_900_000_000_000);
  assert.ok(later > ids.at(-1)!);
  assert.equal(idTime(later), 1_900_000_000_000, "idTime() reads the time back");
});
