// Queries over users.
import { and, eq, lt, or, sql } from "drizzle-orm";
import { z } from "zod";
import { decodeCursor, keysetPage } from "../cursor.ts";
import type { Database } from "./client.ts";
import { inTransaction, isUniqueViolation } from "./client.ts";
import { mediaPath } from "./media.ts";
import { visibleTo } from "./visibility.ts";
import { type Gender, type Role, type UserRow, users } from "./schema.ts";

export interface NewUser {
  id: string;
  name: string;
  email: string;
  passwordHash: string;
  gender: Gender;
  role: Role;
  createdAt: Date;
  /** Set for accounts whose address is confirmed already (tests' fixtures). */
  emailVerifiedAt?: Date | null;
}

/** Inserts a user; null when the email is taken (also when two signups race for it). */
export async function insertUser(db: Database, user: NewUser): Promise<UserRow | null> {
  try {
    const [row] = await db.insert(users).values({ ...user, updatedAt: user.createdAt })
      .onConflictDoNothing({ target: users.email })
      .returning();
    return row ?? null;
  } catch (error) {
    if (isUniqueViolation(error)) return null;
    throw error;
  }
}

export async function findUserByEmail(db: Database, email: string): Promise<UserRow | null> {
  const [row] = await db.select().from(users).where(eq(users.email, email)).limit(1);
  return row ?? null;
}

export async function findUserById(db: Database, id: string): Promise<UserRow | null> {
  const [row] = await db.select().from(users).where(eq(users.id, id)).limit(1);
  return row ?? null;
}

export async function setPasswordHash(db: Database, id: string, passwordHash: string, at: Date) {
  await db.update(users).set({ passwordHash, updatedAt: at }).where(eq(users.id, id));
}

/** A profile photo's (or video's) path on this server (GET /media/:id), or null. */
export function avatarPath(mediaId: string | null) {
  return mediaId ? mediaPath(mediaId) : null;
}

/** What any member may see of another: never the email, gender or role. */
export function publicProfile(row: UserRow) {
  return {
    id: row.id,
    name: row.name,
    headline: row.headline,
    bio: row.bio,
    skills: row.skills,
    location: row.location,
    verifiedSkills: row.verifiedSkills,
    avatarMediaId: row.avatarMediaId,
    avatarUrl: avatarPath(row.avatarMediaId),
    videoMediaId: row.videoMediaId,
    videoUrl: avatarPath(row.videoMediaId),
    createdAt: row.createdAt.toISOString(),
  };
}

export type PublicProfile = ReturnType<typeof publicProfile>;

export interface ProfilePatch {
  name?: string;
  headline?: string | null;
  bio?: string | null;
  skills?: string[];
  location?: string | null;
  gender?: Gender;
  avatarMediaId?: string | null;
  videoMediaId?: string | null;
}

export async function updateProfile(
  db: Database,
  id: string,
  patch: ProfilePatch,
  at: Date,
): Promise<
  { row: UserRow; previous: (string | null)[] } | "gender-settled" | null
> {
  return await inTransaction(db, async (tx) => {
    // Locked, so two concurrent photo changes each see the photo the other replaced, and of two
    // first choices of a gender one is first.
    const [before] = await tx.select({
      avatarMediaId: users.avatarMediaId,
      videoMediaId: users.videoMediaId,
      gender: users.gender,
    }).from(users).where(eq(users.id, id)).for("update");
    if (!before) return null;
    // A gender is chosen once ("undisclosed" is no choice yet); later changes are an admin's.
    const gender = patch.gender;
    if (gender !== undefined && before.gender !== "undisclosed" && gender !== before.gender) {
      return "gender-settled";
    }
    const [row] = await tx.update(users).set({ ...patch, updatedAt: at, lastActiveAt: at })
      .where(eq(users.id, id)).returning();
    return { row, previous: [before.avatarMediaId, before.videoMediaId] };
  });
}

/** Deletes an account; everything it owns goes with it (foreign keys cascade). */
export async function deleteUser(db: Database, id: string): Promise<boolean> {
  const deleted = await db.delete(users).where(eq(users.id, id)).returning({ id: users.id });
  return deleted.length > 0;
}

/** Marks the user active now (discovery ranks recently active members higher). */
export async function touchActivity(db: Database, id: string, at: Date) {
  await db.update(users).set({ lastActiveAt: at })
    .where(and(eq(users.id, id), lt(users.lastActiveAt, at)));
}

/** `text` as a literal ILIKE pattern: its `%`, `_` and `\` match only themselves. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (char) => `\\${char}`)}%`;
}

const searchCursor = z.tuple([z.string(), z.string()]);

/**
 * Members whose name, bio or one of whose skills contains `q`, as plain text (never a pattern or
 * a regular expression of the caller's), by name; nobody blocked with the viewer.
 */
export async function searchUsers(
  db: Database,
  viewerId: string,
  q: string,
  page: { cursor?: string; limit: number },
) {
  const pattern = containsPattern(q);
  const after = page.cursor ? decodeCursor(page.cursor, searchCursor) : null;
  const rows = await db.select().from(users)
    .where(and(
      or(
        sql`${users.name} ilike ${pattern} escape '\\'`,
        sql`${users.bio} ilike ${pattern} escape '\\'`,
        sql`exists (select 1 from unnest(${users.skills}) as skill where skill ilike ${pattern} escape '\\')`,
      ),
      visibleTo(viewerId, users.id),
      after ? sql`(${users.name}, ${users.id}) > (${after[0]}, ${after[1]})` : undefined,
    ))
    .orderBy(users.name, users.id)
    .limit(page.limit + 1);
  return keysetPage(rows, page.limit, publicProfile, (row) => [row.name, row.id]);
}

/** Whether a member's row says they are suspended at `now` (history's copy of KV's decision). */
export function isSuspended(
  row: Pick<UserRow, "suspendedAt" | "suspendedUntil">,
  now: number,
): boolean {
  return row.suspendedAt !== null &&
    (row.suspendedUntil === null || now < row.suspendedUntil.getTime());
}

/** Writes a suspension (or, with nulls, its end) as KV decided it. */
export async function recordStanding(
  db: Database,
  userId: string,
  standing: { at: Date | null; until: Date | null; reason: string | null },
) {
  await db.update(users).set({
    suspendedAt: standing.at,
    suspendedUntil: standing.until,
    suspensionReason: standing.reason,
  }).where(eq(users.id, userId));
}

/** An admin sets a member's gender (at the member's request): the row as it is now. */
export async function setGender(db: Database, id: string, gender: Gender, at: Date) {
  const [row] = await db.update(users).set({ gender, updatedAt: at }).where(eq(users.id, id))
    .returning();
  return row;
}

/** Notes a new address the owner asked for (it replaces `email` once confirmed). */
export async function setPendingEmail(db: Database, id: string, email: string | null) {
  await db.update(users).set({ pendingEmail: email }).where(eq(users.id, id));
}

/**
 * Confirms `email` for the user: their address, now confirmed, or (a change) the address they
 * asked for, which becomes theirs. "taken" when another account took that address meanwhile;
 * null when the user is gone.
 */
export async function confirmEmail(
  db: Database,
  id: string,
  email: string,
  at: Date,
): Promise<UserRow | "taken" | null> {
  try {
    const [row] = await db.update(users).set({
      email,
      emailVerifiedAt: at,
      pendingEmail:
        sql`case when ${users.pendingEmail} = ${email} then null else ${users.pendingEmail} end`,
      updatedAt: at,
    }).where(eq(users.id, id)).returning();
    return row ?? null;
  } catch (error) {
    if (isUniqueViolation(error)) return "taken";
    throw error;
  }
}
