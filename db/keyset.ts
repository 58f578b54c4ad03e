// The keyset condition of every list ordered by time: rows strictly after the last row of the
// previous page, ordered by time (descending, "newest first", unless asked) and then by a
// tie-breaking column.
import { and, type Column, eq, gt, lt, or, type SQL } from "drizzle-orm";

/**
 * `after` is the cursor's [ISO time, tie-breaker]; `tieBreak` is the tie-breaker's sort order, and
 * `timeOrder` the time's.
 */
export function afterPosition(
  time: Column,
  tie: Column,
  after: [string, string] | null,
  tieBreak: "asc" | "desc" = "desc",
  timeOrder: "asc" | "desc" = "desc",
): SQL | undefined {
  if (!after) return undefined;
  const at = new Date(after[0]);
  const later = timeOrder === "asc" ? gt : lt;
  return or(later(time, at), and(eq(time, at), (tieBreak === "asc" ? gt : lt)(tie, after[1])));
}
