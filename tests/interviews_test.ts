import assert from "node:assert/strict";
import { asc, eq } from "drizzle-orm";
import type { Deps } from "../deps.ts";
import { interviewEvents } from "../db/schema.ts";
import { evaluate, expire, sweepInterviews } from "../workflows/interviews.ts";
import { readEvents } from "../kv/events.ts";
import { type Answer, assertProblem, createTestApp, type HttpClient } from "./helpers/app.ts";
import { heldJobs } from "./helpers/held-jobs.ts";
import { type Member, members } from "./helpers/members.ts";

const RUBRIC = [
  { criterion: "Correctness", weight: 3 },
  { criterion: "Complexity analysis", weight: 1 },
];

/** 8 × 3 + 5 × 1 = 29 / 4 = 7.25: a pass. */
const PASSING = [{ criterion: "Correctness", score: 8 }, {
  criterion: "complexity analysis",
  score: 5,
}];
/** 6 × 3 + 9 × 1 = 27 / 4 = 6.75: a fail. */
const FAILING = [{ criterion: "Correctness", score: 6 }, {
  criterion: "Complexity analysis",
  score: 9,
}];

const ANSWER = "Binary search halves the range each step, so the complexity is O(log n). " +
  "Correctness follows from the loop invariant lo <= target index < hi.";

async function open(
  http: HttpClient,
  interviewer: Member,
  candidate: Member,
  overrides: Record<string, unknown> = {},
) {
  const answer = await http("POST", "/api/interviews", {
    token: interviewer.token,
    body: {
      candidateId: candidate.user.id,
      skill: "Algorithms",
      prompt: "Find a value in a sorted array of a million integers. Explain your approach.",
      rubric: RUBRIC,
      ...overrides,
    },
  });
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  return answer.body;
}

function act(http: HttpClient, who: Member, id: string, action: string, body?: unknown) {
  return http("POST", `/api/interviews/${id}/${action}`, { token: who.token, body });
}

async function expectOk(answer: Promise<Answer>, state: string) {
  const { status, body } = await answer;
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.state, state);
  return body;
}

async function read(http: HttpClient, who: Member, id: string) {
  const answer = await http("GET", `/api/interviews/${id}`, { token: who.token });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

/** The transitions Postgres recorded, oldest first, as "action:from→to:actor". */
async function history(deps: Deps, id: string) {
  await deps.outbox.flush();
  const rows = await deps.database.db.select().from(interviewEvents)
    .where(eq(interviewEvents.interviewId, id)).orderBy(asc(interviewEvents.version));
  return rows.map((row) => `${row.action}:${row.fromState}→${row.toState}:${row.actorId}`);
}

/** An app whose expiry jobs (and, when asked, evaluation jobs) wait until the test releases them. */
async function interviewApp(hold: string[] = ["interview-expire"]) {
  const jobs = heldJobs(hold);
  const t0 = await createTestApp({ jobs: jobs.jobs });
  const [interviewer, candidate, stranger] = await members(t0.deps, 3, {
    name: (index) => ["Grace", "Linus", "Mallory"][index],
  });
  return { t0, jobs, interviewer, candidate, stranger, http: t0.http };
}

Deno.test("[interviews] every legal transition, each recorded with who, from, to and when", async (t) => {
  const { t0, jobs, interviewer, candidate, http } = await interviewApp();
  await using _ = t0;
  const I = interviewer.user.id;
  const C = candidate.user.id;

  await t.step("CREATED → STARTED → SUBMITTED → EVALUATING → SCORED", async () => {
    const created = await open(http, interviewer, candidate, { timeLimitMinutes: 45 });
    assert.equal(created.state, "CREATED");
    assert.equal(created.version, 1);
    assert.deepEqual(created.actions, ["cancel"]);
    const invited = await read(http, candidate, created.id);
    assert.equal(invited.prompt, null, "the candidate reads the prompt only once started");
    assert.deepEqual(invited.actions, ["start", "cancel"]);

    const started = await expectOk(act(http, candidate, created.id, "start"), "STARTED");
    assert.match(started.prompt, /sorted array/);
    assert.equal(
      Date.parse(started.expiresAt) - Date.parse(started.startedAt),
      45 * 60_000,
      "the deadline is the time limit after the start",
    );
    await t0.deps.outbox.flush(); // decisions enqueue their jobs a moment after the answer
    const [expiry] = jobs.held;
    assert.equal(expiry.name, "interview-expire");
    assert.deepEqual(expiry.payload, { interviewId: created.id });
    assert.ok(Math.abs(expiry.options.delaySeconds! - (45 * 60 + 1)) < 0.5, "expiry is scheduled");

    const submitted = await expectOk(
      act(http, candidate, created.id, "submit", { answer: ANSWER }),
      "SUBMITTED",
    );
    assert.equal(submitted.answer, ANSWER);

    await t0.jobsSettled("interview-evaluate");
    const evaluating = await read(http, interviewer, created.id);
    assert.equal(evaluating.state, "EVALUATING");
    assert.deepEqual(evaluating.metrics, {
      answerLength: ANSWER.length,
      wordCount: 24, // "O(log n)" is three words, "<=" and "<" none
      criteriaMentioned: ["Correctness", "Complexity analysis"],
      rubricCoverage: 1,
    });
    assert.deepEqual(evaluating.actions, ["score"]);

    const scored = await expectOk(
      act(http, interviewer, created.id, "score", { scores: PASSING, feedback: "Clear." }),
      "SCORED",
    );
    assert.equal(scored.weightedScore, 7.25);
    assert.equal(scored.passed, true);
    assert.equal(scored.version, 5);
    assert.deepEqual(scored.scores, [
      { criterion: "Correctness", score: 8 },
      { criterion: "Complexity analysis", score: 5 },
    ]);

    assert.deepEqual(await history(t0.deps, created.id), [
      `create:null→CREATED:${I}`,
      `start:CREATED→STARTED:${C}`,
      `submit:STARTED→SUBMITTED:${C}`,
      "evaluate:SUBMITTED→EVALUATING:null",
      `score:EVALUATING→SCORED:${I}`,
    ]);
    const events = await http("GET", `/api/interviews/${created.id}/events`, {
      token: candidate.token,
    });
    assert.deepEqual(
      events.body.items.map((event: { to: string; at: string }) => [event.to, typeof event.at]),
      ["CREATED", "STARTED", "SUBMITTED", "EVALUATING", "SCORED"].map((to) => [to, "string"]),
    );
    for (const userId of [I, C]) {
      const live = (await readEvents(t0.deps.kv, userId, 0, 100))
        .filter((event) => event.type === "interview-updated")
        .map((event) => (event.data as { state: string }).state);
      assert.deepEqual(live, ["CREATED", "STARTED", "SUBMITTED", "EVALUATING", "SCORED"]);
    }
  });

  await t.step(
    "CREATED → CANCELLED by the interviewer, STARTED → CANCELLED by the candidate",
    async () => {
      const first = await open(http, interviewer, candidate);
      await expectOk(act(http, interviewer, first.id, "cancel"), "CANCELLED");
      const second = await open(http, interviewer, candidate);
      await expectOk(act(http, candidate, second.id, "start"), "STARTED");
      const cancelled = await expectOk(act(http, candidate, second.id, "cancel"), "CANCELLED");
      assert.deepEqual(cancelled.actions, []);
      assert.deepEqual(await history(t0.deps, first.id), [
        `create:null→CREATED:${I}`,
        `cancel:CREATED→CANCELLED:${I}`,
      ]);
      assert.deepEqual((await history(t0.deps, second.id)).slice(1), [
        `start:CREATED→STARTED:${C}`,
        `cancel:STARTED→CANCELLED:${C}`,
      ]);
    },
  );

  await t.step("STARTED → EXPIRED by the system (expiry has its own tests below)", async () => {
    const interview = await open(http, interviewer, candidate, { timeLimitMinutes: 1 });
    await expectOk(act(http, candidate, interview.id, "start"), "STARTED");
    t0.clock.advance(60_001);
    assert.equal((await expire(t0.deps, interview.id))?.interview.state, "EXPIRED");
    assert.deepEqual((await history(t0.deps, interview.id)).at(-1), "expire:STARTED→EXPIRED:null");
  });

  // Invitations (4), "ready to score", the score and the expiry to both, the cancellations (2).
  await t0.jobsSettled("notify", 11);
});

Deno.test("[interviews] every illegal move → 409 with the current state, and changes nothing", async () => {
  // Evaluation jobs are held, so a submitted interview stays SUBMITTED until the test says so.
  const { t0, jobs, interviewer, candidate, http } = await interviewApp([
    "interview-expire",
    "interview-evaluate",
  ]);
  await using _ = t0;

  // One interview in each state. EXPIRED first: reaching it moves the clock past every deadline.
  const expired = await open(http, interviewer, candidate, { timeLimitMinutes: 1 });
  await act(http, candidate, expired.id, "start");
  t0.clock.advance(61_000);
  assert.deepEqual(await sweepInterviews(t0.deps), { expired: 1, evaluated: 0 });

  const created = await open(http, interviewer, candidate);
  const started = await open(http, interviewer, candidate);
  await act(http, candidate, started.id, "start");
  const evaluating = await open(http, interviewer, candidate);
  const scored = await open(http, interviewer, candidate);
  for (const { id } of [evaluating, scored]) {
    await act(http, candidate, id, "start");
    await act(http, candidate, id, "submit", { answer: ANSWER });
  }
  await t0.deps.outbox.flush();
  await jobs.release("interview-evaluate");
  await t0.jobsSettled("interview-evaluate", 2);
  await act(http, interviewer, scored.id, "score", { scores: FAILING });
  const submitted = await open(http, interviewer, candidate);
  await act(http, candidate, submitted.id, "start");
  await act(http, candidate, submitted.id, "submit", { answer: ANSWER });
  const cancelled = await open(http, interviewer, candidate);
  await act(http, interviewer, cancelled.id, "cancel");

  const byState: Record<string, string> = {
    CREATED: created.id,
    STARTED: started.id,
    SUBMITTED: submitted.id,
    EVALUATING: evaluating.id,
    SCORED: scored.id,
    CANCELLED: cancelled.id,
    EXPIRED: expired.id,
  };
  const moves = [
    { action: "start", by: candidate, body: undefined, legalFrom: ["CREATED"] },
    { action: "submit", by: candidate, body: { answer: "late" }, legalFrom: ["STARTED"] },
    { action: "score", by: interviewer, body: { scores: PASSING }, legalFrom: ["EVALUATING"] },
    { action: "cancel", by: candidate, body: undefined, legalFrom: ["CREATED", "STARTED"] },
    { action: "cancel", by: interviewer, body: undefined, legalFrom: ["CREATED", "STARTED"] },
  ];
  let refused = 0;
  for (const [state, id] of Object.entries(byState)) {
    const before = await read(http, interviewer, id);
    assert.equal(before.state, state);
    const recorded = await history(t0.deps, id);
    for (const move of moves.filter((move) => !move.legalFrom.includes(state))) {
      const problem = assertProblem(await act(http, move.by, id, move.action, move.body), 409);
      const type = state === "EXPIRED" ? "interview-expired" : "invalid-transition";
      assert.equal(problem.type, `/problems/${type}`, `${move.action} from ${state}`);
      assert.equal(problem.state, state);
      assert.equal(problem.version, before.version);
      refused++;
    }
    // The system's moves do nothing where they do not apply (STARTED is not due yet).
    if (state !== "SUBMITTED") assert.equal(await evaluate(t0.deps, id), null);
    assert.equal(await expire(t0.deps, id), null);
    assert.deepEqual(await read(http, interviewer, id), before, `${state} is unchanged`);
    assert.deepEqual(await history(t0.deps, id), recorded);
  }
  assert.equal(refused, 28, "every illegal participant move was tried");
  // 7 invitations, 2 × "ready to score", the score and the expiry to both, 1 cancellation.
  await t0.jobsSettled("notify", 14);
});

Deno.test("[interviews] 20 concurrent submits → one succeeds; 20 concurrent scores → one", async () => {
  const { t0, interviewer, candidate, http } = await interviewApp();
  await using _ = t0;
  const interview = await open(http, interviewer, candidate);
  await act(http, candidate, interview.id, "start");

  const submits = await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) => act(http, candidate, interview.id, "submit", { answer: `${ANSWER} Attempt ${i}.` }),
    ),
  );
  const accepted = submits.filter((answer) => answer.status === 200);
  assert.equal(accepted.length, 1, submits.map((answer) => answer.status).join());
  for (const refused of submits.filter((answer) => answer.status !== 200)) {
    assert.equal(assertProblem(refused, 409).type, "/problems/invalid-transition");
  }
  await t0.jobsSettled("interview-evaluate");
  const evaluating = await read(http, interviewer, interview.id);
  assert.equal(evaluating.answer, accepted[0].body.answer, "the stored answer is the winner's");

  const scores = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      act(http, interviewer, interview.id, "score", {
        scores: i % 2 ? PASSING : FAILING,
        feedback: `Take ${i}`,
      })),
  );
  const scored = scores.filter((answer) => answer.status === 200);
  assert.equal(scored.length, 1, scores.map((answer) => answer.status).join());
  for (const refused of scores.filter((answer) => answer.status !== 200)) {
    assert.equal(assertProblem(refused, 409).state, "SCORED");
  }
  const final = await read(http, candidate, interview.id);
  assert.equal(final.feedback, scored[0].body.feedback);
  assert.equal(final.version, 5);
  const recorded = await history(t0.deps, interview.id);
  assert.equal(recorded.filter((row) => row.startsWith("submit:")).length, 1);
  assert.equal(recorded.filter((row) => row.startsWith("score:")).length, 1);
  const profile = await http("GET", `/api/users/${candidate.user.id}`, { token: candidate.token });
  assert.equal(profile.body.verifiedSkills.length, final.passed ? 1 : 0);
  await t0.jobsSettled("notify", 4); // invitation, "ready to score", the score to both
});

Deno.test("[interviews] expiry happens once, through the job or through the sweep", async (t) => {
  const { t0, jobs, interviewer, candidate, http } = await interviewApp();
  await using _ = t0;

  await t.step(
    "through the job; a duplicate delivery and a later sweep change nothing",
    async () => {
      const interview = await open(http, interviewer, candidate, { timeLimitMinutes: 5 });
      await act(http, candidate, interview.id, "start");
      await t0.deps.outbox.flush(); // decisions enqueue their jobs a moment after the answer
      const [job] = jobs.held;

      // Delivered early (a clock ahead of ours): not due, nothing happens.
      await t0.deps.outbox.flush();
      await jobs.release("interview-expire");
      await t0.jobsSettled("interview-expire", 1);
      assert.equal((await read(http, candidate, interview.id)).state, "STARTED");

      t0.clock.advance(5 * 60_000 + 1);
      await jobs.deliver(job);
      await t0.jobsSettled("interview-expire", 2);
      const expired = await read(http, candidate, interview.id);
      assert.equal(expired.state, "EXPIRED");
      await jobs.deliver(job); // published twice
      await t0.jobsSettled("interview-expire", 3);
      assert.deepEqual(await sweepInterviews(t0.deps), { expired: 0, evaluated: 0 });
      assert.deepEqual(await read(http, candidate, interview.id), expired);
      assert.deepEqual(
        (await history(t0.deps, interview.id)).filter((row) => /EXPIRED/.test(row)),
        [
          "expire:STARTED→EXPIRED:null",
        ],
      );
    },
  );

  await t.step(
    "through the sweep when the job is lost; the job arriving later changes nothing",
    async () => {
      const interview = await open(http, interviewer, candidate, { timeLimitMinutes: 2 });
      await act(http, candidate, interview.id, "start");
      t0.clock.advance(60_000);
      assert.deepEqual(await sweepInterviews(t0.deps), { expired: 0, evaluated: 0 }, "not due yet");
      t0.clock.advance(60_001);
      assert.deepEqual(await sweepInterviews(t0.deps), { expired: 1, evaluated: 0 });
      assert.deepEqual(await sweepInterviews(t0.deps), { expired: 0, evaluated: 0 });
      await t0.deps.outbox.flush();
      assert.equal(await jobs.release("interview-expire"), 1);
      await t0.jobsSettled("interview-expire", 4);
      assert.equal((await read(http, candidate, interview.id)).state, "EXPIRED");
      assert.deepEqual((await history(t0.deps, interview.id)).slice(2), [
        "expire:STARTED→EXPIRED:null",
      ]);
    },
  );

  await t.step("a submission after the deadline → 409 and the interview is EXPIRED", async () => {
    const interview = await open(http, interviewer, candidate, { timeLimitMinutes: 1 });
    await act(http, candidate, interview.id, "start");
    t0.clock.advance(60_000);
    await expectOk(act(http, candidate, interview.id, "cancel"), "CANCELLED");

    const late = await open(http, interviewer, candidate, { timeLimitMinutes: 1 });
    await act(http, candidate, late.id, "start");
    t0.clock.advance(60_001);
    const problem = assertProblem(
      await act(http, candidate, late.id, "submit", { answer: ANSWER }),
      409,
    );
    assert.equal(problem.type, "/problems/interview-expired");
    assert.equal(problem.state, "EXPIRED");
    const now = await read(http, candidate, late.id);
    assert.equal(now.state, "EXPIRED");
    assert.equal(now.answer, null, "the late answer is not kept");
    assert.deepEqual((await history(t0.deps, late.id)).at(-1), "expire:STARTED→EXPIRED:null");
    assert.deepEqual(await sweepInterviews(t0.deps), { expired: 0, evaluated: 0 });
  });

  // 4 invitations, 3 expiries to both, 1 cancellation.
  await t0.jobsSettled("notify", 11);
});

Deno.test("[interviews] expiry jobs, sweeps and duplicates racing expire an interview once", async () => {
  const { t0, jobs, interviewer, candidate, http } = await interviewApp();
  await using _ = t0;
  const interview = await open(http, interviewer, candidate, { timeLimitMinutes: 1 });
  await act(http, candidate, interview.id, "start");
  await t0.deps.outbox.flush(); // decisions enqueue their jobs a moment after the answer
  const [job] = jobs.held;
  t0.clock.advance(60_001);
  const [, sweeps, direct, submits] = await Promise.all([
    Promise.all(Array.from({ length: 20 }, () => jobs.deliver(job))),
    Promise.all(Array.from({ length: 20 }, () => sweepInterviews(t0.deps))),
    Promise.all(Array.from({ length: 20 }, () => expire(t0.deps, interview.id))),
    Promise.all(
      Array.from(
        { length: 20 },
        () => act(http, candidate, interview.id, "submit", { answer: "x" }),
      ),
    ),
  ]);
  await t0.jobsSettled("interview-expire", 20);
  const expired = await read(http, candidate, interview.id);
  assert.equal(expired.state, "EXPIRED");
  assert.equal(expired.version, 3);
  assert.deepEqual((await history(t0.deps, interview.id)).slice(2), [
    "expire:STARTED→EXPIRED:null",
  ]);
  const counted = sweeps.reduce((sum, sweep) => sum + sweep.expired, 0) +
    direct.filter((transition) => transition !== null).length;
  assert.ok(counted <= 1, `at most one sweep or direct call made the move, not ${counted}`);
  // Whichever reached it first, every late submit hears the same thing.
  for (const late of submits) {
    assert.equal(assertProblem(late, 409).type, "/problems/interview-expired");
  }
  await t0.jobsSettled("notify", 3); // the invitation, and the expiry to each participant
});

Deno.test("[interviews] a lost evaluation job is made up by the sweep", async () => {
  const { t0, interviewer, candidate, http } = await interviewApp([
    "interview-expire",
    "interview-evaluate",
  ]);
  await using _ = t0;
  const interview = await open(http, interviewer, candidate);
  await act(http, candidate, interview.id, "start");
  await act(http, candidate, interview.id, "submit", { answer: ANSWER });
  assert.deepEqual(await sweepInterviews(t0.deps), { expired: 0, evaluated: 0 }, "job's turn");
  t0.clock.advance(60_000);
  assert.deepEqual(await sweepInterviews(t0.deps), { expired: 0, evaluated: 1 });
  assert.equal((await read(http, interviewer, interview.id)).state, "EVALUATING");
  await t0.jobsSettled("notify", 2); // the invitation, then "ready to score"
  const notices = await http("GET", "/api/notifications", { token: interviewer.token });
  assert.deepEqual(
    notices.body.items.map((
      item: { type: string; subjectId: string },
    ) => [item.type, item.subjectId]),
    [["interview", interview.id]],
  );
});

Deno.test("[interviews] only participants see an interview; each may make only their own moves", async () => {
  const { t0, interviewer, candidate, stranger, http } = await interviewApp();
  await using _ = t0;
  const interview = await open(http, interviewer, candidate);

  for (
    const [method, path] of [
      ["GET", ""],
      ["GET", "/events"],
      ["POST", "/start"],
      ["POST", "/cancel"],
    ]
  ) {
    const problem = assertProblem(
      await http(method, `/api/interviews/${interview.id}${path}`, { token: stranger.token }),
      404,
    );
    assert.equal(problem.detail, "No interview of yours has this id.");
  }
  assertProblem(await act(http, stranger, interview.id, "submit", { answer: "x" }), 404);
  assertProblem(await act(http, stranger, interview.id, "score", { scores: PASSING }), 404);
  assertProblem(await http("GET", "/api/interviews/nope", { token: stranger.token }), 404);
  assertProblem(await http("GET", `/api/interviews/${interview.id}`), 401);

  assertProblem(await act(http, interviewer, interview.id, "start"), 403);
  await act(http, candidate, interview.id, "start");
  const submitting = assertProblem(
    await act(http, interviewer, interview.id, "submit", { answer: ANSWER }),
    403,
  );
  assert.equal(submitting.detail, "Only the candidate may submit this interview.");
  await act(http, candidate, interview.id, "submit", { answer: ANSWER });
  await t0.jobsSettled("interview-evaluate");
  const scoring = assertProblem(
    await act(http, candidate, interview.id, "score", { scores: PASSING }),
    403,
  );
  assert.equal(scoring.detail, "Only the interviewer may score this interview.");
  assert.equal((await read(http, candidate, interview.id)).state, "EVALUATING");

  const ids = async (who: Member, query = "") =>
    (await http("GET", `/api/interviews${query}`, { token: who.token })).body.items
      .map((item: { id: string }) => item.id);
  assert.deepEqual(await ids(interviewer, "?role=interviewer"), [interview.id]);
  assert.deepEqual(await ids(interviewer, "?role=candidate"), []);
  assert.deepEqual(await ids(candidate, "?role=candidate"), [interview.id]);
  assert.deepEqual(await ids(candidate, "?role=interviewer"), []);
  assert.deepEqual(await ids(candidate), [interview.id]);
  assert.deepEqual(await ids(stranger), []);
  assertProblem(await http("GET", "/api/interviews?role=judge", { token: stranger.token }), 400);
  await t0.jobsSettled("notify", 2); // the invitation, "ready to score"
});

Deno.test("[interviews] a pass adds the verified skill to the profile; a fail does not", async () => {
  const { t0, interviewer, candidate, http } = await interviewApp();
  await using _ = t0;
  let evaluated = 0;
  async function interviewTo(scores: unknown, skill: string) {
    const interview = await open(http, interviewer, candidate, { skill });
    await act(http, candidate, interview.id, "start");
    await act(http, candidate, interview.id, "submit", { answer: ANSWER });
    await t0.jobsSettled("interview-evaluate", ++evaluated);
    return await expectOk(act(http, interviewer, interview.id, "score", { scores }), "SCORED");
  }

  const failed = await interviewTo(FAILING, "Rust");
  assert.equal(failed.weightedScore, 6.75);
  assert.equal(failed.passed, false);
  const passed = await interviewTo(PASSING, "  TypeScript ");
  assert.equal(passed.skill, "typescript");
  assert.equal(passed.passed, true);

  for (const path of [`/api/users/${candidate.user.id}`, "/api/auth/me"]) {
    const answer = await http("GET", path, { token: candidate.token });
    const user = answer.body.user ?? answer.body;
    assert.deepEqual(user.verifiedSkills, [
      { skill: "typescript", interviewId: passed.id, verifiedAt: passed.scoredAt },
    ]);
  }

  // Verifying the same skill again keeps the first evidence.
  await interviewTo(PASSING, "typescript");
  const again = await http("GET", `/api/users/${candidate.user.id}`, { token: candidate.token });
  assert.deepEqual(
    again.body.verifiedSkills.map((held: { interviewId: string }) => held.interviewId),
    [
      passed.id,
    ],
  );

  // Per interview: the invitation, "ready to score", and the score to each participant.
  await t0.jobsSettled("notify", 3 * 4);
  for (const [who, actor] of [[candidate, interviewer], [interviewer, candidate]]) {
    const notices = await http("GET", `/api/notifications?limit=100`, { token: who.token });
    const aboutPassed = notices.body.items.filter((item: { subjectId: string }) =>
      item.subjectId === passed.id
    );
    assert.equal(aboutPassed.length, 1, "both participants are told about the score");
    assert.equal(aboutPassed[0].actor.id, actor.user.id);
  }
});

Deno.test("[interviews] bad input → 400 naming the field, and nothing changes", async () => {
  const { t0, interviewer, candidate, http } = await interviewApp();
  await using _ = t0;
  const base = { candidateId: candidate.user.id, skill: "Go", prompt: "Explain channels." };
  for (
    const body of [
      { ...base, rubric: [] },
      { ...base, rubric: [{ criterion: "Clarity", weight: 0 }] },
      {
        ...base,
        rubric: [{ criterion: "Clarity", weight: 1 }, { criterion: "clarity", weight: 2 }],
      },
      { ...base, rubric: RUBRIC, timeLimitMinutes: 0 },
      { ...base, rubric: RUBRIC, timeLimitMinutes: 1.5 },
      { ...base, rubric: RUBRIC, prompt: "   " },
      { ...base, rubric: RUBRIC, state: "SCORED" },
    ]
  ) {
    const problem = assertProblem(
      await http("POST", "/api/interviews", { token: interviewer.token, body }),
      400,
    );
    assert.ok(problem.errors.length > 0, JSON.stringify(problem));
  }
  assertProblem(
    await http("POST", "/api/interviews", {
      token: interviewer.token,
      body: { ...base, rubric: RUBRIC, candidateId: interviewer.user.id },
    }),
    400,
  );
  assertProblem(
    await http("POST", "/api/interviews", {
      token: interviewer.token,
      body: { ...base, rubric: RUBRIC, candidateId: "no-such-member" },
    }),
    404,
  );
  const none = await http("GET", "/api/interviews", { token: interviewer.token });
  assert.deepEqual(none.body.items, []);

  const interview = await open(http, interviewer, candidate);
  await act(http, candidate, interview.id, "start");
  assertProblem(await act(http, candidate, interview.id, "submit", { answer: "" }), 400);
  assertProblem(await act(http, candidate, interview.id, "submit", {}), 400);
  await act(http, candidate, interview.id, "submit", { answer: ANSWER });
  await t0.jobsSettled("interview-evaluate");
  for (
    const [scores, path] of [
      [[{ criterion: "Correctness", score: 8 }], "scores"],
      [[...PASSING, { criterion: "Style", score: 3 }], "scores.2.criterion"],
      [[...PASSING, { criterion: "correctness", score: 3 }], "scores.2.criterion"],
      [[{ criterion: "Correctness", score: 11 }, PASSING[1]], "scores.0.score"],
    ] as const
  ) {
    const problem = assertProblem(
      await act(http, interviewer, interview.id, "score", { scores }),
      400,
    );
    assert.ok(
      problem.errors.some((error: { path: string }) => error.path === path),
      JSON.stringify(problem.errors),
    );
  }
  const still = await read(http, interviewer, interview.id);
  assert.equal(still.state, "EVALUATING");
  assert.equal(still.version, 4);
  await t0.jobsSettled("notify", 2); // the invitation, "ready to score"
});

Deno.test("[interviews] the largest interview the limits allow goes through every step", async () => {
  const { t0, interviewer, candidate, http } = await interviewApp();
  await using _ = t0;
  // Two bytes per character in KV's encoding: the heaviest text there is for the limits.
  const wide = (length: number, seed: string) => seed.repeat(length).slice(0, length);
  const rubric = Array.from({ length: 20 }, (_, i) => ({
    criterion: `${i}${wide(199 - String(i).length, "準")}`,
    weight: 100,
  }));
  const interview = await open(http, interviewer, candidate, {
    prompt: wide(4000, "問"),
    rubric,
    skill: wide(50, "技"),
  });
  await expectOk(act(http, candidate, interview.id, "start"), "STARTED");
  await expectOk(
    act(http, candidate, interview.id, "submit", { answer: wide(10_000, "答") }),
    "SUBMITTED",
  );
  await t0.jobsSettled("interview-evaluate");
  const scored = await expectOk(
    act(http, interviewer, interview.id, "score", {
      scores: rubric.map(({ criterion }) => ({ criterion, score: 10 })),
      feedback: wide(2000, "評"),
    }),
    "SCORED",
  );
  assert.equal(scored.weightedScore, 10);
  assert.equal((await history(t0.deps, interview.id)).length, 5);
  assert.equal((await read(http, candidate, interview.id)).answer.length, 10_000);
  await t0.jobsSettled("notify", 4);
});

Deno.test("[interviews] lists page newest first by keyset, none skipped or repeated", async () => {
  const { t0, interviewer, candidate, http } = await interviewApp();
  await using _ = t0;
  const made: string[] = [];
  for (let i = 0; i < 25; i++) {
    if (i % 3 === 0) t0.clock.advance(1); // ties on the creation time, broken by id
    made.push((await open(http, interviewer, candidate)).id);
  }
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const page: { body: { items: { id: string }[]; nextCursor: string | null } } = await http(
      "GET",
      `/api/interviews?role=candidate&limit=10${cursor ? `&cursor=${cursor}` : ""}`,
      { token: candidate.token },
    );
    seen.push(...page.body.items.map((item) => item.id));
    cursor = page.body.nextCursor;
  } while (cursor);
  assert.deepEqual(seen, made.toReversed());
  await t0.jobsSettled("notify", 25); // the invitations
  assertProblem(
    await http("GET", "/api/interviews?cursor=forged", { token: candidate.token }),
    400,
  );
});
