import assert from "node:assert/strict";
import type { NotificationView } from "../db/notifications.ts";
import { readEvents } from "../kv/events.ts";
import { notify, type NotifyPayload } from "../workflows/notifications.ts";
import { assertProblem, createTestApp, signUp } from "./helpers/app.ts";

/**
 * An app with three members, a way to raise notifications through the job, and what was pushed
 * live: the `notification` events in the members' event logs (what their sockets receive).
 */
async function notificationsApp() {
  const t0 = await createTestApp();
  const [ada, bob, cy] = await Promise.all([
    signUp(t0.http, { name: "Ada" }),
    signUp(t0.http, { name: "Bob" }),
    signUp(t0.http, { name: "Cy" }),
  ]);
  let settled = 0;
  /** Raises notifications through the `notify` job and waits until every one of them ran. */
  async function raise(
    ...events: (Omit<NotifyPayload, "userId" | "actorId"> & {
      to: { user: { id: string } };
      by: { user: { id: string } };
    })[]
  ) {
    for (const { to, by, ...event } of events) {
      t0.clock.advance(1000); // each event a second after the last, so "newest first" is defined
      // Straight onto the queue (not the notify() helper) so the job's own self-check is tested.
      await t0.deps.jobs.enqueue("notify", { ...event, userId: to.user.id, actorId: by.user.id });
    }
    settled += events.length;
    await t0.jobsSettled("notify", settled);
  }
  const list = (who: { token: string }, query = "") =>
    t0.http("GET", `/api/notifications${query}`, { token: who.token });
  const unread = async (who: { token: string }) =>
    (await t0.http("GET", "/api/notifications/unread-count", { token: who.token })).body.count;
  async function pushed() {
    const events = await Promise.all(
      [ada, bob, cy].map(async (who) =>
        (await readEvents(t0.deps.kv, who.user.id, 0, 1000))
          .filter((event) => event.type === "notification")
          .map((event) => ({ userId: who.user.id, notification: event.data as NotificationView }))
      ),
    );
    return events.flat();
  }
  return { ...t0, ada, bob, cy, raise, list, unread, pushed };
}

Deno.test("[notifications] GET /api/notifications lists, counts, collapses and marks read", async (t) => {
  await using t0 = await notificationsApp();
  const { ada, bob, cy } = t0;

  await t.step(
    "a follow shows up for the followed user with its actor, unread, and live",
    async () => {
      await t0.raise({ to: ada, by: bob, type: "follow", subjectId: bob.user.id });
      const answer = await t0.list(ada);
      assert.equal(answer.status, 200);
      assert.equal(answer.body.nextCursor, null);
      const [item] = answer.body.items;
      assert.deepEqual(
        { type: item.type, actor: item.actor, subjectId: item.subjectId, read: item.read },
        {
          type: "follow",
          actor: { id: bob.user.id, name: "Bob" },
          subjectId: bob.user.id,
          read: false,
        },
      );
      assert.ok(!Number.isNaN(Date.parse(item.createdAt)));
      assert.equal(await t0.unread(ada), 1);
      assert.deepEqual((await t0.list(bob)).body.items, [], "nothing for the actor");
      assert.deepEqual((await t0.pushed()).map((push) => [push.userId, push.notification.id]), [[
        ada.user.id,
        item.id,
      ]]);
    },
  );

  await t.step("nobody is notified about their own action", async () => {
    assert.equal(
      await notify(t0.deps.jobs, {
        userId: ada.user.id,
        actorId: ada.user.id,
        type: "like",
        subjectId: "p1",
      }),
      null,
      "the helper does not even enqueue it",
    );
    await t0.raise({ to: ada, by: ada, type: "like", subjectId: "p1" });
    assert.equal(await t0.unread(ada), 1);
    assert.equal((await t0.pushed()).length, 1);
  });

  await t.step(
    "a repeated like collapses into one notification; a repeated message raises it again",
    async () => {
      await t0.raise(
        { to: ada, by: bob, type: "like", subjectId: "post-1" },
        { to: ada, by: bob, type: "like", subjectId: "post-1" },
        { to: ada, by: cy, type: "like", subjectId: "post-1" },
      );
      const likes = (await t0.list(ada)).body.items.filter((item: { type: string }) =>
        item.type === "like"
      );
      assert.deepEqual(likes.map((item: { actor: { name: string } }) => item.actor.name).sort(), [
        "Bob",
        "Cy",
      ]);
      assert.equal((await t0.pushed()).length, 3, "the repeat was not pushed");

      await t0.raise({ to: ada, by: bob, type: "message", subjectId: "conversation-1" });
      const [first] = (await t0.list(ada)).body.items;
      assert.equal(first.type, "message");
      assert.equal(
        (await t0.http("POST", "/api/notifications/read", {
          token: ada.token,
          body: { ids: [first.id] },
        })).status,
        204,
      );
      await t0.raise({ to: ada, by: bob, type: "message", subjectId: "conversation-1" });
      const messages = (await t0.list(ada)).body.items.filter((item: { type: string }) =>
        item.type === "message"
      );
      assert.equal(messages.length, 1);
      assert.deepEqual([messages[0].id, messages[0].read, messages[0].count], [first.id, false, 2]);
    },
  );

  await t.step("one event delivered by two jobs (same eventId) counts once", async () => {
    const event = {
      to: ada,
      by: cy,
      type: "comment" as const,
      subjectId: "post-9",
      eventId: "comment-77",
    };
    await t0.raise(event, event);
    const comments = (await t0.list(ada)).body.items.filter((item: { type: string }) =>
      item.type === "comment"
    );
    assert.deepEqual(comments.map((item: { count: number }) => item.count), [1]);
  });

  await t.step("?unread=true, mark some read, others' ids are ignored, then mark all", async () => {
    await t0.raise({ to: bob, by: ada, type: "follow", subjectId: ada.user.id });
    const bobsOnly = (await t0.list(bob)).body.items[0].id;
    const before = await t0.unread(ada);
    assert.equal(before, 5);
    const [newest, second] = (await t0.list(ada, "?unread=true")).body.items;
    const read = await t0.http("POST", "/api/notifications/read", {
      token: ada.token,
      body: { ids: [newest.id, second.id, bobsOnly] },
    });
    assert.equal(read.status, 204);
    assert.equal(await t0.unread(ada), before - 2);
    assert.equal(await t0.unread(bob), 1, "Ada cannot mark Bob's notification read");
    const unreadIds = (await t0.list(ada, "?unread=true")).body.items.map((item: { id: string }) =>
      item.id
    );
    assert.ok(!unreadIds.includes(newest.id) && unreadIds.length === before - 2);
    const all = await t0.http("POST", "/api/notifications/read", { token: ada.token });
    assert.equal(all.status, 204);
    assert.equal(await t0.unread(ada), 0);
    assert.deepEqual((await t0.list(ada, "?unread=true")).body.items, []);
    assert.equal((await t0.list(ada)).body.items.length, 5, "read ones are still listed");
  });

  await t.step("bad input → 400 problem; no session → 401", async () => {
    assertProblem(
      await t0.http("POST", "/api/notifications/read", { token: ada.token, body: { ids: "all" } }),
      400,
    );
    assertProblem(
      await t0.http("POST", "/api/notifications/read", {
        token: ada.token,
        raw: "{",
        headers: { "content-type": "application/json" },
      }),
      400,
    );
    assertProblem(await t0.list(ada, "?limit=500"), 400);
    assertProblem(await t0.list(ada, "?unread=yes"), 400);
    assertProblem(await t0.list(ada, "?cursor=not-a-cursor"), 400);
    assertProblem(await t0.http("GET", "/api/notifications"), 401);
    assertProblem(await t0.http("GET", "/api/notifications/unread-count"), 401);
  });
});

Deno.test("[notifications] pages never skip or repeat, also when new notifications arrive", async () => {
  await using t0 = await notificationsApp();
  const { ada, bob } = t0;
  await t0.raise(...Array.from({ length: 23 }, (_, index) => ({
    to: ada,
    by: bob,
    type: "like" as const,
    subjectId: `post-${index}`,
  })));
  const seen: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const answer = await t0.list(ada, `?limit=10${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(answer.status, 200);
    seen.push(...answer.body.items.map((item: { subjectId: string }) => item.subjectId));
    cursor = answer.body.nextCursor;
    if (pages++ === 0) {
      t0.clock.advance(1000);
      await t0.raise({ to: ada, by: bob, type: "like", subjectId: "post-new" });
    }
  } while (cursor);
  assert.equal(pages, 3);
  assert.equal(new Set(seen).size, seen.length, "no repeats");
  assert.deepEqual(
    [...seen].sort(),
    Array.from({ length: 23 }, (_, index) => `post-${index}`).sort(),
  );
});
