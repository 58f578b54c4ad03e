// The feed: write a post (with an image), like, comment, and scroll on through the keyset cursor.
/// <reference lib="dom" />
import { Avatar } from "./avatar.tsx";
import { Field, TextArea } from "./field.tsx";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, explain, ok, time } from "./session.ts";
import type { Me } from "./main.tsx";

type Post = Awaited<ReturnType<typeof loadPost>>;
type Comment = Awaited<ReturnType<typeof loadComments>>["items"][number];

const loadPost = (id: string) => ok(api.api.posts[":id"].$get({ param: { id } }));
/** The feed is served as cached JSON text, so its type is the posts' own. */
const loadPage = (cursor?: string) =>
  ok(api.api.feed.$get({ query: cursor ? { cursor, limit: "10" } : { limit: "10" } })) as Promise<
    { items: Post[]; nextCursor: string | null }
  >;
const loadComments = (id: string) =>
  ok(api.api.posts[":id"].comments.$get({ param: { id }, query: { limit: "50" } }));

/** Uploads one file (multipart), answering its media id. */
export async function upload(file: File): Promise<string> {
  return (await uploadFile<{ id: string }>(file, "/api/media")).id;
}

/** Posts `file` as multipart to `to` (the public media, or a message's private files). */
export async function uploadFile<T>(file: File, to: string): Promise<T> {
  const form = new FormData();
  form.append("file", file);
  const response = await fetch(to, { method: "POST", body: form });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail ?? "upload failed");
  return body;
}

export function FeedPage(_props: { me: NonNullable<Me> }) {
  const [posts, setPosts] = useState<Post[]>([]);
  const [cursor, setCursor] = useState<string | null | undefined>(undefined);
  const [text, setText] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const fileRef = useRef<HTMLInputElement>(null);
  const endRef = useRef<HTMLDivElement>(null);

  async function more(from?: string) {
    const page = await loadPage(from);
    setPosts((known) => [...(from ? known : []), ...page.items]);
    setCursor(page.nextCursor);
  }
  useEffect(() => {
    more();
  }, []);
  useEffect(() => {
    if (!endRef.current || !cursor) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) more(cursor);
    });
    observer.observe(endRef.current);
    return () => observer.disconnect();
  }, [cursor]);

  async function publish(event: Event) {
    event.preventDefault();
    setBusy(true);
    setError("");
    try {
      const file = fileRef.current?.files?.[0];
      const mediaIds = file ? [await upload(file)] : [];
      const post = await ok(api.api.posts.$post({ json: { text, mediaIds } }));
      setPosts((known) => [post, ...known]);
      setText("");
      if (fileRef.current) fileRef.current.value = "";
    } catch (failure) {
      setError(explain(failure));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="feed-title">
      <h1 id="feed-title">Feed</h1>
      <form onSubmit={publish} class="card" aria-label="New post">
        <TextArea
          label="What are you working on?"
          name="text"
          required
          maxLength={5000}
          value={text}
          onValue={setText}
        />
        <label>
          Image (optional) <input type="file" name="image" accept="image/*" ref={fileRef} />
        </label>
        {error && <p role="alert" class="error">{error}</p>}
        <button type="submit" disabled={busy}>Post</button>
      </form>
      {posts.length === 0 && cursor === null && <p>Nothing yet: follow people, or post.</p>}
      <ul class="list" aria-label="Posts">
        {posts.map((post) => <PostItem post={post} key={post.id} />)}
      </ul>
      <div ref={endRef}>
        {cursor && <button type="button" onClick={() => more(cursor)}>Load more</button>}
      </div>
    </section>
  );
}

function PostItem(props: { post: Post }) {
  const [post, setPost] = useState(props.post);
  const [comments, setComments] = useState<Comment[] | null>(null);
  const [reply, setReply] = useState("");
  async function toggleLike() {
    const param = { id: post.id };
    const answer = post.likedByMe
      ? await ok(api.api.posts[":id"].like.$delete({ param }))
      : await ok(api.api.posts[":id"].like.$post({ param }));
    setPost({ ...post, likedByMe: answer.liked, likeCount: answer.likeCount });
  }
  async function showComments() {
    setComments((await loadComments(post.id)).items);
  }
  async function comment(event: Event) {
    event.preventDefault();
    const added = await ok(
      api.api.posts[":id"].comments.$post({ param: { id: post.id }, json: { text: reply } }),
    );
    setComments([...(comments ?? []), added]);
    setPost({ ...post, commentCount: post.commentCount + 1 });
    setReply("");
  }
  return (
    <li class="card" data-testid="post">
      <p class="meta">
        <Avatar id={post.author.id} /> <a href={`#/people/${post.author.id}`}>{post.author.name}</a>
        {" "}
        · {time(post.createdAt)}
      </p>
      <p>{post.text}</p>
      {post.media.map((media) => (
        <img key={media.id} src={media.url} alt="" class="media" loading="lazy" />
      ))}
      <p class="actions">
        <button type="button" aria-pressed={post.likedByMe} onClick={toggleLike}>
          {post.likedByMe ? "Unlike" : "Like"} ({post.likeCount})
        </button>
        <button type="button" onClick={showComments}>Comments ({post.commentCount})</button>
      </p>
      {comments && (
        <div>
          <ul class="comments">
            {comments.map((item) => (
              <li key={item.id}>
                <strong>{item.author.name}</strong> {item.text}
              </li>
            ))}
          </ul>
          <form onSubmit={comment} aria-label="Write a comment">
            <Field label="Comment" required value={reply} onValue={setReply} />
            <button type="submit">Reply</button>
          </form>
        </div>
      )}
    </li>
  );
}
