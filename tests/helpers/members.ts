// Many members at once: rows written straight to the database and tokens issued directly, so a
// test can have hundreds of users without hundreds of bcrypt hashes (signup is tested elsewhere).
import type { Deps } from "../../deps.ts";
import { insertUser } from "../../db/users.ts";
import { newId } from "../../ids.ts";
import { issueToken, signingKey } from "../../kv/auth/tokens.ts";
import { rememberMember } from "../../kv/profiles.ts";
import { randomEmail } from "./app.ts";

/** Never compared: members made here sign in by token only. */
const UNUSABLE_HASH = "$2b$10$unusableunusableunusableunusableunusableunusableunusa";

export interface Member {
  user: { id: string; name: string };
  token: string;
}

export async function members(
  deps: Pick<Deps, "config" | "clock" | "database"> & { kv?: Deno.Kv },
  count: number,
  options: {
    name?: (index: number) => string;
    gender?: "female" | "male";
    role?: "user" | "admin";
    /** Whether their address is confirmed (yes, unless a test says otherwise). */
    verified?: boolean;
  } = {},
): Promise<Member[]> {
  const key = await signingKey(deps.config.JWT_SECRET);
  return await Promise.all(Array.from({ length: count }, async (_, index) => {
    const now = deps.clock.now();
    const row = await insertUser(deps.database.db, {
      id: newId(now),
      name: options.name?.(index) ?? `Member ${index}`,
      email: randomEmail("member"),
      passwordHash: UNUSABLE_HASH,
      gender: options.gender ?? "undisclosed",
      role: options.role ?? "user",
      createdAt: new Date(now),
      emailVerifiedAt: options.verified === false ? null : new Date(now),
    });
    if (!row) throw new Error("could not insert a member");
    if (deps.kv) await rememberMember(deps.kv, row); // as signup does
    const { token } = await issueToken(
      key,
      { userId: row.id, generation: 0 },
      now,
      deps.config.SESSION_TTL_SECONDS,
    );
    return { user: { id: row.id, name: row.name }, token };
  }));
}
