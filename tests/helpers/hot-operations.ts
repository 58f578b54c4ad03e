// The hot operations whose strong KV round trips are budgeted (docs/performance.md), each as a
// fresh sample: `prepare` sets up what one run needs (not measured) and returns the run. The test
// counts each run's rounds (tests/round_trips_test.ts); the benchmark times them with every strong
// KV call held a fixed delay (bench/round-trips.ts).
import type { Answer } from "./app.ts";
import { png, upload } from "./media.ts";
import { type Member, members } from "./members.ts";
import { connect, type servedTestApp, TestSocket } from "./sockets.ts";

type App = Awaited<ReturnType<typeof servedTestApp>>;

/** Decisions: one batched read of what they check, one commit of what they write. */
export const DECISION = 2;
/** An authenticated read: the session costs none; what is read, at most one. */
export const READ = 1;
/** A decision on what this isolate's last commit of it left: its commit alone. */
export const REMEMBERED = 1;
/** A second joiner until found-match has reached both participants' sockets. */
export const MATCHMAKING = 3;

export interface HotOperation {
  name: string;
  /** Sequential strong round trips it may wait for. */
  budget: number;
  /** Sets up one sample; resolves with the run, which resolves with the status it expects met. */
  prepare(): Promise<Run>;
}

/** One run of an operation; resolves once what a user waits for has happened. */
export type Run = () => Promise<unknown>;

/**
 * The hot operations on `t0`. Each `prepare` makes fresh members (and whatever else the run
 * decides on), so runs can repeat without meeting their own earlier state.
 */
export async function hotOperations(t0: App): Promise<HotOperation[] & AsyncDisposable> {
  const { http } = t0;
  const [admin] = await members(t0.deps, 1, { name: () => "Admin", role: "admin" });
  const people = (count: number) => members(t0.deps, count, { gender: "female" });
  const expect = (status: number) => (answer: Answer) => {
    if (answer.status !== status) {
      throw new Error(`expected ${status}, got ${answer.status}: ${JSON.stringify(answer.body)}`);
    }
    return answer;
  };
  /** A private file of `who`'s (uploaded in `prepare`, not part of any run). */
  const attachment = async (who: Member) => {
    const answer = await upload(t0.app, who.token, png(), { to: "/api/attachments" });
    return expect(201)(answer).body.id as string;
  };
  const sockets: TestSocket[] = [];
  const socketOf = async (who: Member) => {
    const socket = await TestSocket.open(t0.url, who.token);
    await socket.roundTrip();
    sockets.push(socket);
    return socket;
  };
  const product = await http("POST", "/api/products", {
    token: admin.token,
    body: { name: "Mug", priceCents: 900, currency: "USD" },
  }).then(expect(201));
  const sale = await http("POST", "/api/sales", {
    token: admin.token,
    body: {
      items: [{ productId: product.body.id, stock: 100_000, priceCents: 900 }],
      startsAt: new Date(t0.clock.now() - 60_000).toISOString(),
      endsAt: new Date(t0.clock.now() + 3_600_000).toISOString(),
      perUserLimit: 5,
    },
  }).then(expect(201));
  const reserve = (who: Member) =>
    http("POST", `/api/sales/${sale.body.id}/reservations`, {
      token: who.token,
      body: { productId: product.body.id, quantity: 1 },
    }).then(expect(201));
  /** Two members matched, their sockets open: the match's path. */
  const matched = async () => {
    const [fay, gus] = await people(2);
    const [fays, guss] = await Promise.all([socketOf(fay), socketOf(gus)]);
    const body = { intent: "pair-programming" };
    await http("POST", "/api/match/queue", { token: fay.token, body }).then(expect(202));
    await http("POST", "/api/match/queue", { token: gus.token, body }).then(expect(202));
    const [found] = await fays.waitFor("found-match");
    await guss.waitFor("found-match");
    return { fay, path: `/api/match/${found.data.matchId}` };
  };

  const operations: HotOperation[] = [
    {
      name: "GET /api/auth/me",
      budget: READ,
      async prepare() {
        const [ada] = await people(1);
        await http("GET", "/api/auth/me", { token: ada.token }).then(expect(200));
        return () => http("GET", "/api/auth/me", { token: ada.token }).then(expect(200));
      },
    },
    {
      name: "GET /api/feed (cached page)",
      budget: READ,
      async prepare() {
        const [ada] = await people(1);
        await http("GET", "/api/feed", { token: ada.token }).then(expect(200));
        return () => http("GET", "/api/feed", { token: ada.token }).then(expect(200));
      },
    },
    {
      name: "GET /api/discover (cached)",
      budget: READ,
      async prepare() {
        const [ada] = await people(1);
        await http("GET", "/api/discover", { token: ada.token }).then(expect(200));
        return () => http("GET", "/api/discover", { token: ada.token }).then(expect(200));
      },
    },
    {
      name: "GET /api/sales/:id",
      budget: READ,
      async prepare() {
        const [ada] = await people(1);
        return () =>
          http("GET", `/api/sales/${sale.body.id}`, { token: ada.token }).then(expect(200));
      },
    },
    {
      name: "like a post",
      budget: DECISION,
      async prepare() {
        const [ada, bob] = await people(2);
        const post = await http("POST", "/api/posts", { token: bob.token, body: { text: "hi" } })
          .then(expect(201));
        return () =>
          http("POST", `/api/posts/${post.body.id}/like`, { token: ada.token }).then(expect(200));
      },
    },
    {
      name: "follow",
      budget: DECISION,
      async prepare() {
        const [ada, bob] = await people(2);
        return () =>
          http("POST", `/api/follows/${bob.user.id}`, { token: ada.token }).then(expect(204));
      },
    },
    {
      name: "accept a connection request",
      budget: DECISION,
      async prepare() {
        const [ada, bob] = await people(2);
        const request = await http("POST", "/api/connections", {
          token: ada.token,
          body: { toUserId: bob.user.id },
        }).then(expect(201));
        return () =>
          http("PATCH", `/api/connections/${request.body.id}`, {
            token: bob.token,
            body: { status: "accepted" },
          }).then(expect(200));
      },
    },
    {
      name: "block",
      budget: DECISION,
      async prepare() {
        const [ada, bob] = await people(2);
        return () =>
          http("POST", `/api/blocks/${bob.user.id}`, { token: ada.token }).then(expect(204));
      },
    },
    {
      name: "chat send → ack (socket)",
      budget: DECISION,
      async prepare() {
        const [ada, bob] = await people(2);
        await connect(http, ada, bob);
        const socket = await socketOf(ada);
        const tempId = crypto.randomUUID();
        return async () => {
          socket.send("private-message", { toUserId: bob.user.id, tempId, text: "hi" });
          await socket.waitFor("message-delivered", (frame) => frame.data.tempId === tempId);
        };
      },
    },
    {
      name: "chat send with a file → ack (socket)",
      budget: DECISION,
      async prepare() {
        const [ada, bob] = await people(2);
        await connect(http, ada, bob);
        const socket = await socketOf(ada);
        const attachmentIds = [await attachment(ada)];
        const tempId = crypto.randomUUID();
        return async () => {
          socket.send("private-message", {
            toUserId: bob.user.id,
            tempId,
            text: "",
            attachmentIds,
          });
          await socket.waitFor("message-delivered", (frame) => frame.data.tempId === tempId);
        };
      },
    },
    {
      name: "chat send → ack, a later one (socket)",
      budget: REMEMBERED,
      async prepare() {
        const [ada, bob] = await people(2);
        // Bob is online (an offline recipient's message notification reaches his log behind
        // each send), and both logs have taken the notifications of connecting, which arrive
        // behind it too (the sockets are open first, so they see them): any event there changes
        // what a send checks.
        const [socket, bobSocket] = [await socketOf(ada), await socketOf(bob)];
        await connect(http, ada, bob);
        await socket.waitFor("notification", (frame) => frame.data.type === "connection_accepted");
        await bobSocket.waitFor(
          "notification",
          (frame) => frame.data.type === "connection_request",
        );
        const send = async (tempId: string) => {
          socket.send("private-message", { toUserId: bob.user.id, tempId, text: "hi" });
          await socket.waitFor("message-delivered", (frame) => frame.data.tempId === tempId);
        };
        await send(crypto.randomUUID());
        return () => send(crypto.randomUUID());
      },
    },
    {
      name: "reserve (HTTP)",
      budget: DECISION,
      async prepare() {
        const [ada] = await people(1);
        return () => reserve(ada);
      },
    },
    {
      name: "checkout",
      budget: DECISION,
      async prepare() {
        const [ada] = await people(1);
        const hold = await reserve(ada);
        return () =>
          http("POST", `/api/reservations/${hold.body.id}/checkout`, { token: ada.token })
            .then(expect(200));
      },
    },
    {
      name: "interview start",
      budget: DECISION,
      async prepare() {
        const [dan, eve] = await people(2);
        await connect(http, dan, eve);
        const interview = await http("POST", "/api/interviews", {
          token: dan.token,
          body: {
            candidateId: eve.user.id,
            skill: "Algorithms",
            prompt: "Find a value in a sorted array.",
            rubric: [{ criterion: "Correctness", weight: 1 }],
          },
        }).then(expect(201));
        return () =>
          http("POST", `/api/interviews/${interview.body.id}/start`, { token: eve.token })
            .then(expect(200));
      },
    },
    {
      name: "second join → found-match on both sockets",
      budget: MATCHMAKING,
      async prepare() {
        const [fay, gus] = await people(2);
        const [fays, guss] = await Promise.all([socketOf(fay), socketOf(gus)]);
        const body = { intent: "pair-programming" };
        await http("POST", "/api/match/queue", { token: fay.token, body }).then(expect(202));
        return async () => {
          await http("POST", "/api/match/queue", { token: gus.token, body }).then(expect(202));
          await Promise.all([fays.waitFor("found-match"), guss.waitFor("found-match")]);
        };
      },
    },
    {
      name: "call connect",
      budget: DECISION,
      async prepare() {
        const { fay, path } = await matched();
        return () => http("POST", `${path}/connect`, { token: fay.token }).then(expect(200));
      },
    },
    {
      name: "call end",
      budget: DECISION,
      async prepare() {
        const { fay, path } = await matched();
        return () => http("POST", `${path}/end`, { token: fay.token }).then(expect(200));
      },
    },
  ];
  return Object.assign(operations, {
    async [Symbol.asyncDispose]() {
      await Promise.all(sockets.map((socket) => socket[Symbol.asyncDispose]()));
    },
  });
}
