// The worker that owns the embedded PGlite (see openPglite in db/client.ts): PGlite runs its
// statements in WASM on the thread that calls it, so in the server's isolate every history batch
// paused the event loop. Here statements arrive as messages, run on PGlite's one connection, and
// answer with their rows or with the error's message and SQLSTATE fields.
/// <reference lib="deno.worker" />
import { PGlite } from "@electric-sql/pglite";

export type WorkerRequest =
  | { id: number; op: "open"; dir?: string }
  | {
    id: number;
    op: "query";
    sql: string;
    params: unknown[];
    rowMode: "array" | "object";
    /** Type OIDs answered as their text, untouched (drizzle's parsers are identities). */
    asText: number[];
  }
  | { id: number; op: "exec"; sql: string }
  | { id: number; op: "close" };

export type WorkerAnswer =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { message: string; fields: Record<string, unknown> } };

let client: PGlite | null = null;

async function run(request: WorkerRequest): Promise<unknown> {
  switch (request.op) {
    case "open":
      client = await PGlite.create(request.dir);
      return null;
    case "query": {
      const parsers = Object.fromEntries(
        request.asText.map((oid) => [oid, (text: string) => text]),
      );
      const { rows, fields, affectedRows } = await client!.query(request.sql, request.params, {
        rowMode: request.rowMode,
        parsers,
      });
      return { rows, fields, affectedRows };
    }
    case "exec":
      return await client!.exec(request.sql);
    case "close":
      if (client && !client.closed) await client.close();
      return null;
  }
}

self.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  const { id } = event.data;
  try {
    self.postMessage({ id, ok: true, result: await run(event.data) } satisfies WorkerAnswer);
  } catch (error) {
    // SQLSTATE and its companions (code, detail, constraint…) travel as plain fields.
    const fields = Object.fromEntries(
      Object.entries(error as object).filter(([, value]) =>
        ["string", "number"].includes(typeof value)
      ),
    );
    self.postMessage(
      { id, ok: false, error: { message: String((error as Error)?.message ?? error), fields } },
    );
  }
};
