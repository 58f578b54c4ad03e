// The realtime client: one socket to `GET /ws` that reconnects with backoff when the network drops
// or the server goes away, resumes after the last durable event it saw (so nothing is missed or
// seen twice), re-sends unacknowledged messages under their `tempId` (the server answers a re-sent
// tempId with the same message), and re-subscribes to the sales it followed.
import type { z } from "zod";
import type { SERVER_EVENTS, ServerEventType } from "../realtime/events.ts";

/** A server event, typed by its `type` from the schemas the AsyncAPI document is made of. */
export type ServerEvent<T extends ServerEventType = ServerEventType> = {
  [K in T]: { type: K; id?: string; data: z.output<(typeof SERVER_EVENTS)[K][1]> };
}[T];

export type Delivered = ServerEvent<"message-delivered">["data"];
export type SocketState = "connecting" | "open" | "reconnecting" | "closed";

export interface SocketOptions {
  /** `ws(s)://host/ws`. */
  url: string;
  /** A bearer token, sent as `?token=` (browsers cannot set headers on a socket). */
  token?: string;
  /** Resume after this event id on the first connection (one kept from an earlier page load). */
  lastEventId?: number;
  /** Reconnect delays: doubling from `firstMs` up to `maxMs`, each jittered. */
  backoff?: { firstMs?: number; maxMs?: number };
  /** How long `sendMessage` waits for its ack, across reconnects. */
  ackTimeoutMs?: number;
  WebSocket?: typeof WebSocket;
}

/** Close codes after which reconnecting cannot help. */
const FINAL_CLOSES = new Map([
  [4001, "the session ended"],
  [4029, "too many sockets for this user"],
  [1008, "refused by policy"],
]);

interface Pending {
  frame: string;
  resolve: (delivered: Delivered) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** A frame the server refused (`error`), as an Error. */
export class FrameRefused extends Error {
  override name = "FrameRefused";
  constructor(readonly code: string, detail: string, readonly data: Record<string, unknown>) {
    super(detail);
  }
}

export class ConveneSocket {
  #socket: WebSocket | null = null;
  #state: SocketState = "connecting";
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastEventId: number | null;
  readonly #pending = new Map<string, Pending>();
  readonly #sales = new Set<string>();
  readonly #listeners = new Map<string, Set<(event: ServerEvent) => void>>();
  readonly #stateListeners = new Set<(state: SocketState, reason?: string) => void>();
  readonly #WebSocket: typeof WebSocket;

  constructor(readonly options: SocketOptions) {
    this.#lastEventId = options.lastEventId ?? null;
    this.#WebSocket = options.WebSocket ?? WebSocket;
    this.#open();
  }

  get state(): SocketState {
    return this.#state;
  }

  /** The last durable event seen: keep it to resume from after a page load. */
  get lastEventId(): number | null {
    return this.#lastEventId;
  }

  /** Calls `listener` for each event of `type` (each durable event once); returns its remover. */
  on<T extends ServerEventType>(type: T | "*", listener: (event: ServerEvent<T>) => void) {
    const set = this.#listeners.get(type) ?? new Set();
    set.add(listener as (event: ServerEvent) => void);
    this.#listeners.set(type, set);
    return () => set.delete(listener as (event: ServerEvent) => void);
  }

  /** Resolves once the socket is open (at once if it is); rejects if it closes for good first. */
  opened(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.#state === "open") return resolve();
      if (this.#state === "closed") return reject(new Error("the socket is closed"));
      const stop = this.onState((state, reason) => {
        if (state === "open") resolve();
        else if (state === "closed") reject(new Error(`the socket closed: ${reason}`));
        else return;
        stop();
      });
    });
  }

  /** Calls `listener` whenever the connection opens, drops, reconnects or closes for good. */
  onState(listener: (state: SocketState, reason?: string) => void) {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /**
   * Sends a chat message; resolves with its ack (`message-delivered`) once the server has it,
   * however many reconnects that takes. Rejects with FrameRefused when the server refuses it.
   * `attachmentIds` are private files uploaded with `POST /api/attachments` (text may then be "").
   */
  sendMessage(
    toUserId: string,
    text: string,
    tempId: string = crypto.randomUUID(),
    options: { attachmentIds?: string[] } = {},
  ) {
    return new Promise<Delivered>((resolve, reject) => {
      if (this.#state === "closed") return reject(new Error("the socket is closed"));
      const frame = JSON.stringify({
        type: "private-message",
        id: tempId,
        data: { toUserId, tempId, text, ...options },
      });
      const timer = setTimeout(() => {
        this.#pending.delete(tempId);
        reject(new Error(`no ack for message ${tempId} within the timeout`));
      }, this.options.ackTimeoutMs ?? 30_000);
      this.#pending.set(tempId, { frame, resolve, reject, timer });
      if (this.#state === "open") this.#socket!.send(frame);
    });
  }

  /** Sends an ephemeral frame now (typing, read receipts, signalling); false while disconnected. */
  send(type: string, data: unknown, id?: string): boolean {
    if (this.#state !== "open") return false;
    this.#socket!.send(JSON.stringify({ type, id, data }));
    return true;
  }

  /** Follows a sale's stock (`stock-update`), again after every reconnect. */
  subscribe(saleId: string) {
    this.#sales.add(saleId);
    this.send("subscribe", { saleId });
  }

  unsubscribe(saleId: string) {
    this.#sales.delete(saleId);
    this.send("unsubscribe", { saleId });
  }

  /** Closes for good: no reconnect; unacknowledged messages are rejected. */
  close(reason = "closed by the client") {
    if (this.#state === "closed") return;
    this.#finish(reason);
    this.#socket?.close(1000, "bye");
  }

  #open() {
    const url = new URL(this.options.url);
    if (this.options.token) url.searchParams.set("token", this.options.token);
    if (this.#lastEventId !== null) url.searchParams.set("lastEventId", String(this.#lastEventId));
    const socket = new this.#WebSocket(url);
    this.#socket = socket;
    socket.onopen = () => {
      if (this.#socket !== socket) return;
      this.#attempt = 0;
      this.#setState("open");
      for (const saleId of this.#sales) {
        socket.send(JSON.stringify({ type: "subscribe", data: { saleId } }));
      }
      for (const pending of this.#pending.values()) socket.send(pending.frame);
    };
    socket.onmessage = (message) => {
      if (this.#socket === socket) this.#receive(JSON.parse(String(message.data)));
    };
    socket.onclose = (event) => {
      if (this.#socket !== socket || this.#state === "closed") return;
      const final = FINAL_CLOSES.get(event.code);
      if (final) return this.#finish(final);
      this.#setState("reconnecting", event.reason || `closed (${event.code})`);
      const { firstMs = 250, maxMs = 10_000 } = this.options.backoff ?? {};
      const delay = Math.min(maxMs, firstMs * 2 ** this.#attempt++) * (0.5 + Math.random() / 2);
      this.#timer = setTimeout(() => this.#open(), delay);
    };
  }

  #receive(event: ServerEvent) {
    if (event.id !== undefined) {
      const id = Number(event.id);
      if (this.#lastEventId !== null && id <= this.#lastEventId) return; // seen before the drop
      this.#lastEventId = id;
    }
    if (event.type === "message-delivered") this.#settle(event.data.tempId, event.data);
    if (event.type === "error") {
      const { code, detail, ref } = event.data;
      if (typeof ref === "string" && this.#pending.has(ref)) {
        this.#settle(ref, new FrameRefused(code, detail, event.data));
      }
    }
    for (const listener of this.#listeners.get(event.type) ?? []) listener(event);
    for (const listener of this.#listeners.get("*") ?? []) listener(event);
    // The close (4001) that follows may be lost with the connection: the event alone is final.
    if (event.type === "session-ended") this.close(FINAL_CLOSES.get(4001));
  }

  #settle(tempId: string, outcome: Delivered | Error) {
    const pending = this.#pending.get(tempId);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.#pending.delete(tempId);
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
  }

  #finish(reason: string) {
    clearTimeout(this.#timer);
    this.#setState("closed", reason);
    for (const tempId of [...this.#pending.keys()]) {
      this.#settle(tempId, new Error(`the socket closed (${reason}) before the ack`));
    }
  }

  #setState(state: SocketState, reason?: string) {
    this.#state = state;
    for (const listener of this.#stateListeners) listener(state, reason);
  }
}
