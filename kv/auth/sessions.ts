// Token revocation and session generations: what makes logout and password change immediate.
import { revokedTokenKey, sessionGenerationKey } from "../keys.ts";

interface Generation {
  generation: number;
  /** The one token of the previous generation that stays alive (the session that changed it). */
  keep: string | null;
}

/** Marks a token dead until `expiresAt` (ms), after which it would fail verification anyway. */
export async function revokeToken(kv: Deno.Kv, jti: string, expiresAt: number, now: number) {
  const expireIn = Math.max(1000, expiresAt - now);
  await kv.set(revokedTokenKey(jti), true, { expireIn });
}

export async function currentGeneration(kv: Deno.Kv, userId: string): Promise<number> {
  const entry = await kv.get<Generation>(sessionGenerationKey(userId));
  return entry.value?.generation ?? 0;
}

/** True when the token is neither revoked nor from a generation that was ended. */
export async function isTokenLive(
  kv: Deno.Kv,
  token: { jti: string; sub: string; gen: number },
): Promise<boolean> {
  const [revoked, generation] = await kv.getMany<[boolean, Generation]>([
    revokedTokenKey(token.jti),
    sessionGenerationKey(token.sub),
  ]);
  if (revoked.value) return false;
  const current = generation.value ?? { generation: 0, keep: null };
  return token.gen >= current.generation || token.jti === current.keep;
}

/**
 * Ends every session of the user except the token `keepJti` (null: every one); returns the new
 * generation.
 * `also` adds to the same commit (e.g. the outbox record of a confirmation email).
 */
export async function endOtherSessions(
  kv: Deno.Kv,
  userId: string,
  keepJti: string | null,
  also: (atomic: Deno.AtomicOperation) => void = () => {},
): Promise<number> {
  const key = sessionGenerationKey(userId);
  for (;;) {
    const entry = await kv.get<Generation>(key);
    const next = { generation: (entry.value?.generation ?? 0) + 1, keep: keepJti };
    const atomic = kv.atomic().check(entry).set(key, next);
    also(atomic);
    const result = await atomic.commit();
    if (result.ok) return next.generation;
  }
}
