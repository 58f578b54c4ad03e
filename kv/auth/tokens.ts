// Session tokens: HS256 JWTs carrying the user id, a token id and the session generation.
import { errors, jwtVerify, SignJWT } from "jose";
import { newId } from "../../ids.ts";
import { Remembered } from "../remembered.ts";

export interface SessionClaims {
  /** User id. */
  sub: string;
  /** Token id, revocable on its own. */
  jti: string;
  /** Session generation the token belongs to. */
  gen: number;
  /** Issued at / expires at, seconds since the epoch. */
  iat: number;
  exp: number;
}

const keys = new Map<string, Promise<CryptoKey>>();

/** The HMAC key for `secret`, imported once per process (importing it per request costs ~40%). */
export function signingKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    keys.set(secret, key);
  }
  return key;
}

export async function issueToken(
  key: CryptoKey,
  session: { userId: string; generation: number },
  now: number,
  ttlSeconds: number,
): Promise<{ token: string; claims: SessionClaims }> {
  const iat = Math.floor(now / 1000);
  const claims: SessionClaims = {
    sub: session.userId,
    jti: newId(now),
    gen: session.generation,
    iat,
    exp: iat + ttlSeconds,
  };
  const token = await new SignJWT({ gen: claims.gen })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.sub)
    .setJti(claims.jti)
    .setIssuedAt(claims.iat)
    .setExpirationTime(claims.exp)
    .sign(key);
  return { token, claims };
}

/** Tokens an isolate has verified, by key: the same bytes always verify the same way. */
const verified = new WeakMap<CryptoKey, Remembered<string, SessionClaims>>();

/** Verified tokens remembered per key (a signature check and its parsing cost ~8 % of a request). */
const REMEMBERED_TOKENS = 10_000;

/** The claims of a well-signed, unexpired HS256 token; null for anything else (incl. `alg: none`). */
export async function readToken(
  key: CryptoKey,
  token: string,
  now: number,
): Promise<SessionClaims | null> {
  let known = verified.get(key);
  if (!known) verified.set(key, known = new Remembered(REMEMBERED_TOKENS));
  const remembered = known.get(token);
  // Expired as jose decides it: once the current second reaches `exp`.
  if (remembered) return Math.floor(now / 1000) < remembered.exp ? remembered : null;
  const claims = await verifyToken(key, token, now);
  if (claims) known.set(token, claims);
  return claims;
}

async function verifyToken(
  key: CryptoKey,
  token: string,
  now: number,
): Promise<SessionClaims | null> {
  try {
    const { payload } = await jwtVerify(token, key, {
      algorithms: ["HS256"],
      currentDate: new Date(now),
      requiredClaims: ["sub", "jti", "exp", "iat"],
    });
    if (typeof payload.gen !== "number" || !Number.isInteger(payload.gen)) return null;
    return payload as unknown as SessionClaims;
  } catch (error) {
    if (error instanceof errors.JOSEError) return null;
    throw error;
  }
}
