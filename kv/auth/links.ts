// Emailed links: a random token mailed to an address, stored only as its SHA-256, good once until
// it expires, and only while it is the user's latest of its kind (asking again ends the one
// before). Two kinds: a password reset, and an address to confirm (at signup or on a change).
import { sha256Hex } from "../../hashes.ts";
import { commitDecision } from "../decisions.ts";
import { emailLinkKey, emailLinkUserKey } from "../keys.ts";
import type { Coordination, OutboxRecord } from "../outbox.ts";

export type LinkKind = "reset" | "verify";

export interface LinkToken {
  userId: string;
  issuedAt: number;
  expiresAt: number;
  /** The address it was mailed to (what a confirmation confirms). */
  email: string;
}

/** A new token (43 URL-safe characters, 256 bits) and the hash it is stored under. */
export async function newLinkToken(): Promise<{ token: string; hash: string }> {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const token = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
  return { token, hash: await hashLinkToken(token) };
}

export function hashLinkToken(token: string): Promise<string> {
  return sha256Hex(token);
}

/** Stores the user's new token of `kind` (ending the one before) with `records` (its email). */
export async function storeLinkToken(
  deps: Coordination,
  kind: LinkKind,
  hash: string,
  token: LinkToken,
  records: OutboxRecord[],
) {
  const expireIn = token.expiresAt - token.issuedAt;
  const atomic = deps.kv.atomic()
    .set(emailLinkKey(kind, hash), token, { expireIn })
    .set(emailLinkUserKey(kind, token.userId), hash, { expireIn });
  await commitDecision(deps, atomic, { records, operation: `auth.link-${kind}` });
}

/**
 * Takes a token for its one use: the token, if it is good (known, unexpired, the user's latest)
 * and this call is the one that took it; null otherwise. Two uses of one token: one gets it.
 */
export async function takeLinkToken(
  kv: Deno.Kv,
  kind: LinkKind,
  hash: string,
  now: number,
): Promise<LinkToken | null> {
  const entry = await kv.get<LinkToken>(emailLinkKey(kind, hash));
  const token = entry.value;
  if (!token || now >= token.expiresAt) return null;
  const latest = await kv.get<string>(emailLinkUserKey(kind, token.userId));
  if (latest.value !== hash) return null;
  const taken = await kv.atomic().check(entry, latest)
    .delete(entry.key).delete(latest.key).commit();
  return taken.ok ? token : null;
}

/** Puts a taken token back (what it was taken for could not be completed). */
export async function returnLinkToken(
  kv: Deno.Kv,
  kind: LinkKind,
  hash: string,
  token: LinkToken,
  now: number,
) {
  const expireIn = token.expiresAt - now;
  if (expireIn <= 0) return;
  await kv.atomic()
    .check({ key: emailLinkUserKey(kind, token.userId), versionstamp: null })
    .set(emailLinkKey(kind, hash), token, { expireIn })
    .set(emailLinkUserKey(kind, token.userId), hash, { expireIn })
    .commit();
}

/** Adds the end of the user's outstanding token of `kind` to a commit. */
export const endLinkTokens = (atomic: Deno.AtomicOperation, kind: LinkKind, userId: string) =>
  atomic.delete(emailLinkUserKey(kind, userId));
