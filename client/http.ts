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

/** `api.posts.$post({ json: { text } })`, `api.users[":id"].$get({ param: { id } })`, … */
export function conveneClient(baseUrl: string, options: ClientOptions = {}) {
  return hc<AppType>(baseUrl, {
    ...(options.fetch ? { fetch: options.fetch } : {}),
    headers: {
      ...options.headers,
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    },
    init: { credentials: "include" },
  });
}

export type ConveneClient = ReturnType<typeof conveneClient>;

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
