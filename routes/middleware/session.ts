// Who is calling: a Bearer token or the `session` cookie, verified and checked against revocation.
import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { AppEnv, Session } from "../env.ts";
import type { Deps } from "../../deps.ts";
import { findUserById } from "../../db/users.ts";
import { Forbidden, Unauthorized } from "../../errors.ts";
import { readToken, type SessionClaims, signingKey } from "../../kv/auth/tokens.ts";
import { isTokenLive } from "../../kv/auth/sessions.ts";

export const SESSION_COOKIE = "session";

/** The raw token of a request and where it came from (Bearer wins over the cookie). */
export function presentedToken(c: Context): { token: string; via: Session["via"] } | null {
  const header = c.req.header("authorization");
  if (header) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match ? { token: match[1], via: "bearer" } : null;
  }
  const cookie = getCookie(c, SESSION_COOKIE);
  return cookie ? { token: cookie, via: "cookie" } : null;
}

/** Resolves a token to a live session, or null. */
export async function sessionFromToken(deps: Deps, token: string): Promise<SessionClaims | null> {
  const claims = await readToken(
    await signingKey(deps.config.JWT_SECRET),
    token,
    deps.clock.now(),
  );
  return claims && await isTokenLive(deps.kv, claims) ? claims : null;
}

/** Sets `session` (or null) for every request; routes that need a user call `requireSession`. */
export function authenticate(deps: Deps): MiddlewareHandler<AppEnv> {
  return async function authenticate(c, next) {
    const presented = presentedToken(c);
    const claims = presented ? await sessionFromToken(deps, presented.token) : null;
    c.set("session", claims && presented ? { ...claims, via: presented.via } : null);
    await next();
  };
}

/**
 * 401 for a request without a live session, before its input is validated. Routers apply it to
 * their own paths, so an unknown path is still a 404.
 */
export const signedIn: MiddlewareHandler<AppEnv> = async function signedIn(c, next) {
  requireSession(c);
  await next();
};

export function requireSession(c: Context<AppEnv>): Session {
  const session = c.get("session");
  if (!session) throw new Unauthorized();
  return session;
}

export function setSessionCookie(c: Context, deps: Deps, token: string) {
  setCookie(c, SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: "Lax",
    secure: deps.config.production,
    path: "/",
    maxAge: deps.config.SESSION_TTL_SECONDS,
  });
}

export function clearSessionCookie(c: Context, deps: Deps) {
  deleteCookie(c, SESSION_COOKIE, { path: "/", secure: deps.config.production });
}

/** Admin-only routes: 401 without a session, 403 unless the stored user is an admin. */
export function requireAdmin(deps: Deps): MiddlewareHandler<AppEnv> {
  return async function requireAdmin(c, next) {
    const session = requireSession(c);
    const user = await findUserById(deps.database.db, session.sub);
    if (!user) throw new Unauthorized("This account no longer exists.");
    if (user.role !== "admin") throw new Forbidden("Only administrators may do this.");
    await next();
  };
}
