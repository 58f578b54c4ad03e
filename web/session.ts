// What every page of the console shares: the typed client (cookie session, same origin), the one
// socket of the signed-in user, and small helpers to call the API and to listen to events.
/// <reference lib="dom" />
import { useEffect } from "preact/hooks";
import { ApiProblem, conveneClient, problemOf } from "../client/http.ts";
import { ConveneSocket, type ServerEvent } from "../client/socket.ts";
import type { ServerEventType } from "../realtime/events.ts";

/** The API, as the signed-in browser (the httpOnly session cookie rides along). */
export const api = conveneClient(location.origin);

/** The JSON of a successful answer; an ApiProblem (status, code, field errors) otherwise. */
export async function ok<R extends { ok: boolean; json(): Promise<unknown> }>(
  pending: Promise<R>,
): Promise<Awaited<ReturnType<R["json"]>>> {
  const response = await pending;
  if (!response.ok) throw await problemOf(response as unknown as Response);
  return await response.json() as Awaited<ReturnType<R["json"]>>;
}

/** For answers without a body (204). */
export async function done(pending: Promise<{ ok: boolean }>): Promise<void> {
  const response = await pending;
  if (!response.ok) throw await problemOf(response as unknown as Response);
}

/** What to show a person for a failed call. */
export function explain(error: unknown): string {
  if (error instanceof ApiProblem) {
    const fields = error.errors.map((field) => `${field.path}: ${field.message}`).join("; ");
    return fields ? `${error.message} (${fields})` : error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

const RESUME_KEY = "convene.lastEventId";
let socket: ConveneSocket | null = null;

/**
 * The signed-in user's socket, opened once; it resumes after the last event this tab saw, also
 * across a reload (the id is kept in sessionStorage).
 */
export function liveSocket(): ConveneSocket {
  if (socket) return socket;
  const stored = Number(sessionStorage.getItem(RESUME_KEY));
  socket = new ConveneSocket({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`,
    lastEventId: Number.isFinite(stored) && stored > 0 ? stored : undefined,
  });
  socket.on("*", () => {
    if (socket?.lastEventId) sessionStorage.setItem(RESUME_KEY, String(socket.lastEventId));
  });
  return socket;
}

export function closeSocket() {
  socket?.close();
  socket = null;
  sessionStorage.removeItem(RESUME_KEY);
}

/** Calls `listener` for each socket event of `type` while the component is mounted. */
export function useEvent<T extends ServerEventType>(
  type: T,
  listener: (event: ServerEvent<T>) => void,
  deps: unknown[] = [],
) {
  useEffect(() => liveSocket().on(type, listener), deps);
}

/** The hash route: `#/chat/<userId>` → ["chat", "<userId>"]. */
export function route(): string[] {
  return location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
}

export function go(...parts: string[]) {
  location.hash = `#/${parts.map(encodeURIComponent).join("/")}`;
}

export const time = (iso: string) => new Date(iso).toLocaleTimeString();

/** Whole seconds from now until `iso` (never below 0). */
export const secondsUntil = (iso: string) =>
  Math.max(0, Math.ceil((new Date(iso).getTime() - Date.now()) / 1000));
