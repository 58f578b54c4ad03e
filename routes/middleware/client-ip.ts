// The caller's address, from the connection Deno accepted (never from a spoofable header).
import type { Context } from "hono";

export function clientIp(c: Context): string {
  const addr = (c.env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr;
  return addr?.hostname ?? "unknown";
}
