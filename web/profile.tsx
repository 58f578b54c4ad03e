// One's own profile: what others see, and the photo.
/// <reference lib="dom" />
import { Field, TextArea } from "./field.tsx";
import { useState } from "preact/hooks";
import { api, explain, ok } from "./session.ts";
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
  async function save(patch: Parameters<typeof api.api.profile.$patch>[0]["json"], done: string) {
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
    </section>
  );
}
