// The AsyncAPI 3.0 document of `GET /ws`, generated from the schemas that validate client frames
// (realtime/frames.ts) and describe server events (realtime/events.ts).
import { z } from "zod";
import { clientFrame, MAX_FRAME_BYTES } from "../../realtime/frames.ts";
import { SERVER_EVENTS, type ServerEventType, serverFrame } from "../../realtime/events.ts";
import type { DocumentInfo } from "./openapi.ts";

type Json = Record<string, unknown>;

/** What each client frame does, for the reference. */
const CLIENT_SUMMARIES: Record<string, string> = {
  resume: "Receive every durable event after `lastEventId`, in order, once",
  "private-message": "Send a message; acked by `message-delivered` with the same `tempId`",
  "message-read": "Mark a conversation read up to a message; the other side gets `message-read`",
  typing: "Tell a connection you are typing (ephemeral)",
  ping: "Ask for a `pong` (a liveness check)",
  "join-queue":
    "Join matchmaking's queue for an intent (as POST /api/match/queue); `queue` answers",
  "leave-queue": "Leave matchmaking's queue (as DELETE /api/match/queue); `queue` answers",
  subscribe: "Follow a sale's stock: `stock-update` now and on every change",
  unsubscribe: "Stop following a sale",
  offer: "WebRTC SDP offer for the peer of a live match",
  answer: "WebRTC SDP answer for the peer of a live match",
  "ice-candidate": "WebRTC ICE candidate for the peer of a live match",
};

/** JSON Schema draft-07 (AsyncAPI's schema format), named parts moved to components. */
function converter(components: Record<string, Json>) {
  return (schema: z.ZodType, io: "input" | "output"): Json => {
    const converted = z.toJSONSchema(schema, {
      target: "draft-07",
      io,
      unrepresentable: "any",
      // z.json() refers to itself as "#": give it a name, so the reference survives the move.
      override: ({ jsonSchema }) => {
        if (JSON.stringify(jsonSchema).includes('{"$ref":"#"}')) {
          const text = JSON.stringify(jsonSchema).replaceAll(
            '{"$ref":"#"}',
            '{"$ref":"#/definitions/Json"}',
          );
          Object.assign(jsonSchema, JSON.parse(text));
        }
      },
    }) as Json;
    delete converted.$schema;
    const defs = (converted.definitions ?? {}) as Record<string, Json>;
    delete converted.definitions;
    const relink = (value: Json) =>
      JSON.parse(
        JSON.stringify(value).replaceAll('"#/definitions/', '"#/components/schemas/'),
      ) as Json;
    for (const [id, def] of Object.entries(defs)) components[id] = relink(def);
    return relink(converted);
  };
}

export function asyncApiDocument(info: DocumentInfo) {
  const url = new URL(info.publicUrl);
  const schemas: Record<string, Json> = {};
  const schema = converter(schemas);
  const messages: Record<string, Json> = {};
  const operations: Record<string, Json> = {};
  const channelMessages: Record<string, Json> = {};
  const add = (name: string, message: Json, action: "send" | "receive") => {
    messages[name] = message;
    channelMessages[name] = { $ref: `#/components/messages/${name}` };
    operations[`${action}-${message.name}`] = {
      action,
      channel: { $ref: "#/channels/socket" },
      summary: message.summary,
      messages: [{ $ref: `#/channels/socket/messages/${name}` }],
    };
  };
  for (const option of clientFrame.options) {
    const type = option.shape.type.value;
    add(`client.${type}`, {
      name: type,
      title: `${type} (client → server)`,
      summary: CLIENT_SUMMARIES[type] ?? type,
      contentType: "application/json",
      payload: schema(option, "input"),
    }, "receive");
  }
  for (const type of Object.keys(SERVER_EVENTS) as ServerEventType[]) {
    const [summary, , durable] = SERVER_EVENTS[type];
    add(`server.${type}`, {
      name: type,
      title: `${type} (server → client)`,
      summary,
      contentType: "application/json",
      ...(durable
        ? { description: "Durable: kept in the user's event log and replayed by `resume`." }
        : {}),
      payload: schema(serverFrame(type), "output"),
    }, "send");
  }
  return {
    asyncapi: "3.0.0",
    info: {
      title: "Convene realtime socket",
      version: "1.0.0",
      description: DESCRIPTION,
    },
    defaultContentType: "application/json",
    servers: {
      convene: {
        host: url.host,
        protocol: url.protocol === "https:" ? "wss" : "ws",
        pathname: "/ws",
        description: "The socket of this deployment.",
        security: [
          { $ref: "#/components/securitySchemes/bearer" },
          { $ref: "#/components/securitySchemes/cookie" },
          { $ref: "#/components/securitySchemes/token" },
        ],
      },
    },
    channels: {
      socket: {
        address: "/ws",
        title: "The socket",
        description: "One socket per tab; at most WS_MAX_SOCKETS_PER_USER per user.",
        servers: [{ $ref: "#/servers/convene" }],
        messages: channelMessages,
        bindings: {
          ws: {
            method: "GET",
            query: {
              type: "object",
              properties: {
                token: { type: "string", description: "A bearer token (browsers)." },
                lastEventId: {
                  type: "string",
                  pattern: "^\\d{1,15}$",
                  description: "Resume point.",
                },
              },
            },
          },
        },
      },
    },
    operations,
    components: {
      messages,
      schemas,
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
        cookie: { type: "httpApiKey", name: "session", in: "cookie" },
        token: { type: "httpApiKey", name: "token", in: "query" },
      },
    },
  };
}

const DESCRIPTION = `
\`GET /ws\` upgrades to a WebSocket bound to the authenticated user for its life. Frames are JSON
text \`{ "type", "id"?, "data" }\`, at most ${MAX_FRAME_BYTES} bytes (a larger one closes the
socket with 1009); each socket may send 20 frames a second (a burst of 60).

Durable events carry an \`id\`: a client that reconnects with \`?lastEventId=\` (or sends
\`resume\` first) receives every event after it, in order, once. A refused frame is answered with
\`error\` and the socket stays open. A session that ends closes the socket (\`session-ended\`).
`.trim();
