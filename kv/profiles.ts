// The profile facts a hot path needs without asking Postgres: a member's card (name and gender,
// for matchmaking), kept in KV beside the user's row. Postgres stays the record; each card carries
// the row's `updatedAt`, so a late writer can never put an older card over a newer one.
import type { Gender, UserRow } from "../db/schema.ts";
import { memberCardKey } from "./keys.ts";

export interface MemberCard {
  name: string;
  gender: Gender;
  /** Whether the member's address is confirmed (absent on cards from before: they were). */
  verified?: boolean;
  /** The row's updatedAt (ms) the card was read from. */
  updatedAt: number;
}

/** A card outlives this long without being read from Postgres again (a safety net, not a rule). */
const CARD_TTL_MS = 24 * 60 * 60 * 1000;
const ATTEMPTS = 10;

/** The member's card from the nearest replica; null when there is none yet. */
export async function readMemberCard(kv: Deno.Kv, userId: string): Promise<MemberCard | null> {
  return (await kv.get<MemberCard>(memberCardKey(userId), { consistency: "eventual" })).value;
}

/** Stores (and returns) the card of a user row just written or read: signup, an edit, a miss. */
export async function rememberMember(
  kv: Deno.Kv,
  row: Pick<UserRow, "id" | "name" | "gender" | "updatedAt" | "emailVerifiedAt">,
): Promise<MemberCard> {
  const card = {
    name: row.name,
    gender: row.gender,
    verified: row.emailVerifiedAt !== null,
    updatedAt: row.updatedAt.getTime(),
  };
  await storeMemberCard(kv, row.id, card);
  return card;
}

/** Stores the card unless a newer one (by the row's updatedAt) is stored already. */
async function storeMemberCard(kv: Deno.Kv, userId: string, card: MemberCard) {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const stored = await kv.get<MemberCard>(memberCardKey(userId));
    if (stored.value && stored.value.updatedAt > card.updatedAt) return;
    const result = await kv.atomic().check(stored)
      .set(stored.key, card, { expireIn: CARD_TTL_MS })
      .commit();
    if (result.ok) return;
  }
}

/** Adds the card's removal to a commit (the account is being deleted). */
export const forgetMemberCard = (atomic: Deno.AtomicOperation, userId: string) =>
  atomic.delete(memberCardKey(userId));
