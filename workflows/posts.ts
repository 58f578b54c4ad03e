// Posts, likes, comments and the feed: author checks, notifications, and feeds that show a new
// post on the audience's very next request although first pages are cached.
import { settledHistory } from "./history.ts";
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { feedAudience } from "../db/graph.ts";
import {
  deleteComment,
  deletePost,
  feedPage,
  findComment,
  findPost,
  insertComment,
  insertPost,
  listComments,
  type PostView,
  setLike,
  updatePostText,
} from "../db/posts.ts";
import { touchActivity } from "../db/users.ts";
import { Forbidden, NotFound } from "../errors.ts";
import { newId } from "../ids.ts";
import { distinctMediaIds, ownMedia, releaseMedia } from "./media/uploads.ts";
import { notifyRecords } from "./notifications.ts";
import { feedCache } from "../providers/per-user-cache.ts";

const text = (max: number) => z.string().trim().min(1, "must not be empty").max(max);

export const postInput = z.strictObject({
  text: text(5000),
  /** Files the author uploaded (POST /api/media), shown in this order. */
  mediaIds: distinctMediaIds,
});

export const postPatch = z.strictObject({ text: text(5000) });

export const commentInput = z.strictObject({ text: text(2000) });

const at = (deps: Deps) => new Date(deps.clock.now());

/** Everyone whose feed shows `authorId`'s posts sees the change on their next request. */
export async function refreshAudience(deps: Deps, authorId: string) {
  await feedCache(deps.cache).invalidate(...await feedAudience(deps.database.db, authorId));
}

export async function createPost(
  deps: Deps,
  authorId: string,
  input: z.infer<typeof postInput>,
): Promise<PostView> {
  await ownMedia(deps, authorId, input.mediaIds, "mediaIds");
  const now = at(deps);
  const post = await insertPost(deps.database.db, {
    id: newId(now.getTime()),
    authorId,
    text: input.text,
    mediaIds: input.mediaIds,
    at: now,
  });
  await touchActivity(deps.database.db, authorId, now);
  await refreshAudience(deps, authorId);
  return post;
}

/** The post as the viewer may see it; 404 when missing or its author is blocked either way. */
export async function readPost(deps: Deps, postId: string, viewerId: string): Promise<PostView> {
  const post = await findPost(await settledHistory(deps), postId, viewerId);
  if (!post) throw new NotFound("No post has this id.");
  return post;
}

async function ownPost(deps: Deps, postId: string, userId: string) {
  const post = await readPost(deps, postId, userId);
  if (post.author.id !== userId) throw new Forbidden("Only the author may change this post.");
  return post;
}

export async function editPost(deps: Deps, postId: string, userId: string, newText: string) {
  await ownPost(deps, postId, userId);
  await updatePostText(deps.database.db, postId, newText, at(deps));
  await refreshAudience(deps, userId);
  return await readPost(deps, postId, userId);
}

/** Deletes the post; its files go too, unless something else of the author's still shows them. */
export async function removePost(deps: Deps, postId: string, userId: string) {
  await ownPost(deps, postId, userId);
  const deleted = await deletePost(deps.database.db, postId);
  await refreshAudience(deps, userId);
  if (deleted) await releaseMedia(deps, userId, deleted.mediaIds);
}

/** Likes or unlikes, idempotently; the answer carries the exact count after this call. */
export async function likePost(deps: Deps, postId: string, userId: string, liked: boolean) {
  await readPost(deps, postId, userId);
  const result = await setLike(deps.database.db, { postId, userId, liked, at: at(deps) });
  if (!result) throw new NotFound("No post has this id.");
  if (result.changed) {
    // The liker's own cached feed shows `likedByMe`; others see counts at most two minutes old.
    // The cache and the notification's commit are independent: one round trip for both.
    await Promise.all([
      feedCache(deps.cache).invalidate(userId),
      liked
        ? deps.outbox.send(...notifyRecords(deps.outbox, {
          userId: result.authorId,
          actorId: userId,
          type: "like",
          subjectId: postId,
        }))
        : undefined,
    ]);
  }
  return { liked, likeCount: result.likeCount };
}

export async function addComment(deps: Deps, postId: string, userId: string, body: string) {
  await readPost(deps, postId, userId);
  const now = at(deps);
  const added = await insertComment(deps.database.db, {
    id: newId(now.getTime()),
    postId,
    authorId: userId,
    text: body,
    at: now,
  });
  if (!added) throw new NotFound("No post has this id.");
  await touchActivity(deps.database.db, userId, now);
  await Promise.all([
    feedCache(deps.cache).invalidate(userId),
    deps.outbox.send(...notifyRecords(deps.outbox, {
      userId: added.postAuthorId,
      actorId: userId,
      type: "comment",
      subjectId: postId,
      eventId: added.comment.id,
    })),
  ]);
  return added.comment;
}

export async function commentsOf(
  deps: Deps,
  postId: string,
  viewerId: string,
  page: { cursor?: string; limit: number },
) {
  await readPost(deps, postId, viewerId);
  return await listComments(deps.database.db, postId, viewerId, page);
}

/** The comment's author or the post's author may delete it. */
export async function removeComment(deps: Deps, commentId: string, userId: string) {
  const comment = await findComment(deps.database.db, commentId);
  if (!comment) throw new NotFound("No comment has this id.");
  await readPost(deps, comment.postId, userId);
  if (comment.authorId !== userId && comment.postAuthorId !== userId) {
    throw new Forbidden("Only the comment's author or the post's author may delete it.");
  }
  await deleteComment(deps.database.db, commentId);
}

/**
 * A feed page as its JSON response body. The first page comes from the cache when nothing in it
 * has changed since; it is cached as the body itself, so a hit costs no serialisation.
 */
export async function feed(
  deps: Deps,
  viewerId: string,
  page: { cursor?: string; limit: number },
): Promise<{ body: string; cached: boolean }> {
  // A connection or block the viewer just made reaches Postgres and the cache's version first.
  const db = await settledHistory(deps);
  const compute = async () => JSON.stringify(await feedPage(db, viewerId, page));
  if (page.cursor) return { body: await compute(), cached: false };
  const { value, cached } = await feedCache<string>(deps.cache).through(
    viewerId,
    String(page.limit),
    compute,
  );
  return { body: value, cached };
}
