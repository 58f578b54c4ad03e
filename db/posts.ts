// Posts, likes and comments, and the feed query. Counters change in the same statement as the
// like or comment they count, so they stay exact under any concurrency.
import { and, asc, eq, isNull, type SQL, sql } from "drizzle-orm";
import { decodeCursor, keysetPage, timeCursor } from "../cursor.ts";
import { type Database, inTransaction, isForeignKeyViolation, rowsOf } from "./client.ts";
import { mediaRefs } from "./media.ts";
import { Invalid } from "../errors.ts";
import { comments, likes, postMedia, type PostRow, posts, users } from "./schema.ts";
import { visibleTo } from "./visibility.ts";

export interface PostView {
  id: string;
  author: { id: string; name: string };
  text: string;
  mediaIds: string[];
  /** The files of `mediaIds`, in order, each with the path it is served at. */
  media: { id: string; url: string }[];
  likeCount: number;
  commentCount: number;
  likedByMe: boolean;
  createdAt: string;
  updatedAt: string;
}

function postView(row: { post: PostRow; authorName: string; likedByMe: boolean }): PostView {
  const { post } = row;
  return {
    id: post.id,
    author: { id: post.authorId, name: row.authorName },
    text: post.text,
    mediaIds: post.mediaIds,
    media: mediaRefs(post.mediaIds),
    likeCount: post.likeCount,
    commentCount: post.commentCount,
    likedByMe: row.likedByMe,
    createdAt: post.createdAt.toISOString(),
    updatedAt: post.updatedAt.toISOString(),
  };
}

/** Posts as `viewerId` sees them (with `likedByMe`), hiding authors blocked with the viewer. */
function selectPosts(db: Database, viewerId: string, where: SQL | undefined) {
  return db.select({
    post: posts,
    authorName: users.name,
    likedByMe: sql<
      boolean
    >`exists (select 1 from ${likes} where ${likes.postId} = ${posts.id} and ${likes.userId} = ${viewerId})`,
  }).from(posts)
    .innerJoin(users, eq(users.id, posts.authorId))
    .where(and(where, isNull(posts.takenDownAt), visibleTo(viewerId, posts.authorId)));
}

export async function insertPost(
  db: Database,
  post: { id: string; authorId: string; text: string; mediaIds: string[]; at: Date },
): Promise<PostView> {
  const row = await inTransaction(db, async (tx) => {
    const [inserted] = await tx.insert(posts).values({
      id: post.id,
      authorId: post.authorId,
      text: post.text,
      mediaIds: post.mediaIds,
      createdAt: post.at,
      updatedAt: post.at,
    }).returning();
    // The links keep the files from being swept; a file deleted meanwhile fails the foreign key.
    if (post.mediaIds.length > 0) {
      await tx.insert(postMedia).values(
        post.mediaIds.map((mediaId) => ({ postId: post.id, mediaId })),
      );
    }
    return inserted;
  }).catch((error) => {
    if (!isForeignKeyViolation(error)) throw error;
    throw new Invalid("A file of this post was deleted meanwhile.", [
      { path: "mediaIds", message: "no such media" },
    ]);
  });
  const [author] = await db.select({ name: users.name }).from(users)
    .where(eq(users.id, post.authorId));
  return postView({ post: row, authorName: author.name, likedByMe: false });
}

/** The post, if it exists and its author is not blocked with the viewer. */
export async function findPost(
  db: Database,
  postId: string,
  viewerId: string,
): Promise<PostView | null> {
  const [row] = await selectPosts(db, viewerId, eq(posts.id, postId)).limit(1);
  return row ? postView(row) : null;
}

export async function updatePostText(db: Database, postId: string, text: string, at: Date) {
  await db.update(posts).set({ text, updatedAt: at }).where(eq(posts.id, postId));
}

/**
 * Deletes a post; its likes, comments and file links go with it (foreign keys cascade). Returns
 * the files it showed, or null when it was already gone.
 */
export async function deletePost(db: Database, postId: string) {
  const [row] = await db.delete(posts).where(eq(posts.id, postId))
    .returning({ mediaIds: posts.mediaIds });
  return row ?? null;
}

/**
 * Likes (or unlikes) a post for a user, idempotently. The like row and the post's counter change
 * in one statement, so 200 concurrent likes count 200 and 50 by one user count 1. Null when the
 * post does not exist. `changed` is true when this call added (or removed) the like.
 */
export async function setLike(
  db: Database,
  input: { postId: string; userId: string; liked: boolean; at: Date },
): Promise<{ likeCount: number; changed: boolean; authorId: string } | null> {
  const change = input.liked
    ? sql`insert into ${likes} (post_id, user_id, created_at)
        values (${input.postId}, ${input.userId}, ${input.at.toISOString()}::timestamptz)
        on conflict do nothing returning post_id`
    : sql`delete from ${likes} where ${likes.postId} = ${input.postId}
        and ${likes.userId} = ${input.userId} returning post_id`;
  const sign = input.liked ? sql`+` : sql`-`;
  try {
    const result = await db.execute(sql`
      with changed as (${change})
      update ${posts} set like_count = like_count ${sign} (select count(*) from changed)::int
      where ${posts.id} = ${input.postId}
      returning like_count, author_id, (select count(*) from changed)::int as changed`);
    const [row] = rowsOf<{ like_count: number; author_id: string; changed: number }>(result);
    return row
      ? { likeCount: row.like_count, changed: row.changed > 0, authorId: row.author_id }
      : null;
  } catch (error) {
    if (isForeignKeyViolation(error)) return null; // the post (or the user) is gone
    throw error;
  }
}

export interface CommentView {
  id: string;
  postId: string;
  author: { id: string; name: string };
  text: string;
  createdAt: string;
}

/** Adds a comment and counts it on the post, in one statement; null when the post is gone. */
export async function insertComment(
  db: Database,
  comment: { id: string; postId: string; authorId: string; text: string; at: Date },
): Promise<{ comment: CommentView; postAuthorId: string } | null> {
  try {
    const result = await db.execute(sql`
      with added as (
        insert into ${comments} (id, post_id, author_id, text, created_at)
        values (${comment.id}, ${comment.postId}, ${comment.authorId}, ${comment.text},
          ${comment.at.toISOString()}::timestamptz)
        returning id
      )
      update ${posts} set comment_count = comment_count + (select count(*) from added)::int
      where ${posts.id} = ${comment.postId}
      returning author_id, (select name from ${users} where id = ${comment.authorId}) as name`);
    const [row] = rowsOf<{ author_id: string; name: string }>(result);
    if (!row) return null;
    return {
      comment: {
        id: comment.id,
        postId: comment.postId,
        author: { id: comment.authorId, name: row.name },
        text: comment.text,
        createdAt: comment.at.toISOString(),
      },
      postAuthorId: row.author_id,
    };
  } catch (error) {
    if (isForeignKeyViolation(error)) return null;
    throw error;
  }
}

export async function findComment(db: Database, commentId: string) {
  const [row] = await db.select({
    id: comments.id,
    postId: comments.postId,
    authorId: comments.authorId,
    postAuthorId: posts.authorId,
  }).from(comments).innerJoin(posts, eq(posts.id, comments.postId))
    .where(eq(comments.id, commentId)).limit(1);
  return row ?? null;
}

/** Deletes a comment and uncounts it, in one statement (a second delete changes nothing). */
export async function deleteComment(db: Database, commentId: string) {
  await db.execute(sql`
    with removed as (delete from ${comments} where ${comments.id} = ${commentId} returning post_id)
    update ${posts} set comment_count = comment_count - 1
    where ${posts.id} in (select post_id from removed)`);
}

const keyset = timeCursor;

/** Comments on a post, oldest first, hiding authors blocked with the viewer. */
export async function listComments(
  db: Database,
  postId: string,
  viewerId: string,
  page: { cursor?: string; limit: number },
) {
  const after = page.cursor ? decodeCursor(page.cursor, keyset) : null;
  const rows = await db.select({ comment: comments, authorName: users.name }).from(comments)
    .innerJoin(users, eq(users.id, comments.authorId))
    .where(and(
      eq(comments.postId, postId),
      isNull(comments.takenDownAt),
      visibleTo(viewerId, comments.authorId),
      after
        ? sql`(${comments.createdAt}, ${comments.id}) > (${after[0]}::timestamptz, ${after[1]})`
        : undefined,
    ))
    .orderBy(asc(comments.createdAt), asc(comments.id))
    .limit(page.limit + 1);
  return keysetPage(
    rows,
    page.limit,
    ({ comment, authorName }): CommentView => ({
      id: comment.id,
      postId: comment.postId,
      author: { id: comment.authorId, name: authorName },
      text: comment.text,
      createdAt: comment.createdAt.toISOString(),
    }),
    ({ comment }) => [comment.createdAt.toISOString(), comment.id],
  );
}

/**
 * The viewer's feed: their own posts and those of people they follow or are connected with,
 * newest first. Keyset on (createdAt, id): a page starts strictly after the previous page's
 * last post, so posts published meanwhile (newer than the cursor) never shift later pages.
 * The entries are written ahead (`feedEntries`), so a page is one range of the viewer's index,
 * read by the database's `feed_page` function.
 */
export async function feedPage(
  db: Database,
  viewerId: string,
  page: { cursor?: string; limit: number },
) {
  const [beforeAt, beforeId] = page.cursor ? decodeCursor(page.cursor, keyset) : ["infinity", ""];
  // Each row as one JSON text: one field to pass and parse instead of ten (PGlite's time per page,
  // which fifty cold readers queue for, fell by about a sixth).
  const result = await db.execute(sql`select row_to_json(page)::text as row from feed_page(
    ${viewerId}, ${beforeAt}::timestamptz, ${beforeId}, ${page.limit + 1}) as page`);
  return keysetPage(
    rowsOf<{ row: string }>(result).map(({ row }) => JSON.parse(row) as FeedRow),
    page.limit,
    (row): PostView => ({
      id: row.id,
      author: { id: row.author_id, name: row.author_name },
      text: row.text,
      mediaIds: row.media_ids,
      media: mediaRefs(row.media_ids),
      likeCount: row.like_count,
      commentCount: row.comment_count,
      likedByMe: row.liked_by_me,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    }),
    (row) => [row.created_at, row.id],
  );
}

/** A row of `feed_page` (db/migrations/0009_feed_entries.sql): times as ISO 8601 text. */
interface FeedRow {
  id: string;
  author_id: string;
  author_name: string;
  text: string;
  media_ids: string[];
  like_count: number;
  comment_count: number;
  liked_by_me: boolean;
  created_at: string;
  updated_at: string;
}

export async function findPostAuthor(db: Database, postId: string): Promise<string | null> {
  const [row] = await db.select({ authorId: posts.authorId }).from(posts)
    .where(eq(posts.id, postId)).limit(1);
  return row?.authorId ?? null;
}

/** Takes a post down (hidden from everyone); its author, or null when there is no such post. */
export async function takeDownPost(db: Database, postId: string, at: Date) {
  const [row] = await db.update(posts).set({ takenDownAt: at })
    .where(eq(posts.id, postId)).returning({ authorId: posts.authorId });
  return row?.authorId ?? null;
}

/** Takes a comment down (hidden from everyone); its author, or null when there is none. */
export async function takeDownComment(db: Database, commentId: string, at: Date) {
  const [row] = await db.update(comments).set({ takenDownAt: at })
    .where(eq(comments.id, commentId)).returning({ authorId: comments.authorId });
  return row?.authorId ?? null;
}
