// Identity: signup, login, logout, me, password change (the reference\'s "Identity" group).
import { Hono } from "hono";
import type { AppEnv, SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { findUserById } from "../db/users.ts";
import { Unauthorized } from "../errors.ts";
import {
  accountDeletionInput,
  changePassword,
  deleteAccount,
  login,
  loginInput,
  passwordChangeInput,
  publicUser,
  signup,
  signupInput,
} from "../workflows/auth/accounts.ts";
import { issueToken, signingKey } from "../kv/auth/tokens.ts";
import { announceSessionsChanged } from "../kv/events.ts";
import { currentGeneration, revokeToken } from "../kv/auth/sessions.ts";
import { settledHistory } from "../workflows/history.ts";
import { clientIp } from "./middleware/client-ip.ts";
import { clearSessionCookie, setSessionCookie, signedIn } from "./middleware/session.ts";
import { body } from "./middleware/validate.ts";
import { documented } from "./middleware/describe.ts";
import { session, user } from "./reference/schemas.ts";
import { z } from "zod";

const describe = documented("Identity");

type Accounts = ReturnType<typeof accountsOf>;
const accountsOf = (deps: Deps) => ({ ...deps, db: deps.database.db, now: deps.clock.now });

export function authRoutes(deps: Deps) {
  const accounts = accountsOf(deps);
  const key = signingKey(deps.config.JWT_SECRET);

  async function startSession(userId: string) {
    const generation = await currentGeneration(deps.kv, userId);
    const now = deps.clock.now();
    return await issueToken(
      await key,
      { userId, generation },
      now,
      deps.config.SESSION_TTL_SECONDS,
    );
  }

  return new Hono<AppEnv>()
    .post(
      "/signup",
      describe({
        summary: "Create an account",
        description: "Sets the httpOnly `session` cookie and returns a bearer token as well.",
        answers: { 201: session },
        errors: { 409: ["email-taken"] },
      }),
      body(signupInput),
      async (c) => {
        const user = await signup(accounts, c.req.valid("json"));
        const { token } = await startSession(user.id);
        setSessionCookie(c, deps, token);
        return c.json({ user: publicUser(user), token }, 201);
      },
    )
    .post(
      "/login",
      describe({
        summary: "Sign in",
        description: "401 is the same for an unknown email and a wrong password. Failed attempts " +
          "are limited per account and address and per address (RATE_LIMIT_LOGIN), and per account from all addresses (RATE_LIMIT_LOGIN_ACCOUNT, higher, so a stranger cannot lock the owner out): 429 with `Retry-After`.",
        answers: { 200: session },
        errors: { 401: ["unauthorized"], 429: ["rate-limited"] },
      }),
      body(loginInput),
      async (c) => {
        const user = await login(accounts, { ...c.req.valid("json"), ip: clientIp(c) });
        const { token } = await startSession(user.id);
        setSessionCookie(c, deps, token);
        return c.json({ user: publicUser(user), token });
      },
    )
    .get(
      "/session",
      describe({
        summary: "Who is signed in, if anyone",
        description: "200 either way (`user` is null when signed out), so a page can ask " +
          "without an error; GET /api/auth/me answers 401 instead.",
        answers: { 200: z.object({ user: user.nullable() }) },
      }),
      async (c) => {
        const session = c.var.session;
        const row = session ? await findUserById(await settledHistory(deps), session.sub) : null;
        return c.json({ user: row ? publicUser(row) : null });
      },
    )
    .route("/", signedIn(ownAccountRoutes(deps, accounts)));
}

/** What a signed-in user does with their own account and session. */
function ownAccountRoutes(deps: Deps, accounts: Accounts) {
  return new Hono<SignedInEnv>()
    .post(
      "/logout",
      describe({ summary: "Sign out: the token is revoked at once", answers: { 204: {} } }),
      async (c) => {
        const session = c.var.session;
        await revokeToken(
          deps.kv,
          deps.sessions,
          session.jti,
          session.exp * 1000,
          deps.clock.now(),
        );
        await announceSessionsChanged(deps.kv, session.sub, deps.clock.now);
        clearSessionCookie(c, deps);
        return c.body(null, 204);
      },
    )
    .get(
      "/me",
      describe({ summary: "The signed-in account", answers: { 200: z.object({ user }) } }),
      async (c) => {
        const session = c.var.session;
        const user = await findUserById(await settledHistory(deps), session.sub); // a grant just paid for
        if (!user) throw new Unauthorized("This account no longer exists.");
        return c.json({ user: publicUser(user) });
      },
    )
    .delete(
      "/me",
      describe({
        summary: "Delete one's account (the password confirms it)",
        answers: { 204: {} },
        errors: { 401: ["unauthorized"], 429: ["rate-limited"] },
      }),
      body(accountDeletionInput),
      async (c) => {
        await deleteAccount(accounts, c.var.session.sub, c.req.valid("json"));
        clearSessionCookie(c, deps);
        return c.body(null, 204);
      },
    )
    .put(
      "/password",
      describe({
        summary: "Change the password; every other session is revoked",
        answers: { 204: {} },
        errors: { 401: ["unauthorized"], 429: ["rate-limited"] },
      }),
      body(passwordChangeInput),
      async (c) => {
        const session = c.var.session;
        await changePassword(accounts, session.sub, c.req.valid("json"), {
          keepJti: session.jti,
          ip: clientIp(c),
        });
        return c.body(null, 204);
      },
    );
}
