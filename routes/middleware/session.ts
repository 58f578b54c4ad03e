// Who is calling: a Bearer token or the `session` cookie, verified and checked against revocation.
import { type Context, Hono, type MiddlewareHandler, type Schema } from "hono";
import { METHOD_NAME_ALL } from "hono/router";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { AppEnv, Session, SignedInEnv } from "../env.ts";
import type { Deps } from "../../deps.ts";
import { findUserById } from "../../db/users.ts";
import { Forbidden, Unauthorized } from "../../errors.ts";
import { readToken, type SessionClaims, signingKey } from "../../kv/auth/tokens.ts";
import { isTokenLive, touchSession } from "../../kv/auth/sessions.ts";
import { asGuard } from "./describe.ts";

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
  return claims && await isTokenLive(deps.kv, deps.sessions, claims, deps.clock.now())
    ? claims
    : null;
}

/** Sets `session` (or null) for every request; `signedIn` routers refuse requests without one. */
export function authenticate(deps: Deps): MiddlewareHandler<AppEnv> {
  return async function authenticate(c, next) {
    const presented = presentedToken(c);
    const claims = presented ? await sessionFromToken(deps, presented.token) : null;
    c.set("session", claims && presented ? { ...claims, via: presented.via } : null);
    if (claims) touchSession(deps.kv, deps.sessions, claims, deps.clock.now());
    await next();
  };
}

/**
 * A router whose every route needs a live session, declared once for the router: each of its
 * routes answers 401 without one, before its input is validated, and its handlers read the
 * session as `c.var.session`. A path or method it does not serve is still a 404.
 */
export function signedIn<S extends Schema, B extends string>(router: Hono<SignedInEnv, S, B>) {
  return guarded(router, asGuard(requireSignedIn, "signed-in"));
}

/** A router only administrators may call: 401 without a session, 403 unless the stored user is one. */
export function adminOnly<S extends Schema, B extends string>(
  deps: Deps,
  router: Hono<SignedInEnv, S, B>,
) {
  return guarded(router, asGuard(requireAdmin(deps), "admin"));
}

/** `router` behind `guard`, which runs first on exactly the routes the router serves. */
function guarded<S extends Schema, B extends string>(
  router: Hono<SignedInEnv, S, B>,
  guard: MiddlewareHandler<AppEnv>,
): Hono<SignedInEnv, S, B> {
  const outer = new Hono<AppEnv>();
  const served = new Set(
    router.routes.filter((route) => route.method !== METHOD_NAME_ALL)
      .map((route) => `${route.method} ${route.path}`),
  );
  for (const route of served) {
    const [method, path] = route.split(" ");
    outer.on(method, path, guard);
  }
  return outer.route("/", router as unknown as Hono<AppEnv>) as unknown as Hono<SignedInEnv, S, B>;
}

const requireSignedIn: MiddlewareHandler<AppEnv> = async function requireSignedIn(c, next) {
  if (!c.var.session) throw new Unauthorized();
  await next();
};

function requireAdmin(deps: Deps): MiddlewareHandler<AppEnv> {
  return async function requireAdmin(c, next) {
    const session = c.var.session;
    if (!session) throw new Unauthorized();
    const user = await findUserById(deps.database.db, session.sub);
    if (!user) throw new Unauthorized("This account no longer exists.");
    if (user.role !== "admin") throw new Forbidden("Only administrators may do this.");
    await next();
  };
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
