// Emailed links, as resets and confirmations use them: one is mailed (its token stored as its
// hash, in the commit that carries the email), and one is used once (taken first, given back if
// what it was taken for fails).
import { Invalid } from "../../errors.ts";
import {
  hashLinkToken,
  type LinkKind,
  type LinkToken,
  newLinkToken,
  returnLinkToken,
  storeLinkToken,
  takeLinkToken,
} from "../../kv/auth/links.ts";
import type { MailMessage } from "../../providers/mail.ts";
import { jobRecord } from "../outbox-jobs.ts";
import type { AccountDeps } from "./accounts.ts";

/**
 * Mails `to` a link to `page` of the console carrying a new token of `kind`, good for `ttlMs`;
 * the user's token of that kind before it stops working.
 */
export async function mailLink(
  deps: AccountDeps,
  kind: LinkKind,
  to: { userId: string; email: string },
  link: { page: string; ttlMs: number },
  mail: (sent: { link: string; expiresAt: Date }) => MailMessage,
) {
  const now = deps.now();
  const { token, hash } = await newLinkToken();
  const expiresAt = now + link.ttlMs;
  const url = `${deps.config.PUBLIC_URL}/#/${link.page}?token=${token}`;
  await storeLinkToken(deps, kind, hash, { ...to, issuedAt: now, expiresAt }, [
    jobRecord(deps.outbox, "send-email", mail({ link: url, expiresAt: new Date(expiresAt) })),
  ]);
}

/**
 * Uses a link's token once: `use` gets it when it is good (known, unexpired, the user's latest)
 * and this call took it; otherwise 400 naming `token`. Of two uses at once, one gets it. When
 * `use` fails, the token is given back, so the link works again.
 */
export async function useLink<T>(
  deps: AccountDeps,
  kind: LinkKind,
  token: string,
  use: (link: LinkToken, now: number) => Promise<T>,
): Promise<T> {
  const now = deps.now();
  const hash = await hashLinkToken(token);
  const link = await takeLinkToken(deps.kv, kind, hash, now);
  if (!link) throw usedLink();
  try {
    return await use(link, now);
  } catch (error) {
    await returnLinkToken(deps.kv, kind, hash, link, now).catch(() => {});
    throw error;
  }
}

/** 400 naming `token`: the link was used, replaced or has expired. */
export function usedLink() {
  return new Invalid("This link was used, replaced by a newer one, or has expired.", [
    { path: "token", message: "used, replaced or expired: ask for a new link" },
  ]);
}
