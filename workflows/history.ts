// Read your writes. Decisions answer after their KV commit and their Postgres rows follow from the
// outbox's writer a few milliseconds later; a read of that history which a client may have just
// changed (its conversation, orders, matches, interviews, requests) waits for the writer first.
import type { Database } from "../db/client.ts";
import type { Deps } from "../deps.ts";

/** The history database once every decision acknowledged before this call has reached it. */
export async function settledHistory(deps: Pick<Deps, "outbox" | "database">): Promise<Database> {
  await deps.outbox.flush();
  return deps.database.db;
}
