// The WebSocket hub of one isolate: its sockets by user, one KV watch per connected user that pumps
// the user's durable event log to that user's local sockets, a BroadcastChannel that carries
// ephemeral signals (typing, presence) between isolates, and the heartbeat that keeps presence
// fresh and closes sockets whose session ended.
import { DomainError } from "../errors.ts";
import { presencePeers } from "../kv/graph.ts";
import type { SessionClaims } from "../kv/auth/tokens.ts";
import {
  type CommittedEvent,
  currentHead,
  headSeq,
  isCommittingFor,
  type LoggedEvent,
  onCommittedEvents,
  readEvents,
} from "../kv/events.ts";
import { eventHeadKey } from "../kv/keys.ts";
import {
  claimPresence,
  holdPresence,
  type PresenceStatus,
  readPresence,
  releasePresence,
  sweepPresence,
} from "../kv/presence.ts";
import { isTokenLive, type SessionMemory } from "../kv/auth/sessions.ts";
import { instruments, pointSpan, recent } from "../telemetry.ts";

/** Sockets open in this isolate, over all its hubs (tests run several apps in one). */
let openSockets = 0;

export interface HubDeps {
  kv: Deno.Kv;
  /** This isolate's memory of sessions, shared with the HTTP routes. */
  sessions: SessionMemory;
  clock: { now(): number };
  log: (record: Record<string, unknown>) => void;
}

export interface HubOptions {
  /** How often presence is refreshed and sessions are rechecked. */
  heartbeatMs: number;
  /** A socket's presence lapses this long after its last refresh (e.g. when its isolate died). */
  presenceTtlMs: number;
  /** Sockets one user may hold at once, over every isolate (WS_MAX_SOCKETS_PER_USER). */
  maxSocketsPerUser: number;
}

export const HUB_DEFAULTS: HubOptions = {
  heartbeatMs: 20_000,
  presenceTtlMs: 60_000,
  maxSocketsPerUser: 10,
};

/** What the hub needs of a socket (Hono's WSContext, or a raw WebSocket). */
export interface Socket {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  readonly readyState: number;
}

export interface ServerFrame {
  type: string;
  /** Durable events carry their id (the log sequence number, as a string) for `resume`. */
  id?: string;
  data: unknown;
}

/** The close code a socket gets when its session was revoked or expired. */
export const SESSION_ENDED = 4001;
/** The close code of a socket refused because its user holds `maxSocketsPerUser` already. */
export const TOO_MANY_SOCKETS = 4029;

/** A connect refused by the per-user socket cap (429 `too-many-sockets`, in an error frame). */
export class TooManySockets extends DomainError {
  constructor(readonly max: number) {
    super(
      429,
      "too-many-sockets",
      "Too many sockets",
      `At most ${max} sockets per user; close one before opening another.`,
      { max },
    );
  }
}
const CHANNEL = "convene-realtime";
const PUMP_BATCH = 200;
const OPEN = 1;

/** An ephemeral signal crossing isolates: these users' local sockets get the frame. */
interface Broadcast {
  userIds: string[];
  frame: ServerFrame;
}

/**
 * Telemetry of one event handed to a socket of `userId`: a span in the trace of the decision that
 * appended it, and for a message, the time from that commit to now.
 */
function delivered(event: LoggedEvent, userId: string, now: number) {
  pointSpan(
    "ws.deliver",
    { "convene.event": event.type, "convene.recipient": userId },
    event.traceparent,
  );
  if (event.type === "incoming-message") {
    instruments.messageLatency.record(now - event.at);
    recent.sample("messageLatency", now - event.at);
  }
}

export class Client {
  readonly id = crypto.randomUUID();
  /** The sequence number of the last event this socket was sent (or skipped). */
  lastSeq = 0;
  /** Set by `resume`: the pump restarts from here. */
  rewind: number | null = null;
  closed = false;
  pumping = false;
  again = false;
  /** The rooms (e.g. a sale's stock) this socket is subscribed to. */
  readonly rooms = new Set<string>();

  constructor(readonly session: SessionClaims, readonly socket: Socket) {}

  get userId(): string {
    return this.session.sub;
  }

  send(frame: ServerFrame) {
    if (!this.closed && this.socket.readyState === OPEN) this.socket.send(JSON.stringify(frame));
  }
}

interface UserSockets {
  clients: Set<Client>;
  watch: ReadableStreamDefaultReader<unknown>;
}

/** Sockets subscribed to one thing, and the one KV watch this isolate keeps for it. */
interface Room {
  clients: Set<Client>;
  watch: ReadableStreamDefaultReader<unknown>;
}

/** Renders a room's frame from the current state (called once per change, for every member). */
/**
 * A room's frames: on joining (`changed` null) and after each change of its keys (`changed`: the
 * indexes of the keys that changed).
 */
export type RoomRender = (changed: number[] | null) => Promise<ServerFrame[]>;

/** Rooms one socket may be in at once. */
export const MAX_ROOMS_PER_SOCKET = 20;

/** Told when a user's presence changes because their sockets came, went or lapsed. */
export type PresenceListener = (userId: string, status: PresenceStatus) => Promise<void>;

export class Hub {
  readonly options: HubOptions;
  readonly #users = new Map<string, UserSockets>();
  readonly #listeners: PresenceListener[] = [];
  /** Announcements made behind requests (announceLater), awaited by `close`. */
  readonly #later = new Set<Promise<void>>();
  /** Users to announce in the announcement waiting for the next turn (announceLater). */
  readonly #announcing = new Set<string>();
  readonly #rooms = new Map<string, Room>();
  readonly #channel = new BroadcastChannel(CHANNEL);
  readonly #timer: ReturnType<typeof setInterval>;
  #closed = false;
  readonly #unlisten: () => void;

  constructor(private readonly deps: HubDeps, options: Partial<HubOptions> = {}) {
    this.options = { ...HUB_DEFAULTS, ...options };
    this.#channel.onmessage = (event: MessageEvent<Broadcast>) =>
      this.#deliverLocally(event.data.userIds, event.data.frame);
    this.#timer = setInterval(() => void this.heartbeat(), this.options.heartbeatMs);
    Deno.unrefTimer(Number(this.#timer));
    this.#unlisten = onCommittedEvents((events, failedFor) => this.#committed(events, failedFor));
  }

  /**
   * Events a commit of this isolate just appended go to this isolate's sockets from the commit's
   * own data: no read of the log. A socket that is not exactly at the event before (it is
   * resuming, or an event of another isolate came first) reads the log from where it is instead.
   * The watch on the head key still wakes every isolate; a socket already at the head reads
   * nothing then, nor while a commit of this isolate for its user is under way (this is told when
   * it settles). A commit that failed appended nothing: its users' sockets catch up from the log
   * on anything the watch skipped meanwhile.
   */
  #committed(events: CommittedEvent[], failedFor: string[]) {
    if (this.#closed) return;
    for (const userId of failedFor) {
      for (const client of this.#users.get(userId)?.clients ?? []) void this.#pump(client);
    }
    for (const event of events) {
      for (const client of this.#users.get(event.userId)?.clients ?? []) {
        const inTurn = !client.pumping && client.rewind === null &&
          event.seq === client.lastSeq + 1 && event.type !== "session-ended";
        if (!inTurn) {
          void this.#pump(client);
          continue;
        }
        client.send({ type: event.type, id: String(event.seq), data: event.data });
        client.lastSeq = event.seq;
        delivered(event, event.userId, this.deps.clock.now());
      }
    }
  }

  /** Sockets of `userId` on this isolate. */
  localSockets(userId: string): number {
    return this.#users.get(userId)?.clients.size ?? 0;
  }

  /** Adds a listener for presence changes caused by sockets (matchmaking drops the offline). */
  onPresenceChange(listener: PresenceListener) {
    this.#listeners.push(listener);
  }

  /**
   * Registers a socket of an authenticated user, live at once: from `lastEventId` when the client
   * gives one at the upgrade (every retained event after it, in order, once), else from now.
   * Throws TooManySockets when the user is at the cap; a failed connect leaves nothing registered.
   */
  async connect(session: SessionClaims, socket: Socket, lastEventId?: number): Promise<Client> {
    const client = new Client(session, socket);
    const { kv, clock } = this.deps;
    const now = clock.now();
    const presence = await claimPresence(
      kv,
      client.userId,
      client.id,
      now,
      now + this.options.presenceTtlMs,
      this.options.maxSocketsPerUser,
    );
    if (presence.full) throw new TooManySockets(this.options.maxSocketsPerUser);
    let head: number;
    try {
      head = client.lastSeq = await currentHead(kv, client.userId);
    } catch (error) {
      await releasePresence(kv, client.userId, client.id, clock.now()).catch(() => {});
      throw error;
    }
    this.#sockets(client.userId).clients.add(client);
    instruments.socketConnects.add(1);
    instruments.activeSockets.add(1);
    recent.gauge("sockets", ++openSockets);
    this.startLive(client, lastEventId === undefined ? undefined : Math.min(lastEventId, head));
    // A session revoked between the upgrade's check and the head read above announced it before
    // `head`, where this socket will never look: check it once now (later ones reach the pump).
    await this.#checkSession(client);
    if (presence.before !== presence.after) await this.#changed(client.userId, presence.after);
    return client;
  }

  /** Sends `client` the durable events after `fromSeq` when given, then carries on live. */
  startLive(client: Client, fromSeq?: number) {
    if (fromSeq !== undefined) client.rewind = fromSeq;
    void this.#pump(client);
  }

  /**
   * The `resume` frame: replays every retained event after `lastEventId`, then carries on live. A
   * socket is live from its upgrade, so events sent since then may come again (same ids): giving
   * `?lastEventId=` at the upgrade instead gets each exactly once, in order.
   */
  async resume(client: Client, lastEventId: number) {
    const head = await currentHead(this.deps.kv, client.userId);
    this.startLive(client, Math.min(lastEventId, head));
  }

  /**
   * Subscribes `client` to `room`, which changes whenever `key` does: the client gets the room's
   * frame now and after every change. An isolate keeps one watch per room, however many sockets
   * are in it, and renders each change once. False when the socket is in too many rooms.
   */
  async join(
    client: Client,
    room: string,
    keys: Deno.KvKey[],
    render: RoomRender,
  ): Promise<boolean> {
    // A subscribe handled after its socket closed must not leave a room (and its watch) behind.
    if (client.closed) return true;
    if (!client.rooms.has(room)) {
      if (client.rooms.size >= MAX_ROOMS_PER_SOCKET) return false;
      client.rooms.add(room);
      let members = this.#rooms.get(room);
      if (!members) {
        members = { clients: new Set(), watch: this.deps.kv.watch(keys).getReader() };
        this.#rooms.set(room, members);
        void this.#followRoom(room, members, render);
      }
      members.clients.add(client);
    }
    for (const frame of await render(null)) client.send(frame);
    return true;
  }

  /** Unsubscribes `client`; the last one out stops the room's watch. */
  async leave(client: Client, room: string) {
    client.rooms.delete(room);
    const members = this.#rooms.get(room);
    if (!members) return;
    members.clients.delete(client);
    if (members.clients.size === 0) {
      this.#rooms.delete(room);
      await members.watch.cancel().catch(() => {});
    }
  }

  /** Sockets in `room` on this isolate. */
  roomSize(room: string): number {
    return this.#rooms.get(room)?.clients.size ?? 0;
  }

  async #followRoom(room: string, members: Room, render: RoomRender) {
    try {
      // The watch's first value is the state as it was when joined, which `join` has sent.
      let seen: (string | null)[] | null = null;
      for (;;) {
        const { done, value } = await members.watch.read();
        if (done) return;
        const stamps = (value as Deno.KvEntryMaybe<unknown>[]).map((entry) => entry.versionstamp);
        const before = seen;
        seen = stamps;
        if (!before) continue;
        const changed = stamps.flatMap((stamp, i) => stamp !== before[i] ? [i] : []);
        if (changed.length === 0) continue;
        const frames = await render(changed);
        for (const frame of frames) {
          for (const client of members.clients) client.send(frame);
        }
      }
    } catch (error) {
      if (!this.#closed) {
        this.deps.log({ level: "error", msg: "room watch failed", room, error: String(error) });
      }
    }
  }

  async disconnect(client: Client) {
    if (client.closed) return;
    client.closed = true;
    for (const room of [...client.rooms]) await this.leave(client, room);
    const user = this.#users.get(client.userId);
    if (user) {
      if (user.clients.delete(client)) {
        instruments.activeSockets.add(-1);
        recent.gauge("sockets", --openSockets);
      }
      if (user.clients.size === 0) {
        this.#users.delete(client.userId);
        await user.watch.cancel().catch(() => {});
      }
    }
    if (this.#closed) return;
    const presence = await releasePresence(
      this.deps.kv,
      client.userId,
      client.id,
      this.deps.clock.now(),
    );
    if (presence.before !== presence.after) await this.#changed(client.userId, presence.after);
  }

  /** Sends an ephemeral frame to every socket of these users, on every isolate. */
  broadcast(userIds: string[], frame: ServerFrame) {
    if (userIds.length === 0 || this.#closed) return;
    this.#deliverLocally(userIds, frame);
    this.#channel.postMessage({ userIds, frame } satisfies Broadcast);
  }

  /** Tells a user's connections their new presence status. */
  async announcePresence(userId: string, status: PresenceStatus) {
    const audience = await presencePeers(this.deps.kv, userId);
    this.broadcast([...audience], { type: "presence", data: { userId, status } });
  }

  /**
   * Tells these users' connections what they are doing now (queuing, in a call, online), behind
   * the request that changed it: the answer does not wait for it, and `close` does. Users named in
   * the same turn of the event loop are announced together, each once, with one batched read of
   * their statuses (in a burst of joins, each member is named by their own join and their peer's).
   */
  announceLater(userIds: string[]) {
    if (this.#closed) return;
    const first = this.#announcing.size === 0;
    for (const userId of userIds) this.#announcing.add(userId);
    if (!first) return;
    const work = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 0));
      const users = [...this.#announcing];
      this.#announcing.clear();
      const statuses = await readPresence(this.deps.kv, users, this.deps.clock.now());
      await Promise.all(
        [...statuses].map(([userId, status]) => this.announcePresence(userId, status)),
      );
    })().catch((error) =>
      this.deps.log({ level: "error", msg: "presence announcement failed", error: String(error) })
    ).finally(() => this.#later.delete(work));
    this.#later.add(work);
  }

  /**
   * One heartbeat: refreshes the presence of every local socket and closes those whose session was
   * revoked or expired (the session-ended event closes them at once; this is the backstop).
   */
  async heartbeat() {
    const { kv, clock } = this.deps;
    await Promise.all([...this.#users].map(async ([userId, user]) => {
      const now = clock.now();
      const clients = [...user.clients];
      try {
        await holdPresence(
          kv,
          userId,
          clients.map((client) => client.id),
          now,
          now + this.options.presenceTtlMs,
        );
        await Promise.all(clients.map((client) => this.#checkSession(client)));
      } catch (error) {
        this.deps.log({ level: "error", msg: "heartbeat failed", userId, error: String(error) });
      }
    }));
  }

  /** The cron sweep: forgets presence whose sockets all lapsed and tells those users' connections. */
  async sweepPresence(): Promise<number> {
    const gone = await sweepPresence(this.deps.kv, this.deps.clock.now());
    for (const userId of gone) await this.#changed(userId, "offline");
    return gone.length;
  }

  /** Tells connections and listeners; never throws (a socket's life does not hang on it). */
  async #changed(userId: string, connected: PresenceStatus) {
    let status = connected;
    await (async () => {
      // Connected: what they are doing (a call, the queue) says more than "online".
      if (status !== "offline") {
        status = (await readPresence(this.deps.kv, [userId], this.deps.clock.now())).get(userId)!;
      }
      await this.announcePresence(userId, status);
    })().catch((error) =>
      this.deps.log({
        level: "error",
        msg: "presence announcement failed",
        userId,
        error: String(error),
      })
    );
    for (const listener of this.#listeners) {
      await listener(userId, status).catch((error) =>
        this.deps.log({
          level: "error",
          msg: "presence listener failed",
          userId,
          error: String(error),
        })
      );
    }
  }

  /** Closes every local socket and stops watching (process shutdown, end of a test). */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#unlisten();
    this.#channel.close();
    const clients = [...this.#users.values()].flatMap((user) => [...user.clients]);
    for (const client of clients) client.socket.close(1001, "server shutting down");
    await Promise.all(clients.map((client) => this.disconnect(client)));
    await Promise.all(this.#later);
  }

  #sockets(userId: string): UserSockets {
    let user = this.#users.get(userId);
    if (!user) {
      const watch = this.deps.kv.watch([eventHeadKey(userId)]).getReader();
      user = { clients: new Set(), watch };
      this.#users.set(userId, user);
      void this.#follow(userId, watch);
    }
    return user;
  }

  /** Every change of the user's head key (a new event) sets that user's local pumps going. */
  async #follow(userId: string, watch: ReadableStreamDefaultReader<unknown>) {
    try {
      for (;;) {
        const { done, value } = await watch.read();
        if (done) return;
        const head = headSeq((value as Deno.KvEntryMaybe<unknown>[])[0]);
        for (const client of this.#users.get(userId)?.clients ?? []) {
          // Delivered from the commit already, or about to be: nothing to read.
          const delivered = client.lastSeq >= head || isCommittingFor(userId);
          if (delivered && client.rewind === null && !client.pumping) continue;
          void this.#pump(client);
        }
      }
    } catch (error) {
      if (!this.#closed) {
        this.deps.log({ level: "error", msg: "event watch failed", userId, error: String(error) });
      }
    }
  }

  /** Sends the client every event after its `lastSeq`, in order; one pump per client at a time. */
  async #pump(client: Client) {
    if (client.closed) return;
    if (client.pumping) {
      client.again = true;
      return;
    }
    client.pumping = true;
    try {
      do {
        client.again = false;
        let resumed = false;
        if (client.rewind !== null) {
          client.lastSeq = client.rewind;
          client.rewind = null;
          resumed = true;
        }
        let batch: LoggedEvent[];
        do {
          batch = await readEvents(this.deps.kv, client.userId, client.lastSeq, PUMP_BATCH);
          if (resumed && batch.length > 0 && batch[0].seq > client.lastSeq + 1) {
            client.send({
              type: "error",
              data: {
                code: "events-expired",
                detail: `Events ${client.lastSeq + 1} to ${batch[0].seq - 1} are past retention; ` +
                  "reload conversations and notifications over HTTP.",
              },
            });
          }
          resumed = false;
          for (const event of batch) {
            if (client.closed) return;
            await this.#deliver(client, event);
            client.lastSeq = event.seq;
          }
        } while (batch.length === PUMP_BATCH && client.rewind === null);
      } while (client.again || client.rewind !== null);
    } catch (error) {
      this.deps.log({
        level: "error",
        msg: "event pump failed",
        userId: client.userId,
        error: String(error),
      });
    } finally {
      client.pumping = false;
    }
  }

  async #deliver(client: Client, event: LoggedEvent) {
    if (event.type === "session-ended") {
      await this.#checkSession(client);
      return;
    }
    client.send({ type: event.type, id: String(event.seq), data: event.data });
    delivered(event, client.userId, this.deps.clock.now());
  }

  async #checkSession(client: Client) {
    const expired = client.session.exp * 1000 <= this.deps.clock.now();
    if (
      !expired &&
      await isTokenLive(this.deps.kv, this.deps.sessions, client.session, this.deps.clock.now())
    ) return;
    client.send({ type: "session-ended", data: { reason: expired ? "expired" : "revoked" } });
    client.socket.close(SESSION_ENDED, "session ended");
    await this.disconnect(client);
  }

  #deliverLocally(userIds: string[], frame: ServerFrame) {
    for (const userId of userIds) {
      for (const client of this.#users.get(userId)?.clients ?? []) client.send(frame);
    }
  }
}
