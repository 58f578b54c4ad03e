// GET /ws: authenticates before upgrading (cookie, Bearer or ?token=), then binds the socket to
// that user for life; frames go to realtime/frames.ts, events come from the hub.
import { type Context, Hono } from "hono";
import { z } from "zod";
import { presencePeers } from "../kv/graph.ts";
import { readPresence } from "../kv/presence.ts";
import { currentHead } from "../kv/events.ts";
import { upgradeWebSocket } from "hono/deno";
import type { AppEnv, SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { Forbidden, Unauthorized, UpgradeRequired } from "../errors.ts";
import {
  FrameBudget,
  handleFrame,
  MAX_FRAME_BYTES,
  MAX_QUEUED_BYTES,
  MAX_QUEUED_FRAMES,
  overflowFrame,
} from "../realtime/frames.ts";
import { type Client, TOO_MANY_SOCKETS, TooManySockets } from "../realtime/hub.ts";
import type { WSContext } from "hono/ws";
import { presentedToken, sessionFromToken, signedIn } from "./middleware/session.ts";
import { query } from "./middleware/validate.ts";
import { id, parseInput } from "../input.ts";
import { documented } from "./middleware/describe.ts";
import { PRESENCE_STATUSES } from "../kv/presence.ts";
import { traceparent } from "../telemetry.ts";

const describe = documented("Realtime");

/** `?lastEventId=`: the id of the last durable event the client has, to resume after it. */
const upgradeQuery = z.object({
  lastEventId: z.string().regex(/^\d{1,15}$/, "must be an event id (a whole number)")
    .transform(Number).optional(),
});

/** The resume point of an upgrade; a 400 naming `lastEventId` when it is not an event id. */
const resumePoint = (c: Context) =>
  parseInput(upgradeQuery, { lastEventId: c.req.query("lastEventId") }, "query").lastEventId;

const presenceQuery = z.object({
  userIds: z.string().max(10_200).transform((ids) => ids.split(","))
    .pipe(z.array(id).min(1).max(100, "at most 100 ids")),
});

/** Deno pings every socket this often and closes one that does not answer in time. */
export const IDLE_TIMEOUT_SECONDS = 30;

export function realtimeRoutes(deps: Deps) {
  const trusted = new Set(
    [deps.config.PUBLIC_URL, ...deps.config.CORS_ORIGINS].map((origin) => new URL(origin).origin),
  );
  return new Hono<AppEnv>()
    .route("/api/presence", signedIn(presenceRoutes(deps)))
    .get(
      "/ws",
      describe({
        summary: "The realtime socket (see /asyncapi.json)",
        description:
          "Authenticated by the session cookie, `Authorization: Bearer`, or `?token=` (browsers cannot set headers on a socket). `?lastEventId=` resumes after that durable event. A cookie from an untrusted origin is refused (403).",
        headers: { Upgrade: { description: "`websocket`", required: true } },
        answers: { 101: { description: "Switching protocols: the socket is open." } },
        errors: {
          400: ["invalid-request"],
          401: ["unauthorized"],
          403: ["forbidden"],
          426: ["upgrade-required"],
        },
      }),
      async (c, next) => {
        // Browsers cannot set headers on a WebSocket: the token may come as ?token= instead.
        const fromQuery = c.req.query("token");
        const presented = presentedToken(c) ??
          (fromQuery ? { token: fromQuery, via: "bearer" as const } : null);
        const claims = presented ? await sessionFromToken(deps, presented.token) : null;
        if (!claims || !presented) throw new Unauthorized();
        c.set("session", { ...claims, via: presented.via });
        // A cookie rides along on a cross-site handshake too: only trusted pages may use it.
        const origin = c.req.header("origin");
        if (
          presented.via === "cookie" && origin && origin !== new URL(c.req.url).origin &&
          !trusted.has(origin)
        ) {
          throw new Forbidden("Cross-site WebSocket refused: connect from a trusted origin.");
        }
        resumePoint(c); // refused before the upgrade, not after it
        if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
          throw new UpgradeRequired(
            "GET /ws is a WebSocket endpoint: send an Upgrade: websocket handshake.",
            "websocket",
          );
        }
        await next();
      },
      upgradeWebSocket(async (c) => {
        const session = c.get("session")!;
        // Live from the upgrade: without a resume point the socket starts at the user's head as
        // it is before the 101, so an event committed between the 101 and the hub's registration
        // (which reads the head again) is replayed to it, not skipped.
        const lastEventId = resumePoint(c) ?? await currentHead(deps.kv, session.sub);
        const budget = new FrameBudget();
        // The upgrade request's span: each frame's own trace links back to it.
        const opened = traceparent();
        let client: Promise<Client | null> = Promise.resolve(null);
        let refused = false;
        // Frames of one socket are handled one after another, so its messages keep their order;
        // the queue is bounded (a flood past it is refused on arrival, never held).
        let queue = Promise.resolve();
        let queued = 0;
        let queuedBytes = 0;
        return {
          onOpen(_event, socket) {
            client = deps.hub.connect(session, socket, lastEventId).catch((error) => {
              refuseConnect(deps, socket, error);
              return null;
            });
          },
          onMessage(event, socket) {
            if (refused) return;
            // Deno hands over a frame only once it is whole: close on the first one over the
            // limit, so no more arrive (the README states the bound this leaves).
            if (frameSize(event.data) > MAX_FRAME_BYTES) {
              refused = true;
              socket.close(MESSAGE_TOO_BIG, `frames are limited to ${MAX_FRAME_BYTES} bytes`);
              return;
            }
            const size = frameSize(event.data);
            if (queued >= MAX_QUEUED_FRAMES || queuedBytes + size > MAX_QUEUED_BYTES) {
              socket.send(JSON.stringify(overflowFrame(event.data)));
              return;
            }
            queued++;
            queuedBytes += size;
            queue = queue.then(async () => {
              const connected = await client;
              if (connected) await handleFrame(deps, connected, event.data, budget, opened);
            }).finally(() => {
              queued--;
              queuedBytes -= size;
            });
          },
          async onClose() {
            const connected = await client;
            if (connected) {
              await deps.hub.disconnect(connected).catch((error) =>
                deps.log({ level: "error", msg: "socket disconnect failed", error: String(error) })
              );
            }
          },
        };
      }, { idleTimeout: IDLE_TIMEOUT_SECONDS }),
    );
}

/** WebSocket close code 1009: a frame was larger than this server reads. */
export const MESSAGE_TOO_BIG = 1009;

function frameSize(data: unknown): number {
  if (typeof data === "string") return data.length;
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}

/** Closes a socket whose connect failed: 4029 at the per-user cap, 1011 (try again) otherwise. */
function refuseConnect(deps: Deps, socket: WSContext, error: unknown) {
  if (error instanceof TooManySockets) {
    socket.send(JSON.stringify({
      type: "error",
      data: { code: error.type, status: error.status, detail: error.message, max: error.max },
    }));
    socket.close(TOO_MANY_SOCKETS, "too many sockets");
    return;
  }
  deps.log({ level: "error", msg: "socket connect failed", error: String(error) });
  socket.close(1011, "try again");
}

/** Presence of the asked ids one may see (presencePeers); others are left out of the answer. */
function presenceRoutes(deps: Deps) {
  return new Hono<SignedInEnv>()
    .get(
      "/",
      describe({
        summary: "Presence of the asked members one may see (connections)",
        answers: {
          200: z.object({
            items: z.array(z.object({ userId: z.string(), status: z.enum(PRESENCE_STATUSES) })),
          }),
        },
      }),
      query(presenceQuery),
      async (c) => {
        const session = c.var.session;
        const asked = new Set(c.req.valid("query").userIds);
        const peers = await presencePeers(deps.kv, session.sub);
        const visible = [...peers].filter((id) => asked.has(id));
        // Shown, not decided on: the nearest replica answers.
        const statuses = await readPresence(deps.kv, visible, deps.clock.now(), "eventual");
        return c.json({ items: [...statuses].map(([userId, status]) => ({ userId, status })) });
      },
    );
}
