// One's own profile: what others see, the photo, and where one is signed in.
/// <reference lib="dom" />
import { Field, TextArea } from "./field.tsx";
import { useEffect, useState } from "preact/hooks";
import { api, done, explain, ok } from "./session.ts";
import { upload } from "./feed.tsx";
import type { Me } from "./main.tsx";

export function ProfilePage(props: { me: NonNullable<Me>; onMe: (me: Me) => void }) {
  const { me } = props;
  const [name, setName] = useState(me.name);
  const [headline, setHeadline] = useState(me.headline ?? "");
  const [bio, setBio] = useState(me.bio ?? "");
  const [skills, setSkills] = useState(me.skills.join(", "));
  const [location, setLocation] = useState(me.location ?? "");
  const [message, setMessage] = useState("");
  async function save(
    patch: NonNullable<Parameters<typeof api.api.profile.$patch>[0]>["json"],
    done: string,
  ) {
    try {
      const { user } = await ok(api.api.profile.$patch({ json: patch }));
      props.onMe(user);
      setMessage(done);
    } catch (failure) {
      setMessage(explain(failure));
    }
  }
  return (
    <section aria-labelledby="me-title">
      <h1 id="me-title">Your profile</h1>
      {me.avatarUrl && <img src={me.avatarUrl} alt="Your photo" class="avatar" />}
      <p class="meta">
        Your member id: <code>{me.id}</code>
      </p>
      <p>
        Verified skills: {me.verifiedSkills.map((skill) => skill.skill).join(", ") || "none yet"}
      </p>
      <label>
        Photo
        <input
          type="file"
          accept="image/*"
          onChange={async (e: Event) => {
            const file = (e.target as HTMLInputElement).files?.[0];
            if (!file) return;
            try {
              await save({ avatarMediaId: await upload(file) }, "Photo updated.");
            } catch (failure) {
              setMessage(explain(failure));
            }
          }}
        />
      </label>
      {me.videoUrl && (
        <video
          src={me.videoUrl}
          controls
          preload="metadata"
          class="profile-video"
          aria-label="Your video"
        />
      )}
      <label>
        Video (MP4 or WebM)
        <input
          type="file"
          accept="video/mp4,video/webm"
          onChange={async (e: Event) => {
            const file = (e.target as HTMLInputElement).files?.[0];
            if (!file) return;
            try {
              await save({ videoMediaId: await upload(file) }, "Video updated.");
            } catch (failure) {
              setMessage(explain(failure));
            }
          }}
        />
      </label>
      <form
        class="card"
        aria-label="Profile"
        onSubmit={(event: Event) => {
          event.preventDefault();
          save({
            name,
            headline: headline || null,
            bio: bio || null,
            location: location || null,
            skills: skills.split(",").map((skill) => skill.trim()).filter(Boolean),
          }, "Saved.");
        }}
      >
        <Field label="Name" required value={name} onValue={setName} />
        <Field label="Headline" value={headline} onValue={setHeadline} />
        <TextArea label="Bio" value={bio} onValue={setBio} />
        <Field label="Skills (comma-separated)" value={skills} onValue={setSkills} />
        <Field label="Location" value={location} onValue={setLocation} />
        <button type="submit">Save</button>
      </form>
      {message && <p role="status">{message}</p>}
      <EmailChange me={me} />
      <NotificationChoices />
      <Sessions />
    </section>
  );
}

const loadSessions = () => ok(api.api.auth.sessions.$get());
type SessionItem = Awaited<ReturnType<typeof loadSessions>>["items"][number];

/** Where this account is signed in, with a way to end any other device's session. */
function Sessions() {
  const [items, setItems] = useState<SessionItem[]>([]);
  const [message, setMessage] = useState("");
  const refresh = () => loadSessions().then((page) => setItems(page.items));
  useEffect(() => {
    refresh();
  }, []);
  async function act(action: () => Promise<unknown>, after: string) {
    try {
      await action();
      await refresh();
      setMessage(after);
    } catch (failure) {
      setMessage(explain(failure));
    }
  }
  const others = items.filter((item) => !item.current);
  return (
    <section class="card" aria-labelledby="sessions-title">
      <h2 id="sessions-title">Where you are signed in</h2>
      <ul class="list" aria-label="Sessions">
        {items.map((item) => (
          <li key={item.id} data-testid="session">
            <strong>{item.userAgent ?? "An unknown device"}</strong>
            {item.place && ` · ${item.place}`} · since {new Date(item.createdAt).toLocaleString()}
            {" "}
            · last seen {new Date(item.lastSeenAt).toLocaleString()}
            {item.current ? <em>(this device)</em> : (
              <button
                type="button"
                onClick={() =>
                  act(
                    () => done(api.api.auth.sessions[":id"].$delete({ param: { id: item.id } })),
                    "That device is signed out.",
                  )}
              >
                Sign out this device
              </button>
            )}
          </li>
        ))}
      </ul>
      {others.length > 0 && (
        <button
          type="button"
          onClick={() =>
            act(
              () => done(api.api.auth.sessions["end-others"].$post()),
              "Every other device is signed out.",
            )}
        >
          Sign out everywhere else
        </button>
      )}
      {message && <p role="status" data-testid="sessions-message">{message}</p>}
    </section>
  );
}

/** A new address: it takes the old one's place once its emailed link is opened. */
function EmailChange(props: { me: NonNullable<Me> }) {
  const [newEmail, setNewEmail] = useState("");
  const [password, setPassword] = useState("");
  const [message, setMessage] = useState("");
  return (
    <form
      class="card"
      aria-label="Change your email address"
      onSubmit={async (event: Event) => {
        event.preventDefault();
        try {
          const answer = await ok(api.api.auth.email.$put({ json: { newEmail, password } }));
          setMessage(
            `We sent a link to ${answer.pendingEmail}: it becomes your address once opened.`,
          );
        } catch (failure) {
          setMessage(explain(failure));
        }
      }}
    >
      <h2>Email address</h2>
      <p>
        {props.me.email} {props.me.emailVerified ? "(confirmed)" : "(not confirmed yet)"}
        {props.me.pendingEmail && ` · waiting for ${props.me.pendingEmail} to be confirmed`}
      </p>
      <Field label="New address" type="email" required value={newEmail} onValue={setNewEmail} />
      <Field
        label="Your password"
        type="password"
        required
        autocomplete="current-password"
        value={password}
        onValue={setPassword}
      />
      <button type="submit">Change address</button>
      {message && <p role="status">{message}</p>}
    </form>
  );
}

const loadPrefs = () => ok(api.api.notifications.preferences.$get());
type Prefs = Awaited<ReturnType<typeof loadPrefs>>;
type NotificationType = keyof Prefs["inApp"];

const TYPE_LABELS: Record<NotificationType, string> = {
  message: "Messages",
  connection_request: "Connection requests",
  connection_accepted: "Accepted requests",
  follow: "New followers",
  like: "Likes",
  comment: "Comments",
  interview: "Interviews",
  order: "Orders",
  moderation: "Moderation",
};

/** What one is told of, per type: in the app, and by email while away (one batched email). */
function NotificationChoices() {
  const [prefs, setPrefs] = useState<Prefs | null>(null);
  const [message, setMessage] = useState("");
  useEffect(() => {
    loadPrefs().then(setPrefs);
  }, []);
  if (!prefs) return null;
  async function change(channel: "inApp" | "email", type: NotificationType, on: boolean) {
    try {
      setPrefs(
        await ok(api.api.notifications.preferences.$put({ json: { [channel]: { [type]: on } } })),
      );
      setMessage("Saved.");
    } catch (failure) {
      setMessage(explain(failure));
    }
  }
  return (
    <section class="card" aria-labelledby="choices-title">
      <h2 id="choices-title">Notifications</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">About</th>
            <th scope="col">In the app</th>
            <th scope="col">By email, while away</th>
          </tr>
        </thead>
        <tbody>
          {(Object.keys(TYPE_LABELS) as NotificationType[]).map((type) => (
            <tr key={type}>
              <th scope="row">{TYPE_LABELS[type]}</th>
              {(["inApp", "email"] as const).map((channel) => (
                <td key={channel}>
                  <input
                    type="checkbox"
                    aria-label={`${TYPE_LABELS[type]} ${
                      channel === "inApp" ? "in the app" : "by email"
                    }`}
                    checked={prefs[channel][type]}
                    onChange={(event: Event) =>
                      change(channel, type, (event.target as HTMLInputElement).checked)}
                  />
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {message && <p role="status" data-testid="choices-message">{message}</p>}
    </section>
  );
}
