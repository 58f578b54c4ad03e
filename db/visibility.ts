// Who may see whom: a block in either direction hides two members from each other.
import { type SQL, sql } from "drizzle-orm";
import type { AnyPgColumn } from "drizzle-orm/pg-core";
import { blocks } from "./schema.ts";

/** True unless either user blocked the other (for filtering rows by their user column). */
export function notBlockedWith(viewerId: string, userId: AnyPgColumn | SQL): SQL {
  return sql`not exists (select 1 from ${blocks} where (${blocks.blockerId} = ${viewerId} and ${blocks.blockedId} = ${userId}) or (${blocks.blockerId} = ${userId} and ${blocks.blockedId} = ${viewerId}))`;
}
