// The typed HTTP client: every route of the app with its inputs and answers, from the route tree's
// own types (hc<AppType>), so a call the server would refuse for its shape fails to type-check.
import { hc } from "hono/client";
import type { AppType } from "../app.ts";

export interface ClientOptions {
  /** A bearer token (from signup or login); browsers may rely on the session cookie instead. */
  token?: string;
  /** Another fetch (a test's in-memory app, a proxy). */
  fetch?: typeof fetch;
  headers?: Record<string, string>;
}

/** The empty input: what a part with no required field accepts. */
type Nothing = Record<never, never>;

/** A part of a call's input (`query`, say) whose every field is optional may be left out. */
type Loosened<A> = A extends object ?
    & { [K in keyof A as Nothing extends A[K] ? K : never]?: A[K] }
    & { [K in keyof A as Nothing extends A[K] ? never : K]: A[K] }
  : A;

/**
 * An answer with no body (204, 205, 304) has no JSON to read: no `json()`. (`text()` stays, for
 * reading a problem when the call failed after all: errors are not part of the route's types.)
 */
type Answer<R> = R extends { status: 204 | 205 | 304 } ? Omit<R, "json"> : R;

/** One route's call, its argument optional when nothing in it is required. */
type Call<A, O, R> = Nothing extends Loosened<NonNullable<A>>
  ? (args?: Loosened<NonNullable<A>>, options?: O) => Promise<Answer<R>>
  : (args: Loosened<NonNullable<A>>, options?: O) => Promise<Answer<R>>;

/** Hono's typed client (`hc`), each call retyped by `Call`; `$url` and the like as they are. */
type Calls<C> = {
  [K in keyof C]: C[K] extends (args: infer A, options?: infer O) => Promise<infer R>
    ? Call<A, O, R>
    // deno-lint-ignore no-explicit-any
    : C[K] extends (...args: any[]) => unknown ? C[K]
    : Calls<C[K]>;
};

/** Every route: `api.posts.$post({ json: { text } })`, `api.conversations.$get()`, … */
export type ConveneClient = Calls<ReturnType<typeof hc<AppType>>>;

/** `api.posts.$post({ json: { text } })`, `api.users[":id"].$get({ param: { id } })`, … */
export function conveneClient(baseUrl: string, options: ClientOptions = {}): ConveneClient {
  return hc<AppType>(baseUrl, {
    ...(options.fetch ? { fetch: options.fetch } : {}),
    headers: {
      ...options.headers,
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
    init: { credentials: "include" },
  }) as ConveneClient;
}

/** An answer's problem details when it failed, for `if (!response.ok) throw await problem(r)`. */
export async function problemOf(
  response: Pick<Response, "status" | "headers" | "text">,
): Promise<ApiProblem> {
  const type = response.headers.get("content-type") ?? "";
  const text = await response.text();
  const body = type.includes("json") ? JSON.parse(text) : { detail: text };
  return new ApiProblem(response.status, body);
}

/** A failed call: `code` says what went wrong for programs, `message` for people. */
export class ApiProblem extends Error {
  override name = "ApiProblem";
  readonly code: string;
  readonly errors: { path: string; message: string }[];

  constructor(readonly status: number, readonly body: Record<string, unknown>) {
    super(String(body.detail ?? `HTTP ${status}`));
    this.code = String(body.code ?? "unknown");
    this.errors = Array.isArray(body.errors) ? body.errors : [];
  }
}
