// Faults over real TCP against a real Postgres: the database goes away under chat load (its proxy
// stopped, its backends terminated) and comes back. Nothing acknowledged is lost, nothing is
// dead-lettered by the outage, and every answer meanwhile is a 2xx, a 4xx or a 503.
import assert from "node:assert/strict";
import { Pool } from "@neondatabase/serverless";
import { openNeon, useWsProxy } from "../db/client.ts";
import { serveWsProxy } from "../db/ws-proxy.ts";
import { listDeadLetters } from "../kv/dead-letters.ts";
import { outboxPrefix } from "../kv/keys.ts";
import { type Answer, type HttpClient, httpClient } from "./helpers/app.ts";
import { spawnProxy } from "./helpers/proxy.ts";
import {
  type Account,
  connectOver,
  freePort,
  heldUnits,
  liveSale,
  ServerProcess,
  signUpOver,
} from "./helpers/server.ts";
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

const STOCK = 300;

integrationTest(
  "TEST_DATABASE_URL",
  "[faults] the real server on Postgres under load: its proxy killed and restarted, backends terminated, the server killed with SIGKILL",
  async (serverUrl, t) => {
    const server = new URL(serverUrl);
    const target = `${server.hostname}:${server.port || 5432}`;
    // The test's own connections go through a proxy in this process; the server's through its own.
    const own = serveWsProxy({ allow: [target] });
    useWsProxy(own.address);
    const fresh = await freshDatabase(serverUrl, "convene_faults");
    const proxyPort = freePort();
    let proxy = await spawnProxy([String(proxyPort), target]);
    const dataDir = await Deno.makeTempDir({ prefix: "convene-faults-" });
    const env = {
      APP_ENV: "development",
      ADMIN_EMAILS: "root@example.com",
      RATE_LIMIT_API: "100000/15m",
      DATABASE_URL: fresh.url,
      DATABASE_WS_PROXY: proxy.address,
    };
    const servers = [await ServerProcess.start(dataDir, env)];
    const current = () => servers.at(-1)!;
    const http: HttpClient = (method, path, options) => current().http(method, path, options);
    try {
      const [root, ada, bob, ...buyers] = await Promise.all(
        ["root", "ada", "bob", "cy", "dee", "eve", "fay"].map((name) =>
          signUpOver(http, `${name}@example.com`)
        ),
      );
      await connectOver(http, ada, bob);
      const { product, sale } = await liveSale(http, root, STOCK);

      // The load: Ada chats over her socket (reconnecting when the server dies), four buyers
      // hold units, and reads run beside them. Every answer is kept; a request the dead server
      // never answered is no acknowledgement.
      const acked = new Map<string, string>();
      const answers: { what: string; status: number; body: unknown }[] = [];
      const holds: { who: Account; id: string }[] = [];
      let running = true;
      let sent = 0;
      const chat = (async () => {
        while (running) {
          const socket = new WebSocket(
            `${current().url.replace("http", "ws")}/ws?token=${ada.token}`,
          );
          socket.onmessage = (event) => {
            const frame = JSON.parse(event.data);
            if (frame.type === "message-delivered") {
              acked.set(frame.data.tempId, frame.data.messageId);
            }
            if (frame.type === "error") {
              answers.push({ what: "frame", status: frame.data.status, body: frame.data });
            }
          };
          const closed = new Promise((resolve) => socket.onclose = resolve);
          await Promise.race([new Promise((resolve) => socket.onopen = resolve), closed]);
          while (running && socket.readyState === WebSocket.OPEN) {
            const tempId = `m-${sent++}`;
            socket.send(JSON.stringify({
              type: "private-message",
              data: { toUserId: bob.id, tempId, text: tempId },
            }));
            await sleep(20);
          }
          if (socket.readyState === WebSocket.OPEN) {
            await sleep(1_000); // the last acknowledgements
            socket.close();
          }
          await closed;
          if (running) await sleep(200);
        }
      })();
      const call = async (what: string, work: () => Promise<Answer>) => {
        const answer = await work().catch(() => null); // the server died before answering
        if (answer) answers.push({ what, status: answer.status, body: answer.body });
        return answer;
      };
      const others = (async () => {
        for (let i = 0; running; i++) {
          const who = buyers[i % buyers.length];
          const hold = await call(
            "reserve",
            () =>
              http("POST", `/api/sales/${sale.id}/reservations`, {
                token: who.token,
                body: { productId: product.id, quantity: 1 },
                headers: { "idempotency-key": `hold-${i}` },
              }),
          );
          if (hold?.status === 201) holds.push({ who, id: hold.body.id });
          await call("me", () => http("GET", "/api/auth/me", { token: bob.token }));
          await call("feed", () => http("GET", "/api/feed", { token: bob.token }));
          await sleep(50);
        }
      })();

      await t.step("the proxy killed for 10 s, then restarted", async () => {
        await sleep(1_500);
        await proxy.close("SIGKILL");
        await sleep(10_000);
        proxy = await spawnProxy([String(proxyPort), target]);
        await sleep(2_000);
      });

      await t.step("every backend of the database terminated", async () => {
        const admin = new Pool({ connectionString: serverUrl, max: 1 });
        admin.on("error", () => {});
        await admin.query(
          "select pg_terminate_backend(pid) from pg_stat_activity where datname = $1",
          [new URL(fresh.url).pathname.slice(1)],
        );
        await admin.end();
        await sleep(1_500);
      });

      await t.step("the server killed with SIGKILL mid-load, and started again", async () => {
        const status = await current().kill("SIGKILL");
        assert.equal(status.signal, "SIGKILL");
        servers.push(await ServerProcess.start(dataDir, env));
        await sleep(2_000);
        running = false;
        await Promise.all([chat, others]);
      });

      await t.step(
        "nothing acknowledged is lost, nothing dead-lettered, stock conserved, no 500",
        async () => {
          assert.ok(acked.size > 300, `${acked.size} of ${sent} messages acknowledged`);
          assert.ok(answers.some((answer) => answer.status === 503), "the outage was seen as 503");
          assert.deepEqual(
            answers.filter((answer) => answer.status >= 500 && answer.status !== 503),
            [],
          );
          const conversation = (await http("GET", "/api/conversations", { token: bob.token })).body
            .items[0].id;
          const deadline = Date.now() + CATCH_UP_MS;
          let stored = new Set<string>();
          while (Date.now() < deadline) {
            stored = new Set(
              await pageAll(http, `/api/conversations/${conversation}/messages`, bob),
            );
            if ([...acked.values()].every((id) => stored.has(id))) break;
            await sleep(200);
          }
          const lost = [...acked.values()].filter((id) => !stored.has(id));
          assert.deepEqual(lost, [], `${lost.length} of ${acked.size} acknowledged messages lost`);

          for (const { who, id } of holds) {
            const hold = await http("GET", `/api/reservations/${id}`, { token: who.token });
            assert.equal(hold.body.status, "held", `hold ${id}`);
          }
          const left = (await http("GET", `/api/sales/${sale.id}`)).body.items[0].stockRemaining;
          const held = await heldUnits(dataDir);
          assert.equal(held + left, STOCK, `${held} held + ${left} left`);
          assert.ok(held >= holds.length);

          const letters = await http("GET", "/api/admin/dead-letters", { token: root.token });
          assert.equal(letters.status, 200);
          assert.deepEqual(letters.body.items, [], "nothing dead-lettered by the faults");
          for (const process of servers) {
            assert.deepEqual(
              process.logs.filter((line) => "notJson" in line),
              [],
              "stdout is JSON",
            );
            assert.deepEqual(
              process.logs.filter((line) => Number(line.status) >= 500 && line.status !== 503),
              [],
            );
            const stray = process.stderr.filter((line) =>
              !/Listening on http/.test(line) && !isJson(line)
            );
            assert.deepEqual(stray, [], "stderr holds nothing but JSON lines");
          }
        },
      );
    } finally {
      for (const process of servers) await process.kill("SIGKILL");
      await proxy.close("SIGKILL");
      await fresh.drop();
      await own.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);

/** Every item id of a list, page by page. */
async function pageAll(http: HttpClient, path: string, who: Account): Promise<string[]> {
  const ids: string[] = [];
  let cursor = "";
  do {
    const page = await http("GET", `${path}?limit=100${cursor}`, { token: who.token });
    if (page.status !== 200) return ids;
    ids.push(...page.body.items.map((item: { id: string }) => item.id));
    cursor = page.body.nextCursor ? `&cursor=${page.body.nextCursor}` : "";
  } while (cursor);
  return ids;
}

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}
