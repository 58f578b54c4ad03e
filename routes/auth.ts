// Identity: signup, login, logout, me, password change (the reference\'s "Identity" group).
import { type Context, Hono } from "hono";
import type { AppEnv, SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { findUserById } from "../db/users.ts";
import { NotFound, Unauthorized } from "../errors.ts";
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
import {
  currentGeneration,
  endOtherSessions,
  listSessions,
  readSessionRecord,
  recordSession,
  revokeToken,
} from "../kv/auth/sessions.ts";
import {
  changeEmail,
  emailChangeInput,
  resendConfirmation,
  sendConfirmation,
  verificationRequired,
  verifyEmail,
  verifyInput,
} from "../workflows/auth/verification.ts";
import {
  requestPasswordReset,
  resetInput,
  resetPassword,
  resetRequestInput,
} from "../workflows/auth/recovery.ts";
import { settledHistory } from "../workflows/history.ts";
import { approximatePlace, clientIp } from "./middleware/client-ip.ts";
import { clearSessionCookie, setSessionCookie, signedIn } from "./middleware/session.ts";
import { body, params } from "./middleware/validate.ts";
import { documented } from "./middleware/describe.ts";
import { session, user } from "./reference/schemas.ts";
import { z } from "zod";

const describe = documented("Identity");

const sessionParam = z.object({ id: z.string().min(1).max(100) });
const sessionView = z.object({
  id: z.string(),
  current: z.boolean(),
  createdAt: z.string(),
  lastSeenAt: z.string(),
  userAgent: z.string().nullable(),
  place: z.string().nullable(),
});

type Accounts = ReturnType<typeof accountsOf>;
const accountsOf = (deps: Deps) => ({ ...deps, db: deps.database.db, now: deps.clock.now });

export function authRoutes(deps: Deps) {
  const accounts = accountsOf(deps);
  const key = signingKey(deps.config.JWT_SECRET);

  /** A new session's token, recorded for its owner's list of sessions with where it came from. */
  async function startSession(c: Context, userId: string) {
    const generation = await currentGeneration(deps.kv, userId);
    const now = deps.clock.now();
    const issued = await issueToken(
      await key,
      { userId, generation },
      now,
      deps.config.SESSION_TTL_SECONDS,
    );
    await recordSession(deps.kv, userId, {
      jti: issued.claims.jti,
      generation,
      createdAt: now,
      expiresAt: issued.claims.exp * 1000,
      userAgent: c.req.header("user-agent")?.slice(0, 300) ?? null,
      place: approximatePlace(c),
    });
    deps.sessions.seen.set(issued.claims.jti, now); // seen as it began
    return issued;
  }

  return new Hono<AppEnv>()
    .post(
      "/signup",
      describe({
        summary: "Create an account",
        description:
          "Sets the httpOnly `session` cookie and returns a bearer token as well, and mails a link that confirms the address (`emailVerified` is false until it is opened).",
        answers: { 201: session },
        errors: { 409: ["email-taken"] },
      }),
      body(signupInput),
      async (c) => {
        const user = await signup(accounts, c.req.valid("json"));
        if (verificationRequired(deps.config)) {
          await sendConfirmation(accounts, user, user.email, false);
        }
        const { token } = await startSession(c, user.id);
        setSessionCookie(c, deps, token);
        return c.json({ user: publicUser(user, deps.config), token }, 201);
      },
    )
    .post(
      "/login",
      describe({
        summary: "Sign in",
        description: "401 is the same for an unknown email and a wrong password. Failed attempts " +
          "are limited per account and address and per address (RATE_LIMIT_LOGIN), and per account from all addresses (RATE_LIMIT_LOGIN_ACCOUNT, higher, so a stranger cannot lock the owner out): 429 with `Retry-After`.",
        answers: { 200: session },
        errors: { 401: ["unauthorized"], 403: ["account-suspended"], 429: ["rate-limited"] },
      }),
      body(loginInput),
      async (c) => {
        const user = await login(accounts, { ...c.req.valid("json"), ip: clientIp(c) });
        const { token } = await startSession(c, user.id);
        setSessionCookie(c, deps, token);
        return c.json({ user: publicUser(user, deps.config), token });
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
        return c.json({ user: row ? publicUser(row, deps.config) : null });
      },
    )
    .post(
      "/forgot-password",
      describe({
        summary: "Ask for a password-reset link by email",
        description:
          "Mails a link to the account with this address, if there is one; the answer is the same either way. The link works once, for 30 minutes, and only while it is the latest asked for (a new request or a password change ends it). Each address asked about, and each caller, may ask RATE_LIMIT_PASSWORD_RESET times (5 an hour): 429 with `Retry-After` past it.",
        answers: { 202: z.object({ message: z.string() }) },
        errors: { 429: ["rate-limited"] },
      }),
      body(resetRequestInput),
      async (c) => {
        await requestPasswordReset(accounts, { ...c.req.valid("json"), ip: clientIp(c) });
        return c.json({
          message: "If an account has this address, a link to reset its password is on its way.",
        }, 202);
      },
    )
    .post(
      "/reset-password",
      describe({
        summary: "Set a new password with a reset link's token; every session ends",
        description:
          "The token is used up by the first reset that presents it: a second one, even at the same moment, is a 400 naming `token`, as is an expired or replaced one. Every session of the account ends, and its owner is mailed.",
        answers: { 204: {} },
      }),
      body(resetInput),
      async (c) => {
        await resetPassword(accounts, { ...c.req.valid("json"), ip: clientIp(c) });
        return c.body(null, 204);
      },
    )
    .post(
      "/verify-email",
      describe({
        summary: "Confirm an address with its emailed link's token",
        description:
          "Confirms the member's address, or makes the new address they asked for theirs. The link works once, for 24 hours, and only while it is the latest; otherwise 400 naming `token`. 409 `email-taken` when another account took a new address meanwhile.",
        answers: { 200: z.object({ user }) },
        errors: { 409: ["email-taken"] },
      }),
      body(verifyInput),
      async (c) => {
        const row = await verifyEmail(accounts, c.req.valid("json").token);
        return c.json({ user: publicUser(row, deps.config) });
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
        return c.json({ user: publicUser(user, deps.config) });
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
    .get(
      "/sessions",
      describe({
        summary: "Where this account is signed in: its live sessions, newest first",
        description:
          "Each with when it began and was last seen (to the minute), its user agent, and an approximate place when the platform in front gives one; `current` marks the caller's. Never a token.",
        answers: { 200: z.object({ items: z.array(sessionView) }) },
      }),
      async (c) => {
        const session = c.var.session;
        const items = await listSessions(deps.kv, session.sub, deps.clock.now());
        return c.json({
          items: items.map((record) => ({
            id: record.jti,
            current: record.jti === session.jti,
            createdAt: new Date(record.createdAt).toISOString(),
            lastSeenAt: new Date(record.lastSeenAt).toISOString(),
            userAgent: record.userAgent,
            place: record.place,
          })),
        });
      },
    )
    .delete(
      "/sessions/:id",
      describe({
        summary: "End one of one's sessions (a device signed out at once)",
        answers: { 204: {} },
        errors: { 404: ["not-found"] },
      }),
      params(sessionParam),
      async (c) => {
        const session = c.var.session;
        const { id } = c.req.valid("param");
        const record = await readSessionRecord(deps.kv, session.sub, id);
        if (!record) throw new NotFound("No session of yours has this id.");
        await revokeToken(deps.kv, deps.sessions, id, record.expiresAt, deps.clock.now());
        await announceSessionsChanged(deps.kv, session.sub, deps.clock.now);
        if (id === session.jti) clearSessionCookie(c, deps);
        return c.body(null, 204);
      },
    )
    .post(
      "/sessions/end-others",
      describe({
        summary: "End every session of this account but the caller's",
        answers: { 204: {} },
      }),
      async (c) => {
        const session = c.var.session;
        await endOtherSessions(accounts, deps.sessions, session.sub, session.jti);
        await announceSessionsChanged(deps.kv, session.sub, deps.clock.now);
        return c.body(null, 204);
      },
    )
    .post(
      "/verify-email/resend",
      describe({
        summary: "Mail the confirmation link again (3 an hour)",
        answers: { 202: z.object({ sentTo: z.string() }) },
        errors: { 409: ["already-verified"], 429: ["rate-limited"] },
      }),
      async (c) => {
        return c.json(await resendConfirmation(accounts, c.var.session.sub), 202);
      },
    )
    .put(
      "/email",
      describe({
        summary: "Change one's address: it takes effect once its emailed link is opened",
        description:
          "The password confirms it. Until the new address is confirmed, the old one stays the account's (`pendingEmail` shows the new one).",
        answers: { 202: z.object({ pendingEmail: z.string() }) },
        errors: { 409: ["email-taken"] },
      }),
      body(emailChangeInput),
      async (c) => {
        return c.json(await changeEmail(accounts, c.var.session.sub, c.req.valid("json")), 202);
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
