// The joiners of the matchmaking benchmark, run as a process of their own by bench/matchmaking.ts
// (config as JSON on stdin, result as JSON on stdout), so the server measured has its core to
// itself instead of sharing it with a thousand sockets and fetches. Every joiner opens a socket,
// then all join at once (POST /api/match/queue, or a `join-queue` frame on that socket); latency is
// from a joiner's join to its socket receiving `found-match`.

export interface Joiners {
  /** The server's base URL (`http://…`). */
  base: string;
  tokens: string[];
  intent: string;
  /** How they join: POST /api/match/queue, or a `join-queue` frame on their socket. */
  over: "http" | "socket";
}

export interface Joined {
  /** Join → found-match (ms) of each member that was found, sorted. */
  latencies: number[];
  found: number;
  /** Joins refused (answered anything but 202, or an `error` frame). */
  refused: number;
  /** From the first join to the last found-match (s). */
  seconds: number;
}

export async function join(config: Joiners): Promise<Joined> {
  const count = config.tokens.length;
  const sentAt = new Array<number>(count);
  const foundAt = new Array<number>(count);
  let found = 0;
  let refusedFrames = 0;
  const everyone = Promise.withResolvers<void>();
  const sockets: WebSocket[] = [];
  for (let start = 0; start < count; start += 100) {
    sockets.push(
      ...await Promise.all(
        config.tokens.slice(start, start + 100).map((token, offset) => {
          const index = start + offset;
          const socket = new WebSocket(`${config.base.replace("http", "ws")}/ws?token=${token}`);
          socket.onmessage = (event) => {
            const type = JSON.parse(event.data).type;
            if (type === "error") refusedFrames++;
            if (type !== "found-match") return;
            foundAt[index] = performance.now();
            if (++found === count) everyone.resolve();
          };
          return new Promise<WebSocket>((resolve, reject) => {
            socket.onopen = () => resolve(socket); // live at once
            socket.onerror = () => reject(new Error(`socket ${index} was refused`));
          });
        }),
      ),
    );
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  const started = performance.now();
  const answers = await Promise.all(config.tokens.map(async (token, index) => {
    sentAt[index] = performance.now();
    if (config.over === "socket") {
      sockets[index].send(JSON.stringify({ type: "join-queue", data: { intent: config.intent } }));
      return 202;
    }
    const response = await fetch(`${config.base}/api/match/queue`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ intent: config.intent }),
    });
    await response.body?.cancel();
    return response.status;
  }));
  const timeout = setTimeout(everyone.resolve, 30_000);
  await everyone.promise;
  clearTimeout(timeout);
  for (const socket of sockets) socket.close();
  const latencies = foundAt.map((at, i) => at - sentAt[i]).filter((value) => !isNaN(value))
    .sort((a, b) => a - b);
  return {
    latencies,
    found,
    refused: answers.filter((status) => status !== 202).length + refusedFrames,
    seconds: (Math.max(...foundAt.filter(Boolean)) - started) / 1000,
  };
}

if (import.meta.main) {
  const config: Joiners = JSON.parse(await new Response(Deno.stdin.readable).text());
  console.log(JSON.stringify(await join(config)));
}
