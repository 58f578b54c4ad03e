// Payments: the sandbox provider (no account; its own pay page and signed webhooks), Paystack and
// PhonePe's standard checkout, over plain fetch. Webhooks are verified on the raw body, comparing
// in constant time (`crypto.subtle.verify`); the sandbox's signatures carry a timestamp that must
// be recent.
import { z } from "zod";
import type { Config } from "../config.ts";
import { BadGateway, Invalid, PermanentFailure, Unauthorized, Unprocessable } from "../errors.ts";
import { unstorableField } from "../input.ts";
import type { PaymentEvent } from "../db/records.ts";
import { inSpan } from "../telemetry.ts";
import { hex, hmacKey, sameSecret, sha256Hex } from "../hashes.ts";

export interface PaymentRequest {
  orderId: string;
  amountCents: number;
  currency: string;
  email: string;
  description: string;
}

export interface PaymentProvider {
  readonly name: "sandbox" | "paystack" | "phonepe";
  /** Starts paying for an order; returns the page where the buyer pays. */
  start(payment: PaymentRequest): Promise<string>;
  /**
   * A webhook's event, verified on its raw body (401 when the signature is wrong or stale): a
   * payment's outcome, or a refund's (`refund-completed`, `refund-failed`); null for event types
   * that concern neither.
   */
  verify(headers: Headers, rawBody: string, nowMs: number): Promise<PaymentEvent | null>;
  /**
   * Returns a charge's money (retried by its job until the provider has taken the refund; asking
   * twice refunds once).
   */
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
      const event = parseEvent(sandboxEvent, readEvent(rawBody));
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

/** Paystack's refund events name the charge by its reference (the order id, see `start`). */
const paystackRefund = z.object({
  event: z.string().startsWith("refund."),
  data: z.object({
    transaction_reference: z.string().min(1).max(200),
    amount: z.number().int(),
    currency: z.string(),
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
        callback_url: `${options.publicUrl}/#/orders`,
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
      const body = readEvent(rawBody);
      const refund = paystackRefund.safeParse(body);
      if (refund.success) {
        const { event, data } = refund.data;
        // `refund.pending` and `refund.processing` say nothing new: the refund was asked for.
        if (event !== "refund.processed" && event !== "refund.failed") return null;
        return {
          provider: "paystack",
          id: `${event}:${data.transaction_reference}`,
          type: event === "refund.processed" ? "refund-completed" : "refund-failed",
          orderId: data.transaction_reference,
          amountCents: data.amount,
          currency: data.currency,
          reference: data.transaction_reference,
        };
      }
      const event = parseEvent(paystackEvent, body);
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

/** PhonePe's hosts: its sandbox answers every call under one base; production splits off OAuth. */
export const PHONEPE_HOSTS = {
  sandbox: {
    api: "https://api-preprod.phonepe.com/apis/pg-sandbox",
    oauth: "https://api-preprod.phonepe.com/apis/pg-sandbox",
  },
  production: {
    api: "https://api.phonepe.com/apis/pg",
    oauth: "https://api.phonepe.com/apis/identity-manager",
  },
} as const;

/** PhonePe takes rupees only, in paise, at least ₹1. */
const PHONEPE_CURRENCY = "INR";
const PHONEPE_MIN_PAISE = 100;
/** A token is fetched again this long before PhonePe says it expires. */
const TOKEN_MARGIN_MS = 60_000;

const phonepeOrder = z.object({
  merchantOrderId: z.string().min(1).max(100),
  orderId: z.string().min(1).max(200),
  state: z.string(),
  amount: z.number().int(),
}).loose();

const phonepeRefund = z.object({
  merchantRefundId: z.string().max(200).optional(),
  originalMerchantOrderId: z.string().min(1).max(100),
  state: z.string(),
  amount: z.number().int(),
}).loose();

const phonepeEvent = z.object({
  event: z.string(),
  payload: z.unknown(),
}).loose();

export interface PhonePeOptions {
  clientId: string;
  clientSecret: string;
  clientVersion: string;
  /** What the merchant set for webhooks on PhonePe's dashboard: PhonePe sends SHA256(user:pass). */
  webhookUsername: string;
  webhookPassword: string;
  publicUrl: string;
  environment: keyof typeof PHONEPE_HOSTS;
  /** One base for every call, laid out like PhonePe's sandbox (tests point it at a stand-in). */
  baseUrl?: string;
}

/**
 * PhonePe's standard checkout (v2): an OAuth token (kept until shortly before it expires), a
 * payment whose `redirectUrl` is the pay page, webhooks authorized by SHA256(username:password),
 * the order status for reconciliation, and refunds named after the order so asking twice refunds
 * once. The order id is PhonePe's `merchantOrderId`.
 */
export function phonepeProvider(options: PhonePeOptions): PaymentProvider {
  const hosts = options.baseUrl
    ? { api: options.baseUrl, oauth: options.baseUrl }
    : PHONEPE_HOSTS[options.environment];
  const expected = sha256Hex(`${options.webhookUsername}:${options.webhookPassword}`);
  let token: Promise<{ value: string; expiresAtMs: number }> | null = null;

  const fetchToken = async () => {
    const response = await fetch(`${hosts.oauth}/v1/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        client_id: options.clientId,
        client_version: options.clientVersion,
        client_secret: options.clientSecret,
        grant_type: "client_credentials",
      }),
      signal: AbortSignal.timeout(10_000),
    });
    const json = await response.json().catch(() => ({})) as Record<string, unknown>;
    if (!response.ok || typeof json.access_token !== "string") {
      throw new BadGateway(
        `PhonePe refused its OAuth token (${response.status}).`,
        "payment-provider-error",
      );
    }
    const expiresAt = typeof json.expires_at === "number" ? json.expires_at * 1000 : 0;
    return { value: json.access_token, expiresAtMs: expiresAt };
  };
  /** The current token, fetched once for every concurrent caller; a failed fetch is not kept. */
  const bearer = async (fresh = false) => {
    const now = Date.now();
    if (fresh) token = null;
    const held = token && await token.catch(() => null);
    if (!held || held.expiresAtMs - TOKEN_MARGIN_MS <= now) {
      const fetching = fetchToken();
      token = fetching;
      fetching.catch(() => {
        if (token === fetching) token = null;
      });
      return (await fetching).value;
    }
    return held.value;
  };
  /** Calls PhonePe with the token (fetched again once when PhonePe says it is no longer valid). */
  const call = async (path: string, body?: unknown) => {
    for (let attempt = 0;; attempt++) {
      const response = await fetch(`${hosts.api}${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: {
          authorization: `O-Bearer ${await bearer(attempt > 0)}`,
          "content-type": "application/json",
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await response.text();
      if (response.status === 401 && attempt === 0) continue;
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(text);
      } catch {
        // reported by the caller with the status
      }
      return { status: response.status, ok: response.ok, json, text };
    }
  };
  const failure = (what: string, answer: Awaited<ReturnType<typeof call>>) =>
    `PhonePe ${what} answered ${answer.status}: ${
      String(answer.json.message ?? answer.json.code ?? answer.text.slice(0, 200))
    }`;
  /** A payment's outcome as its webhook (or the status API) states it; null while undecided. */
  const orderEvent = (
    order: z.infer<typeof phonepeOrder>,
    payload: unknown,
  ): PaymentEvent | null => {
    const type = order.state === "COMPLETED"
      ? "succeeded"
      : order.state === "FAILED"
      ? "failed"
      : null;
    if (!type) return null;
    return {
      provider: "phonepe",
      // PhonePe's own order id: the webhook and the status API name the same one.
      id: `order.${order.state.toLowerCase()}:${order.orderId}`,
      type,
      orderId: order.merchantOrderId,
      amountCents: order.amount,
      currency: PHONEPE_CURRENCY,
      reference: order.merchantOrderId,
      payload,
    };
  };
  return {
    name: "phonepe",
    async start(payment) {
      if (payment.currency.toUpperCase() !== PHONEPE_CURRENCY) {
        throw new Unprocessable(
          `PhonePe takes payments in ${PHONEPE_CURRENCY} only; this order is in ${payment.currency}.`,
          "currency-not-supported",
        );
      }
      if (payment.amountCents < PHONEPE_MIN_PAISE) {
        throw new Unprocessable(
          `PhonePe takes payments of at least ${PHONEPE_MIN_PAISE} paise.`,
          "amount-too-small",
        );
      }
      const answer = await call("/checkout/v2/pay", {
        merchantOrderId: payment.orderId,
        amount: payment.amountCents,
        paymentFlow: {
          type: "PG_CHECKOUT",
          message: payment.description.slice(0, 100),
          merchantUrls: { redirectUrl: `${options.publicUrl}/#/orders` },
        },
        metaInfo: { udf1: payment.description.slice(0, 256) },
      });
      const url = answer.json.redirectUrl;
      if (!answer.ok || typeof url !== "string") {
        throw new BadGateway(
          `${failure("refused to start the payment", answer)}.`,
          "payment-provider-error",
        );
      }
      return url;
    },
    async verify(headers, rawBody) {
      const given = (headers.get("authorization") ?? "").trim().toLowerCase();
      if (!await sameSecret(given, await expected)) {
        throw new Unauthorized("The Authorization header is not SHA256(username:password).");
      }
      const event = parseEvent(phonepeEvent, readEvent(rawBody));
      if (event.event === "checkout.order.completed" || event.event === "checkout.order.failed") {
        const order = parseEvent(phonepeOrder, event.payload);
        // PhonePe: the payload's state, not the event's name, says how the payment went.
        return orderEvent(order, undefined);
      }
      if (event.event === "pg.refund.completed" || event.event === "pg.refund.failed") {
        const refund = parseEvent(phonepeRefund, event.payload);
        if (refund.state !== "COMPLETED" && refund.state !== "FAILED") return null;
        return {
          provider: "phonepe",
          id: `refund.${refund.state.toLowerCase()}:${
            refund.merchantRefundId ?? refund.originalMerchantOrderId
          }`,
          type: refund.state === "COMPLETED" ? "refund-completed" : "refund-failed",
          orderId: refund.originalMerchantOrderId,
          amountCents: refund.amount,
          currency: PHONEPE_CURRENCY,
          reference: refund.originalMerchantOrderId,
        };
      }
      return null; // pg.refund.accepted, transaction attempts: nothing decided
    },
    async refund(charge) {
      // The refund is named after the order: a retry finds the one already asked for.
      const refundId = `refund-${charge.orderId}`;
      const known = await call(`/payments/v2/refund/${encodeURIComponent(refundId)}/status`);
      if (known.ok) {
        if (known.json.state !== "FAILED") return; // pending, confirmed or completed
        throw new PermanentFailure(`${failure("refund status", known)}: FAILED; refund by hand`);
      }
      const answer = await call("/payments/v2/refund", {
        merchantRefundId: refundId,
        originalMerchantOrderId: charge.reference,
        amount: charge.amountCents,
      });
      if (answer.ok) return;
      const message = failure(`refund of ${charge.orderId}`, answer);
      throw answer.status === 429 || answer.status >= 500
        ? new Error(message)
        : new PermanentFailure(message);
    },
    async status(orderId) {
      const answer = await call(`/checkout/v2/order/${encodeURIComponent(orderId)}/status`);
      if (answer.status === 404 || answer.status === 400) return null; // never created here
      if (!answer.ok) throw new Error(failure(`status of ${orderId}`, answer));
      const order = phonepeOrder.safeParse({ merchantOrderId: orderId, ...answer.json });
      if (!order.success) throw new Error(`PhonePe status of ${orderId}: an unknown answer`);
      return orderEvent(order.data, answer.json);
    },
  };
}

/** A webhook's body as JSON (400 when it is not, or holds what storage cannot). */
function readEvent(rawBody: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(rawBody);
  } catch {
    throw new Invalid("The webhook body is not JSON.");
  }
  if (unstorableField(value)) {
    throw new Invalid("The webhook body is not an event this server knows.");
  }
  return value;
}

function parseEvent<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new Invalid("The webhook body is not an event this server knows.");
  return parsed.data;
}

export function openPayments(config: Config): PaymentProvider {
  if (config.PAYMENTS_PROVIDER === "phonepe") {
    return traced(phonepeProvider({
      clientId: config.PHONEPE_CLIENT_ID!,
      clientSecret: config.PHONEPE_CLIENT_SECRET!,
      clientVersion: config.PHONEPE_CLIENT_VERSION!,
      webhookUsername: config.PHONEPE_WEBHOOK_USERNAME!,
      webhookPassword: config.PHONEPE_WEBHOOK_PASSWORD!,
      publicUrl: config.PUBLIC_URL,
      environment: config.PHONEPE_ENV,
      baseUrl: config.PHONEPE_API_URL,
    }));
  }
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
