// Getting back into an account: a password reset by a link mailed to its address.
import { z } from "zod";
import { findUserByEmail, findUserById, setPasswordHash } from "../../db/users.ts";
import { TooManyRequests } from "../../errors.ts";
import { announceSessionsChanged } from "../../kv/events.ts";
import { endOtherSessions } from "../../kv/auth/sessions.ts";
import { mailLink, usedLink, useLink } from "./links.ts";
import { jobRecord } from "../outbox-jobs.ts";
import { passwordResetDoneEmail, passwordResetEmail } from "../send-email.ts";
import { hashPassword } from "./passwords.ts";
import { type AccountDeps, email, password } from "./accounts.ts";

/** A reset link works this long. */
export const RESET_TTL_MS = 30 * 60 * 1000;

export const resetRequestInput = z.strictObject({ email });
export const resetInput = z.strictObject({
  token: z.string().min(1).max(200),
  newPassword: password,
});

/**
 * Mails a reset link to the account with this address, if there is one; the caller is told the
 * same either way. Each address asked about, and each caller's address, may ask
 * RATE_LIMIT_PASSWORD_RESET times (429 past it, for any address, known or not).
 */
export async function requestPasswordReset(
  deps: AccountDeps,
  input: z.infer<typeof resetRequestInput> & { ip: string },
) {
  const limit = deps.config.RATE_LIMIT_PASSWORD_RESET;
  const windows = [`reset:email:${input.email}`, `reset:ip:${input.ip}`];
  const counters = await Promise.all(
    windows.map((key) => deps.cache.increment(key, limit.windowSeconds)),
  );
  const over = counters.filter((counter) => counter.count > limit.limit);
  if (over.length > 0) {
    throw new TooManyRequests(
      "Too many password-reset requests. Try again later.",
      Math.max(...over.map((counter) => counter.resetInSeconds)),
    );
  }
  const user = await findUserByEmail(deps.db, input.email);
  if (!user) return;
  await mailLink(
    deps,
    "reset",
    { userId: user.id, email: user.email },
    { page: "reset-password", ttlMs: RESET_TTL_MS },
    (sent) => passwordResetEmail(user, sent),
  );
}

/**
 * Sets a new password with a reset token: the token is taken first (of two resets with one token,
 * one gets it; the other is a 400), then the password is written, every session of the user ends
 * and the owner is mailed, in the commit that ends them.
 */
export async function resetPassword(
  deps: AccountDeps,
  input: z.infer<typeof resetInput> & { ip: string },
) {
  const { user, at } = await useLink(deps, "reset", input.token, async (link, now) => {
    const user = await findUserById(deps.db, link.userId);
    if (!user) throw usedLink();
    const at = new Date(now);
    const hash = await hashPassword(input.newPassword, deps.config.BCRYPT_COST);
    await setPasswordHash(deps.db, user.id, hash, at);
    return { user, at };
  });
  const mail = jobRecord(
    deps.outbox,
    "send-email",
    passwordResetDoneEmail(user, { at, ip: input.ip }),
  );
  await endOtherSessions(deps, deps.sessions, user.id, null, { records: [mail] });
  await announceSessionsChanged(deps.kv, user.id, deps.now);
}
