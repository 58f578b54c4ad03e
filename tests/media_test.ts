import assert from "node:assert/strict";
import { count, eq } from "drizzle-orm";
import type { Deps } from "../deps.ts";
import { interviewMedia, media } from "../db/schema.ts";
import { blobKey, sweepMedia } from "../workflows/media/uploads.ts";
import { localStorage, type Storage, StorageError } from "../providers/storage.ts";
import { assertProblem, createTestApp, signUp } from "./helpers/app.ts";
import { heldJobs } from "./helpers/held-jobs.ts";
import { members } from "./helpers/members.ts";
import {
  assertRanges,
  concurrentPhotoChanges,
  fetchMedia,
  fileOf,
  mp4,
  pdf,
  png,
  sha256Hex,
  SIGNATURES,
  upload,
  uploaded,
  webm,
} from "./helpers/media.ts";

async function mediaRows(deps: Deps) {
  const [row] = await deps.database.db.select({ n: count() }).from(media);
  return row.n;
}

async function storedKeys(deps: Deps, prefix = "") {
  return (await deps.storage.list({ prefix, limit: 1000 })).items.map((blob) => blob.key);
}

async function blobExists(deps: Deps, ownerId: string, id: string) {
  const blob = await deps.storage.get(blobKey(ownerId, id));
  await blob?.body.cancel();
  return blob !== null;
}

Deno.test("[media] POST /api/media judges files by their bytes; GET /media/:id serves them", async (t) => {
  await using t0 = await createTestApp();
  const { app, deps } = t0;
  const [ada] = await members(deps, 1);

  await t.step(
    "an upload is stored and served with its sniffed type and cache headers",
    async () => {
      const bytes = png(3000);
      const answer = await upload(app, ada.token, bytes, { name: "x.bin", type: "text/plain" });
      assert.equal(answer.status, 201, JSON.stringify(answer.body));
      const file = answer.body;
      assert.equal(file.contentType, "image/png", "the declared text/plain is not trusted");
      assert.equal(file.size, 3000);
      // The one form every view gives: a path on this server's own origin.
      assert.equal(file.url, `/media/${file.id}`);
      assert.equal(answer.headers.get("location"), file.url);

      const { response, bytes: served } = await fetchMedia(app, file.id);
      assert.equal(response.status, 200);
      assert.deepEqual(served, bytes);
      assert.equal(response.headers.get("content-type"), "image/png");
      assert.equal(response.headers.get("content-length"), "3000");
      assert.equal(response.headers.get("etag"), `"${await sha256Hex(bytes)}"`);
      assert.match(response.headers.get("cache-control")!, /public, max-age=\d+, immutable/);
      assert.equal(response.headers.get("x-content-type-options"), "nosniff");
      assert.match(response.headers.get("content-security-policy")!, /sandbox/);
      assert.equal(response.headers.get("cross-origin-resource-policy"), "cross-origin");

      const revalidated = await fetchMedia(app, file.id, {
        "if-none-match": response.headers.get("etag")!,
      });
      assert.equal(revalidated.response.status, 304);
      assert.equal(revalidated.bytes.length, 0);
      assert.equal(revalidated.response.headers.get("etag"), response.headers.get("etag"));

      const head = await app.request(`/media/${file.id}`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), "3000");
      assert.equal((await head.arrayBuffer()).byteLength, 0);
    },
  );

  await t.step("each accepted signature gets its type, whatever the name says", async () => {
    const cases = [
      [SIGNATURES.jpeg, "image/jpeg"],
      [SIGNATURES.gif87, "image/gif"],
      [SIGNATURES.gif89, "image/gif"],
      [SIGNATURES.webp, "image/webp"],
      [SIGNATURES.pdf, "application/pdf"],
    ] as const;
    for (const [signature, type] of cases) {
      const answer = await upload(app, ada.token, fileOf([...signature]), { name: "photo.png" });
      assert.equal(answer.status, 201, JSON.stringify(answer.body));
      assert.equal(answer.body.contentType, type);
      const { response } = await fetchMedia(app, answer.body.id);
      assert.equal(response.headers.get("content-type"), type);
    }
  });

  await t.step("a renamed executable, an archive or a WAV is 415 and nothing is kept", async () => {
    const rows = await mediaRows(deps);
    const keys = await storedKeys(deps);
    const refused = [
      [SIGNATURES.elf, "photo.png", "image/png", /Linux executable/],
      [SIGNATURES.windowsExe, "cat.jpg", "image/jpeg", /Windows executable/],
      [[0x50, 0x4b, 3, 4], "cv.pdf", "application/pdf", /ZIP/],
      [SIGNATURES.wav, "image.webp", "image/webp", /match none/],
      [[0x3c, 0x73, 0x76, 0x67], "logo.png", "image/svg+xml", /match none/],
    ] as const;
    for (const [signature, name, type, why] of refused) {
      const answer = await upload(app, ada.token, fileOf([...signature]), { name, type });
      const problem = assertProblem(answer, 415);
      assert.equal(problem.type, "/problems/unsupported-media-type");
      assert.match(problem.detail, why);
      assert.ok(problem.accepted.includes("image/png"));
    }
    assert.equal(await mediaRows(deps), rows);
    assert.deepEqual(await storedKeys(deps), keys);
  });

  await t.step(
    "not multipart → 415; no file, a text field, an empty file → 400; signed out → 401",
    async () => {
      const json = await t0.http("POST", "/api/media", { token: ada.token, body: { file: "x" } });
      assertProblem(json, 415);

      const noFile = new FormData();
      noFile.append("other", new Blob([png()]), "x.png");
      const textField = new FormData();
      textField.append("file", "just text");
      const empty = new FormData();
      empty.append("file", new Blob([]), "empty.png");
      for (
        const [form, path] of [[noFile, "file"], [textField, "file"], [empty, "file"]] as const
      ) {
        const response = await app.request("/api/media", {
          method: "POST",
          headers: { authorization: `Bearer ${ada.token}` },
          body: form,
        });
        const problem = await response.json();
        assert.equal(response.status, 400, JSON.stringify(problem));
        assert.equal(problem.errors[0].path, path);
      }
      const garbled = await app.request("/api/media", {
        method: "POST",
        headers: {
          authorization: `Bearer ${ada.token}`,
          "content-type": "multipart/form-data; boundary=zzz",
        },
        body: "--zzz\r\nno headers end here",
      });
      assert.equal(garbled.status, 400);
      await garbled.body?.cancel();

      const anonymous = await upload(app, "", png());
      assertProblem(anonymous, 401);
    },
  );

  await t.step("an unknown id is a 404 problem", async () => {
    const response = await app.request("/media/0190d2c4-0000-7000-8000-000000000000");
    assert.equal(response.status, 404);
    assert.match(response.headers.get("content-type")!, /problem\+json/);
    await response.body?.cancel();
  });
});

/** A multipart body of `total` bytes that counts how much of it the server pulled. */
function meteredUpload(total: number, chunk = 16 * 1024) {
  const boundary = "metered-boundary";
  const head = new TextEncoder().encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n` +
      `Content-Type: image/png\r\n\r\n`,
  );
  const filler = png(chunk);
  const metered = { pulled: 0, cancelled: false };
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const piece = sent === 0 ? head : filler;
      if (sent >= total) {
        controller.enqueue(new TextEncoder().encode(`\r\n--${boundary}--\r\n`));
        controller.close();
        return;
      }
      sent += piece.length;
      metered.pulled = sent;
      controller.enqueue(piece);
    },
    cancel() {
      metered.cancelled = true;
    },
  }, { highWaterMark: 0 });
  return { body, boundary, metered };
}

Deno.test("[media] an oversized upload is refused with 413 without reading the rest of it", async (t) => {
  const limit = 64 * 1024;
  await using t0 = await createTestApp({
    env: { MEDIA_MAX_BYTES: String(limit), MEDIA_VIDEO_MAX_BYTES: String(limit / 2) },
  });
  const { app, deps } = t0;
  const [ada] = await members(deps, 1);
  const post = (body: BodyInit, headers: Record<string, string>) =>
    app.request("/api/media", {
      method: "POST",
      headers: { authorization: `Bearer ${ada.token}`, ...headers },
      body,
    });

  await t.step("a 50 MB stream with no length is cut off just past the limit", async () => {
    const { body, boundary, metered } = meteredUpload(50 * 1024 * 1024);
    const response = await post(body, {
      "content-type": `multipart/form-data; boundary=${boundary}`,
    });
    const problem = await response.json();
    assert.equal(response.status, 413, JSON.stringify(problem));
    assert.equal(problem.type, "/problems/payload-too-large");
    assert.equal(problem.limitBytes, limit);
    assert.ok(metered.pulled < limit + 64 * 1024, `read ${metered.pulled} bytes of 50 MB`);
    assert.ok(metered.cancelled, "the rest of the body is cancelled, not drained");
  });

  await t.step(
    "a declared Content-Length over the limit is refused before any byte is read",
    async () => {
      const { body, boundary, metered } = meteredUpload(50 * 1024 * 1024);
      const response = await post(body, {
        "content-type": `multipart/form-data; boundary=${boundary}`,
        "content-length": String(50 * 1024 * 1024),
      });
      assert.equal(response.status, 413);
      await response.body?.cancel();
      assert.equal(metered.pulled, 0);
    },
  );

  await t.step(
    "exactly the limit is accepted; one byte more is not; nothing refused is kept",
    async () => {
      assert.equal((await upload(app, ada.token, png(limit))).status, 201);
      const over = await upload(app, ada.token, png(limit + 1));
      assertProblem(over, 413);
      assert.equal(await mediaRows(deps), 1);
      assert.equal((await storedKeys(deps)).length, 1);
    },
  );
});

Deno.test("[media] profile videos: MP4 and WebM by their bytes, with a limit of their own; played on the profile", async (t) => {
  const fileLimit = 8 * 1024;
  const videoLimit = 32 * 1024;
  await using t0 = await createTestApp({
    env: { MEDIA_MAX_BYTES: String(fileLimit), MEDIA_VIDEO_MAX_BYTES: String(videoLimit) },
  });
  const { app, deps, http } = t0;
  const [ada, bob] = await members(deps, 2);

  await t.step("MP4 and WebM are sniffed; QuickTime and Matroska are not them", async () => {
    const fromMp4 = await upload(app, ada.token, mp4(4000), { type: "image/png" });
    assert.equal(fromMp4.body.contentType, "video/mp4");
    assert.equal((await upload(app, ada.token, webm(4000))).body.contentType, "video/webm");
    for (const other of [SIGNATURES.mov, SIGNATURES.mkv]) {
      const refused = await upload(app, ada.token, fileOf(other, 4000), { type: "video/mp4" });
      assert.equal(assertProblem(refused, 415).type, "/problems/unsupported-media-type");
    }
    const { response } = await fetchMedia(app, fromMp4.body.id);
    assert.equal(response.headers.get("content-type"), "video/mp4");
  });

  await t.step("a video may be larger than a file, up to its own limit", async () => {
    assert.equal((await upload(app, ada.token, mp4(videoLimit))).status, 201);
    const overVideo = await upload(app, ada.token, mp4(videoLimit + 1));
    assert.equal(assertProblem(overVideo, 413).limitBytes, videoLimit);
    const overFile = await upload(app, ada.token, png(fileLimit + 1));
    assert.equal(assertProblem(overFile, 413).limitBytes, fileLimit, "an image keeps its limit");
  });

  await t.step("a profile shows its owner's video; anything else is refused", async () => {
    const video = await uploaded(app, ada.token, webm(5000));
    const photo = await uploaded(app, ada.token, png(1000));
    const set = await http("PATCH", "/api/profile", {
      token: ada.token,
      body: { videoMediaId: video.id },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.equal(set.body.user.videoUrl, `/media/${video.id}`);
    const seen = await http("GET", `/api/users/${ada.user.id}`, { token: bob.token });
    assert.equal(seen.body.videoUrl, `/media/${video.id}`);
    const image = await http("PATCH", "/api/profile", {
      token: ada.token,
      body: { videoMediaId: photo.id },
    });
    assert.equal(assertProblem(image, 400).errors[0].path, "videoMediaId");
    const asPhoto = await http("PATCH", "/api/profile", {
      token: ada.token,
      body: { avatarMediaId: video.id },
    });
    assert.equal(assertProblem(asPhoto, 400).errors[0].path, "avatarMediaId");
    const bobs = await uploaded(app, bob.token, mp4(3000));
    const notMine = await http("PATCH", "/api/profile", {
      token: ada.token,
      body: { videoMediaId: bobs.id },
    });
    assertProblem(notMine, 403);
    // In use on a profile, the daily sweep keeps it.
    t0.clock.advance(deps.config.MEDIA_ORPHAN_GRACE_SECONDS * 1000 + 1000);
    await sweepMedia(deps);
    assert.equal((await fetchMedia(app, video.id)).response.status, 200);
  });

  await t.step("a player seeks: one range of the bytes at a time (206), as it asks", async () => {
    const bytes = mp4(20_000);
    const video = await uploaded(app, ada.token, bytes);
    await assertRanges((headers) => app.request(`/media/${video.id}`, { headers }), bytes);
    // A range for another version of the file (If-Range) gets the whole of this one.
    const stale = await app.request(`/media/${video.id}`, {
      headers: { range: "bytes=0-9", "if-range": '"not-this-one"' },
    });
    assert.equal(stale.status, 200);
    assert.equal((await stale.arrayBuffer()).byteLength, 20_000);
  });
});

Deno.test("[media] the default limit is 5 MiB", async () => {
  await using t0 = await createTestApp();
  const [ada] = await members(t0.deps, 1);
  const fiveMiB = 5 * 1024 * 1024;
  const at = await upload(t0.app, ada.token, png(fiveMiB));
  assert.equal(at.status, 201);
  assert.equal(at.body.size, fiveMiB);
  assertProblem(await upload(t0.app, ada.token, png(fiveMiB + 1)), 413);
});

Deno.test("[media] attach to posts and profiles; deletes remove blobs by job, never a used one", async (t) => {
  await using t0 = await createTestApp();
  const { app, deps, http } = t0;
  const [ada, bob] = await members(deps, 2, { name: (i) => ["Ada", "Bob"][i] });
  let releases = 0;
  const released = () => t0.jobsSettled("media-release", ++releases);
  const A = await uploaded(app, ada.token, png());
  const B = await uploaded(app, ada.token, pdf());
  const setAvatar = (who: typeof ada, avatarMediaId: string | null) =>
    http("PATCH", "/api/profile", { token: who.token, body: { avatarMediaId } });

  let postId = "";
  await t.step("a post shows its author's files in order", async () => {
    const answer = await http("POST", "/api/posts", {
      token: ada.token,
      body: { text: "with files", mediaIds: [B.id, A.id] },
    });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    assert.deepEqual(answer.body.mediaIds, [B.id, A.id]);
    postId = answer.body.id;
    const read = await http("GET", `/api/posts/${postId}`, { token: bob.token });
    assert.deepEqual(read.body.mediaIds, [B.id, A.id]);
    assert.deepEqual(read.body.media, [
      { id: B.id, url: B.url },
      { id: A.id, url: A.url },
    ], "each file with the url its upload gave");
  });

  await t.step(
    "nobody attaches or deletes another's file (403); unknown and repeated ids are 400",
    async () => {
      const post = await http("POST", "/api/posts", {
        token: bob.token,
        body: { text: "stolen", mediaIds: [A.id] },
      });
      assertProblem(post, 403);
      assertProblem(await setAvatar(bob, A.id), 403);
      assertProblem(await http("DELETE", `/api/media/${A.id}`, { token: bob.token }), 403);
      const unknown = await http("POST", "/api/posts", {
        token: ada.token,
        body: { text: "x", mediaIds: ["no-such-file"] },
      });
      assert.equal(assertProblem(unknown, 400).errors[0].path, "mediaIds");
      const twice = await http("POST", "/api/posts", {
        token: ada.token,
        body: { text: "x", mediaIds: [A.id, A.id] },
      });
      assertProblem(twice, 400);
      assert.equal((await fetchMedia(app, A.id)).response.status, 200);
    },
  );

  await t.step("a profile photo must be the owner's image", async () => {
    assert.equal(assertProblem(await setAvatar(ada, B.id), 400).errors[0].path, "avatarMediaId");
    const set = await setAvatar(ada, A.id);
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.equal(set.body.user.avatarMediaId, A.id);
    assert.equal(set.body.user.avatarUrl, A.url, "the url its upload gave");
    const seen = await http("GET", `/api/users/${ada.user.id}`, { token: bob.token });
    assert.equal(seen.body.avatarUrl, A.url);
  });

  await t.step("deleting the post removes the file only it used; the photo stays", async () => {
    const deleted = await http("DELETE", `/api/posts/${postId}`, { token: ada.token });
    assert.equal(deleted.status, 204);
    await released();
    assert.equal((await fetchMedia(app, B.id)).response.status, 404);
    assert.equal(await blobExists(deps, ada.user.id, B.id), false);
    assert.equal((await fetchMedia(app, A.id)).response.status, 200, "A is still the photo");
    assert.equal(await blobExists(deps, ada.user.id, A.id), true);
  });

  await t.step(
    "replacing the photo removes the old one; deleting the new one clears the profile",
    async () => {
      const C = await uploaded(app, ada.token, png());
      assert.equal((await setAvatar(ada, C.id)).status, 200);
      await released();
      assert.equal((await fetchMedia(app, A.id)).response.status, 404);
      assert.equal(await blobExists(deps, ada.user.id, A.id), false);

      const gone = await http("DELETE", `/api/media/${C.id}`, { token: ada.token });
      assert.equal(gone.status, 204);
      const me = await http("GET", "/api/auth/me", { token: ada.token });
      assert.equal(me.body.user.avatarMediaId, null, "the profile loses the photo at once");
      assert.equal((await fetchMedia(app, C.id)).response.status, 404);
      await released();
      assert.equal(await blobExists(deps, ada.user.id, C.id), false);
      assertProblem(await http("DELETE", `/api/media/${C.id}`, { token: ada.token }), 404);
    },
  );

  await t.step("deleting a file a post shows takes it out of the post", async () => {
    const D = await uploaded(app, ada.token, png());
    const E = await uploaded(app, ada.token, png());
    const post = await http("POST", "/api/posts", {
      token: ada.token,
      body: { text: "two", mediaIds: [D.id, E.id] },
    });
    assert.equal((await http("DELETE", `/api/media/${D.id}`, { token: ada.token })).status, 204);
    const read = await http("GET", `/api/posts/${post.body.id}`, { token: bob.token });
    assert.deepEqual(read.body.mediaIds, [E.id]);
    await released();
    assert.equal(await blobExists(deps, ada.user.id, D.id), false);
    assert.equal(await blobExists(deps, ada.user.id, E.id), true);
  });

  await t.step(
    "posts attaching a file race its release: a post never shows a removed file",
    async () => {
      // Releases start a little later each round, so rounds end either way: posted or released.
      for (let round = 0; round < 14; round++) {
        const F = await uploaded(app, ada.token, png());
        const release = { ownerId: ada.user.id, ids: [F.id] };
        const attempts = await Promise.all(
          Array.from({ length: 40 }, async (_, i) => {
            if (i % 2 === 0) {
              const answer = await http("POST", "/api/posts", {
                token: ada.token,
                body: { text: `race ${round}.${i}`, mediaIds: [F.id] },
              });
              return answer.status;
            }
            await new Promise((resolve) => setTimeout(resolve, round + (i % 12)));
            const job = { id: crypto.randomUUID(), name: "media-release", payload: release };
            await deps.registry.run(job);
            return "released";
          }),
        );
        const posted = attempts.filter((status) => status === 201).length;
        assert.ok(
          attempts.every((status) => status === 201 || status === 400 || status === "released"),
          JSON.stringify(attempts),
        );
        const served = (await fetchMedia(app, F.id)).response.status;
        if (posted > 0) {
          assert.equal(served, 200, `round ${round}: ${posted} posts show a file that was removed`);
          assert.equal(await blobExists(deps, ada.user.id, F.id), true);
        } else {
          assert.equal(served, 404);
          assert.equal(await blobExists(deps, ada.user.id, F.id), false);
        }
      }
    },
  );
});

Deno.test("[media] the daily sweep removes unused files and stray blobs after the grace period", async (t) => {
  await using t0 = await createTestApp();
  const { app, deps, http, clock } = t0;
  const [ada, grace] = [(await members(deps, 1))[0], deps.config.MEDIA_ORPHAN_GRACE_SECONDS * 1000];
  const unused = await uploaded(app, ada.token, png());
  const inPost = await uploaded(app, ada.token, png());
  const photo = await uploaded(app, ada.token, png());
  await http("POST", "/api/posts", {
    token: ada.token,
    body: { text: "kept", mediaIds: [inPost.id] },
  });
  await http("PATCH", "/api/profile", { token: ada.token, body: { avatarMediaId: photo.id } });
  const stray = blobKey(ada.user.id, "0190d2c4-0000-7000-8000-0000000000aa");
  await deps.storage.put(stray, png(), "image/png");

  await t.step("within the grace period nothing goes: the uploader may still attach", async () => {
    clock.advance(grace - 60_000);
    assert.deepEqual(await sweepMedia(deps), { rows: 0, blobs: 0 });
    assert.equal((await fetchMedia(app, unused.id)).response.status, 200);
  });

  await t.step("after it, the unused file and the stray blob go; used files stay", async () => {
    const fresh = await uploaded(app, ada.token, png());
    clock.advance(120_000);
    // The stray blob's mtime is the wall clock's: the sweep reads it against the app's clock.
    assert.deepEqual(await sweepMedia(deps), { rows: 1, blobs: 1 });
    assert.equal((await fetchMedia(app, unused.id)).response.status, 404);
    assert.equal(await blobExists(deps, ada.user.id, unused.id), false);
    assert.ok(!(await storedKeys(deps)).includes(stray));
    for (const kept of [inPost, photo, fresh]) {
      assert.equal((await fetchMedia(app, kept.id)).response.status, 200);
    }
    assert.deepEqual(await sweepMedia(deps), { rows: 0, blobs: 0 }, "a second run finds nothing");
  });
});

Deno.test("[media] interview submissions carry the candidate's files, kept as evidence", async (t) => {
  await using t0 = await createTestApp();
  const { app, deps, http, clock } = t0;
  const [grace, linus] = await members(deps, 2, { name: (i) => ["Grace", "Linus"][i] });
  const opened = await http("POST", "/api/interviews", {
    token: grace.token,
    body: {
      candidateId: linus.user.id,
      skill: "Algorithms",
      prompt: "Sketch the design.",
      rubric: [{ criterion: "clarity", weight: 1 }],
    },
  });
  const id = opened.body.id;
  await http("POST", `/api/interviews/${id}/start`, { token: linus.token });
  const sketch = await uploaded(app, linus.token, pdf());
  const hers = await uploaded(app, grace.token, png());

  await t.step("only the candidate's own files may be submitted", async () => {
    const answer = await http("POST", `/api/interviews/${id}/submit`, {
      token: linus.token,
      body: { answer: "See the attached sketch.", mediaIds: [hers.id] },
    });
    assertProblem(answer, 403);
  });

  await t.step("the submission lists its files and Postgres links them", async () => {
    const answer = await http("POST", `/api/interviews/${id}/submit`, {
      token: linus.token,
      body: { answer: "See the attached sketch.", mediaIds: [sketch.id] },
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body.mediaIds, [sketch.id]);
    await deps.outbox.flush();
    const links = await deps.database.db.select().from(interviewMedia)
      .where(eq(interviewMedia.interviewId, id));
    assert.deepEqual(links.map((link) => link.mediaId), [sketch.id]);
    const read = await http("GET", `/api/interviews/${id}`, { token: grace.token });
    assert.deepEqual(read.body.mediaIds, [sketch.id]);
  });

  await t.step("a submitted file cannot be deleted (409) and the sweep keeps it", async () => {
    const refused = await http("DELETE", `/api/media/${sketch.id}`, { token: linus.token });
    assert.equal(assertProblem(refused, 409).type, "/problems/media-in-use");
    clock.advance(deps.config.MEDIA_ORPHAN_GRACE_SECONDS * 1000 + 1000);
    await sweepMedia(deps);
    assert.equal((await fetchMedia(app, sketch.id)).response.status, 200);
  });
});

Deno.test("[media] DELETE /api/auth/me ends the account and purges its files", async (t) => {
  await using t0 = await createTestApp();
  const { app, deps, http } = t0;
  const ada = await signUp(http);
  const [bob] = await members(deps, 1);
  const mine = [await uploaded(app, ada.token, png()), await uploaded(app, ada.token, pdf())];
  await http("POST", "/api/posts", {
    token: ada.token,
    body: { text: "bye", mediaIds: [mine[0].id] },
  });
  const bobs = await uploaded(app, bob.token, png());

  await t.step("the password must confirm it", async () => {
    const wrong = await http("DELETE", "/api/auth/me", {
      token: ada.token,
      body: { password: "not-the-password" },
    });
    assert.equal(assertProblem(wrong, 400).errors[0].path, "password");
    assert.equal((await fetchMedia(app, mine[0].id)).response.status, 200);
  });

  await t.step("then the account, its sessions and its files are gone; others' stay", async () => {
    const settled = t0.jobsSettled("media-purge-owner");
    const deleted = await http("DELETE", "/api/auth/me", {
      token: ada.token,
      body: { password: ada.password },
    });
    assert.equal(deleted.status, 204, JSON.stringify(deleted.body));
    assertProblem(await http("GET", "/api/auth/me", { token: ada.token }), 401);
    for (const file of mine) {
      assert.equal((await fetchMedia(app, file.id)).response.status, 404);
    }
    await settled;
    assert.deepEqual(await storedKeys(deps, `${ada.user.id}/`), []);
    assert.equal((await fetchMedia(app, bobs.id)).response.status, 200);
  });
});

Deno.test("[media] a storage outage is a 503 and leaves no row behind", async () => {
  const root = await Deno.makeTempDir();
  const working = localStorage(root);
  let down = true;
  const storage: Storage = {
    ...working,
    put: (...args) =>
      down ? Promise.reject(new StorageError(503, "SlowDown")) : working.put(...args),
    get: (key) => down ? Promise.reject(new StorageError(500, "InternalError")) : working.get(key),
  };
  try {
    await using t0 = await createTestApp({ storage });
    const [ada] = await members(t0.deps, 1);
    const refused = await upload(t0.app, ada.token, png());
    assert.equal(assertProblem(refused, 503).type, "/problems/unavailable");
    assert.equal(await mediaRows(t0.deps), 0);
    down = false;
    const file = await uploaded(t0.app, ada.token, png());
    down = true;
    const served = await fetchMedia(t0.app, file.id);
    assert.equal(served.response.status, 503);
    down = false;
    assert.equal((await fetchMedia(t0.app, file.id)).response.status, 200);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("[media] concurrent photo changes hand each replaced photo to removal exactly once", async () => {
  const release = heldJobs(["media-release"]);
  await using t0 = await createTestApp({ jobs: release.jobs });
  const [ada] = await members(t0.deps, 1);
  await concurrentPhotoChanges(t0.app, t0.http, ada, release.held);
});
