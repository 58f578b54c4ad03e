// Reports of members (and optionally one of their posts) for administrators to review.
import { desc, eq } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import { z } from "zod";
import { afterPosition } from "./keyset.ts";
import { decodeCursor, keysetPage } from "../cursor.ts";
import type { Database } from "./client.ts";
import { reports, users } from "./schema.ts";

export async function insertReport(
  db: Database,
  report: {
    id: string;
    reporterId: string;
    userId: string;
    postId: string | null;
    reason: string;
    at: Date;
  },
) {
  const [row] = await db.insert(reports).values({ ...report, createdAt: report.at }).returning();
  return reportView(row);
}

function reportView(row: typeof reports.$inferSelect) {
  return {
    id: row.id,
    reporterId: row.reporterId,
    userId: row.userId,
    postId: row.postId,
    reason: row.reason,
    createdAt: row.createdAt.toISOString(),
  };
}

const reporter = alias(users, "reporter");
const cursorShape = z.tuple([z.iso.datetime(), z.string()]);

/** Every report, newest first, with the names of both members. */
export async function listReports(db: Database, page: { cursor?: string; limit: number }) {
  const after = page.cursor ? decodeCursor(page.cursor, cursorShape) : null;
  const rows = await db.select({
    report: reports,
    reporterName: reporter.name,
    userName: users.name,
  })
    .from(reports)
    .innerJoin(users, eq(users.id, reports.userId))
    .innerJoin(reporter, eq(reporter.id, reports.reporterId))
    .where(
      afterPosition(reports.createdAt, reports.id, after),
    )
    .orderBy(desc(reports.createdAt), desc(reports.id))
    .limit(page.limit + 1);
  return keysetPage(
    rows,
    page.limit,
    (row) => ({
      ...reportView(row.report),
      reporter: { id: row.report.reporterId, name: row.reporterName },
      user: { id: row.report.userId, name: row.userName },
    }),
    ({ report }) => [report.createdAt.toISOString(), report.id],
  );
}
