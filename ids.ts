// Identifiers: UUIDv7 strings, so ids sort by creation time (useful for keyset cursors).
// Within one process they are strictly increasing, also inside one millisecond (RFC 9562,
// method 1: the 12 bits after the version hold a counter seeded at random each millisecond).

let lastMs = 0;
let counter = 0;

/** Each byte's two hex digits. */
const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, "0"));

/**
 * Random bytes for ids, drawn from the system's generator 4 KiB at a time: one call per 256 ids
 * instead of one per id (a chat message makes several ids; per id, the call cost ~3 % of its CPU).
 */
const pool = new Uint8Array(4096);
let drawn = pool.length;

function randomBytes(): Uint8Array {
  if (drawn === pool.length) {
    crypto.getRandomValues(pool);
    drawn = 0;
  }
  return pool.subarray(drawn, drawn += 16);
}

export function newId(now: number = Date.now()): string {
  const bytes = randomBytes();
  let ms = Math.floor(now);
  if (ms > lastMs) {
    lastMs = ms;
    counter = bytes[6] & 0x07; // a random start that leaves room to count up
  } else {
    ms = lastMs;
    counter++;
    if (counter > 0xfff) {
      // 4096 ids in one millisecond: borrow the next one, as the RFC allows.
      lastMs = ms = lastMs + 1;
      counter = 0;
    }
  }
  let time = ms;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = time % 256;
    time = Math.floor(time / 256);
  }
  bytes[6] = 0x70 | (counter >> 8);
  bytes[7] = counter & 0xff;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  let id = "";
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) id += "-";
    id += HEX[bytes[i]];
  }
  return id;
}

/** When an id made by `newId` was made (ms since the epoch): its first 48 bits. */
export function idTime(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
