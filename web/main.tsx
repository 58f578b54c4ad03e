// The console's shell: who is signed in, the navigation with the unread badge, and the page the
// hash route names. Served at `/` by routes/web.ts as web/dist/console.js (`deno task web`).
/// <reference lib="dom" />
import { Avatar } from "./avatar.tsx";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, closeSocket, done, explain, go, liveSocket, ok, route, useEvent } from "./session.ts";
import { AuthPage, ResetPasswordPage, VerifyEmailPage } from "./auth.tsx";
import { FeedPage } from "./feed.tsx";
import { PeoplePage } from "./people.tsx";
import { ChatPage } from "./chat.tsx";
import { CallPage } from "./call.tsx";
import { InterviewsPage } from "./interviews.tsx";
import { OrdersPage, SalePage } from "./sale.tsx";
import { AdminPage } from "./admin.tsx";
import { OperationsPage } from "./operations.tsx";
import { ProfilePage } from "./profile.tsx";
import { NotificationsPage } from "./notifications.tsx";

export type Me = Awaited<ReturnType<typeof loadSession>>["user"];

const loadSession = () => ok(api.api.auth.session.$get());

const PAGES = [
  ["feed", "Feed"],
  ["people", "People"],
  ["chat", "Chat"],
  ["call", "Call"],
  ["interviews", "Interviews"],
  ["sale", "Sale"],
  ["orders", "Orders"],
  ["profile", "Profile"],
] as const;

function App() {
  const [me, setMe] = useState<Me | undefined>(undefined);
  const [path, setPath] = useState(route());
  useEffect(() => {
    loadSession().then((session) => setMe(session.user));
    const onHash = () => setPath(route());
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);
  // A reset link opens its page whoever is signed in here (its token rides in the fragment).
  const reset = location.hash.match(/^#\/reset-password\?token=([\w-]+)/);
  if (reset) return <ResetPasswordPage token={reset[1]} />;
  const verify = location.hash.match(/^#\/verify-email\?token=([\w-]+)/);
  if (verify) return <VerifyEmailPage token={verify[1]} />;
  if (me === undefined) return <p>Loading…</p>;
  if (me === null) return <AuthPage onSignedIn={(user) => setMe(user)} />;
  return <SignedIn me={me} path={path} onMe={setMe} />;
}

function SignedIn(props: { me: NonNullable<Me>; path: string[]; onMe: (me: Me) => void }) {
  const { me, path } = props;
  const [unread, setUnread] = useState(0);
  const [connection, setConnection] = useState(liveSocket().state);
  useEffect(() => {
    ok(api.api.notifications["unread-count"].$get()).then((answer) => setUnread(answer.count));
    return liveSocket().onState((state) => setConnection(state));
  }, []);
  useEvent("notification", () => setUnread((count) => count + 1));
  const page = path[0] ?? "feed";
  // Unread chat messages, from the server: on arrival of a message and on every page change
  // (reading a conversation moves its marker there).
  const [unreadChats, setUnreadChats] = useState(0);
  const countChats = () =>
    ok(api.api.conversations.$get({ query: { limit: "100" } })).then((list) =>
      setUnreadChats(list.items.reduce((sum, item) => sum + item.unreadCount, 0))
    ).catch(() => {});
  useEffect(() => {
    countChats();
  }, [path.join("/")]);
  useEvent("incoming-message", () => setTimeout(countChats, 500));
  async function signOut() {
    await done(api.api.auth.logout.$post());
    closeSocket();
    props.onMe(null);
    go("feed");
  }
  return (
    <div class="shell">
      <header>
        <strong class="brand">Convene</strong>
        <nav aria-label="Main">
          {PAGES.map(([name, label]) => (
            <a
              key={name}
              href={`#/${name}`}
              aria-current={page === name ? "page" : undefined}
              aria-label={name === "chat" && unreadChats > 0
                ? `${label}, ${unreadChats} unread`
                : undefined}
            >
              {label}
              {name === "chat" && unreadChats > 0 && (
                <span class="badge" data-testid="unread-chats">{unreadChats}</span>
              )}
            </a>
          ))}
          {me.role === "admin" && (
            <a href="#/admin" aria-current={page === "admin" ? "page" : undefined}>Admin</a>
          )}
          {me.role === "admin" && (
            <a href="#/operations" aria-current={page === "operations" ? "page" : undefined}>
              Operations
            </a>
          )}
          <a
            href="#/notifications"
            aria-label={`Notifications, ${unread} unread`}
            data-testid="notifications-link"
          >
            Notifications{unread > 0 && (
              <span class="badge" data-testid="unread-badge">{unread}</span>
            )}
          </a>
        </nav>
        <span class="who">
          <span class={`dot ${connection}`} title={`Live updates: ${connection}`} />
          <Avatar id={me.id} size={24} /> {me.name}{" "}
          <button type="button" onClick={signOut}>Sign out</button>
        </span>
      </header>
      {me.confirmationNeeded && <ConfirmBanner email={me.email} />}
      <main>
        {page === "feed" && <FeedPage me={me} />}
        {page === "people" && <PeoplePage me={me} />}
        {page === "chat" && <ChatPage me={me} peerId={path[1]} />}
        {page === "call" && <CallPage me={me} />}
        {page === "interviews" && <InterviewsPage me={me} />}
        {page === "sale" && <SalePage saleId={path[1]} />}
        {page === "orders" && <OrdersPage />}
        {page === "profile" && <ProfilePage me={me} onMe={props.onMe} />}
        {page === "admin" && <AdminPage />}
        {page === "operations" && <OperationsPage />}
        {page === "notifications" && <NotificationsPage onRead={() => setUnread(0)} />}
      </main>
    </div>
  );
}

render(<App />, document.getElementById("console")!);

/** Until the address is confirmed: what waits for it, and a way to get the link again. */
function ConfirmBanner(props: { email: string }) {
  const [said, setSaid] = useState("");
  return (
    <aside class="banner" role="note" aria-label="Confirm your address">
      Confirm {props.email}{" "}
      with the link we sent: matching, selling and more than five connection requests wait for it.
      {" "}
      <button
        type="button"
        onClick={() =>
          ok(api.api.auth["verify-email"].resend.$post())
            .then((answer) => setSaid(`Sent to ${answer.sentTo}.`))
            .catch((failure) => setSaid(explain(failure)))}
      >
        Send the link again
      </button>
      {said && <span role="status">{said}</span>}
    </aside>
  );
}
