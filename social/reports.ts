// Reports: any member may report another (also one they blocked); administrators read them.
import { z } from "zod";
import type { Deps } from "../app.ts";
import { insertReport } from "../db/reports.ts";
import { findUserById } from "../db/users.ts";
import { findPostAuthor } from "../db/posts.ts";
import { Invalid, NotFound } from "../errors.ts";
import { newId } from "../ids.ts";
import { id } from "../input.ts";

export const reportInput = z.strictObject({
  userId: id,
  reason: z.string().trim().min(1, "must not be empty").max(2000),
  /** The post that prompted the report, if any; it must be the reported member's. */
  postId: id.optional(),
});

export async function fileReport(
  deps: Deps,
  reporterId: string,
  input: z.infer<typeof reportInput>,
) {
  if (input.userId === reporterId) {
    throw new Invalid("You cannot report yourself.", [{
      path: "userId",
      message: "is your own id",
    }]);
  }
  const db = deps.database.db;
  if (!await findUserById(db, input.userId)) throw new NotFound("No member has this id.");
  if (input.postId && await findPostAuthor(db, input.postId) !== input.userId) {
    throw new Invalid("The post is not one of this member's.", [
      { path: "postId", message: "not a post of the reported member" },
    ]);
  }
  const now = deps.clock.now();
  return await insertReport(db, {
    id: newId(now),
    reporterId,
    userId: input.userId,
    postId: input.postId ?? null,
    reason: input.reason,
    at: new Date(now),
  });
}
