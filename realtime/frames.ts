// The client → server side of the socket protocol: parse and validate one frame, act on it as the
// socket's authenticated user, and answer a refused frame with an `error` event (never a crash).
import { z } from "zod";
import type { Deps } from "../deps.ts";
import {
  deliveredView,
  messageContent,
  readConversation,
  sayingSomething,
  sendMessage,
  signalTyping,
  tempId,
} from "../workflows/chat.ts";
import { DomainError, NotFound, RefusedFrame } from "../errors.ts";
import { spendWrite } from "../providers/cache.ts";
import { salePurchaseKey, saleStockHeadKey } from "../kv/keys.ts";
import { readPurchase, readSale } from "../kv/sales/stock.ts";
import { stockUpdate } from "../workflows/sales/catalogue.ts";
import { join, leave, queueInput, signal, SIGNALS } from "../workflows/matches.ts";
import { type Client, MAX_ROOMS_PER_SOCKET, type ServerFrame } from "./hub.ts";
import { id, unstorableField, zodFieldErrors } from "../input.ts";
import { inRootSpan, instruments } from "../telemetry.ts";

/** A larger frame closes its socket with 1009 (a message is at most 4000 characters). */
export const MAX_FRAME_BYTES = 32 * 1024;
/** Each socket may send this many frames in a burst, refilled at `FRAMES_PER_SECOND`. */
export const FRAME_BURST = 60;
export const FRAMES_PER_SECOND = 20;

const ref = z.union([z.string().max(100), z.number()]).optional();

/** Every frame a client may send, by `type`; `id` is echoed as `ref` in an error about it. */
export const clientFrame = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("resume"),
    id: ref,
    data: z.object({
      lastEventId: z.union([z.string().regex(/^\d{1,15}$/), z.number().int().min(0)])
        .transform(Number),
    }),
  }),
  z.object({
    type: z.literal("private-message"),
    id: ref,
    // Anything else in `data` (a `fromUserId`, say) is ignored: the sender is the socket's user.
    data: sayingSomething(z.object({ toUserId: id, tempId, ...messageContent })),
  }),
  z.object({
    type: z.literal("message-read"),
    id: ref,
    data: z.object({ conversationId: id, messageId: id }),
  }),
  z.object({ type: z.literal("typing"), id: ref, data: z.object({ toUserId: id }) }),
  z.object({ type: z.literal("ping"), id: ref, data: z.unknown().optional() }),
  // Matchmaking's queue, as POST and DELETE /api/match/queue, from the socket `found-match` comes to.
  z.object({ type: z.literal("join-queue"), id: ref, data: queueInput }),
  z.object({ type: z.literal("leave-queue"), id: ref, data: z.object({}).optional() }),
  z.object({ type: z.literal("subscribe"), id: ref, data: z.object({ saleId: id }) }),
  z.object({ type: z.literal("unsubscribe"), id: ref, data: z.object({ saleId: id }) }),
  // WebRTC signalling, relayed to the peer of a live match (SDP or ICE candidate, as the browser
  // produced it; the frame size limit bounds it).
  ...SIGNALS.map((type) =>
    z.object({
      type: z.literal(type),
      id: ref,
      data: z.object({ matchId: id, payload: z.json() }),
    })
  ),
]);

type ClientFrame = z.infer<typeof clientFrame>;

export const FRAME_TYPES = clientFrame.options.map((option) => option.shape.type.value);

/**
 * Frames of one socket waiting to be handled, at most: past this (or MAX_QUEUED_BYTES) a frame is
 * answered `rate-limited` on arrival and never queued, so a flood cannot grow a socket's memory.
 */
export const MAX_QUEUED_FRAMES = 256;
export const MAX_QUEUED_BYTES = 1024 * 1024;

/** The error frame for a frame refused on arrival because its socket's queue is full. */
export function overflowFrame(raw: unknown) {
  const error = rateLimited();
  return {
    type: "error",
    data: {
      ...error.extra,
      code: error.type,
      status: error.status,
      detail: error.message,
      ref: refOf(raw),
    },
  };
}

function rateLimited() {
  return frameError("rate-limited", `At most ${FRAMES_PER_SECOND} frames per second; slow down.`);
}

/** A token bucket per socket: a flood gets `rate-limited` errors instead of work. */
export class FrameBudget {
  #tokens = FRAME_BURST;
  #at = performance.now();

  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(
      FRAME_BURST,
      this.#tokens + ((now - this.#at) / 1000) * FRAMES_PER_SECOND,
    );
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/**
 * Handles one raw frame from `client`; never throws. Each frame starts a trace of its own (a socket
 * may live for hours: its frames are not one trace), linked to the request that opened the socket
 * (`opened`, its traceparent).
 */
export function handleFrame(
  deps: Deps,
  client: Client,
  raw: unknown,
  budget: FrameBudget,
  opened?: string,
) {
  return inRootSpan("ws.frame", { "enduser.id": client.userId }, async (span) => {
    let frame: ClientFrame | undefined;
    let outcome = "ok";
    try {
      if (typeof raw !== "string") {
        throw frameError(
          "binary-unsupported",
          "Send JSON text frames; binary frames are not read.",
        );
      }
      if (!budget.take()) throw rateLimited();
      frame = parseFrame(raw);
      span.updateName(`ws.frame ${frame.type}`);
      await act(deps, client, frame);
    } catch (error) {
      const described = describe(deps, client, error);
      outcome = described.code;
      client.send({ type: "error", data: { ...described, ref: frame?.id ?? refOf(raw) } });
    }
    const type = frame?.type ?? "(unparsed)";
    span.setAttributes({ "convene.frame": type, "convene.outcome": outcome });
    instruments.frames.add(1, { "convene.frame": type, "convene.outcome": outcome });
  }, opened);
}

async function act(deps: Deps, client: Client, frame: ClientFrame) {
  if (frame.type === "resume") {
    await deps.hub.resume(client, frame.data.lastEventId);
    return;
  }
  switch (frame.type) {
    case "private-message": {
      spendWrite(deps.cache, deps.config.RATE_LIMIT_API, client.userId, deps.clock.now());
      const { message, replayed } = await sendMessage(deps, client.userId, frame.data);
      // A fresh message is acknowledged through the sender's event log; a re-sent tempId here.
      if (replayed) {
        client.send({ type: "message-delivered", data: { ...deliveredView(message), replayed } });
      }
      return;
    }
    case "message-read":
      spendWrite(deps.cache, deps.config.RATE_LIMIT_API, client.userId, deps.clock.now());
      await readConversation(deps, client.userId, frame.data);
      return;
    case "typing":
      await signalTyping(deps, client.userId, frame.data.toUserId);
      return;
    case "ping":
      client.send({
        type: "pong",
        data: { ref: frame.id, at: new Date(deps.clock.now()).toISOString() },
      });
      return;
    case "join-queue":
      spendWrite(deps.cache, deps.config.RATE_LIMIT_API, client.userId, deps.clock.now());
      await join(deps, client.userId, frame.data.intent);
      client.send({
        type: "queue",
        data: { ref: frame.id, status: "queuing", intent: frame.data.intent },
      });
      return;
    case "leave-queue":
      spendWrite(deps.cache, deps.config.RATE_LIMIT_API, client.userId, deps.clock.now());
      await leave(deps, client.userId);
      client.send({ type: "queue", data: { ref: frame.id, status: "left" } });
      return;
    case "subscribe":
      await subscribeToSale(deps, client, frame.data.saleId);
      return;
    case "unsubscribe":
      await deps.hub.leave(client, saleRoom(frame.data.saleId));
      return;
    case "offer":
    case "answer":
    case "ice-candidate":
      await signal(deps, client.userId, frame.type, frame.data);
      return;
  }
}

const saleRoom = (saleId: string) => `sale:${saleId}`;

/** A sale's room sends a `purchase` line at most this often; those between are counted in it. */
export const PURCHASE_LINE_MS = 2_000;

/**
 * `subscribe`: the sale's stock now, then a `stock-update` whenever it changes, and a `purchase`
 * line when a unit is paid for (at most one per PURCHASE_LINE_MS; never who bought).
 */
async function subscribeToSale(deps: Deps, client: Client, saleId: string) {
  if (!await readSale(deps.kv, saleId)) throw new NotFound("No sale has this id.");
  // What the room last showed of the feed (the room renders once for all its sockets).
  let shown: { seq: number; at: number } | null = null;
  const purchaseLine = async (): Promise<ServerFrame[]> => {
    const purchase = await readPurchase(deps.kv, saleId);
    const now = Date.now();
    if (!purchase || (shown && (purchase.seq <= shown.seq || now - shown.at < PURCHASE_LINE_MS))) {
      return [];
    }
    const others = shown ? purchase.seq - shown.seq - 1 : 0;
    shown = { seq: purchase.seq, at: now };
    return [{
      type: "purchase",
      data: { saleId, item: purchase.item, place: purchase.place, others },
    }];
  };
  const joined = await deps.hub.join(
    client,
    saleRoom(saleId),
    [saleStockHeadKey(saleId), salePurchaseKey(saleId)],
    async (changed) => [
      ...(changed === null || changed.includes(0) ? [await stockUpdate(deps, saleId)] : []),
      ...(changed?.includes(1) ? await purchaseLine() : []),
    ],
  );
  if (!joined) {
    throw frameError(
      "too-many-subscriptions",
      `A socket may follow at most ${MAX_ROOMS_PER_SOCKET} sales; unsubscribe from one first.`,
    );
  }
}

function parseFrame(raw: string): ClientFrame {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw frameError("invalid-json", "The frame is not valid JSON.");
  }
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof type !== "string" || !(FRAME_TYPES as string[]).includes(type)) {
    throw frameError(
      "unknown-type",
      `Unknown frame type ${JSON.stringify(type)}; expected one of ${FRAME_TYPES.join(", ")}.`,
    );
  }
  const unstorable = unstorableField(value);
  const parsed = unstorable ? null : clientFrame.safeParse(value);
  if (!parsed?.success) {
    throw frameError("invalid-frame", `The ${type} frame is invalid.`, {
      errors: parsed ? zodFieldErrors(parsed.error) : [unstorable],
    });
  }
  return parsed.data;
}

function frameError(code: string, detail: string, extra: Record<string, unknown> = {}) {
  return new RefusedFrame(detail, code, extra);
}

function describe(deps: Deps, client: Client, error: unknown) {
  if (error instanceof DomainError) {
    return { ...error.extra, code: error.type, status: error.status, detail: error.message };
  }
  deps.log({
    level: "error",
    msg: "socket frame failed",
    userId: client.userId,
    error: error instanceof Error ? error.stack ?? error.message : String(error),
  });
  return { code: "internal", status: 500, detail: "The frame could not be handled; try again." };
}

/** The `id` of a frame that failed before it was validated, so the client can match the error. */
function refOf(raw: unknown): string | number | undefined {
  if (typeof raw !== "string") return undefined;
  try {
    const id = JSON.parse(raw)?.id;
    return typeof id === "string" || typeof id === "number" ? id : undefined;
  } catch {
    return undefined;
  }
}
