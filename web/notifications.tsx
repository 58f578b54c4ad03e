// Notifications, newest first; opening the page marks them all read.
/// <reference lib="dom" />
import { Avatar } from "./avatar.tsx";
import { useEffect, useState } from "preact/hooks";
import { api, done, ok, time, useEvent } from "./session.ts";

type Item = Awaited<ReturnType<typeof load>>["items"][number];
const load = () => ok(api.api.notifications.$get({ query: { limit: "50" } }));

const WORDS: Record<string, string> = {
  follow: "followed you",
  like: "liked your post",
  comment: "commented on your post",
  connection_request: "asked to connect",
  connection_accepted: "accepted your request",
  message: "sent you a message",
  interview: "updated an interview",
  order: "an order changed",
  moderation: "took down something you posted",
};

/** Where a notification's subject is shown in the console. */
function subjectLink(item: Item): string {
  switch (item.type) {
    case "message":
      return `#/chat/${item.actor.id}`;
    case "follow":
    case "connection_accepted":
      return `#/people/${item.actor.id}`;
    case "connection_request":
      return "#/people";
    case "like":
    case "comment":
    case "moderation":
      return "#/feed";
    case "interview":
      return "#/interviews";
    case "order":
      return "#/orders";
    default:
      return "#/notifications";
  }
}

export function NotificationsPage(props: { onRead: () => void }) {
  const [items, setItems] = useState<Item[]>([]);
  const refresh = () =>
    load().then(async (page) => {
      setItems(page.items);
      await done(api.api.notifications.read.$post({ json: {} }));
      props.onRead();
    });
  useEffect(() => {
    refresh();
  }, []);
  useEvent("notification", () => refresh());
  return (
    <section aria-labelledby="notes-title">
      <h1 id="notes-title">Notifications</h1>
      <ul class="list" aria-label="Notifications">
        {items.length === 0 && <li class="meta">Nothing yet.</li>}
        {items.map((item) => (
          <li key={item.id} class={`card ${item.read ? "" : "unread"}`} data-testid="notification">
            <a href={`#/people/${item.actor.id}`}>
              <Avatar id={item.actor.id} /> <strong>{item.actor.name}</strong>
            </a>{" "}
            <a href={subjectLink(item)}>{WORDS[item.type] ?? item.type}</a>
            {item.count > 1 && ` (${item.count}×)`} ·{" "}
            <span class="meta">{time(item.createdAt)}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}
