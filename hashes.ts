// Hashes and MACs as hex text, and secrets compared in constant time: WebCrypto under each.

const encoder = new TextEncoder();

export function hex(bytes: ArrayBuffer | Uint8Array): string {
  return Array.from(new Uint8Array(bytes), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  return hex(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

export function hmacKey(secret: string, hash: "SHA-256" | "SHA-512"): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash }, false, [
    "sign",
    "verify",
  ]);
}

/** HMAC-SHA256 of `text` with `secret`, as hex. */
export async function hmacHex(secret: string, text: string): Promise<string> {
  return hex(
    await crypto.subtle.sign("HMAC", await hmacKey(secret, "SHA-256"), encoder.encode(text)),
  );
}

/** A one-off key: two texts are compared as MACs under it, so the time taken says nothing. */
const comparing = crypto.subtle.importKey(
  "raw",
  crypto.getRandomValues(new Uint8Array(32)),
  { name: "HMAC", hash: "SHA-256" },
  false,
  ["sign", "verify"],
);

/** Whether `given` equals `expected`, compared in constant time. */
export async function sameSecret(given: string, expected: string): Promise<boolean> {
  const key = await comparing;
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(expected));
  return await crypto.subtle.verify("HMAC", key, mac, encoder.encode(given));
}
