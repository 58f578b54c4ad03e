import assert from "node:assert/strict";
import { PGlite } from "@electric-sql/pglite";
import { and, count, eq } from "drizzle-orm";
import { comments, likes } from "../db/schema.ts";
import { assertProblem, createTestApp, type HttpClient } from "./helpers/app.ts";
import { type Member, members } from "./helpers/members.ts";
import { connect } from "./helpers/sockets.ts";

async function publish(http: HttpClient, author: Member, text = `post by ${author.user.name}`) {
  const answer = await http("POST", "/api/posts", { token: author.token, body: { text } });
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  return answer.body;
}

Deno.test("[posts] POST/GET/PATCH/DELETE /api/posts/:id with author checks", async (t) => {
  await using t0 = await createTestApp();
  const { http } = t0;
  const [ada, bob] = await members(t0.deps, 2, { name: (i) => ["Ada", "Bob"][i] });

  await t.step("a post is created with its author and zero counts, and read back", async () => {
    const post = await publish(http, ada, "  Hello, Convene  ");
    assert.deepEqual(
      {
        author: post.author,
        text: post.text,
        likeCount: post.likeCount,
        commentCount: post.commentCount,
        likedByMe: post.likedByMe,
        mediaIds: post.mediaIds,
      },
      {
        author: { id: ada.user.id, name: "Ada" },
        text: "Hello, Convene",
        likeCount: 0,
        commentCount: 0,
        likedByMe: false,
        mediaIds: [],
      },
    );
    const read = await http("GET", `/api/posts/${post.id}`, { token: bob.token });
    assert.equal(read.status, 200);
    assert.deepEqual(read.body, post);
  });

  await t.step("bad input is a 400 naming the field; unknown media ids are refused", async () => {
    for (const body of [{}, { text: "   " }, { text: "x".repeat(5001) }, { text: 5 }]) {
      const problem = assertProblem(
        await http("POST", "/api/posts", { token: ada.token, body }),
        400,
      );
      assert.equal(problem.errors[0].path, "text");
    }
    const media = assertProblem(
      await http("POST", "/api/posts", {
        token: ada.token,
        body: { text: "look", mediaIds: ["no-such-media"] },
      }),
      400,
    );
    assert.equal(media.errors[0].path, "mediaIds");
  });

  await t.step("only the author may edit or delete (403), and an edit shows", async () => {
    const post = await publish(http, ada);
    assertProblem(
      await http("PATCH", `/api/posts/${post.id}`, {
        token: bob.token,
        body: { text: "mine now" },
      }),
      403,
    );
    assertProblem(await http("DELETE", `/api/posts/${post.id}`, { token: bob.token }), 403);
    const edited = await http("PATCH", `/api/posts/${post.id}`, {
      token: ada.token,
      body: { text: "edited" },
    });
    assert.equal(edited.status, 200);
    assert.equal(edited.body.text, "edited");
    assert.equal(
      (await http("GET", `/api/posts/${post.id}`, { token: bob.token })).body.text,
      "edited",
    );
  });

  await t.step("deleting a post removes it with its likes and comments", async () => {
    const post = await publish(http, ada);
    await http("POST", `/api/posts/${post.id}/like`, { token: bob.token });
    await http("POST", `/api/posts/${post.id}/comments`, {
      token: bob.token,
      body: { text: "nice" },
    });
    assert.equal((await http("DELETE", `/api/posts/${post.id}`, { token: ada.token })).status, 204);
    assertProblem(await http("GET", `/api/posts/${post.id}`, { token: ada.token }), 404);
    assertProblem(await http("GET", `/api/posts/${post.id}/comments`, { token: ada.token }), 404);
    assertProblem(await http("POST", `/api/posts/${post.id}/like`, { token: bob.token }), 404);
    const db = t0.deps.database.db;
    const [likeRows] = await db.select({ n: count() }).from(likes).where(eq(likes.postId, post.id));
    const [commentRows] = await db.select({ n: count() }).from(comments)
      .where(eq(comments.postId, post.id));
    assert.deepEqual([likeRows.n, commentRows.n], [0, 0]);
  });

  await t.step("unknown ids are 404; no session is 401", async () => {
    assertProblem(await http("GET", "/api/posts/nope", { token: ada.token }), 404);
    assertProblem(await http("DELETE", "/api/comments/nope", { token: ada.token }), 404);
    assertProblem(await http("POST", "/api/posts", { body: { text: 1 } }), 401);
  });
});

Deno.test("[posts] POST /api/posts/:id/like counts exactly under concurrency", async (t) => {
  await using t0 = await createTestApp();
  const { http } = t0;
  const [author] = await members(t0.deps, 1);
  const likers = await members(t0.deps, 200);
  const post = await publish(http, author);

  await t.step("200 concurrent likes from 200 users → likeCount 200", async () => {
    const answers = await Promise.all(
      likers.map((liker) => http("POST", `/api/posts/${post.id}/like`, { token: liker.token })),
    );
    assert.deepEqual(new Set(answers.map((answer) => answer.status)), new Set([200]));
    assert.deepEqual(
      answers.map((answer) => answer.body.likeCount).sort((a, b) => a - b),
      Array.from({ length: 200 }, (_, i) => i + 1),
      "every like saw its own exact count",
    );
    const read = await http("GET", `/api/posts/${post.id}`, { token: author.token });
    assert.equal(read.body.likeCount, 200);
  });

  await t.step("50 concurrent likes by one user → 1, and it notifies the author once", async () => {
    const other = await publish(http, author);
    const [fan] = likers;
    const answers = await Promise.all(
      Array.from(
        { length: 50 },
        () => http("POST", `/api/posts/${other.id}/like`, { token: fan.token }),
      ),
    );
    assert.ok(answers.every((answer) => answer.status === 200 && answer.body.liked === true));
    assert.ok(answers.every((answer) => answer.body.likeCount === 1));
    const read = await http("GET", `/api/posts/${other.id}`, { token: fan.token });
    assert.deepEqual([read.body.likeCount, read.body.likedByMe], [1, true]);
    const [rows] = await t0.deps.database.db.select({ n: count() }).from(likes)
      .where(and(eq(likes.postId, other.id), eq(likes.userId, fan.user.id)));
    assert.equal(rows.n, 1);
    await t0.jobsSettled("notify", 201);
    const notices = await http("GET", "/api/notifications?limit=100", { token: author.token });
    const about = notices.body.items.filter((item: { subjectId: string }) =>
      item.subjectId === other.id
    );
    assert.equal(about.length, 1);
    assert.deepEqual([about[0].type, about[0].actor.id], ["like", fan.user.id]);
  });

  await t.step("unlike is idempotent too: 20 concurrent unlikes → 199", async () => {
    const [fan] = likers;
    const answers = await Promise.all(
      Array.from(
        { length: 20 },
        () => http("DELETE", `/api/posts/${post.id}/like`, { token: fan.token }),
      ),
    );
    assert.ok(answers.every((answer) => answer.body.liked === false));
    assert.ok(answers.every((answer) => answer.body.likeCount === 199));
    const read = await http("GET", `/api/posts/${post.id}`, { token: fan.token });
    assert.deepEqual([read.body.likeCount, read.body.likedByMe], [199, false]);
  });
});

Deno.test("[posts] /api/posts/:id/comments are listed oldest first and counted", async (t) => {
  await using t0 = await createTestApp();
  const { http } = t0;
  const [ada, bob, cy] = await members(t0.deps, 3);
  const post = await publish(http, ada);

  await t.step("25 comments page at 10, oldest first, none skipped or repeated", async () => {
    for (let i = 0; i < 25; i++) {
      if (i % 3 === 0) t0.clock.advance(1); // some share a timestamp: the id breaks the tie
      const who = i % 2 === 0 ? bob : cy;
      const answer = await http("POST", `/api/posts/${post.id}/comments`, {
        token: who.token,
        body: { text: `comment ${i}` },
      });
      assert.equal(answer.status, 201);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor ? `&cursor=${cursor}` : "";
      const page = await http("GET", `/api/posts/${post.id}/comments?limit=10${query}`, {
        token: ada.token,
      });
      assert.equal(page.status, 200);
      seen.push(...page.body.items.map((item: { text: string }) => item.text));
      cursor = page.body.nextCursor;
    } while (cursor);
    assert.deepEqual(seen, Array.from({ length: 25 }, (_, i) => `comment ${i}`));
    const read = await http("GET", `/api/posts/${post.id}`, { token: ada.token });
    assert.equal(read.body.commentCount, 25);
  });

  await t.step("the post's author and the comment's author may delete it; others 403", async () => {
    const list = await http("GET", `/api/posts/${post.id}/comments?limit=2`, { token: ada.token });
    const [bobs, cys] = list.body.items;
    assertProblem(await http("DELETE", `/api/comments/${bobs.id}`, { token: cy.token }), 403);
    assert.equal(
      (await http("DELETE", `/api/comments/${bobs.id}`, { token: bob.token })).status,
      204,
    );
    assert.equal(
      (await http("DELETE", `/api/comments/${cys.id}`, { token: ada.token })).status,
      204,
    );
    assertProblem(await http("DELETE", `/api/comments/${cys.id}`, { token: ada.token }), 404);
    const read = await http("GET", `/api/posts/${post.id}`, { token: ada.token });
    assert.equal(read.body.commentCount, 23);
  });

  await t.step("a comment notifies the post's author, every new comment again", async () => {
    await t0.jobsSettled("notify", 25);
    const notices = await http("GET", "/api/notifications", { token: ada.token });
    const byActor = Object.fromEntries(
      notices.body.items.map((item: { actor: { id: string }; count: number; type: string }) => [
        item.actor.id,
        [item.type, item.count],
      ]),
    );
    assert.deepEqual(byActor, { [bob.user.id]: ["comment", 13], [cy.user.id]: ["comment", 12] });
  });

  await t.step("a bad cursor is a 400, not a 500", async () => {
    const problem = assertProblem(
      await http("GET", `/api/posts/${post.id}/comments?cursor=garbage`, { token: ada.token }),
      400,
    );
    assert.equal(problem.errors[0].path, "cursor");
  });
});

Deno.test("[posts] GET /api/feed pages by keyset and shows new posts at once", async (t) => {
  await using t0 = await createTestApp();
  const { http } = t0;
  const [reader, stranger, friend] = await members(t0.deps, 3);
  const authors = await members(t0.deps, 20);
  for (const author of authors) {
    assert.equal(
      (await http("POST", `/api/follows/${author.user.id}`, { token: reader.token })).status,
      204,
    );
  }

  await t.step("250 posts from 20 authors, paged at 20 while 30 more arrive", async () => {
    const original = new Set<string>();
    for (let i = 0; i < 250; i++) {
      if (i % 4 === 0) t0.clock.advance(1); // runs of posts share a millisecond
      original.add((await publish(http, authors[i % 20])).id);
    }
    await publish(http, stranger); // not followed: never in the feed
    const seen: string[] = [];
    let cursor: string | null = null;
    let arrived = 0;
    do {
      const query: string = cursor ? `&cursor=${cursor}` : "";
      const page = await http("GET", `/api/feed?limit=20${query}`, { token: reader.token });
      assert.equal(page.status, 200);
      seen.push(...page.body.items.map((item: { id: string }) => item.id));
      cursor = page.body.nextCursor;
      for (let i = 0; i < 3 && arrived < 30; i++, arrived++) {
        if (arrived % 2 === 0) t0.clock.advance(1);
        await publish(http, authors[(arrived * 7) % 20]);
      }
    } while (cursor);
    assert.equal(arrived, 30);
    const counts = new Map<string, number>();
    for (const id of seen) counts.set(id, (counts.get(id) ?? 0) + 1);
    assert.deepEqual([...counts.values()].filter((n) => n > 1), [], "no post repeated");
    const missing = [...original].filter((id) => !counts.has(id));
    assert.deepEqual(missing, [], "every original post appears");
    assert.equal(seen.length, 250, "and only the originals (new ones are above page one)");
  });

  await t.step("the first page is cached, and a new post shows on the next request", async () => {
    const first = await http("GET", "/api/feed", { token: reader.token });
    const again = await http("GET", "/api/feed", { token: reader.token });
    assert.equal(again.headers.get("x-cache"), "hit");
    assert.deepEqual(again.body, first.body);
    const fresh = await publish(http, authors[3], "breaking news");
    const after = await http("GET", "/api/feed", { token: reader.token });
    assert.equal(after.headers.get("x-cache"), "miss");
    assert.equal(after.body.items[0].id, fresh.id);
  });

  await t.step("an edit or delete also shows at once", async () => {
    const [top] = (await http("GET", "/api/feed", { token: reader.token })).body.items;
    const author = authors.find((member) => member.user.id === top.author.id)!;
    await http("PATCH", `/api/posts/${top.id}`, { token: author.token, body: { text: "fixed" } });
    assert.equal(
      (await http("GET", "/api/feed", { token: reader.token })).body.items[0].text,
      "fixed",
    );
    await http("DELETE", `/api/posts/${top.id}`, { token: author.token });
    const [next] = (await http("GET", "/api/feed", { token: reader.token })).body.items;
    assert.notEqual(next.id, top.id);
  });

  await t.step("the reader's own like shows at once as likedByMe", async () => {
    const [top] = (await http("GET", "/api/feed", { token: reader.token })).body.items;
    await http("POST", `/api/posts/${top.id}/like`, { token: reader.token });
    const [liked] = (await http("GET", "/api/feed", { token: reader.token })).body.items;
    assert.deepEqual([liked.id, liked.likedByMe, liked.likeCount], [top.id, true, 1]);
  });

  await t.step(
    "the feed holds one's own posts and connections' posts; unfollow drops",
    async () => {
      const own = await publish(http, reader, "my own");
      assert.equal(
        (await http("GET", "/api/feed", { token: reader.token })).body.items[0].id,
        own.id,
      );
      await connect(http, friend, reader);
      const fromFriend = await publish(http, friend, "from a connection");
      assert.equal(
        (await http("GET", "/api/feed", { token: reader.token })).body.items[0].id,
        fromFriend.id,
      );
      const followed = await publish(http, authors[0], "soon gone from the feed");
      await http("DELETE", `/api/follows/${authors[0].user.id}`, { token: reader.token });
      const feed = await http("GET", "/api/feed?limit=100", { token: reader.token });
      const ids = feed.body.items.map((item: { id: string }) => item.id);
      assert.ok(!ids.includes(followed.id));
      assert.ok(
        feed.body.items.every((item: { author: { id: string } }) =>
          item.author.id !== authors[0].user.id && item.author.id !== stranger.user.id
        ),
      );
    },
  );

  await t.step(
    "a new follow or connection brings the author's earlier posts; the other source keeps them",
    async () => {
      const feedIds = async () =>
        (await http("GET", "/api/feed?limit=100", { token: reader.token })).body.items
          .map((item: { id: string }) => item.id);
      const [early, later] = [await publish(http, stranger), await publish(http, stranger)];
      t0.clock.advance(1);
      const newer = await publish(http, authors[1], "newer than the stranger's");
      await http("POST", `/api/follows/${stranger.user.id}`, { token: reader.token });
      const followed = await feedIds();
      assert.deepEqual(
        followed.filter((id: string) => [early.id, later.id, newer.id].includes(id)),
        [newer.id, later.id, early.id],
        "in time order among the others",
      );
      // Connected as well: unfollowing keeps the stranger's posts, disconnecting then drops them.
      await connect(http, stranger, reader);
      await http("DELETE", `/api/follows/${stranger.user.id}`, { token: reader.token });
      assert.ok((await feedIds()).includes(early.id), "still connected");
      await http("POST", `/api/blocks/${stranger.user.id}`, { token: reader.token });
      await http("DELETE", `/api/blocks/${stranger.user.id}`, { token: reader.token });
      await t0.deps.outbox.flush();
      assert.ok(!(await feedIds()).includes(early.id), "neither followed nor connected");
      // A connection alone brings them back, like a follow.
      await connect(http, stranger, reader);
      await t0.deps.outbox.flush();
      assert.ok((await feedIds()).includes(early.id), "connected again");
    },
  );
});

Deno.test("[posts] upgrading to written-ahead feeds fills them from the posts, follows and connections already there", async () => {
  // A database as the release before feed_entries left it, with a little of everything in it.
  const pglite = new PGlite();
  const migrations = new URL("../db/migrations/", import.meta.url);
  const statements = async (file: string) =>
    (await Deno.readTextFile(new URL(file, migrations))).split("--> statement-breakpoint");
  const files = [...Deno.readDirSync(migrations)].map((entry) => entry.name)
    .filter((name) => name.endsWith(".sql")).sort();
  const upgrade = files.findIndex((name) => name.includes("feed_entries"));
  try {
    for (const file of files.slice(0, upgrade)) {
      for (const statement of await statements(file)) {
        await pglite.exec(statement);
      }
    }
    await pglite.exec(`
      insert into users (id, email, name, password_hash, created_at, updated_at, last_active_at)
        select u, u || '@example.com', u, 'x', now(), now(), now()
        from unnest(array['ada', 'bob', 'cy', 'dan']) as u;
      insert into posts (id, author_id, text, created_at, updated_at) values
        ('p1', 'ada', 'by ada', now() - interval '3 s', now()),
        ('p2', 'bob', 'by bob', now() - interval '2 s', now()),
        ('p3', 'cy', 'by cy', now() - interval '1 s', now());
      insert into follows (follower_id, followee_id, created_at) values ('dan', 'ada', now());
      insert into connections (user_id, other_id, request_id, since) values
        ('dan', 'bob', 'r1', now()), ('bob', 'dan', 'r1', now());`);
    for (const statement of await statements(files[upgrade])) await pglite.exec(statement);
    const { rows } = await pglite.query<{ viewer_id: string; post_ids: string[] }>(`
      select viewer_id, array_agg(post_id order by created_at desc) as post_ids
      from feed_entries group by viewer_id order by viewer_id`);
    assert.deepEqual(rows, [
      { viewer_id: "ada", post_ids: ["p1"] },
      { viewer_id: "bob", post_ids: ["p2"] },
      { viewer_id: "cy", post_ids: ["p3"] },
      { viewer_id: "dan", post_ids: ["p2", "p1"] }, // followed and connected, newest first
    ]);
  } finally {
    await pglite.close();
  }
});
