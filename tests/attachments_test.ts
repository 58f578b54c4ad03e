import assert from "node:assert/strict";
import { readEvents } from "../kv/events.ts";
import { sweepMedia } from "../workflows/media/uploads.ts";
import {
  type Answer,
  assertProblem,
  createTestApp,
  signUp,
  type TestAppOptions,
} from "./helpers/app.ts";
import { members } from "./helpers/members.ts";
import { connect } from "./helpers/sockets.ts";
import { assertRanges, concurrentAttachmentUploads, pdf, png, upload } from "./helpers/media.ts";

async function attachmentApp(options: TestAppOptions = {}) {
  const t0 = await createTestApp(options);
  const [ada, bob, cy] = await members(t0.deps, 3, { name: (i) => ["Ada", "Bob", "Cy"][i] });
  await connect(t0.http, ada, bob);
  /** POST /api/attachments; expects 201. */
  const attach = async (who: { token: string }, bytes = png(), name = "diagram.png") => {
    const answer = await upload(t0.app, who.token, bytes, { name, to: "/api/attachments" });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    return answer.body as { id: string; name: string; url: string; size: number };
  };
  const send = (
    from: { token: string },
    to: { user: { id: string } },
    body: { text?: string; attachmentIds?: string[] },
  ) =>
    t0.http("POST", `/api/users/${to.user.id}/messages`, {
      token: from.token,
      body: { tempId: crypto.randomUUID(), ...body },
    });
  /** GET of a URL the server gave (a path here, or another origin's), with a session or none. */
  const fetchUrl = async (url: string, token?: string) => {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const init = { headers };
    const response = url.startsWith("/")
      ? await t0.app.request(url, { ...init, redirect: "manual" })
      : await fetch(url, { ...init, redirect: "manual" });
    return { response, bytes: new Uint8Array(await response.arrayBuffer()) };
  };
  /** Follows the message's `url` as a member's browser would: the redirect, then the bytes. */
  const open = async (url: string, token: string) => {
    const redirect = await fetchUrl(url, token);
    if (redirect.response.status !== 302) return redirect;
    const location = redirect.response.headers.get("location")!;
    return { ...await fetchUrl(location), location };
  };
  return { ...t0, ada, bob, cy, attach, send, fetchUrl, open };
}

const problemCode = (answer: Answer) => answer.body?.code;

Deno.test("[attachments] private files in messages: only the two members see them, through short-lived signed URLs", async (t) => {
  await using t0 = await attachmentApp();
  const { ada, bob, cy, http } = t0;
  const bytes = png(3000);
  const file = await t0.attach(ada, bytes, "../../home/ada/diagram.png");
  let message: Answer;

  await t.step("an upload is private: named, sniffed, and not at /media/:id", async () => {
    assert.equal(file.name, "diagram.png", "the client's path is not kept");
    assert.equal(file.url, `/api/attachments/${file.id}/content`);
    assert.equal((await t0.fetchUrl(`/media/${file.id}`)).response.status, 404);
    const unsent = await t0.open(file.url, ada.token);
    assert.equal(unsent.response.status, 200, "its uploader sees it before sending");
    assert.equal((await t0.fetchUrl(file.url, bob.token)).response.status, 404, "no one else");
  });

  await t.step(
    "sent with no text, it is in the message, the history and the live frame",
    async () => {
      message = await t0.send(ada, bob, { attachmentIds: [file.id] });
      assert.equal(message.status, 201, JSON.stringify(message.body));
      const expected = [{
        id: file.id,
        name: "diagram.png",
        contentType: "image/png",
        size: 3000,
        url: file.url,
      }];
      assert.equal(message.body.text, "");
      assert.deepEqual(message.body.attachments, expected);
      const [incoming] = (await readEvents(t0.deps.kv, bob.user.id, 0, 100))
        .filter((event) => event.type === "incoming-message");
      assert.deepEqual((incoming.data as { attachments: unknown }).attachments, expected);
      const history = await http(
        "GET",
        `/api/conversations/${message.body.conversationId}/messages`,
        {
          token: bob.token,
        },
      );
      assert.deepEqual(history.body.items[0].attachments, expected);
    },
  );

  await t.step("the recipient's redirect leads to the bytes, for a few minutes", async () => {
    const seen = await t0.open(file.url, bob.token);
    assert.equal(seen.response.status, 200);
    assert.deepEqual(seen.bytes, bytes);
    assert.equal(seen.response.headers.get("content-type"), "image/png");
    assert.match(seen.response.headers.get("cache-control")!, /^private, max-age=(29\d|300)$/);
    assert.equal(seen.response.headers.get("x-content-type-options"), "nosniff");
    const link = await http("GET", `/api/attachments/${file.id}`, { token: bob.token });
    assert.equal(link.status, 200);
    const expiresIn = Date.parse(link.body.expiresAt) - t0.clock.now();
    assert.ok(expiresIn > 290_000 && expiresIn <= 300_000, `${expiresIn} ms`);
    // A video in a message seeks as a profile's does: by range.
    await assertRanges((headers) => t0.app.request(link.body.url, { headers }), bytes);
    assert.match(
      link.body.url,
      /^\/media\/private\/.+\?viewer=.+&expires=\d+&signature=[0-9a-f]{64}$/,
    );
  });

  await t.step("an outsider is refused, with or without a member's link", async () => {
    assert.equal((await t0.fetchUrl(file.url, cy.token)).response.status, 404);
    assert.equal(
      (await http("GET", `/api/attachments/${file.id}`, { token: cy.token })).status,
      404,
    );
    const bobs = (await http("GET", `/api/attachments/${file.id}`, { token: bob.token })).body.url;
    const forged = bobs.replace(`viewer=${bob.user.id}`, `viewer=${cy.user.id}`);
    assert.equal((await t0.fetchUrl(forged)).response.status, 403, "the link names its viewer");
    const guessed = bobs.replace(/signature=[0-9a-f]{64}/, `signature=${"0".repeat(64)}`);
    assert.equal((await t0.fetchUrl(guessed)).response.status, 403);
    const other = await t0.attach(ada);
    const moved = bobs.replaceAll(file.id, other.id);
    assert.equal((await t0.fetchUrl(moved)).response.status, 403, "a link opens its file only");
  });

  await t.step("an expired link is refused; a new one works", async () => {
    const { url } = (await http("GET", `/api/attachments/${file.id}`, { token: bob.token })).body;
    t0.clock.advance(300_000);
    const late = await t0.fetchUrl(url);
    assert.equal(late.response.status, 403);
    assert.equal(JSON.parse(new TextDecoder().decode(late.bytes)).code, "link-expired");
    assert.equal((await t0.open(file.url, bob.token)).response.status, 200);
  });

  await t.step(
    "after a block, neither member gets it: not by the API, not by a live link",
    async () => {
      const { url } = (await http("GET", `/api/attachments/${file.id}`, { token: bob.token })).body;
      const blocked = await http("POST", `/api/blocks/${ada.user.id}`, { token: bob.token });
      assert.ok(blocked.status < 300, JSON.stringify(blocked.body));
      assert.equal((await t0.fetchUrl(url)).response.status, 404, "the link made before the block");
      assert.equal((await t0.fetchUrl(file.url, bob.token)).response.status, 404);
      assert.equal((await t0.fetchUrl(file.url, ada.token)).response.status, 404);
    },
  );
});

Deno.test("[attachments] sending files: each once, one's own, private, never lost to a delete or the sweep", async (t) => {
  await using t0 = await attachmentApp();
  const { ada, bob, http, deps } = t0;

  await t.step(
    "a message needs text or files; unknown, foreign and public ids are refused",
    async () => {
      const empty = await t0.send(ada, bob, { text: "  " });
      assert.equal(assertProblem(empty, 400).errors[0].path, "text");
      const unknown = await t0.send(ada, bob, {
        attachmentIds: ["0190d2c4-0000-7000-8000-0000000000aa"],
      });
      assert.equal(assertProblem(unknown, 400).errors[0].path, "attachmentIds");
      const bobs = await t0.attach(bob);
      assert.equal((await t0.send(ada, bob, { attachmentIds: [bobs.id] })).status, 403);
      const twice = await t0.send(ada, bob, { attachmentIds: [bobs.id, bobs.id] });
      assert.equal(assertProblem(twice, 400).errors[0].path, "attachmentIds");
      const publicFile = (await upload(t0.app, ada.token, png())).body;
      const notPrivate = await t0.send(ada, bob, { attachmentIds: [publicFile.id] });
      assert.equal(assertProblem(notPrivate, 400).errors[0].path, "attachmentIds");
    },
  );

  await t.step("a private file cannot become a profile photo or a post's picture", async () => {
    const file = await t0.attach(ada);
    const photo = await http("PATCH", "/api/profile", {
      token: ada.token,
      body: { avatarMediaId: file.id },
    });
    assert.equal(assertProblem(photo, 400).errors[0].path, "avatarMediaId");
    const post = await http("POST", "/api/posts", {
      token: ada.token,
      body: { text: "look", mediaIds: [file.id] },
    });
    assert.equal(assertProblem(post, 400).errors[0].path, "mediaIds");
  });

  await t.step(
    "ten concurrent sends of one file to ten people: one message carries it, nine are refused",
    async () => {
      // Ten conversations: their sends do not take turns in this isolate, they race in KV.
      const friends = await members(deps, 10);
      for (const friend of friends) await connect(http, ada, friend);
      const file = await t0.attach(ada);
      const answers = await Promise.all(
        friends.map((friend, i) =>
          t0.send(ada, friend, { text: `try ${i}`, attachmentIds: [file.id] })
        ),
      );
      assert.deepEqual(
        answers.map((a) => a.status).toSorted(),
        [201, ...Array(9).fill(400)],
      );
      assert.ok(
        answers.filter((a) => a.status === 400).every((a) =>
          a.body.errors[0].path === "attachmentIds"
        ),
      );
    },
  );

  await t.step(
    "an unsent file can be deleted; a sent one stays with its message (409)",
    async () => {
      const unsent = await t0.attach(ada);
      assert.equal(
        (await http("DELETE", `/api/media/${unsent.id}`, { token: ada.token })).status,
        204,
      );
      const gone = await t0.send(ada, bob, { attachmentIds: [unsent.id] });
      assert.equal(assertProblem(gone, 400).errors[0].path, "attachmentIds");
      const sent = await t0.attach(ada);
      assert.equal((await t0.send(ada, bob, { attachmentIds: [sent.id] })).status, 201);
      const refused = await http("DELETE", `/api/media/${sent.id}`, { token: ada.token });
      assert.equal(problemCode(refused), "media-in-use");
      // Even before the history row lands: the message's commit is what counts.
      await deps.outbox.flush();
      const again = await http("DELETE", `/api/media/${sent.id}`, { token: ada.token });
      assert.equal(problemCode(again), "media-in-use");
    },
  );

  await t.step(
    "the daily sweep removes unsent files after the grace period, never sent ones",
    async () => {
      const unsent = await t0.attach(ada);
      const sent = await t0.attach(ada, pdf(), "notes.pdf");
      const message = await t0.send(ada, bob, { text: "notes", attachmentIds: [sent.id] });
      assert.equal(message.status, 201);
      t0.clock.advance(deps.config.MEDIA_ORPHAN_GRACE_SECONDS * 1000 + 1000);
      await sweepMedia(deps);
      assert.equal((await t0.fetchUrl(unsent.url, ada.token)).response.status, 404);
      const kept = await t0.open(sent.url, bob.token);
      assert.equal(kept.response.status, 200);
      assert.match(
        kept.response.headers.get("content-disposition")!,
        /^attachment; filename\*=UTF-8''notes\.pdf$/,
        "a file that is not an image is saved under its name",
      );
    },
  );
});

Deno.test("[attachments] when the other member's account goes, the conversation goes with it, and the sweep removes its files", async () => {
  await using t0 = await attachmentApp();
  const { ada, http, deps } = t0;
  const bob = await signUp(http, { name: "Bob Leaving" }); // one who can confirm with a password
  await connect(http, ada, bob);
  const file = await t0.attach(ada);
  assert.equal((await t0.send(ada, bob, { attachmentIds: [file.id] })).status, 201);
  await deps.outbox.flush();
  const gone = await http("DELETE", "/api/auth/me", {
    token: bob.token,
    body: { password: bob.password },
  });
  assert.equal(gone.status, 204, JSON.stringify(gone.body));
  t0.clock.advance(deps.config.MEDIA_ORPHAN_GRACE_SECONDS * 1000 + 1000);
  await sweepMedia(deps);
  assert.equal((await t0.fetchUrl(file.url, ada.token)).response.status, 404);
  const blobs = await deps.storage.list({ prefix: `${ada.user.id}/`, limit: 10 });
  assert.deepEqual(blobs.items, [], "its bytes are gone too");
});

Deno.test("[attachments] a sender's daily budget: past it, 429 until the oldest upload leaves the window", async () => {
  await using t0 = await attachmentApp({ env: { ATTACHMENT_BYTES_PER_DAY: "10000" } });
  const { ada } = t0;
  await t0.attach(ada, png(6000));
  const over = await upload(t0.app, ada.token, png(6000), { to: "/api/attachments" });
  assertProblem(over, 429);
  assert.equal(over.headers.get("retry-after"), "86400");
  await t0.attach(ada, png(4000)); // what is left still fits
  t0.clock.advance(86_400_000);
  await t0.attach(ada, png(6000));
});

Deno.test("[attachments] ten uploads at once against a budget that holds three: three are stored, seven refused, nothing left behind", async () => {
  await using t0 = await attachmentApp({ env: { ATTACHMENT_BYTES_PER_DAY: "10000" } });
  await concurrentAttachmentUploads(t0.app, t0.deps, t0.ada);
});
