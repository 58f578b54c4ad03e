// What a request carries through the middleware stack, for every router.
import type { Deps } from "../deps.ts";
import type { SessionClaims } from "../kv/auth/tokens.ts";

/** A caller's verified session, and whether it came as a Bearer token or the cookie. */
export interface Session extends SessionClaims {
  via: "bearer" | "cookie";
}

export interface AppEnv {
  Variables: { deps: Deps; requestId: string; session: Session | null };
}

/** The env of a signed-in router (routes/middleware/session.ts `signedIn`): a session is set. */
export interface SignedInEnv {
  Variables: { deps: Deps; requestId: string; session: Session };
}
