// The OpenAPI 3.1 document of every HTTP route, read from the app's routes: each route's
// validators give its parameters and body, its `describe` gives its answers and errors, its guard
// its security, and the middleware stack the errors every route of a kind shares.
import { z } from "zod";
import {
  type Answer,
  type HeaderDoc,
  type InputTarget,
  readRoute,
} from "../middleware/describe.ts";
import { problem } from "./schemas.ts";

/** A route as Hono lists it in `app.routes`. */
export interface RouteEntry {
  method: string;
  path: string;
  handler: unknown;
}

type Json = Record<string, unknown>;

/** A route of the document: Hono's method and path, and its OpenAPI operation. */
interface Operation {
  method: string;
  /** Hono's form (`/api/posts/:id`). */
  path: string;
  operation: Json;
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const PARAM = /:(\w+)/g;

const RATE_LIMIT_HEADERS: Record<string, HeaderDoc> = {
  "RateLimit-Limit": {
    description: "Writes allowed per window (RATE_LIMIT_API) for this user, or IP when anonymous.",
    schema: z.string(),
  },
  "RateLimit-Remaining": { description: "Writes left in this window.", schema: z.string() },
};

const RETRY_AFTER: Record<string, HeaderDoc> = {
  "Retry-After": { description: "Seconds to wait before trying again.", schema: z.string() },
};

/** Hono's `/api/posts/:id` as OpenAPI's `/api/posts/{id}`. */
const openApiPath = (path: string) => path.replace(PARAM, "{$1}");

/** Problem codes every route of a kind can answer, by status, from the middleware in app.ts. */
function sharedErrors(method: string, path: string, guard: string | undefined, reads: boolean) {
  const errors: Record<number, string[]> = {
    500: ["internal-error"],
    503: ["unavailable", "busy"],
  };
  const add = (status: number, code: string) => {
    errors[status] = [...new Set([...(errors[status] ?? []), code])];
  };
  if (reads) add(400, "invalid-request");
  if (guard) add(401, "unauthorized");
  if (guard === "admin") add(403, "forbidden");
  const api = path.startsWith("/api/");
  const webhook = path.startsWith("/api/payments/webhook/");
  if (api && UNSAFE.has(method)) {
    add(413, "payload-too-large");
    if (!webhook) {
      add(403, "forbidden"); // a cookie-carrying request from an untrusted origin
      add(415, "unsupported-media-type");
      add(429, "rate-limited");
    }
  }
  return errors;
}

/** Builds each documented route's operation, and lists the routes that have no `describe`. */
class OpenApiBuilder {
  readonly components: Record<string, Json> = {};
  readonly undocumented: string[] = [];

  /** `schema` as JSON Schema 2020-12, its named parts moved to the document's components. */
  schema(schema: z.ZodType, io: "input" | "output"): Json {
    const converted = z.toJSONSchema(schema, {
      target: "draft-2020-12",
      io,
      unrepresentable: "any",
    }) as Json;
    delete converted.$schema;
    const defs = (converted.$defs ?? {}) as Record<string, Json>;
    delete converted.$defs;
    const relink = (value: Json) =>
      JSON.parse(JSON.stringify(value).replaceAll('"#/$defs/', '"#/components/schemas/')) as Json;
    for (const [id, def] of Object.entries(defs)) {
      const linked = relink(def);
      const known = this.components[id];
      if (known && JSON.stringify(known) !== JSON.stringify(linked)) {
        throw new Error(`two schemas are named ${id} in the reference`);
      }
      this.components[id] = linked;
    }
    return relink(converted);
  }

  operations(routes: RouteEntry[]): Operation[] {
    const grouped = new Map<string, unknown[]>();
    for (const route of routes) {
      if (route.method === "ALL") continue; // middleware of the stack
      const key = `${route.method} ${route.path}`;
      grouped.set(key, [...(grouped.get(key) ?? []), route.handler]);
    }
    const operations: Operation[] = [];
    for (const [key, handlers] of grouped) {
      const [method, path] = key.split(" ");
      const operation = this.#operation(method, path, handlers);
      if (operation) operations.push({ method, path, operation });
      else this.undocumented.push(key);
    }
    return operations;
  }

  #operation(method: string, path: string, handlers: unknown[]): Json | null {
    const { doc, inputs, guard } = readRoute(handlers);
    if (!doc) return null;
    const input = (target: InputTarget) => inputs.find((found) => found.target === target);
    const parameters = [
      ...this.#parameters(
        "path",
        input("param")?.schema,
        [...path.matchAll(PARAM)].map((m) => m[1]),
      ),
      ...this.#parameters("query", input("query")?.schema),
      ...Object.entries(doc.headers ?? {}).map(([name, header]) => ({
        name,
        in: "header",
        description: header.description,
        required: header.required ?? false,
        schema: header.schema ? this.schema(header.schema, "input") : { type: "string" },
      })),
    ];
    const json = input("json")?.schema;
    const body = doc.body ?? (json ? { schema: json } : undefined);
    const errors = sharedErrors(method, path, guard, inputs.length > 0 || body !== undefined);
    for (const [status, codes] of Object.entries(doc.errors ?? {})) {
      errors[Number(status)] = [...new Set([...(errors[Number(status)] ?? []), ...codes])];
    }
    const write = path.startsWith("/api/") && UNSAFE.has(method) &&
      !path.startsWith("/api/payments/webhook/");
    const responses: Json = {};
    for (const [status, answer] of Object.entries(doc.answers)) {
      responses[status] = this.#answer(Number(status), answer, write ? RATE_LIMIT_HEADERS : {});
    }
    for (const [status, codes] of Object.entries(errors)) {
      responses[status] = this.#problem(Number(status), codes);
    }
    return {
      operationId: operationId(method, path),
      tags: [doc.tag],
      summary: doc.summary,
      ...(doc.description ? { description: doc.description } : {}),
      ...(guard ? { security: [{ bearer: [] }, { cookie: [] }] } : { security: [] }),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(body
        ? {
          requestBody: {
            required: body.required ?? true,
            ...(body.description ? { description: body.description } : {}),
            content: {
              [body.contentType ?? "application/json"]: {
                schema: this.schema(body.schema, "input"),
              },
            },
          },
        }
        : {}),
      responses,
    };
  }

  #parameters(where: "path" | "query", schema?: z.ZodType, names: string[] = []): Json[] {
    if (!schema) {
      return names.map((name) => ({ name, in: where, required: true, schema: { type: "string" } }));
    }
    const object = this.schema(schema, "input");
    const required = new Set((object.required ?? []) as string[]);
    return Object.entries((object.properties ?? {}) as Record<string, Json>).map((
      [name, property],
    ) => {
      const { description, ...rest } = property;
      return {
        name,
        in: where,
        required: where === "path" || required.has(name),
        ...(description ? { description } : {}),
        schema: rest,
      };
    });
  }

  #answer(status: number, answer: Answer, extraHeaders: Record<string, HeaderDoc>): Json {
    const full = answer instanceof z.ZodType ? { schema: answer } : answer;
    const headers = { ...extraHeaders, ...full.headers };
    const content = full.schema
      ? { [full.contentType ?? "application/json"]: { schema: this.schema(full.schema, "output") } }
      : full.contentType
      ? { [full.contentType]: { schema: { type: "string", contentMediaType: full.contentType } } }
      : undefined;
    return {
      description: full.description ?? STATUS_TEXT[status] ?? `HTTP ${status}`,
      ...(Object.keys(headers).length > 0 ? { headers: this.#headers(headers) } : {}),
      ...(content ? { content } : {}),
    };
  }

  #problem(status: number, codes: string[]): Json {
    const schema = this.schema(problem, "output");
    return {
      description: `${STATUS_TEXT[status] ?? `HTTP ${status}`}: ${codes.join(", ")}`,
      ...(status === 429 || status === 503 ? { headers: this.#headers(RETRY_AFTER) } : {}),
      content: {
        "application/problem+json": {
          schema: { allOf: [schema, { properties: { code: { enum: codes } } }] },
        },
      },
    };
  }

  #headers(headers: Record<string, HeaderDoc>): Json {
    return Object.fromEntries(
      Object.entries(headers).map(([name, header]) => [name, {
        description: header.description,
        schema: header.schema ? this.schema(header.schema, "output") : { type: "string" },
      }]),
    );
  }
}

function operationId(method: string, path: string): string {
  const words = path.split("/").filter(Boolean).map((part) =>
    part.replace(/^:/, "by-").split(/[-_.]/).map((word) =>
      word.charAt(0).toUpperCase() + word.slice(1)
    ).join("")
  );
  return method.toLowerCase() + words.join("");
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No content",
  101: "Switching protocols",
  304: "Not modified",
  400: "Invalid request",
  401: "Not signed in",
  403: "Forbidden",
  404: "Not found",
  409: "Conflict",
  410: "Gone",
  413: "Payload too large",
  415: "Unsupported media type",
  422: "Unprocessable",
  425: "Too early",
  426: "Upgrade required",
  429: "Too many requests",
  500: "Internal error (a bug: quote `ref`)",
  502: "Bad gateway",
  503: "Unavailable",
};

export interface DocumentInfo {
  publicUrl: string;
}

/** The whole document. */
export function openApiDocument(routes: RouteEntry[], info: DocumentInfo) {
  const builder = new OpenApiBuilder();
  const operations = builder.operations(routes);
  const paths: Record<string, Json> = {};
  for (const { method, path, operation } of operations) {
    const at = openApiPath(path);
    paths[at] = { ...paths[at], [method.toLowerCase()]: operation };
  }
  return {
    document: {
      openapi: "3.1.0",
      info: {
        title: "Convene API",
        version: "1.0.0",
        summary: "Developer networking, feed, chat, matchmaking calls and flash sales.",
        description: DESCRIPTION,
      },
      servers: [{ url: info.publicUrl }],
      tags: [...new Set(operations.flatMap(({ operation }) => operation.tags as string[]))]
        .sort((a, b) => tagRank(a) - tagRank(b))
        .map((name) => ({ name })),
      paths,
      components: {
        schemas: builder.components,
        securitySchemes: {
          bearer: {
            type: "http",
            scheme: "bearer",
            bearerFormat: "JWT",
            description: "The `token` from signup or login, as `Authorization: Bearer <token>`.",
          },
          cookie: {
            type: "apiKey",
            in: "cookie",
            name: "session",
            description: "The httpOnly `session` cookie set by signup and login. Unsafe methods " +
              "carrying it must come from a trusted origin (CSRF).",
          },
        },
      },
    },
    undocumented: builder.undocumented,
  };
}

/** The reference reads in the product's order; a tag not listed comes last. */
const TAG_ORDER = [
  "Identity",
  "Profiles and discovery",
  "Follows, connections and blocks",
  "Posts and feed",
  "Notifications",
  "Chat",
  "Realtime",
  "Matchmaking and calls",
  "Interviews",
  "Flash sales and payments",
  "Media",
  "Administration",
  "Jobs",
  "Operations",
  "Reference",
  "Console",
];

const tagRank = (tag: string) => (TAG_ORDER.indexOf(tag) + 1) || TAG_ORDER.length + 1;

const DESCRIPTION = `
Every error is \`application/problem+json\` (RFC 9457) with \`type\`, \`code\`, \`title\`, \`status\`
and \`detail\`; a 400 adds \`errors: [{ path, message }]\`, one per field at fault. Each operation
lists the \`code\` values it can answer for each status.

Lists are \`{ items, nextCursor }\`: pass \`nextCursor\` back as \`?cursor=\` for the next page
(keyset cursors: nothing is skipped or repeated). Ids are strings, times ISO-8601 UTC, money
integer minor units with an ISO currency.

Writes under \`/api\` are rate limited per user (\`RateLimit-*\` headers, 429 with \`Retry-After\`).
The realtime protocol of \`GET /ws\` is described by the AsyncAPI document at \`/asyncapi.json\`.
The schemas list every field an answer carries today (the tests hold the server to them); later
versions may add fields, so clients should ignore fields they do not know.
`.trim();
