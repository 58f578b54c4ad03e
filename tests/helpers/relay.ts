// A TCP relay in front of a server whose connections a test can cut, as a network drop does: both
// ends are closed without a WebSocket close frame.

/** Listens on a free port and pipes each connection to `port`; `cut()` drops every one open. */
export function tcpRelay(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const accepting = (async () => {
    for await (const inbound of listener) {
      const outbound = await Deno.connect({ hostname: "127.0.0.1", port });
      open.add(inbound).add(outbound);
      const pipe = (from: Deno.Conn, to: Deno.Conn) =>
        from.readable.pipeTo(to.writable).catch(() => {}).finally(() => drop(from, to));
      pipe(inbound, outbound);
      pipe(outbound, inbound);
    }
  })().catch(() => {});
  function drop(...conns: Deno.Conn[]) {
    for (const conn of conns) {
      if (!open.delete(conn)) continue;
      try {
        conn.close();
      } catch { /* closed already */ }
    }
  }
  return {
    port: (listener.addr as Deno.NetAddr).port,
    /** How many connections pass through now. */
    get connections() {
      return open.size / 2;
    },
    cut() {
      drop(...open);
    },
    async [Symbol.asyncDispose]() {
      listener.close();
      drop(...open);
      await accepting;
    },
  };
}
