// Real WebSockets against a served test app: frames are collected, and tests await the frame they
// expect (with a deadline that fails the test instead of hanging it), never a sleep. Every frame
// received must match its documented schema (realtime/events.ts), or reading frames throws.
import { createTestApp, type HttpClient, type TestAppOptions } from "./app.ts";
import { SERVER_EVENTS, type ServerEventType, serverFrame } from "../../realtime/events.ts";
import type { Member } from "./members.ts";

// deno-lint-ignore no-explicit-any
export type Frame = { type: string; id?: string; data: any };

/** Serves `fetch` on a free local port until disposed. */
export function serveApp(fetch: Deno.ServeHandler) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, fetch);
  return {
    url: `ws://127.0.0.1:${server.addr.port}/ws`,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** A complete test app served on a free port; disposing closes its sockets, the server, the app. */
export async function servedTestApp(options: TestAppOptions = {}) {
  const t0 = await createTestApp(options);
  const server = serveApp(t0.app.fetch);
  return {
    ...t0,
    url: server.url,
    async [Symbol.asyncDispose]() {
      await t0.deps.hub.close();
      await server[Symbol.asyncDispose]();
      await t0[Symbol.asyncDispose]();
    },
  };
}

const DEADLINE_MS = 10_000;

/** Why `frame` is not one the socket protocol documents, or null when it is. */
export function undocumentedFrame(frame: Frame): string | null {
  if (!Object.hasOwn(SERVER_EVENTS, frame?.type)) return `unknown type ${JSON.stringify(frame)}`;
  const parsed = serverFrame(frame.type as ServerEventType).safeParse(frame);
  return parsed.success
    ? null
    : `${frame.type}: ${JSON.stringify(parsed.error.issues)} in ${JSON.stringify(frame)}`;
}

export class TestSocket {
  readonly frames: Frame[] = [];
  readonly closed: Promise<CloseEvent>;
  #waiters = new Set<() => void>();
  /** Frames that do not match the AsyncAPI document's schema of their type. */
  readonly undocumented: string[] = [];

  private constructor(readonly socket: WebSocket) {
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      const problem = undocumentedFrame(frame);
      if (problem) this.undocumented.push(problem);
      this.frames.push(frame);
      for (const wake of this.#waiters) wake();
    };
    this.closed = new Promise((resolve) => socket.addEventListener("close", resolve));
  }

  /** Opens a socket as `token` (sent as ?token=); rejects when the handshake is refused. */
  static async open(url: string, token?: string): Promise<TestSocket> {
    const address = new URL(url);
    if (token) address.searchParams.set("token", token);
    const socket = new WebSocket(address);
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new Error("the handshake was refused"));
    });
    return new TestSocket(socket);
  }

  send(type: string, data: unknown, id?: string) {
    this.socket.send(JSON.stringify({ type, id, data }));
  }

  sendRaw(raw: string) {
    this.socket.send(raw);
  }

  /** Frames of `type` (matching `where`) received so far. */
  received(type: string, where: (frame: Frame) => boolean = () => true): Frame[] {
    if (this.undocumented.length > 0) {
      throw new Error(`contract: undocumented socket frames: ${this.undocumented.join("; ")}`);
    }
    return this.frames.filter((frame) => frame.type === type && where(frame));
  }

  /** Resolves once `count` frames of `type` matching `where` have arrived (past ones count). */
  waitFor(
    type: string,
    where: (frame: Frame) => boolean = () => true,
    count = 1,
  ): Promise<Frame[]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(wake);
        reject(
          new Error(
            `waited ${DEADLINE_MS} ms for ${count} × ${type}; got ${JSON.stringify(this.frames)}`,
          ),
        );
      }, DEADLINE_MS);
      const wake = () => {
        let found: Frame[];
        try {
          found = this.received(type, where);
        } catch (error) {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          return reject(error);
        }
        if (found.length < count) return;
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve(found);
      };
      this.#waiters.add(wake);
      wake();
    });
  }

  /** Resolves with the close event once the server closed the socket (fails after the deadline). */
  closedByServer(): Promise<CloseEvent> {
    let timer: ReturnType<typeof setTimeout>;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`waited ${DEADLINE_MS} ms for the server to close the socket`)),
        DEADLINE_MS,
      );
    });
    return Promise.race([this.closed, deadline]).finally(() => clearTimeout(timer));
  }

  /** A round trip: every frame this socket sent before has been handled once the pong is back. */
  async roundTrip() {
    const id = crypto.randomUUID();
    this.send("ping", {}, id);
    await this.waitFor("pong", (frame) => frame.data.ref === id);
    this.frames.splice(this.frames.findIndex((frame) => frame.data?.ref === id), 1);
  }

  async close() {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close();
    await this.closed;
  }

  async [Symbol.asyncDispose]() {
    await this.close();
  }
}

/** Makes `a` and `b` connected (an accepted connection request) over HTTP. */
export async function connect(http: HttpClient, a: Member, b: Member) {
  const sent = await http("POST", "/api/connections", {
    token: a.token,
    body: { toUserId: b.user.id },
  });
  if (sent.status !== 201) {
    throw new Error(`request failed: ${sent.status} ${JSON.stringify(sent.body)}`);
  }
  const accepted = await http("PATCH", `/api/connections/${sent.body.id}`, {
    token: b.token,
    body: { status: "accepted" },
  });
  if (accepted.status !== 200) throw new Error(`accept failed: ${accepted.status}`);
}
