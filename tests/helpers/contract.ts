// The served OpenAPI document as a contract: every answer a test receives through `httpClient`
// must be documented for its route and status, and its JSON body must match the documented schema
// (problem `code`s included), so the document cannot drift from what the server does.
// deno-lint-ignore no-import-prefix
import { Ajv2020 } from "npm:ajv@8.20.0/dist/2020.js";
// deno-lint-ignore no-import-prefix
import addFormats from "npm:ajv-formats@3.0.1";

type Json = Record<string, unknown>;
type Validate = ((value: unknown) => boolean) & { errors?: unknown[] | null };

interface Template {
  method: string;
  path: string;
  pattern: RegExp;
  /** Literal segments win over parameters (`/api/match/current` over `/api/match/{id}`). */
  literals: number;
  operation: Json;
}

export class Contract {
  readonly #templates: Template[];
  readonly #ajv: InstanceType<typeof Ajv2020>;
  readonly #validators = new Map<string, Validate>();

  constructor(readonly document: Json) {
    this.#ajv = new Ajv2020({ strict: false, allErrors: true });
    (addFormats as unknown as (ajv: unknown) => void)(this.#ajv);
    this.#ajv.addSchema({ $id: "https://convene.test/document", components: document.components });
    this.#templates = Object.entries(document.paths as Record<string, Json>).flatMap((
      [path, item],
    ) =>
      Object.entries(item).map(([method, operation]) => ({
        method: method.toUpperCase(),
        path,
        pattern: new RegExp(`^${path.replace(/\{\w+\}/g, "[^/]+")}/?$`),
        literals: path.split("/").filter((part) => part && !part.startsWith("{")).length,
        operation: operation as Json,
      }))
    ).sort((a, b) => b.literals - a.literals);
  }

  /** The documented route a request reaches, or undefined. */
  route(method: string, url: string): Template | undefined {
    const path = new URL(url, "http://convene.test").pathname;
    return this.#templates.find((t) => t.method === method && t.pattern.test(path));
  }

  /** Throws, naming what differs, when the answer is not the documented one. */
  check(method: string, url: string, status: number, headers: Headers, body: unknown) {
    const route = this.route(method, url);
    const where = `${method} ${url} → ${status}`;
    if (!route) {
      // An unknown path is answered 404 by the app's not-found handler: nothing to document.
      if (status === 404) return;
      throw new Error(`contract: ${where}, but no documented route matches`);
    }
    const responses = route.operation.responses as Record<string, Json>;
    const response = responses[String(status)];
    if (!response) {
      const code = (body as { code?: string } | null)?.code;
      throw new Error(
        `contract: ${where}${code ? ` (${code})` : ""} is not documented for ${route.method} ` +
          `${route.path} (documented: ${Object.keys(responses).join(", ")})`,
      );
    }
    const type = (headers.get("content-type") ?? "").split(";")[0].trim();
    const content = response.content as Record<string, Json> | undefined;
    if (!content) {
      if (body !== null && body !== "") {
        throw new Error(`contract: ${where} has a body, but none is documented`);
      }
      return;
    }
    const media = content[type] ?? content["*/*"];
    if (!media) {
      throw new Error(
        `contract: ${where} answered ${type}; documented: ${Object.keys(content).join(", ")}`,
      );
    }
    if (!type.endsWith("json")) return;
    const key = `${route.method} ${route.path} ${status} ${type}`;
    let validate = this.#validators.get(key);
    if (!validate) {
      validate = this.#ajv.compile({
        $id: `https://convene.test/answers/${this.#validators.size}`,
        ...relink(media.schema as Json),
      }) as Validate;
      this.#validators.set(key, validate);
    }
    if (!validate(body)) {
      throw new Error(
        `contract: ${where} does not match the documented schema of ${route.method} ${route.path}: ` +
          `${JSON.stringify(validate.errors?.slice(0, 5))}\nbody: ${
            JSON.stringify(body).slice(0, 800)
          }`,
      );
    }
  }
}

/** The document's `#/components/...` refs, pointed at the components schema added above. */
function relink(schema: Json): Json {
  return JSON.parse(
    JSON.stringify(schema).replaceAll(
      '"#/components/',
      '"https://convene.test/document#/components/',
    ),
  );
}

const contracts = new Map<string, Contract>();

/**
 * The contract of the document an app serves (one per distinct document, compiled once), or null
 * when the app does not answer (a server a test is stopping): nothing is checked then.
 */
export async function contractOf(
  request: (path: string) => Response | Promise<Response>,
): Promise<Contract | null> {
  const answer = await Promise.resolve().then(() => request("/openapi.json")).catch(() => null);
  if (!answer?.ok) {
    await answer?.body?.cancel();
    return null;
  }
  const text = await answer.text();
  let contract = contracts.get(text);
  if (!contract) {
    contract = new Contract(JSON.parse(text));
    contracts.set(text, contract);
  }
  return contract;
}
