// People: search, discovery with its explanation, a member's profile, follows, connection
// requests (sent and received), blocks and reports.
/// <reference lib="dom" />
import { Avatar } from "./avatar.tsx";
import { Field } from "./field.tsx";
import { useEffect, useState } from "preact/hooks";
import { api, done, explain, go, ok, route } from "./session.ts";
import type { Me } from "./main.tsx";

type Found = Awaited<ReturnType<typeof search>>["items"][number];
type Discovery = Awaited<ReturnType<typeof discover>>["items"][number];
type Request = Awaited<ReturnType<typeof requests>>["items"][number];

const search = (q: string) => ok(api.api.users.$get({ query: { q, limit: "20" } }));
const discover = () => ok(api.api.discover.$get({ query: { limit: "10" } }));
const requests = () => ok(api.api.connections.$get({ query: { status: "pending" } }));

export function PeoplePage(props: { me: NonNullable<Me> }) {
  const userId = route()[1];
  if (userId) return <Profile userId={userId} me={props.me} />;
  return <Directory me={props.me} />;
}

function Directory(props: { me: NonNullable<Me> }) {
  const [q, setQ] = useState("");
  const [found, setFound] = useState<Found[] | null>(null);
  const [ranked, setRanked] = useState<Discovery[]>([]);
  const [pending, setPending] = useState<Request[]>([]);
  const [message, setMessage] = useState("");
  const refresh = () => requests().then((page) => setPending(page.items));
  useEffect(() => {
    discover().then((page) => setRanked(page.items));
    refresh();
  }, []);
  async function find(event: Event) {
    event.preventDefault();
    setFound((await search(q)).items);
  }
  async function answer(id: string, status: "accepted" | "rejected" | "withdrawn") {
    try {
      await ok(api.api.connections[":id"].$patch({ param: { id }, json: { status } }));
      setMessage(`Request ${status}.`);
      refresh();
    } catch (failure) {
      setMessage(explain(failure));
    }
  }
  return (
    <section aria-labelledby="people-title">
      <h1 id="people-title">People</h1>
      <form onSubmit={find} class="row" aria-label="Search people">
        <Field label="Name, bio or skill" name="q" required value={q} onValue={setQ} />
        <button type="submit">Search</button>
      </form>
      {message && <p role="status">{message}</p>}
      {found && (
        <ul class="list" aria-label="Search results">
          {found.length === 0 && <li>Nobody matches.</li>}
          {found.map((person) => (
            <li class="card" data-testid="person" key={person.id}>
              <a href={`#/people/${person.id}`}>
                <Avatar id={person.id} /> {person.name}
              </a>
              {person.headline && <span class="meta">· {person.headline}</span>}
              <span class="meta">{person.skills.join(", ")}</span>
            </li>
          ))}
        </ul>
      )}
      <h2>Requests</h2>
      <ul class="list" aria-label="Pending requests">
        {pending.length === 0 && <li class="meta">No pending requests.</li>}
        {pending.map((request) => {
          const incoming = request.toUserId === props.me.id;
          const other = incoming ? request.fromUserId : request.toUserId;
          return (
            <li class="card" data-testid="request" key={request.id}>
              <a href={`#/people/${other}`}>{incoming ? "Request from a member" : "Sent"}</a>
              {request.message && <q>{request.message}</q>}
              {incoming
                ? (
                  <span class="actions">
                    <button type="button" onClick={() => answer(request.id, "accepted")}>
                      Accept
                    </button>
                    <button type="button" onClick={() => answer(request.id, "rejected")}>
                      Reject
                    </button>
                  </span>
                )
                : (
                  <button type="button" onClick={() => answer(request.id, "withdrawn")}>
                    Withdraw
                  </button>
                )}
            </li>
          );
        })}
      </ul>
      <h2>Suggested for you</h2>
      <ul class="list" aria-label="Suggested people">
        {ranked.map((item) => (
          <li class="card" key={item.profile.id}>
            <a href={`#/people/${item.profile.id}`}>
              <Avatar id={item.profile.id} /> {item.profile.name}
            </a>
            <span class="meta">· match {item.score.toFixed(2)}</span>
            <details>
              <summary>Why</summary>
              <dl class="explain">
                <dt>Skills</dt>
                <dd>
                  {item.explain.skills.toFixed(2)}{" "}
                  ({item.signals.sharedSkills.join(", ") || "none shared"})
                </dd>
                <dt>Location</dt>
                <dd>{item.explain.location.toFixed(2)}</dd>
                <dt>Mutual connections</dt>
                <dd>{item.explain.mutuals.toFixed(2)} ({item.signals.mutualConnections})</dd>
                <dt>Recently active</dt>
                <dd>{item.explain.recency.toFixed(2)}</dd>
              </dl>
            </details>
          </li>
        ))}
      </ul>
    </section>
  );
}

type ProfileView = Awaited<ReturnType<typeof loadProfile>>;
const loadProfile = (id: string) => ok(api.api.users[":id"].$get({ param: { id } }));

function Profile(props: { userId: string; me: NonNullable<Me> }) {
  const [profile, setProfile] = useState<ProfileView | null>(null);
  const [message, setMessage] = useState("");
  const [note, setNote] = useState("");
  const reload = () => loadProfile(props.userId).then(setProfile, (e) => setMessage(explain(e)));
  useEffect(() => {
    reload();
  }, [props.userId]);
  async function act(what: string, action: () => Promise<unknown>) {
    try {
      await action();
      setMessage(what);
      reload();
    } catch (failure) {
      setMessage(explain(failure));
    }
  }
  if (!profile) return <p role="status">{message || "Loading…"}</p>;
  const param = { userId: profile.id };
  const relation = profile.relationship;
  const self = profile.id === props.me.id;
  return (
    <section aria-labelledby="profile-title" class="card">
      {profile.avatarUrl && <img src={profile.avatarUrl} alt="" class="avatar" />}
      {profile.videoUrl && (
        <video
          src={profile.videoUrl}
          controls
          preload="metadata"
          class="profile-video"
          aria-label={`${profile.name}'s video`}
        />
      )}
      <h1 id="profile-title">{profile.name}</h1>
      {profile.headline && <p>{profile.headline}</p>}
      {profile.bio && <p>{profile.bio}</p>}
      <p class="meta">
        {profile.followerCount} followers · {profile.followingCount} following ·{" "}
        {profile.connectionCount} connections
      </p>
      <p>Skills: {profile.skills.join(", ") || "none listed"}</p>
      <p>
        Verified: {profile.verifiedSkills.map((skill) => skill.skill).join(", ") || "none yet"}
      </p>
      {message && <p role="status">{message}</p>}
      {!self && relation && (
        <div class="actions">
          {relation.following
            ? (
              <button
                type="button"
                onClick={() =>
                  act("Unfollowed.", () => done(api.api.follows[":userId"].$delete({ param })))}
              >
                Unfollow
              </button>
            )
            : (
              <button
                type="button"
                onClick={() =>
                  act("Following.", () => done(api.api.follows[":userId"].$post({ param })))}
              >
                Follow
              </button>
            )}
          {!relation.connection && (
            <button
              type="button"
              onClick={() =>
                act("Request sent.", () =>
                  ok(api.api.connections.$post({ json: { toUserId: profile.id } })))}
            >
              Connect
            </button>
          )}
          {relation.connection && (
            <span class="meta">Connection: {relation.connection.status}</span>
          )}
          <button type="button" onClick={() => go("chat", profile.id)}>Message</button>
          <button
            type="button"
            onClick={() => act("Blocked.", () => done(api.api.blocks[":userId"].$post({ param })))}
          >
            Block
          </button>
          <Field label="Report reason" value={note} onValue={setNote} />
          <button
            type="button"
            disabled={!note.trim()}
            onClick={() =>
              act(
                "Reported; thank you.",
                () => ok(api.api.reports.$post({ json: { userId: profile.id, reason: note } })),
              )}
          >
            Report
          </button>
        </div>
      )}
    </section>
  );
}
