import assert from "node:assert/strict";
import {
  localStorage,
  s3Signer,
  s3Storage,
  type Storage,
  StorageError,
} from "../providers/storage.ts";
import { createTestApp } from "./helpers/app.ts";
import { members } from "./helpers/members.ts";
import { assertRanges, fetchMedia, pdf, png, upload, uploaded } from "./helpers/media.ts";
import { nodeAvailable, startS3rver } from "./helpers/s3rver.ts";

/** AWS's published examples (S3 API reference, "Signature Calculations for the Authorization Header"). */
const EXAMPLE = {
  region: "us-east-1",
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

async function signature(url: string, init: RequestInit) {
  const signed = await s3Signer(EXAMPLE).sign(url, {
    ...init,
    aws: { datetime: "20130524T000000Z", allHeaders: true },
  });
  const authorization = signed.headers.get("authorization")!;
  return {
    credential: /Credential=([^,]+)/.exec(authorization)![1],
    signedHeaders: /SignedHeaders=([^,]+)/.exec(authorization)![1],
    signature: /Signature=([0-9a-f]+)/.exec(authorization)![1],
  };
}

Deno.test("[storage] S3 requests are signed exactly as AWS's SigV4 examples", async (t) => {
  const host = "https://examplebucket.s3.amazonaws.com";

  await t.step("GET Object with a Range header", async () => {
    const signed = await signature(`${host}/test.txt`, {
      headers: { range: "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256 },
    });
    assert.equal(signed.credential, "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request");
    assert.equal(signed.signedHeaders, "host;range;x-amz-content-sha256;x-amz-date");
    assert.equal(
      signed.signature,
      "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    );
  });

  await t.step("a presigned GET (query-string auth, as attachments' links are made)", async () => {
    // AWS's example in "Authenticating Requests: Using Query Parameters".
    const signed = await s3Signer(EXAMPLE).sign(`${host}/test.txt?X-Amz-Expires=86400`, {
      method: "GET",
      aws: { signQuery: true, datetime: "20130524T000000Z" },
    });
    const query = new URL(signed.url).searchParams;
    assert.equal(query.get("X-Amz-SignedHeaders"), "host");
    assert.equal(
      query.get("X-Amz-Signature"),
      "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
    );
  });

  await t.step("PUT Object with a body and a key that needs encoding", async () => {
    const body = "Welcome to Amazon S3.";
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)),
    );
    const signed = await signature(`${host}/test$file.text`, {
      method: "PUT",
      body,
      headers: {
        date: "Fri, 24 May 2013 00:00:00 GMT",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
      },
    });
    assert.equal(
      signed.signedHeaders,
      "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
    );
    assert.equal(
      signed.signature,
      "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    );
  });

  await t.step("GET Bucket lifecycle (a query parameter without a value)", async () => {
    const signed = await signature(`${host}/?lifecycle`, {
      headers: { "x-amz-content-sha256": EMPTY_SHA256 },
    });
    assert.equal(
      signed.signature,
      "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    );
  });

  await t.step("GET Bucket (list objects), query parameters sorted", async () => {
    const signed = await signature(`${host}/?prefix=J&max-keys=2`, {
      headers: { "x-amz-content-sha256": EMPTY_SHA256 },
    });
    assert.equal(
      signed.signature,
      "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    );
  });

  await t.step("a different secret gives a different signature", async () => {
    const signed = await s3Signer({ ...EXAMPLE, secretAccessKey: "not-the-key" }).sign(
      `${host}/test.txt`,
      { aws: { datetime: "20130524T000000Z" } },
    );
    assert.doesNotMatch(signed.headers.get("authorization")!, /f0e8bdb87c96/);
  });
});

/** The behaviour every adapter must share, checked against each. */
async function contract(t: Deno.TestContext, storage: Storage) {
  await t.step(`${storage.kind}: put, get, replace, delete (twice)`, async () => {
    const bytes = png(1500);
    await storage.put("owner-a/file-1", bytes, "image/png");
    const got = await storage.get("owner-a/file-1");
    assert.ok(got);
    assert.equal(got.size, 1500);
    assert.deepEqual(new Uint8Array(await new Response(got.body).arrayBuffer()), bytes);
    await storage.put("owner-a/file-1", png(10), "image/png");
    const replaced = await storage.get("owner-a/file-1");
    assert.equal(replaced!.size, 10);
    await replaced!.body.cancel();
    await storage.delete("owner-a/file-1");
    await storage.delete("owner-a/file-1");
    assert.equal(await storage.get("owner-a/file-1"), null);
  });

  await t.step(
    `${storage.kind}: list pages in key order, under a prefix, after a key`,
    async () => {
      const keys = ["a/1", "a/2", "a/3", "a1/x", "b/1", "b/2"];
      for (const key of keys.toReversed()) await storage.put(key, png(20), "image/png");
      const seen: string[] = [];
      let after: string | undefined;
      do {
        const page = await storage.list({ after, limit: 2 });
        assert.ok(page.items.length <= 2);
        seen.push(...page.items.map((blob) => blob.key));
        after = page.next ?? undefined;
      } while (after);
      assert.deepEqual(seen, keys, "every key once, in order");
      const under = await storage.list({ prefix: "a/", limit: 10 });
      assert.deepEqual(under.items.map((blob) => blob.key), ["a/1", "a/2", "a/3"]);
      assert.equal(under.next, null);
      const later = await storage.list({ prefix: "a/", after: "a/1", limit: 10 });
      assert.deepEqual(later.items.map((blob) => blob.key), ["a/2", "a/3"]);
      const blob = under.items[0];
      assert.equal(blob.size, 20);
      assert.ok(Math.abs(blob.lastModified - Date.now()) < 60_000);
      for (const key of keys) await storage.delete(key);
      assert.deepEqual((await storage.list({ limit: 10 })).items, []);
    },
  );

  await t.step(`${storage.kind}: keys that could escape the store are refused`, async () => {
    for (const key of ["../etc/passwd", "a/../../b", "/abs", "a//b", ""]) {
      await assert.rejects(storage.put(key, png(), "image/png"), /not allowed/);
    }
  });
}

Deno.test("[storage] the local adapter keeps files under its directory", async (t) => {
  const root = await Deno.makeTempDir();
  try {
    await contract(t, localStorage(root));
    await t.step("a listing while files are removed lists what is there", async () => {
      const storage = localStorage(root);
      // The daily sweep lists while release jobs delete. Removals run from the last key back while
      // the listing reads from the first, over rounds until one listing saw some of the files but
      // not all: the two met inside it.
      let met = false;
      for (let round = 0; round < 20 && !met; round++) {
        const keys = Array.from({ length: 200 }, (_, i) => `racing/${round}/${1000 + i}`);
        await Promise.all(keys.map((key) => storage.put(key, png(64), "image/png")));
        const listing = storage.list({ prefix: `racing/${round}/`, limit: 1000 });
        await new Promise((resolve) => setTimeout(resolve, round)); // a later start each round
        for (const key of keys.toReversed()) await storage.delete(key);
        const page = await listing;
        assert.ok(page.items.every((blob) => keys.includes(blob.key)));
        met = page.items.length > 0 && page.items.length < keys.length;
      }
      assert.ok(met, "the listing and the removals never overlapped: the race was not tried");
    });
    await t.step("keys sort as S3 sorts them (bytewise), not directory by directory", async () => {
      const storage = localStorage(root);
      for (const key of ["a/1", "a-1/x", "a.b"]) await storage.put(key, png(10), "image/png");
      const page = await storage.list({ limit: 10 });
      assert.deepEqual(page.items.map((blob) => blob.key), ["a-1/x", "a.b", "a/1"]);
      const after = await storage.list({ after: "a-1/x", limit: 1 });
      assert.deepEqual(after.items.map((blob) => blob.key), ["a.b"]);
      for (const key of ["a/1", "a-1/x", "a.b"]) await storage.delete(key);
    });
    await t.step("a half-written file is never listed", async () => {
      await Deno.mkdir(`${root}/c`, { recursive: true });
      await Deno.writeFile(`${root}/c/1.1234.partial`, png());
      assert.deepEqual((await localStorage(root).list({ limit: 10 })).items, []);
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

const node = await nodeAvailable();

Deno.test({
  name: `[storage] the S3 adapter against a local S3-compatible server (s3rver)${
    node ? "" : " (skipped: node is not installed)"
  }`,
  ignore: !node,
}, async (t) => {
  await using s3 = await startS3rver();
  await contract(t, s3Storage({ ...s3.options, prefix: "media/" }));

  await t.step("s3: keys live under the prefix; S3's errors surface with their code", async () => {
    const storage = s3Storage({ ...s3.options, prefix: "media/" });
    await storage.put("o/1", png(), "image/png");
    const bare = s3Storage(s3.options);
    assert.deepEqual((await bare.list({ limit: 10 })).items.map((blob) => blob.key), ["media/o/1"]);
    await storage.delete("o/1");
    const missing = s3Storage({ ...s3.options, bucket: "no-such-bucket" });
    const error = await missing.put("o/1", png(), "image/png").catch((error) => error);
    assert.ok(error instanceof StorageError);
    assert.equal(error.status, 404);
    assert.match(error.message, /NoSuchBucket/);
  });

  await t.step("s3: uploads, serving and removal run end to end through the app", async () => {
    const storage = s3Storage({ ...s3.options, prefix: "media/" });
    await using t0 = await createTestApp({ storage });
    const [ada] = await members(t0.deps, 1);
    const bytes = png(4096);
    const response = await t0.app.request("/api/media", {
      method: "POST",
      headers: { authorization: `Bearer ${ada.token}` },
      body: (() => {
        const form = new FormData();
        form.append("file", new Blob([bytes]), "a.png");
        return form;
      })(),
    });
    const file = await response.json();
    assert.equal(response.status, 201, JSON.stringify(file));
    const served = await fetchMedia(t0.app, file.id);
    assert.equal(served.response.status, 200);
    assert.deepEqual(served.bytes, bytes);
    await assertRanges((headers) => t0.app.request(`/media/${file.id}`, { headers }), bytes);
    const other = await uploaded(t0.app, ada.token, png());
    const settled = t0.jobsSettled("media-release");
    const deleted = await t0.http("DELETE", `/api/media/${file.id}`, { token: ada.token });
    assert.equal(deleted.status, 204);
    await settled;
    const left = await storage.list({ limit: 10 });
    assert.deepEqual(left.items.map((blob) => blob.key), [`${ada.user.id}/${other.id}`]);
  });

  await t.step(
    "s3: an attachment's link is S3's presigned URL, good for its minutes only",
    async () => {
      const storage = s3Storage({ ...s3.options, prefix: "media/" });
      await using t0 = await createTestApp({ storage, env: { ATTACHMENT_URL_SECONDS: "120" } });
      const [ada] = await members(t0.deps, 1);
      const bytes = pdf(4096);
      const answer = await upload(t0.app, ada.token, bytes, {
        name: "cv.pdf",
        to: "/api/attachments",
      });
      assert.equal(answer.status, 201, JSON.stringify(answer.body));
      const redirect = await t0.app.request(answer.body.url, {
        headers: { authorization: `Bearer ${ada.token}` },
      });
      assert.equal(redirect.status, 302);
      const location = new URL(redirect.headers.get("location")!);
      assert.equal(location.origin, new URL(s3.options.endpoint).origin, "straight to the bucket");
      assert.equal(location.searchParams.get("X-Amz-Expires"), "120");
      const served = await fetch(location);
      assert.equal(served.status, 200);
      assert.deepEqual(new Uint8Array(await served.arrayBuffer()), bytes);
      assert.equal(
        served.headers.get("content-disposition"),
        "attachment; filename*=UTF-8''cv.pdf",
        "S3 answers with the file's name",
      );
      // The same link presented after its two minutes (its signing time moved back instead).
      const signedAt = location.searchParams.get("X-Amz-Date")!;
      const iso = signedAt.replace(
        /(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z/,
        "$1-$2-$3T$4:$5:$6Z",
      );
      const earlier = new Date(Date.parse(iso) - 121_000).toISOString();
      location.searchParams.set("X-Amz-Date", earlier.replace(/[-:]|\.\d+/g, ""));
      const late = await fetch(location);
      assert.equal(late.status, 403);
      assert.match(await late.text(), /Request has expired/);
    },
  );
});
