// The load clients of the chat benchmark, run in their own process by bench/chat.ts (config as JSON
// on stdin, result as JSON on stdout), so the server measured has its core to itself.
//
// Each socket of `urls` is driven two ways: an offered load (`offeredPerSecond`, spread evenly over
// the sockets, for `seconds` after `warmupSeconds` at the same rate that are not timed: the steady
// state, not the first second after a thousand sockets connected), timing each message from send
// to arrival, and separately the warm-up's; then saturation, each
// socket keeping one message in flight, counting arrivals per second. `echo` sends the stamp itself
// (a raw echo server, the floor); `chat` sends a `private-message` to `peers[i]` and times the
// peer's `incoming-message`; `socketio` does the same through Socket.IO's wire protocol (Engine.IO
// 4 over a WebSocket: `40` with the token to connect, `42`/`43` for events and acks, `2` → `3`
// for pings), to the baseline server of bench/socketio-seed.ts.

export interface LoadConfig {
  kind: "echo" | "chat" | "socketio";
  urls: string[];
  /** For `chat` and `socketio`: the user id of socket i, and the user id socket i sends to. */
  users?: string[];
  peers?: string[];
  /** For `socketio`: socket i's token (Convene's sockets carry theirs in the URL). */
  tokens?: string[];
  seconds: number;
  /** The offered load runs this long first, timed apart (`warmup`). */
  warmupSeconds: number;
  offeredPerSecond: number;
}

export interface LoadResult {
  /** Send → arrival latencies (ms) of the offered load after the warm-up, sorted. */
  offered: number[];
  /** The same during the warm-up, sorted. */
  warmup: number[];
  /** Arrivals per second at saturation. */
  rate: number;
  /** Messages sent in all (every one must be stored, for chat). */
  sent: number;
  /** Acknowledgements received (chat's `message-delivered`, Socket.IO's acks), waiting up to
   * 10 s after the load. */
  acked: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function openAll(
  urls: string[],
  onMessage: (index: number, data: string, socket: WebSocket) => void,
) {
  const sockets: WebSocket[] = [];
  for (let start = 0; start < urls.length; start += 100) {
    sockets.push(
      ...await Promise.all(
        urls.slice(start, start + 100).map((url, offset) => {
          const index = start + offset;
          const socket = new WebSocket(url);
          socket.onmessage = (event) => onMessage(index, event.data, socket);
          return new Promise<WebSocket>((resolve, reject) => {
            socket.onopen = () => resolve(socket);
            socket.onerror = () => reject(new Error(`socket ${index} was refused`));
          });
        }),
      ),
    );
  }
  return sockets;
}

export async function runLoad(config: LoadConfig): Promise<LoadResult> {
  const count = config.urls.length;
  const latencies: number[] = [];
  const warmup: number[] = [];
  /** Messages sent before this moment (ms) belong to the warm-up. */
  let warmUntil = Infinity;
  let saturating = false;
  let received = 0;
  let acked = 0;
  let sent = 0;
  const socketOf = new Map(config.users?.map((user, i) => [user, i]));
  const arrived = (stamp: string, index: number) => {
    const sentAt = Number(stamp.split("|")[0]);
    if (!saturating) (sentAt < warmUntil ? warmup : latencies).push(performance.now() - sentAt);
    else {
      received++;
      send(index, `${performance.now()}|${received}`); // keep one in flight per socket
    }
  };
  const connected = config.urls.map(() => Promise.withResolvers<void>());
  const sockets = await openAll(config.urls, (index, data, socket) => {
    if (config.kind === "echo") return arrived(data, index);
    if (config.kind === "socketio") return socketIoPacket(index, data, socket);
    const frame = JSON.parse(data);
    if (frame.type === "incoming-message") {
      // Saturation refills the sender's slot: the socket of the message's author.
      arrived(frame.data.text, socketOf.get(frame.data.from) ?? index);
    } else if (frame.type === "message-delivered") acked++;
    else if (frame.type === "error") {
      console.error("  error frame:", frame.data.code, frame.data.detail);
    }
  });
  function socketIoPacket(index: number, packet: string, socket: WebSocket) {
    if (packet.startsWith("0")) {
      socket.send(`40${JSON.stringify({ token: config.tokens![index] })}`);
    } else if (packet.startsWith("40")) connected[index].resolve();
    else if (packet.startsWith("44")) connected[index].reject(new Error(packet));
    else if (packet === "2") socket.send("3");
    else if (packet.startsWith("43")) acked++;
    else if (packet.startsWith("42")) {
      const [event, data] = JSON.parse(packet.slice(2));
      if (event === "incoming-message") arrived(data.text, socketOf.get(data.from) ?? index);
    }
  }
  if (config.kind === "socketio") await Promise.all(connected.map((done) => done.promise));
  else for (const done of connected) done.resolve();
  function send(index: number, stamp: string) {
    sent++;
    if (config.kind === "echo") return sockets[index].send(stamp);
    const data = { toUserId: config.peers![index], tempId: `b${sent}`, text: stamp };
    if (config.kind === "socketio") {
      return sockets[index].send(`42${sent}${JSON.stringify(["private-message", data])}`);
    }
    sockets[index].send(JSON.stringify({ type: "private-message", data }));
  }
  let next = 0;
  const tick = 10;
  const perTick = config.offeredPerSecond * tick / 1000;
  warmUntil = performance.now() + config.warmupSeconds * 1000;
  const timer = setInterval(() => {
    for (let i = 0; i < perTick; i++) send(next++ % count, `${performance.now()}|${next}`);
  }, tick);
  await sleep((config.warmupSeconds + config.seconds) * 1000);
  clearInterval(timer);
  await sleep(500); // let the last ones land
  const offered = [...latencies].sort((a, b) => a - b);
  warmup.sort((a, b) => a - b);
  saturating = true;
  for (let i = 0; i < count; i++) send(i, `${performance.now()}|start`);
  await sleep(500); // ramp up
  received = 0;
  await sleep(config.seconds * 1000);
  const rate = received / config.seconds;
  saturating = false;
  // Every message sent must be acknowledged: wait for the backlog (at most 10 s).
  const waiting = () => config.kind !== "echo" && acked < sent;
  for (const until = performance.now() + 10_000; waiting() && performance.now() < until;) {
    await sleep(20);
  }
  for (const socket of sockets) socket.close();
  return { offered, warmup, rate, sent, acked };
}

if (import.meta.main) {
  const config: LoadConfig = JSON.parse(await new Response(Deno.stdin.readable).text());
  console.log(JSON.stringify(await runLoad(config)));
}
