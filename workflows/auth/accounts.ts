// Accounts: signup, login (rate-limited), password change, and the public shape of a user.
import { z } from "zod";
import type { Config } from "../../config.ts";
import type { Database } from "../../db/client.ts";
import { GENDERS, type UserRow } from "../../db/schema.ts";
import {
  deleteUser,
  findUserByEmail,
  findUserById,
  insertUser,
  publicProfile,
  setPasswordHash,
} from "../../db/users.ts";
import { Conflict, Forbidden, Invalid, TooManyRequests, Unauthorized } from "../../errors.ts";
import { readSuspension, suspended } from "../../kv/moderation.ts";
import { newId } from "../../ids.ts";
import { announceSessionsChanged } from "../../kv/events.ts";
import { endOtherSessions, type SessionMemory } from "../../kv/auth/sessions.ts";
import { forgetMemberCard, rememberMember } from "../../kv/profiles.ts";
import { endLinkTokens } from "../../kv/auth/links.ts";
import { purgeOwnerRecord } from "../media/uploads.ts";
import type { Outbox } from "../../kv/outbox.ts";
import type { Cache } from "../../providers/cache.ts";
import { jobRecord } from "../outbox-jobs.ts";
import { passwordChangedEmail } from "../send-email.ts";
import { decoyHash, hashPassword, verifyPassword } from "./passwords.ts";

export interface AccountDeps {
  config: Config;
  db: Database;
  kv: Deno.Kv;
  sessions: SessionMemory;
  cache: Cache;
  outbox: Outbox;
  now: () => number;
}

export const email = z.string().trim().toLowerCase().max(254).pipe(
  z.email({ error: "not an email address" }),
);
/** bcrypt reads at most 72 bytes: a longer password would be silently truncated, so refuse it. */
export const password = z.string()
  .min(8, "must be at least 8 characters")
  .refine((text) => new TextEncoder().encode(text).length <= 72, "must be at most 72 bytes");

export const signupInput = z.strictObject({
  name: z.string().trim().min(1, "must not be empty").max(100),
  email,
  password,
  gender: z.enum(GENDERS).default("undisclosed"),
});

export const loginInput = z.strictObject({
  email: z.string().trim().toLowerCase().min(1).max(254),
  password: z.string().min(1).max(1024),
});

export const accountDeletionInput = z.strictObject({ password: z.string().min(1).max(1024) });

export const passwordChangeInput = z.strictObject({
  currentPassword: z.string().min(1).max(1024),
  newPassword: password,
});

/** The `user` object the API answers: never the password hash. */
export function publicUser(row: UserRow, config: Pick<Config, "EMAIL_VERIFICATION">) {
  return {
    ...publicProfile(row),
    email: row.email,
    emailVerified: row.emailVerifiedAt !== null,
    /** True while an unconfirmed address holds things back (EMAIL_VERIFICATION=required). */
    confirmationNeeded: config.EMAIL_VERIFICATION === "required" && row.emailVerifiedAt === null,
    /** A new address asked for, until its link is opened. */
    pendingEmail: row.pendingEmail,
    gender: row.gender,
    role: row.role,
    membership: row.membershipTier
      ? { tier: row.membershipTier, since: row.membershipSince?.toISOString() ?? null }
      : null,
  };
}

export type PublicUser = ReturnType<typeof publicUser>;

export async function signup(deps: AccountDeps, input: z.infer<typeof signupInput>) {
  if (await findUserByEmail(deps.db, input.email)) throw emailTaken();
  const row = await insertUser(deps.db, {
    id: newId(deps.now()),
    name: input.name,
    email: input.email,
    passwordHash: await hashPassword(input.password, deps.config.BCRYPT_COST),
    gender: input.gender,
    role: deps.config.ADMIN_EMAILS.includes(input.email) ? "admin" : "user",
    createdAt: new Date(deps.now()),
  });
  if (!row) throw emailTaken();
  await rememberMember(deps.kv, row); // matchmaking reads it from KV, never from Postgres
  return row;
}

function emailTaken() {
  return new Conflict("An account with this email already exists.", "email-taken");
}

/**
 * The windows a sign-in attempt counts in: this account from this address and this address for
 * any account (RATE_LIMIT_LOGIN), and this account from every address (the higher
 * RATE_LIMIT_LOGIN_ACCOUNT). A stranger guessing from one address trips the first two long before
 * the third, so the owner, from another address, still signs in.
 */
const loginWindows = (config: AccountDeps["config"], input: { email: string; ip: string }) => [
  { key: `login:pair:${input.email}:${input.ip}`, ...config.RATE_LIMIT_LOGIN },
  { key: `login:ip:${input.ip}`, ...config.RATE_LIMIT_LOGIN },
  { key: `login:account:${input.email}`, ...config.RATE_LIMIT_LOGIN_ACCOUNT },
];

/**
 * Checks credentials. Every attempt takes a slot in each window before the password is compared
 * (so bursts cannot slip past the limit); a success gives its slots back.
 */
export async function login(
  deps: AccountDeps,
  input: z.infer<typeof loginInput> & { ip: string },
): Promise<UserRow> {
  const windows = loginWindows(deps.config, input);
  const giveBack = () =>
    Promise.all(windows.map((w) => deps.cache.increment(w.key, w.windowSeconds, -1)));
  const counters = await Promise.all(
    windows.map((w) => deps.cache.increment(w.key, w.windowSeconds)),
  );
  const over = counters.filter((counter, i) => counter.count > windows[i].limit);
  if (over.length > 0) {
    await giveBack();
    const wait = Math.max(...over.map((counter) => counter.resetInSeconds));
    throw new TooManyRequests("Too many failed sign-in attempts. Try again later.", wait);
  }
  const user = await findUserByEmail(deps.db, input.email);
  const hash = user?.passwordHash ?? await decoyHash(deps.config.BCRYPT_COST);
  const matches = await verifyPassword(input.password, hash);
  if (!user || !matches) throw new Unauthorized("The email or password is wrong.");
  await giveBack();
  // Only the owner, who knows the password, learns the account is suspended.
  const suspension = await readSuspension(deps.kv, user.id);
  if (suspended(suspension, deps.now())) {
    throw new Forbidden(
      suspension!.until === null
        ? "This account is suspended."
        : `This account is suspended until ${new Date(suspension!.until).toISOString()}.`,
      "account-suspended",
      { until: suspension!.until === null ? null : new Date(suspension!.until).toISOString() },
    );
  }
  return user;
}

/**
 * Changes the password, ends every session of the user except `keepJti`, and emails the owner
 * (the email's outbox record is part of the commit that ends the sessions).
 */
export async function changePassword(
  deps: AccountDeps,
  userId: string,
  input: z.infer<typeof passwordChangeInput>,
  session: { keepJti: string; ip: string },
) {
  const user = await findUserById(deps.db, userId);
  if (!user) throw new Unauthorized();
  if (!await verifyPassword(input.currentPassword, user.passwordHash)) {
    throw new Invalid("The current password is wrong.", [
      { path: "currentPassword", message: "does not match" },
    ]);
  }
  const hash = await hashPassword(input.newPassword, deps.config.BCRYPT_COST);
  const at = new Date(deps.now());
  await setPasswordHash(deps.db, userId, hash, at);
  const email = jobRecord(
    deps.outbox,
    "send-email",
    passwordChangedEmail(user, { at, ip: session.ip }),
  );
  // A reset link asked for before stops working: the password it would replace has changed.
  await endOtherSessions(deps, deps.sessions, userId, session.keepJti, {
    records: [email],
    also: (atomic) => endLinkTokens(atomic, "reset", userId),
  });
  await announceSessionsChanged(deps.kv, userId, deps.now);
}

/**
 * Deletes the account once the password confirms it: the user's rows go (foreign keys cascade),
 * every session ends, and the commit that ends them also records the job that purges the
 * user's uploaded files.
 */
export async function deleteAccount(
  deps: AccountDeps,
  userId: string,
  input: z.infer<typeof accountDeletionInput>,
) {
  const user = await findUserById(deps.db, userId);
  if (!user) throw new Unauthorized("This account no longer exists.");
  if (!await verifyPassword(input.password, user.passwordHash)) {
    throw new Invalid("The password is wrong.", [{ path: "password", message: "does not match" }]);
  }
  await deleteUser(deps.db, userId);
  const purge = purgeOwnerRecord(deps.outbox, userId);
  await endOtherSessions(deps, deps.sessions, userId, null, {
    records: [purge],
    also: (atomic) => forgetMemberCard(atomic, userId),
  });
  await announceSessionsChanged(deps.kv, userId, deps.now);
}
