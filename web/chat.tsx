// Chat: conversations, live messages with delivered and read state, typing and presence. Sends go
// through the socket helper, which re-sends after a reconnect under the same tempId, so a dropped
// network neither loses nor doubles a message; a reload reads history over HTTP and the socket
// resumes after the last event this tab saw (anything seen twice is dropped by id).
/// <reference lib="dom" />
import { Avatar } from "./avatar.tsx";
import { Field } from "./field.tsx";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, done, explain, go, liveSocket, ok, time, useEvent } from "./session.ts";
import { uploadFile } from "./feed.tsx";
import type { Me } from "./main.tsx";

type Conversation = Awaited<ReturnType<typeof conversations>>["items"][number];

/** A private file as a message carries it (the socket's frame and the history agree). */
interface Attachment {
  id: string;
  name: string;
  contentType: string;
  size: number;
  url: string;
}

interface Line {
  key: string;
  id: string | null;
  from: string;
  text: string;
  attachments: Attachment[];
  createdAt: string;
  state: "sending" | "delivered" | "read" | "received" | "failed";
}

const conversations = () => ok(api.api.conversations.$get({ query: { limit: "50" } }));
const history = (id: string) =>
  ok(api.api.conversations[":id"].messages.$get({ param: { id }, query: { limit: "100" } }));

/** How far along a line is: a receipt moves it forward only. */
const RANK: Record<Line["state"], number> = {
  failed: 0,
  sending: 1,
  received: 1,
  delivered: 2,
  read: 3,
};

export function ChatPage(props: { me: NonNullable<Me>; peerId?: string }) {
  const [list, setList] = useState<Conversation[]>([]);
  useEffect(() => {
    conversations().then((page) => setList(page.items));
  }, [props.peerId]);
  useEvent("incoming-message", () => conversations().then((page) => setList(page.items)));
  return (
    <section class="chat" aria-labelledby="chat-title">
      <h1 id="chat-title">Chat</h1>
      <div class="split">
        <nav aria-label="Conversations">
          <ul class="list">
            {list.length === 0 && <li class="meta">No conversations yet: message a connection.</li>}
            {list.map((conversation) => (
              <li key={conversation.id}>
                <a
                  href={`#/chat/${conversation.peer.id}`}
                  aria-current={conversation.peer.id === props.peerId ? "page" : undefined}
                >
                  <Avatar id={conversation.peer.id} />
                  {conversation.peer.name}
                  {conversation.unreadCount > 0 && (
                    <span class="badge">{conversation.unreadCount}</span>
                  )}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        {props.peerId
          ? (
            <Conversation
              onRead={() => conversations().then((page) => setList(page.items))}
              me={props.me}
              peerId={props.peerId}
              conversation={list.find((item) => item.peer.id === props.peerId)}
            />
          )
          : <p class="meta">Pick a conversation.</p>}
      </div>
    </section>
  );
}

function Conversation(
  props: {
    me: NonNullable<Me>;
    peerId: string;
    conversation?: Conversation;
    /** The conversation was marked read: its unread count changed. */
    onRead: () => void;
  },
) {
  const { me, peerId } = props;
  const [lines, setLines] = useState<Line[]>([]);
  const [conversationId, setConversationId] = useState<string | null>(null);
  const [text, setText] = useState("");
  const [typing, setTyping] = useState(false);
  const [presence, setPresence] = useState("offline");
  const [error, setError] = useState("");
  const typingTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const lastTyped = useRef(0);
  const bottom = useRef<HTMLLIElement>(null);
  const files = useRef<HTMLInputElement>(null);

  const add = (line: Line) =>
    setLines((known) =>
      known.some((item) => (line.id && item.id === line.id) || item.key === line.key)
        ? known
        : [...known, line]
    );

  useEffect(() => {
    setLines([]);
    const id = props.conversation?.id ?? null;
    setConversationId(id);
    if (id) {
      history(id).then((page) => {
        const stored = page.items.slice().reverse().map((message): Line => ({
          key: message.id,
          id: message.id,
          from: message.from,
          text: message.text,
          attachments: message.attachments,
          createdAt: message.createdAt,
          state: message.from !== me.id ? "received" : message.readAt ? "read" : "delivered",
        }));
        // A receipt never goes back: a line the socket already marked read stays read.
        setLines((live) => [
          ...stored.map((line) => {
            const seen = live.find((l) => l.id === line.id);
            return seen && RANK[seen.state] > RANK[line.state]
              ? { ...line, state: seen.state }
              : line;
          }),
          ...live.filter((l) => !stored.some((s) => s.id === l.id)),
        ]);
        const last = page.items.find((message) => message.from === peerId);
        if (last && props.conversation?.unreadCount) {
          liveSocket().send("message-read", { conversationId: id, messageId: last.id });
          setTimeout(props.onRead, 300); // once the receipt is decided
        }
      });
    }
    ok(api.api.presence.$get({ query: { userIds: peerId } })).then((answer) =>
      setPresence(answer.items[0]?.status ?? "offline")
    );
  }, [peerId, props.conversation?.id]);

  useEffect(() => bottom.current?.scrollIntoView({ block: "end" }), [lines.length]);

  useEvent("incoming-message", (event) => {
    if (event.data.from !== peerId) return;
    setConversationId(event.data.conversationId);
    add({
      key: event.data.messageId,
      id: event.data.messageId,
      from: peerId,
      text: event.data.text,
      attachments: event.data.attachments,
      createdAt: event.data.createdAt,
      state: "received",
    });
    setTyping(false);
    liveSocket().send("message-read", {
      conversationId: event.data.conversationId,
      messageId: event.data.messageId,
    });
  }, [peerId]);
  useEvent("message-read", (event) => {
    if (event.data.readerId !== peerId) return;
    setLines((known) => {
      const upTo = known.findIndex((line) => line.id === event.data.messageId);
      return known.map((line, index) =>
        line.from === me.id && line.state === "delivered" && (upTo === -1 || index <= upTo)
          ? { ...line, state: "read" }
          : line
      );
    });
  }, [peerId]);
  useEvent("typing", (event) => {
    if (event.data.from !== peerId) return;
    setTyping(true);
    clearTimeout(typingTimer.current);
    typingTimer.current = setTimeout(() => setTyping(false), 3000);
  }, [peerId]);
  useEvent("presence", (event) => {
    if (event.data.userId === peerId) setPresence(event.data.status);
  }, [peerId]);

  async function send(event: Event) {
    event.preventDefault();
    const body = text.trim();
    const chosen = files.current?.files ? [...files.current.files] : [];
    if (!body && chosen.length === 0) return;
    setText("");
    setError("");
    const tempId = crypto.randomUUID();
    const line: Line = {
      key: tempId,
      id: null,
      from: me.id,
      text: body,
      attachments: [],
      createdAt: new Date().toISOString(),
      state: "sending",
    };
    add(line);
    try {
      // Private uploads first (only the two of us will see them), then the message with them.
      const attachments = await Promise.all(
        chosen.map((file) => uploadFile<Attachment>(file, "/api/attachments")),
      );
      if (files.current) files.current.value = "";
      setLines((known) =>
        known.map((item) => item.key === tempId ? { ...item, attachments } : item)
      );
      const attachmentIds = attachments.map((file) => file.id);
      const ack = await liveSocket().sendMessage(peerId, body, tempId, { attachmentIds });
      setConversationId(ack.conversationId);
      setLines((known) =>
        known.map((item) =>
          item.key === tempId
            ? { ...item, id: ack.messageId, createdAt: ack.createdAt, state: "delivered" }
            : item
        )
      );
    } catch (failure) {
      setLines((known) =>
        known.map((item) => item.key === tempId ? { ...item, state: "failed" } : item)
      );
      setError(explain(failure));
    }
  }

  function typed(value: string) {
    setText(value);
    if (Date.now() - lastTyped.current > 2000) {
      lastTyped.current = Date.now();
      liveSocket().send("typing", { toUserId: peerId });
    }
  }

  return (
    <div class="conversation" data-conversation={conversationId ?? ""}>
      <p class="meta">
        <Avatar id={peerId} />{" "}
        <a href={`#/people/${peerId}`}>{props.conversation?.peer.name ?? "Profile"}</a> ·{" "}
        <span data-testid="presence">{presence}</span>
        {typing && <span data-testid="typing">· typing…</span>}
        {conversationId && (
          <MuteButton
            conversationId={conversationId}
            muted={props.conversation?.muted ?? false}
          />
        )}
      </p>
      <ol class="messages" aria-label="Messages" aria-live="polite">
        {lines.map((line) => (
          <li
            key={line.key}
            class={line.from === me.id ? "mine" : "theirs"}
            data-testid="message"
            data-state={line.state}
          >
            {line.text && <span>{line.text}</span>}
            {line.attachments.map((file) => <AttachmentView key={file.id} file={file} />)}
            <small class="meta">
              {time(line.createdAt)}
              {line.from === me.id && ` · ${line.state}`}
            </small>
          </li>
        ))}
        <li ref={bottom} aria-hidden="true" class="end" />
      </ol>
      {error && <p role="alert" class="error">{error}</p>}
      <form onSubmit={send} class="row" aria-label="Send a message">
        <Field
          class="grow"
          label="Message"
          name="message"
          autocomplete="off"
          maxLength={4000}
          value={text}
          onValue={typed}
        />
        <label class="attach">
          <span>Attach files</span>
          <input
            ref={files}
            type="file"
            name="attachments"
            multiple
            accept="image/png,image/jpeg,image/webp,image/gif,application/pdf,video/mp4,video/webm"
          />
        </label>
        <button type="submit">Send</button>
      </form>
      <button type="button" class="link" onClick={() => go("chat")}>All conversations</button>
    </div>
  );
}

/**
 * A private file in a message: pictures and videos shown in place, anything else a link that saves
 * it. Its URL redirects, with the session cookie, to a link that works for a few minutes.
 */
function AttachmentView(props: { file: Attachment }) {
  const { file } = props;
  if (file.contentType.startsWith("image/")) {
    return (
      <a class="attachment" href={file.url} target="_blank" rel="noopener">
        <img src={file.url} alt={file.name} loading="lazy" data-testid="attachment-image" />
      </a>
    );
  }
  if (file.contentType.startsWith("video/")) {
    return <video class="attachment" src={file.url} controls preload="metadata" />;
  }
  return (
    <a class="attachment file" href={file.url} data-testid="attachment-file">
      <span class="kind">{file.contentType.split("/")[1].toUpperCase()}</span> {file.name}{" "}
      <small>({Math.ceil(file.size / 1024)} KB)</small>
    </a>
  );
}

/** Mutes (or unmutes) a conversation's notifications; the messages still arrive. */
function MuteButton(props: { conversationId: string; muted: boolean }) {
  const [muted, setMuted] = useState(props.muted);
  const param = { id: props.conversationId };
  return (
    <button
      type="button"
      class="secondary"
      aria-pressed={muted}
      onClick={async () => {
        await done(
          muted
            ? api.api.conversations[":id"].mute.$delete({ param })
            : api.api.conversations[":id"].mute.$put({ param }),
        );
        setMuted(!muted);
      }}
    >
      {muted ? "Unmute notifications" : "Mute notifications"}
    </button>
  );
}
