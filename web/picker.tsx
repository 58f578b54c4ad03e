// Choosing a member by name: type part of a name, bio or skill, pick one of the matches.
/// <reference lib="dom" />
import { Avatar } from "./avatar.tsx";
import { useEffect, useState } from "preact/hooks";
import { Field } from "./field.tsx";
import { api, ok } from "./session.ts";

interface Person {
  id: string;
  name: string;
  headline: string | null;
}

/** Waits this long after the last keystroke before searching. */
const SEARCH_DELAY_MS = 200;

export function PeoplePicker(props: { label: string; onPick: (person: Person | null) => void }) {
  const [q, setQ] = useState("");
  const [found, setFound] = useState<Person[]>([]);
  const [picked, setPicked] = useState<Person | null>(null);
  useEffect(() => {
    if (picked || q.trim().length === 0) return setFound([]);
    const timer = setTimeout(() => {
      ok(api.api.users.$get({ query: { q: q.trim(), limit: "8" } }))
        .then((page) => setFound(page.items))
        .catch(() => setFound([]));
    }, SEARCH_DELAY_MS);
    return () => clearTimeout(timer);
  }, [q, picked]);
  const choose = (person: Person | null) => {
    setPicked(person);
    props.onPick(person);
  };
  return (
    <div class="picker">
      <Field
        label={props.label}
        required
        value={picked ? picked.name : q}
        onValue={(text) => {
          choose(null);
          setQ(text);
        }}
      />
      {found.length > 0 && (
        <ul class="list" aria-label={`Members matching ${q}`}>
          {found.map((person) => (
            <li key={person.id}>
              <button type="button" onClick={() => choose(person)}>
                <Avatar id={person.id} size={20} /> {person.name}
              </button>
              {person.headline && <span class="meta">{person.headline}</span>}
            </li>
          ))}
        </ul>
      )}
      {picked && <span class="meta" data-testid="picked">Chosen: {picked.name}</span>}
    </div>
  );
}
