// Faults over real TCP against a real Postgres: the database goes away under chat load (its proxy
// stopped, its backends terminated) and comes back. Nothing acknowledged is lost, nothing is
// dead-lettered by the outage, and every answer meanwhile is a 2xx, a 4xx or a 503.
import assert from "node:assert/strict";
import { Pool } from "@neondatabase/serverless";
import { openNeon, useWsProxy } from "../db/client.ts";
import { serveWsProxy } from "../db/ws-proxy.ts";
import { listDeadLetters } from "../kv/dead-letters.ts";
import { outboxPrefix } from "../kv/keys.ts";
import { type Answer, httpClient } from "./helpers/app.ts";
import { freshDatabase, integrationTest } from "./helpers/integration.ts";
import { type Member, members } from "./helpers/members.ts";
import { connect, servedTestApp, TestSocket } from "./helpers/sockets.ts";

/** How long the database stays away (FAULT_OUTAGE_MS shortens it for a quick local run). */
const OUTAGE_MS = Number(Deno.env.get("FAULT_OUTAGE_MS") ?? 30_000);
/** Every message acknowledged must be in history this soon after the database is back. */
const CATCH_UP_MS = 10_000;
const PAIRS = 10;
/** Each sender's pace: 10 pairs × 10 messages a second = 100 messages a second. */
const SEND_EVERY_MS = 100;

integrationTest(
  "TEST_DATABASE_URL",
  "[faults] the database goes away under chat load: nothing acknowledged is lost, nothing dead-lettered, no 500",
  async (serverUrl, t) => {
    const server = new URL(serverUrl);
    const allow = [`${server.hostname}:${server.port || 5432}`];
    let proxy = serveWsProxy({ allow });
    const port = proxy.port;
    useWsProxy(proxy.address);
    const fresh = await freshDatabase(serverUrl, "convene_faults");
    const database = await openNeon(fresh.url);
    const history = new Pool({ connectionString: fresh.url, max: 1 });
    history.on("error", () => {});
    try {
      await using t0 = await servedTestApp({ database, realClock: true });
      const base = t0.url.replace(/^ws/, "http").replace(/\/ws$/, "");
      // Over the network, as clients call it (not app.request), and checked against /openapi.json.
      const http = httpClient({ request: (path, init) => fetch(`${base}${path}`, init) });
      const people = await members(t0.deps, PAIRS * 2, { name: (i) => `Sender ${i}` });
      const pairs: [Member, Member][] = [];
      for (let i = 0; i < PAIRS; i++) pairs.push([people[2 * i], people[2 * i + 1]]);
      await Promise.all(pairs.map(([a, b]) => connect(t0.http, a, b)));
      const sockets = new Map<string, TestSocket>();
      for (const member of people) {
        sockets.set(member.user.id, await TestSocket.open(t0.url, member.token));
      }

      const inHistory = async (ids: string[]) => {
        const { rows } = await history.query("select id from messages where id = any($1)", [ids]);
        return rows.length;
      };
      /** Polls until every acknowledged message is in Postgres; returns how long that took. */
      const caughtUp = async (ids: string[], since: number) => {
        for (;;) {
          const found = await inHistory(ids).catch(() => -1);
          if (found === ids.length) return performance.now() - since;
          if (performance.now() - since > CATCH_UP_MS * 2) {
            assert.fail(`${ids.length - found} of ${ids.length} acknowledged messages missing`);
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      };
      const assertNothingDeadLettered = async () => {
        const letters = await listDeadLetters(t0.deps.kv, { limit: 100 });
        assert.deepEqual(letters.items, [], "nothing was dead-lettered");
        const left = await Array.fromAsync(t0.deps.kv.list({ prefix: [...outboxPrefix()] }));
        assert.deepEqual(left, [], "the outbox is empty again");
      };

      await t.step(
        `the database proxy stopped for ${OUTAGE_MS / 1000} s under 100 messages a second`,
        async () => {
          const load = chatLoad(pairs, sockets);
          const answers: Answer[] = [];
          await sleep(1_000);
          const [a, b] = pairs[0];
          const conversation = await conversationOf(t0.http, a);
          await proxy.close();
          const outageEnds = performance.now() + OUTAGE_MS;
          while (performance.now() < outageEnds) {
            answers.push(
              ...await Promise.all([
                http("GET", "/api/auth/me", { token: a.token }),
                http("GET", `/api/conversations/${conversation}/messages`, { token: b.token }),
                http("GET", "/api/feed", { token: a.token }),
                http("POST", "/api/posts", { token: a.token, body: { text: "during the outage" } }),
                http("POST", "/api/auth/signup", {
                  body: {
                    name: "Late",
                    email: `late.${crypto.randomUUID()}@example.com`,
                    password: "analytical-engine",
                  },
                }),
              ]),
            );
            await sleep(500);
          }
          proxy = serveWsProxy({ allow, port });
          const back = performance.now();
          await sleep(2_000);
          const { acked, refused } = await load.stop();

          assert.deepEqual(refused, [], "every message was acknowledged, outage or not");
          assert.ok(acked.length > (OUTAGE_MS / 1000) * 50, `only ${acked.length} acknowledged`);
          const statuses = answers.map((answer) => answer.status);
          const unexpected = answers.filter((answer) =>
            answer.status >= 500 && answer.status !== 503
          );
          assert.deepEqual(unexpected.map((answer) => answer.body), [], "no 500s");
          assert.ok(statuses.includes(503), `some answer during the outage was 503: ${statuses}`);
          for (const answer of answers.filter((answer) => answer.status === 503)) {
            assert.ok(Number(answer.headers.get("retry-after")) >= 1, "503 says when to retry");
          }
          const took = await caughtUp(acked, back);
          assert.ok(took < CATCH_UP_MS, `history caught up ${Math.round(took)} ms after`);
          await assertNothingDeadLettered();
          const listed = await http("GET", `/api/conversations/${conversation}/messages`, {
            token: b.token,
          });
          assert.equal(listed.status, 200);
        },
      );

      await t.step("every Postgres backend terminated twice under load", async () => {
        const admin = new Pool({ connectionString: serverUrl, max: 1 });
        admin.on("error", () => {});
        const load = chatLoad(pairs, sockets);
        const answers: Answer[] = [];
        const [a] = pairs[0];
        for (let round = 0; round < 2; round++) {
          await sleep(700);
          await admin.query(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1",
            [new URL(fresh.url).pathname.slice(1)],
          );
          answers.push(await http("GET", "/api/auth/me", { token: a.token }));
          answers.push(await http("GET", "/api/feed", { token: a.token }));
        }
        await admin.end();
        const start = performance.now();
        await sleep(700);
        const { acked, refused } = await load.stop();
        assert.deepEqual(refused, []);
        assert.deepEqual(
          answers.filter((answer) => answer.status >= 500 && answer.status !== 503).map((
            answer,
          ) => answer.body),
          [],
        );
        const took = await caughtUp(acked, start);
        assert.ok(took < CATCH_UP_MS, `history caught up ${Math.round(took)} ms after`);
        await assertNothingDeadLettered();
      });

      for (const socket of sockets.values()) await socket.close();
    } finally {
      // A pool whose connections were terminated may reject on the way out: it is closed either way.
      await history.end().catch(() => {});
      await database.close().catch(() => {});
      await fresh.drop();
      await proxy.close();
    }
  },
);

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function conversationOf(http: ReturnType<typeof httpClient>, member: Member) {
  const list = await http("GET", "/api/conversations", { token: member.token });
  assert.equal(list.status, 200);
  return list.body.items[0].id as string;
}

/**
 * Each pair's first member sends to the second every SEND_EVERY_MS over its socket until `stop`,
 * which waits for every acknowledgement (or refusal) and returns the acknowledged message ids.
 */
function chatLoad(pairs: [Member, Member][], sockets: Map<string, TestSocket>) {
  const sent: { socket: TestSocket; tempId: string }[] = [];
  let running = true;
  const loops = pairs.map(async ([from, to]) => {
    const socket = sockets.get(from.user.id)!;
    while (running) {
      const tempId = crypto.randomUUID();
      socket.send("private-message", { toUserId: to.user.id, tempId, text: `m ${tempId}` }, tempId);
      sent.push({ socket, tempId });
      await sleep(SEND_EVERY_MS);
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      const acked: string[] = [];
      const refused: unknown[] = [];
      const deadline = performance.now() + 20_000;
      for (const { socket, tempId } of sent) {
        for (;;) {
          const answer = socket.frames.find((frame) =>
            (frame.type === "message-delivered" && frame.data.tempId === tempId) ||
            (frame.type === "error" && frame.data.ref === tempId)
          );
          if (answer?.type === "message-delivered") acked.push(answer.data.messageId);
          else if (answer) refused.push(answer.data);
          if (answer) break;
          if (performance.now() > deadline) assert.fail(`message ${tempId} was never answered`);
          await sleep(50);
        }
      }
      for (const socket of new Set(sent.map((item) => item.socket))) socket.frames.length = 0;
      return { acked, refused };
    },
  };
}
