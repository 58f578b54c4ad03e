// Queries over users.
import { eq } from "drizzle-orm";
import type { Database } from "./client.ts";
import { isUniqueViolation } from "./client.ts";
import { type Gender, type Role, type UserRow, users } from "./schema.ts";

export interface NewUser {
  id: string;
  name: string;
  email: string;
  passwordHash: string;
  gender: Gender;
  role: Role;
  createdAt: Date;
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
