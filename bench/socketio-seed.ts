// The side-by-side baseline of the chat benchmark: a Socket.IO 4 server built the way the seed
// designs describe private chat (DevConnect's). The JWT is checked when the socket connects and
// binds the sender; each message is one Postgres INSERT, then emitted to the recipient's room and
// acknowledged to the sender. It checks nothing else: no permission, no blocks, no duplicate
// tempIds, no rate budget, no resumable log. Not part of the app; bench/chat.ts drives it with
// the same load client (bench/chat-load.ts, `socketio` kind) as Convene.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { jwtVerify } from "jose";
import { sql } from "drizzle-orm";
import { Server } from "socket.io";
import type { DatabaseHandle } from "../db/client.ts";

const TABLE = sql.raw("bench_socketio_messages");

export async function startSocketIoSeed(database: DatabaseHandle, jwtSecret: string) {
  await database.db.execute(sql`create table if not exists ${TABLE} (
    id uuid primary key, from_user text not null, to_user text not null, text text not null,
    created_at timestamptz not null default now())`);
  await database.db.execute(sql`truncate ${TABLE}`);
  const key = new TextEncoder().encode(jwtSecret);
  const http = createServer();
  const io = new Server(http, { transports: ["websocket"], serveClient: false });

  io.use(async (socket, next) => {
    try {
      const { payload } = await jwtVerify(String(socket.handshake.auth.token), key);
      socket.data.userId = payload.sub;
      next();
    } catch {
      next(new Error("unauthorized"));
    }
  });
  io.on("connection", (socket) => {
    socket.join(socket.data.userId);
    socket.on("private-message", async (data, ack) => {
      const id = crypto.randomUUID();
      await database.db.execute(
        sql`insert into ${TABLE} (id, from_user, to_user, text)
            values (${id}, ${socket.data.userId}, ${data.toUserId}, ${data.text})`,
      );
      io.to(data.toUserId).emit("incoming-message", {
        messageId: id,
        from: socket.data.userId,
        text: data.text,
      });
      ack?.({ tempId: data.tempId, messageId: id });
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  return {
    url: `ws://127.0.0.1:${
      (http.address() as AddressInfo).port
    }/socket.io/?EIO=4&transport=websocket`,
    async stored() {
      const result = await database.db.execute(sql`select count(*)::int as n from ${TABLE}`);
      return (result as unknown as { rows: { n: number }[] }).rows[0].n;
    },
    async close() {
      await new Promise<void>((resolve) => io.close(() => resolve()));
      await database.db.execute(sql`drop table if exists ${TABLE}`);
    },
  };
}
