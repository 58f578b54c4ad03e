// Password-reset tokens: a random token mailed to the account's address, stored only as its
// SHA-256, good for one reset until it expires, and only while it is the user's latest (asking
// again, or changing the password, ends the one before).
import { commitDecision } from "../decisions.ts";
import { passwordResetKey, passwordResetUserKey } from "../keys.ts";
import type { Coordination, OutboxRecord } from "../outbox.ts";

export interface ResetToken {
  userId: string;
  issuedAt: number;
  expiresAt: number;
}

/** A new token (43 URL-safe characters, 256 bits) and the hash it is stored under. */
export async function newResetToken(): Promise<{ token: string; hash: string }> {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const token = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
  return { token, hash: await hashResetToken(token) };
}

export async function hashResetToken(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Stores the user's new token (ending the one before) with `records` (its email) in one commit. */
export async function storeResetToken(
  deps: Coordination,
  hash: string,
  token: ResetToken,
  records: OutboxRecord[],
) {
  const expireIn = token.expiresAt - token.issuedAt;
  const atomic = deps.kv.atomic()
    .set(passwordResetKey(hash), token, { expireIn })
    .set(passwordResetUserKey(token.userId), hash, { expireIn });
  await commitDecision(deps, atomic, { records, operation: "auth.reset-request" });
}

/**
 * Takes a token for its one reset: the token, if it is good (known, unexpired, the user's latest)
 * and this call is the one that took it; null otherwise. Two resets with one token: one gets it.
 */
export async function takeResetToken(
  kv: Deno.Kv,
  hash: string,
  now: number,
): Promise<ResetToken | null> {
  const entry = await kv.get<ResetToken>(passwordResetKey(hash));
  const token = entry.value;
  if (!token || now >= token.expiresAt) return null;
  const latest = await kv.get<string>(passwordResetUserKey(token.userId));
  if (latest.value !== hash) return null;
  const taken = await kv.atomic().check(entry, latest)
    .delete(entry.key).delete(latest.key).commit();
  return taken.ok ? token : null;
}

/** Puts a taken token back (the reset it was taken for could not be completed). */
export async function returnResetToken(kv: Deno.Kv, hash: string, token: ResetToken, now: number) {
  const expireIn = token.expiresAt - now;
  if (expireIn <= 0) return;
  await kv.atomic()
    .check({ key: passwordResetUserKey(token.userId), versionstamp: null })
    .set(passwordResetKey(hash), token, { expireIn })
    .set(passwordResetUserKey(token.userId), hash, { expireIn })
    .commit();
}

/** Adds the end of the user's outstanding token to a commit (their password just changed). */
export const endResetTokens = (atomic: Deno.AtomicOperation, userId: string) =>
  atomic.delete(passwordResetUserKey(userId));
