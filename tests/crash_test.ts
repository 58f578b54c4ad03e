// kill -9 under load: the real server on a data directory takes chat (socket and HTTP), likes,
// follows and reservations, is killed mid-burst, and restarts. Every acknowledged write is there,
// stock is conserved, the outbox drains, and a SIGTERM then stops it cleanly.
import assert from "node:assert/strict";
import { outboxPrefix } from "../kv/keys.ts";
import { openKv } from "../kv/store.ts";
import type { Answer } from "./helpers/app.ts";
import { connectOver, heldUnits, liveSale, ServerProcess, signUpOver } from "./helpers/server.ts";

const ENV = {
  APP_ENV: "development",
  ADMIN_EMAILS: "root@example.com",
  RATE_LIMIT_API: "100000/15m",
};
const STOCK = 40;

/** Settles to the answer, or to null when the server died before answering (not acknowledged). */
function attempt(call: Promise<Answer>): Promise<Answer | null> {
  return call.catch(() => null);
}

const acked = (answer: Answer | null) => answer !== null && answer.status < 300;

Deno.test("[crash] kill -9 mid-burst: every acknowledged write survives, stock is conserved, the outbox drains", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "convene-crash-" });
  try {
    const first = await ServerProcess.start(dataDir, ENV);
    const http = first.http;
    const [root, ada, bob, cy] = await Promise.all(
      ["root", "ada", "bob", "cy"].map((name) => signUpOver(http, `${name}@example.com`)),
    );
    await connectOver(http, ada, bob);
    const post =
      (await http("POST", "/api/posts", { token: bob.token, body: { text: "hi" } })).body;
    const { product, sale } = await liveSale(http, root, STOCK);

    // Ada's socket, live before the burst: each `message-delivered` is an acknowledgement.
    const socket = new WebSocket(`${first.url.replace("http", "ws")}/ws?token=${ada.token}`);
    const socketAcks = new Map<string, string>();
    let killed = false;
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type !== "message-delivered" || killed) return;
      socketAcks.set(frame.data.tempId, frame.data.messageId);
      // The moment the tenth is acknowledged: its history row is most likely not written yet.
      if (socketAcks.size === 10) {
        killed = true;
        void first.kill("SIGKILL");
      }
    };
    await new Promise((resolve) => socket.onopen = resolve);
    const socketClosed = new Promise((resolve) => socket.onclose = resolve);

    // The burst: nothing awaited one by one, and the server is killed while it is under way.
    for (let i = 0; i < 40; i++) {
      socket.send(JSON.stringify({
        type: "private-message",
        data: { toUserId: bob.id, tempId: `s-${i}`, text: `socket ${i}` },
      }));
    }
    const messages = Array.from(
      { length: 200 },
      (_, i) =>
        attempt(http("POST", `/api/conversations/${ada.id}/messages`, {
          token: bob.token,
          body: { text: `http ${i}`, tempId: `h-${i}` },
        })),
    );
    const likes = [ada, cy, root].map((who) =>
      attempt(http("POST", `/api/posts/${post.id}/like`, { token: who.token }))
    );
    const follows = [ada, cy, root].map((who) =>
      attempt(http("POST", `/api/follows/${bob.id}`, { token: who.token }))
    );
    const holds = [ada, cy, root].flatMap((who) =>
      Array.from(
        { length: 10 },
        (_, i) =>
          attempt(http("POST", `/api/sales/${sale.id}/reservations`, {
            token: who.token,
            body: { productId: product.id, quantity: 1 },
            headers: { "idempotency-key": `hold-${who.id}-${i}` },
          })).then((answer) => ({ who, answer })),
      )
    );
    const [status, messageAnswers, likeAnswers, followAnswers, holdAnswers] = await Promise.all([
      first.exited,
      Promise.all(messages),
      Promise.all(likes),
      Promise.all(follows),
      Promise.all(holds),
      socketClosed,
    ]);

    assert.equal(status.signal, "SIGKILL", "killed mid-burst, not ended otherwise");
    const second = await ServerProcess.start(dataDir, ENV);
    try {
      const swept = await second.waitForLog((line) => line.msg === "start-up outbox sweep");
      assert.equal(swept.failed, 0);
      assert.equal(swept.deadLettered, 0);
      const again = second.http;

      // Chat: every acknowledged message, socket and HTTP, is in the conversation's history.
      const conversations = await again("GET", "/api/conversations", { token: bob.token });
      const conversationId = conversations.body.items[0].id;
      const stored = new Map<string, string>();
      let cursor = "";
      do {
        const page = await again(
          "GET",
          `/api/conversations/${conversationId}/messages?limit=100${cursor}`,
          { token: bob.token },
        );
        for (const item of page.body.items) stored.set(item.id, item.text);
        cursor = page.body.nextCursor ? `&cursor=${page.body.nextCursor}` : "";
      } while (cursor);
      for (const [tempId, messageId] of socketAcks) {
        assert.equal(
          stored.get(messageId),
          `socket ${tempId.slice(2)}`,
          `socket message ${tempId}`,
        );
      }
      const httpAcked = messageAnswers.filter(acked);
      for (const answer of httpAcked) {
        assert.equal(stored.get(answer!.body.id), answer!.body.text);
      }

      // Likes and follows.
      for (const [index, who] of [ada, cy, root].entries()) {
        if (acked(likeAnswers[index])) {
          const seen = await again("GET", `/api/posts/${post.id}`, { token: who.token });
          assert.equal(seen.body.likedByMe, true);
        }
      }
      const followers = await again("GET", `/api/users/${bob.id}/followers?limit=100`, {
        token: bob.token,
      });
      const followerIds = followers.body.items.map((item: { id: string }) => item.id);
      [ada, cy, root].forEach((who, index) => {
        if (acked(followAnswers[index])) assert.ok(followerIds.includes(who.id));
      });

      // Holds: each acknowledged one is there; units held + units left = the stock, exactly.
      const ackedHolds = holdAnswers.filter(({ answer }) => acked(answer));
      for (const { who, answer } of ackedHolds) {
        const hold = await again("GET", `/api/reservations/${answer!.body.id}`, {
          token: who.token,
        });
        assert.equal(hold.status, 200);
        assert.equal(hold.body.status, "held");
      }
      const held = await heldUnits(dataDir);
      const left = (await again("GET", `/api/sales/${sale.id}`)).body.items[0].stockRemaining;
      assert.equal(held + left, STOCK, `${held} held + ${left} left`);
      assert.ok(held >= ackedHolds.length);
      const kv = await openKv(`${dataDir}/kv.sqlite3`);
      try {
        assert.deepEqual(await Array.fromAsync(kv.list({ prefix: [...outboxPrefix()] })), []);
      } finally {
        kv.close();
      }

      // The kill really came mid-burst: Ada's socket sent 40, and history holds fewer.
      const socketStored = [...stored.values()].filter((text) => text.startsWith("socket "));
      assert.ok(socketStored.length < 40, `${socketStored.length} of 40 socket messages stored`);
      const live = new WebSocket(`${second.url.replace("http", "ws")}/ws?token=${bob.token}`);
      await new Promise((resolve) => live.onopen = resolve);
      const goneAway = new Promise<CloseEvent>((resolve) => live.onclose = resolve);
      const stopped = await second.kill("SIGTERM");
      assert.equal(stopped.code, 0, "SIGTERM stops it cleanly");
      assert.equal((await goneAway).code, 1001, "sockets are told the server is going away");
      assert.equal((await second.waitForLog((line) => line.msg === "stopped")).drained, true);
    } finally {
      await second.kill("SIGKILL");
    }
    for (const server of [first, second]) {
      assert.deepEqual(server.logs.filter((line) => "notJson" in line), [], "stdout is JSON only");
      assert.deepEqual(server.logs.filter((line) => Number(line.status) >= 500), []);
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
