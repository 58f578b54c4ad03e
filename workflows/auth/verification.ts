// Confirming an address: a link mailed at signup and on a change of address (which takes effect
// only once confirmed), resent on request. Until a member's address is confirmed they use the app
// but may not be matched, sell, or send more than UNVERIFIED_REQUESTS connection requests.
import { z } from "zod";
import type { UserRow } from "../../db/schema.ts";
import { confirmEmail, findUserByEmail, findUserById, setPendingEmail } from "../../db/users.ts";
import { Conflict, Forbidden, Invalid, TooManyRequests, Unauthorized } from "../../errors.ts";
import { mailLink, useLink } from "./links.ts";
import { rememberMember } from "../../kv/profiles.ts";
import { confirmEmailEmail } from "../send-email.ts";
import type { AccountDeps } from "./accounts.ts";
import { email } from "./accounts.ts";
import { verifyPassword } from "./passwords.ts";

/** A confirmation link works this long. */
export const VERIFY_TTL_MS = 24 * 60 * 60 * 1000;
/** Connection requests a member may send before their address is confirmed. */
export const UNVERIFIED_REQUESTS = 5;
/** Confirmation emails a member may ask for again, per hour. */
const RESENDS_PER_HOUR = 3;

export const verifyInput = z.strictObject({ token: z.string().min(1).max(200) });
export const emailChangeInput = z.strictObject({
  newEmail: email,
  password: z.string().min(1).max(1024),
});

/** Mails a link confirming `to` for the user (their address, or a new one they asked for). */
export async function sendConfirmation(
  deps: AccountDeps,
  user: Pick<UserRow, "id" | "name">,
  to: string,
  change: boolean,
) {
  await mailLink(
    deps,
    "verify",
    { userId: user.id, email: to },
    { page: "verify-email", ttlMs: VERIFY_TTL_MS },
    (sent) => confirmEmailEmail(user, to, { ...sent, change }),
  );
}

/**
 * Confirms the address a link was mailed to: the member's own (now confirmed), or the new one
 * they asked for, which becomes theirs. A link works once; the matchmaking card learns it.
 */
export async function verifyEmail(deps: AccountDeps, token: string) {
  const row = await useLink(
    deps,
    "verify",
    token,
    (link, now) => confirmEmail(deps.db, link.userId, link.email, new Date(now)),
  );
  if (row === "taken") {
    throw new Conflict("Another account uses this address now.", "email-taken");
  }
  if (!row) throw new Unauthorized("This account no longer exists.");
  await rememberMember(deps.kv, row);
  return row;
}

/** Mails the link again: for the address asked for, else one's own while unconfirmed. */
export async function resendConfirmation(deps: AccountDeps, userId: string) {
  const user = await findUserById(deps.db, userId);
  if (!user) throw new Unauthorized("This account no longer exists.");
  const to = user.pendingEmail ?? (user.emailVerifiedAt ? null : user.email);
  if (!to) throw new Conflict("Your address is confirmed already.", "already-verified");
  const counter = await deps.cache.increment(`verify-resend:${userId}`, 3600);
  if (counter.count > RESENDS_PER_HOUR) {
    throw new TooManyRequests(
      "Too many confirmation emails. Try again later.",
      counter.resetInSeconds,
    );
  }
  await sendConfirmation(deps, user, to, to !== user.email);
  return { sentTo: to };
}

/**
 * A new address, confirmed by the password: it takes effect only once its link is opened (the
 * old address works until then). 409 `email-taken` when another account has it.
 */
export async function changeEmail(
  deps: AccountDeps,
  userId: string,
  input: z.infer<typeof emailChangeInput>,
) {
  const user = await findUserById(deps.db, userId);
  if (!user) throw new Unauthorized("This account no longer exists.");
  if (!await verifyPassword(input.password, user.passwordHash)) {
    throw new Invalid("The password is wrong.", [{ path: "password", message: "does not match" }]);
  }
  if (input.newEmail === user.email) {
    throw new Invalid("This is your address already.", [{
      path: "newEmail",
      message: "unchanged",
    }]);
  }
  if (await findUserByEmail(deps.db, input.newEmail)) {
    throw new Conflict("Another account uses this address.", "email-taken");
  }
  await setPendingEmail(deps.db, userId, input.newEmail);
  await sendConfirmation(deps, user, input.newEmail, true);
  return { pendingEmail: input.newEmail };
}

/** Whether confirming one's address is required here (EMAIL_VERIFICATION). */
export const verificationRequired = (config: { EMAIL_VERIFICATION: string }) =>
  config.EMAIL_VERIFICATION === "required";

/** 403 `email-unverified`: what waits for a confirmed address. */
export function unverified(what: string) {
  return new Forbidden(
    `Confirm your email address first: ${what} waits for it (we sent you a link; ask for a new ` +
      "one with POST /api/auth/verify-email/resend).",
    "email-unverified",
  );
}
