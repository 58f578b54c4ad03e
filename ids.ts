// Identifiers: UUIDv7 strings, so ids sort by creation time (useful for keyset cursors).
// Within one process they are strictly increasing, also inside one millisecond (RFC 9562,
// method 1: the 12 bits after the version hold a counter seeded at random each millisecond).

let lastMs = 0;
let counter = 0;

export function newId(now: number = Date.now()): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
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
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

/** When an id made by `newId` was made (ms since the epoch): its first 48 bits. */
export function idTime(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
