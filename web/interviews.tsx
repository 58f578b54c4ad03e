// Skill-verification interviews: open one as interviewer; as candidate start, answer and submit;
// as interviewer score each criterion (a pass verifies the skill on the candidate's profile).
/// <reference lib="dom" />
import { PeoplePicker } from "./picker.tsx";
import { Field, TextArea } from "./field.tsx";
import { useEffect, useState } from "preact/hooks";
import { api, explain, ok, useEvent } from "./session.ts";
import type { Me } from "./main.tsx";

type Interview = Awaited<ReturnType<typeof load>>["items"][number];

const load = () => ok(api.api.interviews.$get({ query: { limit: "50" } }));

export function InterviewsPage(props: { me: NonNullable<Me> }) {
  const [items, setItems] = useState<Interview[]>([]);
  const [message, setMessage] = useState("");
  const [candidateId, setCandidateId] = useState("");
  const [skill, setSkill] = useState("");
  const [prompt, setPrompt] = useState("");
  const [criteria, setCriteria] = useState("correctness, clarity");
  const refresh = () => load().then((page) => setItems(page.items));
  useEffect(() => {
    refresh();
  }, []);
  useEvent("interview-updated", () => refresh());

  async function open(event: Event) {
    event.preventDefault();
    try {
      const rubric = criteria.split(",").map((criterion) => criterion.trim()).filter(Boolean)
        .map((criterion) => ({ criterion, weight: 1 }));
      await ok(api.api.interviews.$post({ json: { candidateId, skill, prompt, rubric } }));
      setMessage("Interview created.");
      refresh();
    } catch (failure) {
      setMessage(explain(failure));
    }
  }

  return (
    <section aria-labelledby="interviews-title">
      <h1 id="interviews-title">Interviews</h1>
      <form onSubmit={open} class="card" aria-label="New interview">
        <PeoplePicker
          label="Candidate"
          onPick={(person) => setCandidateId(person?.id ?? "")}
        />
        <Field label="Skill" required value={skill} onValue={setSkill} />
        <TextArea label="Prompt" required value={prompt} onValue={setPrompt} />
        <Field
          label="Criteria (comma-separated, equal weight)"
          required
          value={criteria}
          onValue={setCriteria}
        />
        <button type="submit">Create</button>
      </form>
      {message && <p role="status">{message}</p>}
      <ul class="list" aria-label="Your interviews">
        {items.length === 0 && <li class="meta">No interviews yet.</li>}
        {items.map((interview) => (
          <InterviewItem
            interview={interview}
            me={props.me}
            onChange={refresh}
            key={interview.id}
          />
        ))}
      </ul>
    </section>
  );
}

function InterviewItem(props: { interview: Interview; me: NonNullable<Me>; onChange: () => void }) {
  const { interview } = props;
  const [answer, setAnswer] = useState("");
  const [scores, setScores] = useState<Record<string, string>>({});
  const [error, setError] = useState("");
  const param = { id: interview.id };
  async function act(action: () => Promise<unknown>) {
    setError("");
    try {
      await action();
      props.onChange();
    } catch (failure) {
      setError(explain(failure));
    }
  }
  const can = (action: (typeof interview.actions)[number]) => interview.actions.includes(action);
  return (
    <li class="card" data-testid="interview" data-state={interview.state}>
      <p>
        <strong>{interview.skill}</strong> · {interview.state}
        {interview.passed !== null &&
          ` · ${interview.passed ? "passed" : "not passed"} (${interview.weightedScore})`}
      </p>
      {interview.prompt && <p>{interview.prompt}</p>}
      {interview.answer && <blockquote>{interview.answer}</blockquote>}
      {error && <p role="alert" class="error">{error}</p>}
      <div class="actions">
        {can("start") && (
          <button
            type="button"
            onClick={() => act(() => ok(api.api.interviews[":id"].start.$post({ param })))}
          >
            Start
          </button>
        )}
        {can("cancel") && (
          <button
            type="button"
            onClick={() => act(() => ok(api.api.interviews[":id"].cancel.$post({ param })))}
          >
            Cancel
          </button>
        )}
      </div>
      {can("submit") && (
        <form
          aria-label="Answer"
          onSubmit={(event: Event) => {
            event.preventDefault();
            act(() => ok(api.api.interviews[":id"].submit.$post({ param, json: { answer } })));
          }}
        >
          <TextArea label="Your answer" required value={answer} onValue={setAnswer} />
          <button type="submit">Submit</button>
        </form>
      )}
      {can("score") && (
        <form
          aria-label="Score"
          onSubmit={(event: Event) => {
            event.preventDefault();
            act(() =>
              ok(api.api.interviews[":id"].score.$post({
                param,
                json: {
                  scores: interview.rubric.map(({ criterion }) => ({
                    criterion,
                    score: Number(scores[criterion] ?? 0),
                  })),
                },
              }))
            );
          }}
        >
          {interview.rubric.map(({ criterion }) => (
            <Field
              key={criterion}
              label={`${criterion} (0–10)`}
              type="number"
              min={0}
              max={10}
              required
              value={scores[criterion] ?? ""}
              onValue={(score) => setScores({ ...scores, [criterion]: score })}
            />
          ))}
          <button type="submit">Score</button>
        </form>
      )}
    </li>
  );
}
