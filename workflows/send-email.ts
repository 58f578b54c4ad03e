// The `send-email` job and the emails Convene sends.
import { z } from "zod";
import type { Deps } from "../deps.ts";
import type { MailMessage } from "../providers/mail.ts";
import { instruments } from "../telemetry.ts";

export const emailPayload = z.object({
  to: z.email(),
  subject: z.string().min(1).max(300),
  text: z.string().min(1).max(100_000),
  html: z.string().max(200_000).optional(),
});

export function registerSendEmailJob(deps: Deps) {
  // The job id is the message id: a redelivered job is the same email, not a second one.
  deps.registry.register("send-email", emailPayload, async (message, job) => {
    try {
      await deps.mailer.send(message, job.id);
      instruments.emails.add(1, { "convene.outcome": "sent" });
    } catch (error) {
      instruments.emails.add(1, { "convene.outcome": "failed" });
      throw error;
    }
  });
}

/** Sent after every password change, so an owner learns when someone else changed it. */
export function passwordChangedEmail(
  user: { name: string; email: string },
  change: { at: Date; ip: string },
): MailMessage {
  return {
    to: user.email,
    subject: "Your Convene password was changed",
    text: [
      `Hi ${user.name},`,
      "",
      `The password of your Convene account was changed at ${change.at.toISOString()} ` +
      `from the address ${change.ip}. Every other session was signed out.`,
      "",
      "If this was you, there is nothing to do.",
      "If it was not, someone knows your password: contact us at once by replying to this email.",
    ].join("\n"),
  };
}

/** The link to set a new password: the token rides in the fragment, which no server logs. */
export function passwordResetEmail(
  user: { name: string; email: string },
  reset: { link: string; expiresAt: Date },
): MailMessage {
  return {
    to: user.email,
    subject: "Reset your Convene password",
    text: [
      `Hi ${user.name},`,
      "",
      "Someone (we hope you) asked to reset the password of your Convene account. To choose a " +
      "new one, open this link:",
      "",
      reset.link,
      "",
      `It works once, until ${reset.expiresAt.toISOString()}.`,
      "If you did not ask, ignore this email: your password stays as it is.",
    ].join("\n"),
  };
}

/** Sent after a reset, so an owner learns of one they did not make. */
export function passwordResetDoneEmail(
  user: { name: string; email: string },
  reset: { at: Date; ip: string },
): MailMessage {
  return {
    to: user.email,
    subject: "Your Convene password was reset",
    text: [
      `Hi ${user.name},`,
      "",
      `The password of your Convene account was reset at ${reset.at.toISOString()} from the ` +
      `address ${reset.ip}, with a link sent to this address. Every session was signed out.`,
      "",
      "If this was not you, someone can read your email: secure it, then reset your password.",
    ].join("\n"),
  };
}

/** The link that confirms an address: at signup, or for a new one (which takes effect then). */
export function confirmEmailEmail(
  user: { name: string },
  to: string,
  confirm: { link: string; expiresAt: Date; change: boolean },
): MailMessage {
  return {
    to,
    subject: "Confirm your address for Convene",
    text: [
      `Hi ${user.name},`,
      "",
      confirm.change
        ? "You asked to use this address for your Convene account. It takes the place of the " +
          "old one once you open this link:"
        : "Welcome to Convene. To confirm this is your address, open this link:",
      "",
      confirm.link,
      "",
      `It works once, until ${confirm.expiresAt.toISOString()}.`,
      "If you did not ask for this, ignore this email.",
    ].join("\n"),
  };
}

/** What a notification says, as a line of a digest. */
const DIGEST_LINES: Record<string, string> = {
  follow: "followed you",
  like: "liked your post",
  comment: "commented on your post",
  connection_request: "asked to connect with you",
  connection_accepted: "accepted your connection request",
  message: "sent you a message",
  interview: "updated an interview",
  order: "an order of yours changed",
  moderation: "an admin took down something you posted",
};

/** Lines a digest lists at most; the rest are counted. */
const DIGEST_LINES_SHOWN = 20;

/** One email for the notifications an offline member missed, with a link that stops them. */
export function digestEmail(
  user: { name: string; email: string },
  items: { type: string; actorName: string | null }[],
  links: { console: string; unsubscribe: string },
): MailMessage {
  const lines = items.slice(0, DIGEST_LINES_SHOWN).map((item) =>
    item.type === "order" || item.type === "moderation"
      ? `- ${DIGEST_LINES[item.type]}`
      : `- ${item.actorName ?? "Someone"} ${DIGEST_LINES[item.type] ?? item.type}`
  );
  const more = items.length - lines.length;
  return {
    to: user.email,
    subject: items.length === 1
      ? "1 new notification on Convene"
      : `${items.length} new notifications on Convene`,
    text: [
      `Hi ${user.name},`,
      "",
      "While you were away:",
      ...lines,
      ...(more > 0 ? [`- and ${more} more`] : []),
      "",
      `See them: ${links.console}`,
      "",
      `Stop these emails (no sign-in needed): ${links.unsubscribe}`,
      "Or choose which ones you get on your profile page.",
    ].join("\n"),
  };
}
