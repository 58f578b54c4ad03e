import assert from "node:assert/strict";
import { Pool } from "@neondatabase/serverless";
import { sql } from "drizzle-orm";
import { inTransaction, openNeon, rowsOf, useWsProxy } from "../db/client.ts";
import { serveWsProxy } from "../db/ws-proxy.ts";
import { assertProblem, createTestApp, randomEmail, signUp } from "./helpers/app.ts";
import { integrationTest } from "./helpers/integration.ts";
import { members } from "./helpers/members.ts";
import { heldJobs } from "./helpers/held-jobs.ts";
import {
  concurrentAttachmentUploads,
  concurrentPhotoChanges,
  fetchMedia,
  png,
  uploaded,
} from "./helpers/media.ts";
import { connect } from "./helpers/sockets.ts";

integrationTest(
  "TEST_DATABASE_URL",
  "[neon] identity and notifications work through Neon's driver against a real Postgres",
  async (serverUrl, t) => {
    const server = new URL(serverUrl);
    const proxy = serveWsProxy({ allow: [`${server.hostname}:${server.port || 5432}`] });
    useWsProxy(proxy.address);
    const admin = quietPool(serverUrl);
    const name = `convene_test_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    await admin.query(`create database ${name}`);
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    try {
      await t.step(
        "several isolates starting at once migrate the database exactly once",
        async () => {
          const handles = await Promise.all([1, 2, 3].map(() => openNeon(url.href)));
          const pool = quietPool(url.href);
          const { rows } = await pool.query(
            "select count(*)::int as n from drizzle.__drizzle_migrations",
          );
          await pool.end();
          await Promise.all(handles.map((handle) => handle.close()));
          const journal = JSON.parse(
            await Deno.readTextFile(
              new URL("../db/migrations/meta/_journal.json", import.meta.url),
            ),
          );
          assert.equal(rows[0].n, journal.entries.length, "one row per migration, not per isolate");
        },
      );

      const database = await openNeon(url.href);
      await using t0 = await createTestApp({ database });
      const { http } = t0;
      try {
        await t.step("signup, login, me, password change, logout", async () => {
          const account = await signUp(http);
          const login = await http("POST", "/api/auth/login", {
            body: { email: account.email, password: account.password },
          });
          assert.equal(login.status, 200);
          const me = await http("GET", "/api/auth/me", { token: login.body.token });
          assert.equal(me.body.user.email, account.email);
          const changed = await http("PUT", "/api/auth/password", {
            token: account.token,
            body: { currentPassword: account.password, newPassword: "over-the-wire-42" },
          });
          assert.equal(changed.status, 204);
          assertProblem(await http("GET", "/api/auth/me", { token: login.body.token }), 401);
          const relogin = await http("POST", "/api/auth/login", {
            body: { email: account.email, password: "over-the-wire-42" },
          });
          assert.equal(relogin.status, 200);
          assert.equal(
            (await http("POST", "/api/auth/logout", { token: relogin.body.token })).status,
            204,
          );
          assertProblem(await http("GET", "/api/auth/me", { token: relogin.body.token }), 401);
        });

        await t.step(
          "a transaction Postgres aborts as a deadlock victim runs again, so both finish",
          async () => {
            const [ada, bob] = await members(t0.deps, 2);
            let locked = 0;
            let bothLocked!: () => void;
            const barrier = new Promise<void>((resolve) => bothLocked = resolve);
            const runs: string[] = [];
            // Each locks one row, waits until the other holds its own, then wants the other's.
            const crossed = (first: string, second: string, label: string) =>
              inTransaction(database.db, async (tx) => {
                runs.push(label);
                await tx.execute(sql`select id from users where id = ${first} for update`);
                if (++locked === 2) bothLocked();
                await barrier;
                await tx.execute(sql`update users set name = ${label} where id = ${second}`);
              });
            await Promise.all([
              crossed(ada.user.id, bob.user.id, "ada then bob"),
              crossed(bob.user.id, ada.user.id, "bob then ada"),
            ]);
            assert.equal(runs.length, 3, "the victim ran twice, the other once");
            const rows = rowsOf<{ id: string; name: string }>(
              await database.db.execute(
                sql`select id, name from users where id in (${ada.user.id}, ${bob.user.id})`,
              ),
            );
            const names = new Map(rows.map((row) => [row.id, row.name]));
            assert.equal(names.get(bob.user.id), "ada then bob");
            assert.equal(names.get(ada.user.id), "bob then ada");
          },
        );

        await t.step("20 concurrent signups with one email → one account, 19 × 409", async () => {
          const email = randomEmail();
          const answers = await Promise.all(
            Array.from({ length: 20 }, () =>
              http("POST", "/api/auth/signup", {
                body: { name: "Racer", email, password: "same-email-race" },
              })),
          );
          const statuses = answers.map((answer) => answer.status);
          assert.equal(statuses.filter((status) => status === 201).length, 1);
          assert.equal(statuses.filter((status) => status === 409).length, 19);
        });

        await t.step("notifications: collapse, raise again, count and mark read", async () => {
          const [ada, bob] = await Promise.all([signUp(http), signUp(http)]);
          const event = { userId: ada.user.id, actorId: bob.user.id };
          // Two likes of one post collapse; two messages in one conversation raise it again.
          const events = [["like", "p"], ["like", "p"], ["message", "c"], ["message", "c"]];
          for (const [index, [type, subjectId]] of events.entries()) {
            t0.clock.advance(1000);
            await t0.deps.jobs.enqueue("notify", { ...event, type, subjectId });
            await t0.jobsSettled("notify", index + 1);
          }
          const list = await http("GET", "/api/notifications", { token: ada.token });
          assert.deepEqual(
            list.body.items.map((item: { type: string; count: number }) => [item.type, item.count]),
            [["message", 2], ["like", 1]],
          );
          const count = await http("GET", "/api/notifications/unread-count", { token: ada.token });
          assert.equal(count.body.count, 2);
          assert.equal(
            (await http("POST", "/api/notifications/read", { token: ada.token })).status,
            204,
          );
          const after = await http("GET", "/api/notifications/unread-count", { token: ada.token });
          assert.equal(after.body.count, 0);
        });

        await t.step("200 concurrent likes over a pool of 10 connections count 200", async () => {
          const [author, ...likers] = await members(t0.deps, 201);
          const post = await http("POST", "/api/posts", {
            token: author.token,
            body: { text: "concurrency on a real server" },
          });
          const answers = await Promise.all(
            likers.map((liker) =>
              http("POST", `/api/posts/${post.body.id}/like`, { token: liker.token })
            ),
          );
          assert.ok(answers.every((answer) => answer.status === 200));
          assert.deepEqual(
            answers.map((answer) => answer.body.likeCount).sort((a, b) => a - b),
            Array.from({ length: 200 }, (_, i) => i + 1),
          );
          const repeats = await Promise.all(
            Array.from(
              { length: 50 },
              () => http("POST", `/api/posts/${post.body.id}/like`, { token: likers[0].token }),
            ),
          );
          assert.ok(repeats.every((answer) => answer.body.likeCount === 200));
          const comments = await Promise.all(
            likers.slice(0, 100).map((liker) =>
              http("POST", `/api/posts/${post.body.id}/comments`, {
                token: liker.token,
                body: { text: "same instant" },
              })
            ),
          );
          assert.ok(comments.every((answer) => answer.status === 201));
          const read = await http("GET", `/api/posts/${post.body.id}`, { token: author.token });
          assert.deepEqual([read.body.likeCount, read.body.commentCount], [200, 100]);
        });

        await t.step("connections, discovery and the feed through the driver", async () => {
          const [a, b] = await members(t0.deps, 2);
          await http("PATCH", "/api/profile", { token: a.token, body: { skills: ["rust"] } });
          await http("PATCH", "/api/profile", { token: b.token, body: { skills: ["Rust"] } });
          const peers = await http("GET", "/api/discover", { token: a.token });
          assert.equal(peers.status, 200);
          const found = peers.body.items.find((item: { profile: { id: string } }) =>
            item.profile.id === b.user.id
          );
          assert.equal(found.explain.skills, 0.5);
          const sent = await http("POST", "/api/connections", {
            token: a.token,
            body: { toUserId: b.user.id },
          });
          const accepted = await http("PATCH", `/api/connections/${sent.body.id}`, {
            token: b.token,
            body: { status: "accepted" },
          });
          assert.equal(accepted.body.status, "accepted");
          const post = await http("POST", "/api/posts", { token: b.token, body: { text: "hi" } });
          const feed = await http("GET", "/api/feed", { token: a.token });
          assert.equal(feed.body.items[0].id, post.body.id);
          const search = await http("GET", "/api/users?q=%25", { token: a.token });
          assert.deepEqual(search.body.items, []);
          // 4 earlier, 200 likes, 100 comments, the request and its acceptance: all delivered.
          await t0.jobsSettled("notify", 306);
          const notices = await http("GET", "/api/notifications", { token: b.token });
          assert.deepEqual(notices.body.items.map((item: { type: string }) => item.type), [
            "connection_request",
          ]);
        });

        await t.step(
          "posts racing follows and unfollows of their author: every feed ends exact",
          async () => {
            const [author, ...followers] = await members(t0.deps, 21);
            const feedOf = async (member: typeof author) =>
              (await http("GET", "/api/feed?limit=100", { token: member.token })).body.items
                .map((item: { id: string }) => item.id).sort();
            const follow = (member: typeof author, method: "POST" | "DELETE") =>
              http(method, `/api/follows/${author.user.id}`, { token: member.token });
            // Half follow while 20 posts are written, the other half stop following meanwhile.
            const [stayers, leavers] = [followers.slice(0, 10), followers.slice(10)];
            await Promise.all(leavers.map((member) => follow(member, "POST")));
            const published = await Promise.all([
              ...Array.from(
                { length: 20 },
                (_, i) =>
                  http("POST", "/api/posts", { token: author.token, body: { text: `race ${i}` } }),
              ),
              ...stayers.map((member) => follow(member, "POST")),
              ...leavers.map((member) => follow(member, "DELETE")),
            ]);
            const posts = published.slice(0, 20).map((answer) => answer.body.id).sort();
            for (const member of stayers) assert.deepEqual(await feedOf(member), posts);
            for (const member of leavers) assert.deepEqual(await feedOf(member), []);
          },
        );

        await t.step(
          "chat: 100 concurrent messages of one pair are stored in order, counted unread",
          async () => {
            const [a, b] = await members(t0.deps, 2);
            await connect(http, a, b);
            const sent = await Promise.all(
              Array.from(
                { length: 100 },
                (_, i) =>
                  http("POST", `/api/conversations/${(i % 2 ? a : b).user.id}/messages`, {
                    token: (i % 2 ? b : a).token,
                    body: { text: `m${i}`, tempId: `t${i}` },
                  }).then((answer) => answer.status),
              ),
            );
            assert.deepEqual(new Set(sent), new Set([201]));
            const [conversation] =
              (await http("GET", "/api/conversations", { token: a.token })).body.items;
            assert.equal(conversation.unreadCount, 50);
            const page = await http(
              "GET",
              `/api/conversations/${conversation.id}/messages?limit=100`,
              {
                token: a.token,
              },
            );
            assert.equal(page.body.items.length, 100);
            assert.equal(page.body.items[0].id, conversation.lastMessage.id);
            const read = await http("POST", `/api/conversations/${conversation.id}/read`, {
              token: a.token,
            });
            assert.equal(read.status, 204);
            const after =
              (await http("GET", "/api/conversations", { token: a.token })).body.items[0];
            assert.equal(after.unreadCount, 0);
          },
        );

        await t.step(
          "an interview from invitation to a verified skill; 20 concurrent scores → one",
          async () => {
            const [interviewer, candidate] = await members(t0.deps, 2);
            const rubric = [{ criterion: "Correctness", weight: 2 }, {
              criterion: "Style",
              weight: 1,
            }];
            const created = await http("POST", "/api/interviews", {
              token: interviewer.token,
              body: {
                candidateId: candidate.user.id,
                skill: "SQL",
                prompt: "Explain joins.",
                rubric,
              },
            });
            assert.equal(created.status, 201);
            const id = created.body.id;
            const move = (who: typeof candidate, action: string, body?: unknown) =>
              http("POST", `/api/interviews/${id}/${action}`, { token: who.token, body });
            assert.equal((await move(candidate, "start")).status, 200);
            const answer = "A join's correctness depends on its keys; style is about naming.";
            assert.equal((await move(candidate, "submit", { answer })).status, 200);
            await t0.jobsSettled("interview-evaluate");
            const scores = await Promise.all(
              Array.from({ length: 20 }, () =>
                move(interviewer, "score", {
                  scores: [{ criterion: "Correctness", score: 9 }, {
                    criterion: "Style",
                    score: 6,
                  }],
                })),
            );
            assert.deepEqual(
              scores.map((answer) => answer.status).sort(),
              [200, ...Array(19).fill(409)],
            );
            const profile = await http("GET", `/api/users/${candidate.user.id}`, {
              token: interviewer.token,
            });
            assert.deepEqual(
              profile.body.verifiedSkills.map((held: { skill: string; interviewId: string }) => [
                held.skill,
                held.interviewId,
              ]),
              [["sql", id]],
            );
            const events = await http("GET", `/api/interviews/${id}/events`, {
              token: candidate.token,
            });
            assert.deepEqual(
              events.body.items.map((event: { to: string }) => event.to),
              ["CREATED", "STARTED", "SUBMITTED", "EVALUATING", "SCORED"],
            );
            const listed = await http("GET", "/api/interviews?role=candidate", {
              token: candidate.token,
            });
            assert.equal(listed.body.items[0].weightedScore, 8);
            assert.equal(listed.body.items[0].passed, true);
          },
        );

        await t.step(
          "matchmaking: 100 concurrent joiners → 50 matches; connect and history through the driver",
          async () => {
            const crowd = await members(t0.deps, 100);
            const [ada] = await members(t0.deps, 1, { gender: "female" });
            const [bob] = await members(t0.deps, 1, { gender: "male" });
            const joins = await Promise.all(
              crowd.map((who) =>
                http("POST", "/api/match/queue", { token: who.token, body: { intent: "neon" } })
              ),
            );
            assert.deepEqual(new Set(joins.map((answer) => answer.status)), new Set([202]));
            const matchIds = new Set<string>();
            for (const who of crowd) {
              const current = await http("GET", "/api/match/current", { token: who.token });
              assert.equal(current.status, 200);
              matchIds.add(current.body.matchId);
            }
            assert.equal(matchIds.size, 50);
            for (const who of [ada, bob]) {
              const joined = await http("POST", "/api/match/queue", {
                token: who.token,
                body: { intent: "neon-pair" },
              });
              assert.equal(joined.status, 202);
            }
            const { matchId } =
              (await http("GET", "/api/match/current", { token: bob.token })).body;
            const act = (who: typeof ada, action: string) =>
              http("POST", `/api/match/${matchId}/${action}`, { token: who.token });
            assertProblem(await act(bob, "connect"), 403);
            assert.equal((await act(ada, "connect")).body.connected, true);
            assert.equal((await act(bob, "end")).status, 200);
            const history = await http("GET", "/api/history/interactions", { token: ada.token });
            assert.deepEqual(
              history.body.items.map((item: { matchId: string; outcome: string }) => [
                item.matchId,
                item.outcome,
              ]),
              [[matchId, "connected"]],
            );
            const connections = await http("GET", "/api/connections?status=accepted", {
              token: bob.token,
            });
            assert.equal(connections.body.items.length, 1);
            await t0.jobsSettled("notify", 1);
          },
        );

        await t.step(
          "flash sale: 200 concurrent buyers of 50 units, checkout, signed webhook, orders",
          async () => {
            const [admin] = await members(t0.deps, 1, { role: "admin" });
            const buyers = await members(t0.deps, 200);
            const product = await http("POST", "/api/products", {
              token: admin.token,
              body: { name: "Neon mug", priceCents: 1200, currency: "USD" },
            });
            const sale = await http("POST", "/api/sales", {
              token: admin.token,
              body: {
                items: [{ productId: product.body.id, stock: 50, priceCents: 999 }],
                startsAt: new Date(t0.clock.now() - 1000).toISOString(),
                endsAt: new Date(t0.clock.now() + 3_600_000).toISOString(),
                perUserLimit: 1,
              },
            });
            assert.equal(sale.status, 201, JSON.stringify(sale.body));
            const answers = await Promise.all(
              buyers.map((who) =>
                http("POST", `/api/sales/${sale.body.id}/reservations`, {
                  token: who.token,
                  body: { productId: product.body.id, quantity: 1 },
                })
              ),
            );
            const won = answers.flatMap((answer, i) => answer.status === 201 ? [i] : []);
            assert.equal(won.length, 50);
            assert.equal(answers.filter((answer) => answer.status === 409).length, 150);
            const buyer = buyers[won[0]];
            const checkout = await http(
              "POST",
              `/api/reservations/${answers[won[0]].body.id}/checkout`,
              { token: buyer.token },
            );
            const paid = await http("POST", new URL(checkout.body.paymentUrl).pathname, {
              raw: new URLSearchParams({ outcome: "pay" }),
              headers: { "content-type": "application/x-www-form-urlencoded" },
            });
            assert.equal(paid.status, 200);
            const orders = await http("GET", "/api/orders", { token: buyer.token });
            assert.deepEqual(
              orders.body.items.map((order: { id: string; status: string }) => [
                order.id,
                order.status,
              ]),
              [[checkout.body.orderId, "paid"]],
            );
            await t0.jobsSettled("notify", 2);
          },
        );

        await t.step(
          "media: attaches racing releases and the owner's delete never leave a post on a removed file",
          async () => {
            const [owner] = await members(t0.deps, 1);
            for (let round = 0; round < 8; round++) {
              const file = await uploaded(t0.app, owner.token, png());
              const release = { ownerId: owner.user.id, ids: [file.id] };
              const racers = Array.from({ length: 40 }, async (_, i) => {
                if (i % 4 === 0) {
                  // Later each round, so rounds end both ways: the file used, or removed.
                  await new Promise((resolve) => setTimeout(resolve, round * 4 + (i % 8)));
                  await t0.deps.registry.run({
                    id: crypto.randomUUID(),
                    name: "media-release",
                    payload: release,
                  });
                  return "released";
                }
                if (i === 39 && round % 2 === 1) {
                  return (await http("DELETE", `/api/media/${file.id}`, { token: owner.token }))
                    .status;
                }
                const answer = i % 4 === 1
                  ? await http("PATCH", "/api/profile", {
                    token: owner.token,
                    body: { avatarMediaId: file.id },
                  })
                  : await http("POST", "/api/posts", {
                    token: owner.token,
                    body: { text: `round ${round}`, mediaIds: [file.id] },
                  });
                return answer.status;
              });
              const outcomes = await Promise.all(racers);
              assert.ok(
                outcomes.every((outcome) =>
                  [200, 201, 204, 400, 404, "released"].includes(outcome)
                ),
                // The server's error log says why, should an answer ever be a 500.
                JSON.stringify({
                  outcomes,
                  errors: t0.logs.filter((line) => line.level === "error").slice(-3),
                }),
              );
              const { rows } = await t0.deps.database.db.execute(sql`
                select (select count(*)::int from posts where ${file.id} = any(media_ids)) as posts,
                  (select count(*)::int from post_media where media_id = ${file.id}) as links,
                  (select count(*)::int from users where avatar_media_id = ${file.id}) as avatars,
                  (select count(*)::int from media where id = ${file.id}) as rows`) as unknown as {
                rows: { posts: number; links: number; avatars: number; rows: number }[];
              };
              const [state] = rows;
              assert.equal(state.posts, state.links, "every post showing the file links it");
              const served = (await fetchMedia(t0.app, file.id)).response.status;
              if (state.posts + state.avatars > 0) {
                assert.equal(state.rows, 1, `round ${round}: a used file lost its row`);
                assert.equal(served, 200, `round ${round}: a used file lost its bytes`);
              }
              await http("PATCH", "/api/profile", {
                token: owner.token,
                body: { avatarMediaId: null },
              });
            }
          },
        );

        await t.step(
          "media: 20 concurrent photo changes hand each replaced photo to removal once",
          async () => {
            const release = heldJobs(["media-release"]);
            await using photos = await createTestApp({ database, jobs: release.jobs });
            const [member] = await members(photos.deps, 1);
            await concurrentPhotoChanges(photos.app, photos.http, member, release.held);
          },
        );

        await t.step(
          "gender: of two first choices at once over a pool, one is the choice",
          async () => {
            for (let round = 0; round < 5; round++) {
              const [eve] = await members(t0.deps, 1);
              const choose = (gender: string) =>
                http("PATCH", "/api/profile", { token: eve.token, body: { gender } });
              const answers = await Promise.all([choose("female"), choose("male")]);
              assert.deepEqual(answers.map((answer) => answer.status).toSorted(), [200, 409]);
            }
          },
        );

        await t.step(
          "attachments: ten uploads at once over a pool spend a daily budget that holds three",
          async () => {
            await using files = await createTestApp({
              database,
              env: { ATTACHMENT_BYTES_PER_DAY: "10000" },
            });
            const [member] = await members(files.deps, 1);
            await concurrentAttachmentUploads(files.app, files.deps, member);
          },
        );

        await t.step("/readyz reports the database", async () => {
          assert.equal((await http("GET", "/readyz")).status, 200);
        });
      } finally {
        await database.close();
      }
    } finally {
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
      await proxy.close();
    }
  },
);

/**
 * A pool for the test's own bookkeeping. An idle client whose socket closes during teardown makes
 * the pool emit "error", which is fatal without a listener; here that is expected and harmless.
 */
function quietPool(connectionString: string) {
  const pool = new Pool({ connectionString });
  pool.on("error", () => {});
  return pool;
}
