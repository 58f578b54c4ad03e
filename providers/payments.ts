// Payments: the sandbox provider (no account; its own pay page and signed webhooks) and Paystack
// over plain fetch. Webhooks are verified on the raw body with a constant-time HMAC comparison
// (`crypto.subtle.verify`), and the sandbox's signatures carry a timestamp that must be recent.
import { z } from "zod";
import type { Config } from "../config.ts";
import { BadGateway, Invalid, PermanentFailure, Unauthorized } from "../errors.ts";
import { unstorableField } from "../input.ts";
import { type PaymentEvent } from "../db/records.ts";
import { inSpan } from "../telemetry.ts";

export interface PaymentRequest {
  orderId: string;
  amountCents: number;
  currency: string;
  email: string;
  description: string;
}

export interface PaymentProvider {
  readonly name: "sandbox" | "paystack";
  /** Starts paying for an order; returns the page where the buyer pays. */
  start(payment: PaymentRequest): Promise<string>;
  /**
   * A webhook's event, verified on its raw body (401 when the signature is wrong or stale); null
   * for event types that do not concern orders.
   */
  verify(headers: Headers, rawBody: string, nowMs: number): Promise<PaymentEvent | null>;
  /** Returns a charge's money (retried by its job until it goes through). */
  refund(event: Pick<PaymentEvent, "orderId" | "reference" | "amountCents">): Promise<void>;
  /**
   * Asks the provider how an order's payment went (reconciliation: a webhook may be lost): the
   * event its webhook would have carried, with the same id, or null while it is undecided.
   */
  status(orderId: string): Promise<PaymentEvent | null>;
}

/** Sandbox signatures older (or further in the future) than this are refused. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;
export const SANDBOX_SIGNATURE_HEADER = "convene-signature";
export const PAYSTACK_API_URL = "https://api.paystack.co";

const encoder = new TextEncoder();

function hmacKey(secret: string, hash: "SHA-256" | "SHA-512"): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash }, false, [
    "sign",
    "verify",
  ]);
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

function fromHex(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^(?:[0-9a-f]{2})+$/i.test(text)) return null;
  return Uint8Array.from(text.match(/../g)!, (pair) => parseInt(pair, 16));
}

/** Constant-time: the HMAC is recomputed and compared by WebCrypto, never as strings. */
async function signatureMatches(key: CryptoKey, signatureHex: string, data: string) {
  const signature = fromHex(signatureHex);
  return signature !== null &&
    await crypto.subtle.verify("HMAC", key, signature, encoder.encode(data));
}

const sandboxEvent = z.object({
  id: z.string().min(1).max(200),
  type: z.enum(["payment.succeeded", "payment.failed"]),
  data: z.object({
    orderId: z.string().min(1).max(100),
    amountCents: z.number().int().min(0),
    currency: z.string().min(3).max(3),
  }),
});

export type SandboxEvent = z.infer<typeof sandboxEvent>;

/** `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + rawBody)>`, as the sandbox sends it. */
export async function signSandbox(secret: string, rawBody: string, unixSeconds: number) {
  const key = await hmacKey(secret, "SHA-256");
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${unixSeconds}.${rawBody}`));
  return `t=${unixSeconds},v1=${hex(mac)}`;
}

export function sandboxProvider(options: { secret: string; publicUrl: string }): PaymentProvider {
  const key = hmacKey(options.secret, "SHA-256");
  return {
    name: "sandbox",
    start(payment) {
      return Promise.resolve(`${options.publicUrl}/sandbox/pay/${payment.orderId}`);
    },
    async verify(headers, rawBody, nowMs) {
      const header = headers.get(SANDBOX_SIGNATURE_HEADER) ?? "";
      const parts = header.split(",").map((part) => part.trim().split("="));
      const t = parts.find(([name]) => name === "t")?.[1] ?? "";
      const signatures = parts.filter(([name]) => name === "v1").map(([, value]) => value ?? "");
      if (!/^\d{1,12}$/.test(t) || signatures.length === 0) {
        throw new Unauthorized(`Missing or malformed Convene-Signature header.`);
      }
      if (Math.abs(nowMs / 1000 - Number(t)) > SIGNATURE_TOLERANCE_SECONDS) {
        throw new Unauthorized(
          `The signature's timestamp is more than ${SIGNATURE_TOLERANCE_SECONDS} s from now.`,
        );
      }
      let valid = false;
      for (const signature of signatures) {
        valid = await signatureMatches(await key, signature, `${t}.${rawBody}`) || valid;
      }
      if (!valid) throw new Unauthorized("The webhook signature does not match its body.");
      const event = parseEvent(sandboxEvent, rawBody);
      return {
        provider: "sandbox",
        id: event.id,
        type: event.type === "payment.succeeded" ? "succeeded" : "failed",
        orderId: event.data.orderId,
        amountCents: event.data.amountCents,
        currency: event.data.currency,
        reference: event.data.orderId,
      };
    },
    // The sandbox holds no money: the refund is the `refunded` payment row that records it.
    refund: () => Promise.resolve(),
    // Nor any state: its page hands the webhook to the handler in-process, so none is lost.
    status: () => Promise.resolve(null),
  };
}

const paystackEvent = z.object({
  event: z.string(),
  data: z.object({
    id: z.union([z.number(), z.string()]),
    reference: z.string().min(1).max(200),
    amount: z.number().int(),
    currency: z.string(),
    status: z.string().optional(),
  }).loose(),
}).loose();

/** Paystack: initialize a transaction (amounts in the currency's subunit, like cents). */
export function paystackProvider(
  options: { secretKey: string; publicUrl: string; baseUrl?: string },
): PaymentProvider {
  const base = options.baseUrl ?? PAYSTACK_API_URL;
  const key = hmacKey(options.secretKey, "SHA-512");
  /** POSTs `body` (or GETs, without one) and reads Paystack's `{ status, message, data }`. */
  const call = async (path: string, body?: unknown) => {
    const response = await fetch(`${base}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: {
        authorization: `Bearer ${options.secretKey}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    let json: { status?: boolean; message?: string; data?: Record<string, unknown> } = {};
    try {
      json = JSON.parse(text);
    } catch {
      // reported below with the status
    }
    return { status: response.status, ok: response.ok && json.status === true, json, text };
  };
  return {
    name: "paystack",
    async start(payment) {
      const answer = await call("/transaction/initialize", {
        email: payment.email,
        amount: payment.amountCents,
        currency: payment.currency,
        reference: payment.orderId,
        callback_url: `${options.publicUrl}/api/orders`,
        metadata: { orderId: payment.orderId, description: payment.description },
      });
      const url = answer.json.data?.authorization_url;
      if (!answer.ok || typeof url !== "string") {
        throw new BadGateway(
          `Paystack refused to start the payment (${answer.status}: ${
            answer.json.message ?? answer.text.slice(0, 200)
          }).`,
          "payment-provider-error",
        );
      }
      return url;
    },
    async verify(headers, rawBody) {
      const signature = headers.get("x-paystack-signature") ?? "";
      if (!await signatureMatches(await key, signature, rawBody)) {
        throw new Unauthorized("The x-paystack-signature does not match the body.");
      }
      const event = parseEvent(paystackEvent, rawBody);
      // Only a successful charge concerns an order; a failed attempt can be retried on the page.
      if (event.event !== "charge.success") return null;
      return {
        provider: "paystack",
        id: `charge.success:${event.data.id}`,
        type: "succeeded",
        orderId: event.data.reference,
        amountCents: event.data.amount,
        currency: event.data.currency,
        reference: event.data.reference,
      };
    },
    async refund(charge) {
      const answer = await call("/refund", { transaction: charge.reference });
      if (answer.ok) return;
      const failure = `Paystack refund of ${charge.orderId} answered ${answer.status}: ${
        answer.json.message ?? answer.text.slice(0, 200)
      }`;
      // Already refunded (or never charged): nothing left to return.
      if (/already|fully reversed/i.test(answer.json.message ?? "")) return;
      throw answer.status === 429 || answer.status >= 500
        ? new Error(failure)
        : new PermanentFailure(failure);
    },
    async status(orderId) {
      // The order id is the transaction's reference (see `start`).
      const answer = await call(`/transaction/verify/${encodeURIComponent(orderId)}`);
      if (answer.status === 404) return null; // never initialized, or not by this account
      const data = answer.json.data;
      if (!answer.ok || !data) {
        throw new Error(`Paystack verify of ${orderId} answered ${answer.status}`);
      }
      const charge = paystackEvent.shape.data.safeParse(data);
      if (!charge.success) throw new Error(`Paystack verify of ${orderId}: an unknown answer`);
      const outcome = charge.data.status;
      // `ongoing`, `pending`, `abandoned` (the buyer may still come back): not decided yet.
      if (outcome !== "success" && outcome !== "failed") return null;
      return {
        provider: "paystack",
        // A success has its webhook's id: whichever of the two comes second is a repeat.
        id: `charge.${outcome}:${charge.data.id}`,
        type: outcome === "success" ? "succeeded" : "failed",
        orderId: charge.data.reference,
        amountCents: charge.data.amount,
        currency: charge.data.currency,
        reference: charge.data.reference,
        payload: answer.json,
      };
    },
  };
}

function parseEvent<S extends z.ZodType>(schema: S, rawBody: string): z.infer<S> {
  let value: unknown;
  try {
    value = JSON.parse(rawBody);
  } catch {
    throw new Invalid("The webhook body is not JSON.");
  }
  const parsed = unstorableField(value) ? null : schema.safeParse(value);
  if (!parsed?.success) throw new Invalid("The webhook body is not an event this server knows.");
  return parsed.data;
}

export function openPayments(config: Config): PaymentProvider {
  if (config.PAYMENTS_PROVIDER === "paystack") {
    return traced(paystackProvider({
      secretKey: config.PAYSTACK_SECRET_KEY!,
      publicUrl: config.PUBLIC_URL,
      baseUrl: config.PAYSTACK_API_URL,
    }));
  }
  return traced(
    sandboxProvider({ secret: config.PAYMENTS_SANDBOX_SECRET, publicUrl: config.PUBLIC_URL }),
  );
}

/**
 * `provider` with each call a `payment.<call>` span: the provider and the order (never the buyer's
 * address or the provider's keys); a verified webhook's event type, or its refusal as the error.
 */
export function traced(provider: PaymentProvider): PaymentProvider {
  const attributes = (orderId?: string) => ({
    "convene.payment.provider": provider.name,
    ...(orderId ? { "convene.order.id": orderId } : {}),
  });
  return {
    name: provider.name,
    start: (payment) =>
      inSpan("payment.start", attributes(payment.orderId), () => provider.start(payment)),
    verify: (headers, rawBody, nowMs) =>
      inSpan("payment.verify", attributes(), async (span) => {
        const event = await provider.verify(headers, rawBody, nowMs);
        span.setAttribute("convene.payment.event", event?.type ?? "ignored");
        if (event) span.setAttribute("convene.order.id", event.orderId);
        return event;
      }),
    refund: (charge) =>
      inSpan("payment.refund", attributes(charge.orderId), () => provider.refund(charge)),
    status: (orderId) =>
      inSpan("payment.status", attributes(orderId), async (span) => {
        const event = await provider.status(orderId);
        span.setAttribute("convene.payment.event", event?.type ?? "undecided");
        return event;
      }),
  };
}
