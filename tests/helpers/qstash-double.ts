// A stand-in for QStash's publish API that signs deliveries exactly as QStash does
// (HS256 JWT in Upstash-Signature: iss, sub = destination, iat/nbf/exp, jti, body = SHA-256 of the raw body).
import { SignJWT } from "jose";

export interface Delivery {
  url: string;
  body: string;
  status: number;
  attempt: number;
}

export interface Published {
  messageId: string;
  destination: string;
  body: string;
  delay: string | null;
  dedupeId: string | null;
  retries: number;
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export async function signDelivery(signingKey: string, url: string, body: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)),
  );
  const now = Math.floor(Date.now() / 1000);
  return await new SignJWT({ body: base64url(digest) })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer("Upstash")
    .setSubject(url)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 300)
    .setJti(`jwt_${crypto.randomUUID()}`)
    .sign(new TextEncoder().encode(signingKey));
}

/**
 * Accepts `POST /v2/publish/<destination>` and delivers the body, signed, through `deliver`
 * (a real fetch, or the in-memory app's `request`). Delivers at once, recording the requested delay;
 * retries non-2xx answers up to `Upstash-Retries` times; drops repeated deduplication ids.
 */
export function startQstashDouble(options: {
  currentSigningKey: string;
  deliver: (url: string, init: RequestInit) => Response | Promise<Response>;
}) {
  const token = crypto.randomUUID();
  const published: Published[] = [];
  const deliveries: Delivery[] = [];
  const dedupe = new Map<string, string>();
  const inFlight = new Set<Promise<void>>();

  async function deliver(message: Published) {
    for (let attempt = 1; attempt <= message.retries + 1; attempt++) {
      const signature = await signDelivery(
        options.currentSigningKey,
        message.destination,
        message.body,
      );
      const response = await options.deliver(message.destination, {
        method: "POST",
        body: message.body,
        headers: {
          "content-type": "application/json",
          "upstash-signature": signature,
          "upstash-message-id": message.messageId,
          "upstash-retried": String(attempt - 1),
        },
      });
      await response.body?.cancel();
      deliveries.push({
        url: message.destination,
        body: message.body,
        status: response.status,
        attempt,
      });
      if (response.ok) return;
    }
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (req.headers.get("authorization") !== `Bearer ${token}`) {
      return Response.json({ error: "Unauthorized" }, { status: 401 });
    }
    const url = new URL(req.url);
    if (req.method !== "POST" || !url.pathname.startsWith("/v2/publish/")) {
      return Response.json({ error: "not found" }, { status: 404 });
    }
    const destination = decodeURIComponent(url.pathname.slice("/v2/publish/".length)) + url.search;
    const body = await req.text();
    const dedupeId = req.headers.get("upstash-deduplication-id");
    const seen = dedupeId ? dedupe.get(dedupeId) : undefined;
    if (seen) return Response.json({ messageId: seen, deduplicated: true });
    const message: Published = {
      messageId: `msg_${crypto.randomUUID()}`,
      destination,
      body,
      delay: req.headers.get("upstash-delay"),
      dedupeId,
      retries: Number(req.headers.get("upstash-retries") ?? 3),
    };
    if (dedupeId) dedupe.set(dedupeId, message.messageId);
    published.push(message);
    const running = deliver(message).finally(() => inFlight.delete(running));
    inFlight.add(running);
    return Response.json({ messageId: message.messageId });
  });

  return {
    baseUrl: `http://127.0.0.1:${server.addr.port}`,
    token,
    published,
    deliveries,
    /** Waits until every accepted message has been delivered (or has used up its retries). */
    async settled() {
      while (inFlight.size > 0) await Promise.all(inFlight);
    },
    async close() {
      await this.settled();
      await server.shutdown();
    },
  };
}
