// Who may see whom: a block in either direction hides two members from each other, and a member
// an admin suspended is hidden from everyone while it lasts.
import { and, type SQL, sql } from "drizzle-orm";
import type { AnyPgColumn } from "drizzle-orm/pg-core";
import { blocks, users } from "./schema.ts";

/** True unless either user blocked the other (for filtering rows by their user column). */
export function notBlockedWith(viewerId: string, userId: AnyPgColumn | SQL): SQL {
  return sql`not exists (select 1 from ${blocks} where (${blocks.blockerId} = ${viewerId} and ${blocks.blockedId} = ${userId}) or (${blocks.blockerId} = ${userId} and ${blocks.blockedId} = ${viewerId}))`;
}

/** True unless the member is suspended now (for a time that has not run out, or for good). */
export function inGoodStanding(userId: AnyPgColumn | SQL): SQL {
  return sql`not exists (select 1 from ${users} as standing where standing.id = ${userId} and standing.suspended_at is not null and (standing.suspended_until is null or standing.suspended_until > now()))`;
}

/** Whom `viewerId` may see: nobody blocked either way, nobody suspended. */
export function visibleTo(viewerId: string, userId: AnyPgColumn | SQL): SQL {
  return and(notBlockedWith(viewerId, userId), inGoodStanding(userId))!;
}
