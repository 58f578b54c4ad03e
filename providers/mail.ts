// Mail: Resend over plain fetch in production, a development outbox in KV otherwise.
import type { Config } from "../config.ts";
import { devMailKey, devMailPrefix } from "../kv/keys.ts";
import { listPage, type PageOptions } from "../kv/pages.ts";
import { PermanentFailure } from "../errors.ts";
import { inSpan } from "../telemetry.ts";

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html?: string;
}

export interface Mailer {
  readonly kind: "resend" | "dev-outbox";
  /** Sends once per `messageId`: a retried send with the same id is not a second email. */
  send(message: MailMessage, messageId: string): Promise<void>;
}

export const RESEND_API_URL = "https://api.resend.com";

/** Resend's `POST /emails`; `Idempotency-Key` makes a retried job send one email. */
export function resendMailer(options: { apiKey: string; from: string; baseUrl?: string }): Mailer {
  const endpoint = `${options.baseUrl ?? RESEND_API_URL}/emails`;
  return {
    kind: "resend",
    async send(message, messageId) {
      const response = await fetch(endpoint, {
        method: "POST",
        headers: {
          authorization: `Bearer ${options.apiKey}`,
          "content-type": "application/json",
          "idempotency-key": messageId,
        },
        body: JSON.stringify({
          from: options.from,
          to: [message.to],
          subject: message.subject,
          text: message.text,
          ...(message.html ? { html: message.html } : {}),
        }),
        signal: AbortSignal.timeout(10_000),
      });
      if (response.ok) {
        await response.body?.cancel();
        return;
      }
      const detail = (await response.text()).slice(0, 500);
      const failure = `Resend answered ${response.status}: ${detail}`;
      // 429, 409 (an idempotent request still in flight) and 5xx pass; other 4xx never will.
      const retryable = response.status === 429 || response.status === 409 ||
        response.status >= 500;
      throw retryable ? new Error(failure) : new PermanentFailure(failure);
    },
  };
}

export interface DevMail extends MailMessage {
  id: string;
  sentAt: string;
}

/** Keeps mail in KV for a week instead of sending it; listed at GET /api/admin/outbox. */
export function devOutboxMailer(kv: Deno.Kv, now: () => number): Mailer {
  return {
    kind: "dev-outbox",
    async send(message, messageId) {
      const mail: DevMail = { id: messageId, ...message, sentAt: new Date(now()).toISOString() };
      await kv.set(devMailKey(messageId), mail, { expireIn: 7 * 24 * 3600 * 1000 });
    },
  };
}

/** The development outbox, newest first. */
export async function listDevMail(kv: Deno.Kv, page: Omit<PageOptions, "reverse">) {
  const { entries, nextCursor } = await listPage<DevMail>(kv, devMailPrefix(), {
    ...page,
    reverse: true,
  });
  return { items: entries.map((entry) => entry.value), nextCursor };
}

export function openMailer(config: Config, kv: Deno.Kv, now: () => number): Mailer {
  if (!config.RESEND_API_KEY) return traced(devOutboxMailer(kv, now));
  return traced(resendMailer({
    apiKey: config.RESEND_API_KEY,
    from: config.MAIL_FROM!,
    baseUrl: config.RESEND_API_URL,
  }));
}

/** `mailer` with each send a `mail.send` span: the provider and the message id, never the address. */
export function traced(mailer: Mailer): Mailer {
  return {
    kind: mailer.kind,
    send: (message, messageId) =>
      inSpan(
        "mail.send",
        { "convene.mail.provider": mailer.kind, "convene.mail.id": messageId },
        () => mailer.send(message, messageId),
      ),
  };
}
