// A WebSocket→TCP proxy so Neon's serverless driver can reach a plain Postgres (tests, self-hosting).

export interface WsProxyOptions {
  hostname?: string;
  port?: number;
  /** `host:port` pairs clients may ask for (`?address=`); anything else → 403. */
  allow: string[];
  /**
   * Holds every chunk this long in each direction (order kept, nothing serialised behind the
   * wait): a region far from the database, e.g. 40 for an edge region an ocean away from Neon.
   */
  delayMs?: number;
}

/** Runs `step`s in order, each no sooner than `delayMs` after it was queued. */
function delayedLane(delayMs: number) {
  let lane: Promise<unknown> = Promise.resolve();
  return (step: () => unknown | Promise<unknown>) => {
    const due = performance.now() + delayMs;
    const next = lane.then(async () => {
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      return await step();
    });
    lane = next.catch(() => {});
    return next;
  };
}

export function serveWsProxy(options: WsProxyOptions) {
  const allow = new Set(options.allow);
  /** Live connections, ended with the proxy (as a stopped proxy process ends them). */
  const live = new Set<WebSocket>();
  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    onListen: () => {},
  }, (request) => {
    const address = new URL(request.url).searchParams.get("address") ?? "";
    if (!allow.has(address)) return new Response("address not allowed", { status: 403 });
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade", { status: 426 });
    }
    const [hostname, port] = address.split(/:(?=\d+$)/);
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.binaryType = "arraybuffer";
    live.add(socket);
    const connecting = Deno.connect({ hostname, port: Number(port) });
    const delayMs = options.delayMs ?? 0;
    const toDatabase = delayedLane(delayMs);
    const toClient = delayedLane(delayMs);

    connecting.then(async (conn) => {
      // Without this, Nagle's algorithm holds the driver's small protocol messages back for the
      // peer's delayed ACK: ~40 ms on a multi-message query.
      conn.setNoDelay(true);
      try {
        for await (const chunk of conn.readable) {
          if (socket.readyState !== WebSocket.OPEN) break;
          if (delayMs === 0) socket.send(chunk);
          else {
            void toClient(() => {
              if (socket.readyState === WebSocket.OPEN) socket.send(chunk);
            });
          }
        }
      } catch { /* the peer went away */ }
      await toClient(() => {});
      if (socket.readyState === WebSocket.OPEN) socket.close();
    }, () => socket.close(1011, "cannot reach the database"));

    // Frames are written strictly in arrival order, after the TCP connection is up.
    socket.onmessage = (event) => {
      const bytes = typeof event.data === "string"
        ? new TextEncoder().encode(event.data)
        : new Uint8Array(event.data as ArrayBuffer);
      toDatabase(async () => {
        const conn = await connecting;
        let written = 0;
        while (written < bytes.length) written += await conn.write(bytes.subarray(written));
      }).catch(() => socket.close(1011, "write failed"));
    };
    socket.onclose = () => {
      live.delete(socket);
      connecting.then((conn) => {
        try {
          conn.close();
        } catch { /* already closed */ }
      }, () => {});
    };
    return response;
  });
  return {
    port: server.addr.port,
    /** The value for DATABASE_WS_PROXY. */
    address: `127.0.0.1:${server.addr.port}/v1`,
    /** Stops listening and ends every connection through it. */
    close: async () => {
      for (const socket of live) socket.close(1001, "proxy stopping");
      live.clear();
      await server.shutdown();
    },
  };
}
