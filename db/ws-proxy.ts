// A WebSocket→TCP proxy so Neon's serverless driver can reach a plain Postgres (tests, self-hosting).

export interface WsProxyOptions {
  hostname?: string;
  port?: number;
  /** `host:port` pairs clients may ask for (`?address=`); anything else → 403. */
  allow: string[];
}

export function serveWsProxy(options: WsProxyOptions) {
  const allow = new Set(options.allow);
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
    const connecting = Deno.connect({ hostname, port: Number(port) });
    let writes: Promise<unknown> = connecting;

    connecting.then(async (conn) => {
      // Without this, Nagle's algorithm holds the driver's small protocol messages back for the
      // peer's delayed ACK: ~40 ms on a multi-message query.
      conn.setNoDelay(true);
      try {
        for await (const chunk of conn.readable) {
          if (socket.readyState !== WebSocket.OPEN) break;
          socket.send(chunk);
        }
      } catch { /* the peer went away */ }
      if (socket.readyState === WebSocket.OPEN) socket.close();
    }, () => socket.close(1011, "cannot reach the database"));

    // Frames are written strictly in arrival order, after the TCP connection is up.
    socket.onmessage = (event) => {
      const bytes = typeof event.data === "string"
        ? new TextEncoder().encode(event.data)
        : new Uint8Array(event.data as ArrayBuffer);
      writes = writes.then(async () => {
        const conn = await connecting;
        let written = 0;
        while (written < bytes.length) written += await conn.write(bytes.subarray(written));
      }).catch(() => socket.close(1011, "write failed"));
    };
    socket.onclose = () => {
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
    close: () => server.shutdown(),
  };
}
