// `deno task start` as a self-hoster runs it: the launcher, `deno serve --parallel` (one isolate
// per core; DENO_JOBS makes it two on any machine), a server Postgres through `deno task db:proxy`, the embedded KV file shared
// by the isolates. Each client below has its own connection, so requests land on both isolates.
import assert from "node:assert/strict";
import { useWsProxy } from "../db/client.ts";
import { freshDatabase, integrationTest } from "./helpers/integration.ts";
import { spawnProxy } from "./helpers/proxy.ts";
import { freePort, ServerProcess } from "./helpers/server.ts";

const LAUNCHER = new URL("../scripts/serve.ts", import.meta.url).pathname;

integrationTest(
  "TEST_DATABASE_URL",
  "[scale] deno task start on two isolates: sessions valid on both, no 5xx under concurrent decisions, chat across isolates",
  async (serverUrl, t) => {
    const server = new URL(serverUrl);
    const proxy = await spawnProxy(["0", `${server.hostname}:${server.port || 5432}`]);
    useWsProxy(proxy.address);
    const database = await freshDatabase(serverUrl, "convene_scale");
    const dataDir = await Deno.makeTempDir({ prefix: "convene-scale-" });
    const app = ServerProcess.spawn([Deno.execPath(), "run", "-A", LAUNCHER, "--parallel"], {
      APP_ENV: "development",
      DATA_DIR: dataDir, // new: the isolates generate its secrets at the same moment
      PORT: String(freePort()),
      DENO_JOBS: "2",
      DATABASE_URL: database.url,
      DATABASE_WS_PROXY: proxy.address,
      RATE_LIMIT_LOGIN: "100000/1h",
      RATE_LIMIT_API: "100000000/1h",
    });
    const clients: Deno.HttpClient[] = [];
    try {
      await app.waitFor(
        () => app.logs.filter((line) => line.msg === "convene ready").length === 2,
        "both isolates",
      );
      await app.ready();
      const base = app.url;
      const statuses: number[] = [];
      /** A request on a connection of its own: the kernel picks the isolate. */
      const call = async (method: string, path: string, token?: string, body?: unknown) => {
        const client = Deno.createHttpClient({});
        clients.push(client);
        const response = await fetch(`${base}${path}`, {
          method,
          client,
          headers: {
            "content-type": "application/json",
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        statuses.push(response.status);
        const text = await response.text();
        client.close();
        return { status: response.status, body: text ? JSON.parse(text) : null };
      };

      const people: { id: string; token: string }[] = [];
      await t.step("twelve signups, each then seen by /me on a fresh connection", async () => {
        for (let i = 0; i < 12; i++) {
          const signup = await call("POST", "/api/auth/signup", undefined, {
            name: `Scaler ${i}`,
            email: `scaler-${i}-${crypto.randomUUID().slice(0, 8)}@example.com`,
            password: "correct horse battery staple",
          });
          assert.equal(signup.status, 201, JSON.stringify(signup.body));
          people.push({ id: signup.body.user.id, token: signup.body.token });
          for (let k = 0; k < 3; k++) {
            const me = await call("GET", "/api/auth/me", signup.body.token);
            assert.equal(me.status, 200, "a token issued by one isolate is valid on the other");
          }
        }
      });

      await t.step("connections, then likes and messages all at once", async () => {
        // Everyone is connected to the first person.
        for (const other of people.slice(1)) {
          const request = await call("POST", "/api/connections", people[0].token, {
            toUserId: other.id,
          });
          assert.equal(request.status, 201);
          const accepted = await call("PATCH", `/api/connections/${request.body.id}`, other.token, {
            status: "accepted",
          });
          assert.equal(accepted.status, 200);
        }
        const post = await call("POST", "/api/posts", people[0].token, { text: "scale" });
        const burst = await Promise.all([
          ...people.flatMap((who) =>
            Array.from(
              { length: 5 },
              () => call("POST", `/api/posts/${post.body.id}/like`, who.token),
            )
          ),
          ...people.slice(1).flatMap((other) =>
            Array.from({ length: 10 }, (_, i) => [
              call("POST", `/api/conversations/${other.id}/messages`, people[0].token, {
                text: `out ${i}`,
                tempId: `out-${other.id}-${i}`,
              }),
              call("POST", `/api/conversations/${people[0].id}/messages`, other.token, {
                text: `in ${i}`,
                tempId: `in-${i}`,
              }),
            ]).flat()
          ),
        ]);
        assert.deepEqual(burst.filter((answer) => answer.status >= 500), []);
        assert.deepEqual(new Set(burst.map((answer) => answer.status)), new Set([200, 201]));
        const likes = await call("GET", `/api/posts/${post.body.id}`, people[0].token);
        assert.equal(likes.body.likeCount, people.length);
      });

      await t.step("sockets on both isolates: messages between them arrive both ways", async () => {
        type Opened = { socket: WebSocket; frames: { type: string }[]; isolate: number };
        const sockets: WebSocket[] = [];
        /** Opens a socket as `who`; the server's request log says which isolate took it. */
        const open = async (who: { id: string; token: string }): Promise<Opened> => {
          const upgrades = () =>
            app.logs.filter((line) =>
              line.path === "/ws" && line.status === 101 && line.userId === who.id
            );
          const before = upgrades().length;
          const socket = new WebSocket(`${base.replace("http", "ws")}/ws?token=${who.token}`);
          sockets.push(socket);
          const frames: { type: string }[] = [];
          socket.onmessage = (event) => frames.push(JSON.parse(event.data));
          await new Promise((resolve, reject) => {
            socket.onopen = resolve;
            socket.onerror = () => reject(new Error("a socket was refused"));
          });
          await app.waitFor(() => upgrades().length > before, "the upgrade's log line");
          // A pong comes once the hub has the socket: from then on nothing sent to it is missed.
          socket.send(JSON.stringify({ type: "ping", id: "ready", data: {} }));
          for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
            if (frames.some((frame) => frame.type === "pong")) break;
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
          return { socket, frames, isolate: upgrades().at(-1)!.isolate as number };
        };
        const others = await Promise.all(people.slice(1).map(open));
        let first = await open(people[0]);
        // Until the first person's socket is on another isolate than someone else's.
        for (
          let tries = 0;
          others.every((o) => o.isolate === first.isolate) && tries < 30;
          tries++
        ) {
          first.socket.close();
          first = await open(people[0]);
        }
        const across = others.flatMap((other, i) =>
          other.isolate === first.isolate ? [] : [{ other, who: people[i + 1] }]
        );
        assert.ok(across.length > 0, "someone's socket is on the other isolate");
        for (const { other, who } of across) {
          first.socket.send(JSON.stringify({
            type: "private-message",
            data: { toUserId: who.id, tempId: `live-${who.id}`, text: "to the other isolate" },
          }));
          other.socket.send(JSON.stringify({
            type: "private-message",
            data: { toUserId: people[0].id, tempId: "live", text: "from the other isolate" },
          }));
        }
        const got = (opened: Opened, type: string) =>
          opened.frames.filter((frame) => frame.type === type).length;
        const arrived = () =>
          got(first, "incoming-message") === across.length &&
          got(first, "message-delivered") === across.length &&
          across.every(({ other }) =>
            got(other, "incoming-message") === 1 && got(other, "message-delivered") === 1
          );
        for (const deadline = Date.now() + 10_000; !arrived() && Date.now() < deadline;) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        assert.ok(
          arrived(),
          `every message reached its peer once and was acknowledged once: ${
            JSON.stringify([first, ...across.map(({ other }) => other)].map((o) => ({
              isolate: o.isolate,
              frames: o.frames.map((frame) => frame.type),
            })))
          }`,
        );
        for (const socket of sockets) socket.close();
      });

      assert.deepEqual(statuses.filter((status) => status >= 500), []);
      const errors = app.logs.filter((line) => line.level === "error");
      assert.deepEqual(errors, []);
      assert.ok(!app.stderr.some((line) => /database is locked/.test(line)), app.stderr.join("\n"));
    } finally {
      for (const client of clients) {
        try {
          client.close();
        } catch { /* closed */ }
      }
      await app.kill("SIGTERM");
      await app.outputClosed;
      await database.drop();
      await proxy.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);
