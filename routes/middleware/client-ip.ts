// The caller's address, from the connection Deno accepted (never from a spoofable header).
import type { Context } from "hono";

export function clientIp(c: Context): string {
  const addr = (c.env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr;
  return addr?.hostname ?? "unknown";
}

/**
 * Roughly where the caller is, when a platform in front of the server says (a city and a country
 * code from its headers); null when none does. Shown only to the account's owner, beside the
 * sessions it describes, so a header a client could forge misleads no one but its sender.
 */
export function approximatePlace(c: Context): string | null {
  const header = (name: string) => c.req.header(name)?.trim().slice(0, 80) || null;
  const city = header("cf-ipcity") ?? header("x-vercel-ip-city");
  const country = header("cf-ipcountry") ?? header("x-vercel-ip-country");
  const place = [city && decoded(city), country].filter(Boolean).join(", ");
  return place || null;
}

/** A header's percent-encoded text (Cloudflare encodes a city's name), or as it is if it is not. */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
