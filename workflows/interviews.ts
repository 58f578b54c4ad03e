// Skill-verification interviews: who may do what, what each transition causes (history,
// notifications, the expiry and evaluation jobs), the automatic metrics, the weighted score, and
// the sweep that makes overdue expiries and evaluations happen when their jobs did not.
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { recordInterviewTransition } from "../db/interviews.ts";
import { mediaRefs } from "../db/media.ts";
import type { CriterionScore, InterviewMetrics, RubricItem } from "../db/schema.ts";
import { Invalid } from "../errors.ts";
import { newId } from "../ids.ts";
import {
  allowedActions,
  createInterview,
  dueMoves,
  type Effects,
  moveInterview,
} from "../kv/interviews.ts";
import {
  type Interview,
  type InterviewAction,
  type InterviewTransition as Transition,
  interviewTransitionSchema,
} from "../db/records.ts";
import { coordination, type OutboxRecord } from "../kv/outbox.ts";
import { distinctMediaIds, ownMedia } from "./media/uploads.ts";
import { reachableUser } from "./graph.ts";
import { normaliseSkills } from "./profiles.ts";
import { notifyRecords } from "./notifications.ts";
import { jobRecord } from "./outbox-jobs.ts";
import { id } from "../input.ts";

/** A weighted score at or above this (out of 10) passes and verifies the skill. */
export const PASS_MARK = 7;
export const DEFAULT_TIME_LIMIT_MINUTES = 60;
/** Sweeps handle at most this many due interviews each, to stay well inside a cron tick. */
const SWEEP_BATCH = 500;

const INTERVIEW_TRANSITION = "interview-transition";
const EVALUATE_JOB = "interview-evaluate";
const EXPIRE_JOB = "interview-expire";

const criterion = z.string().trim().min(1, "must not be empty").max(200);

// Limits keep an interview, its outbox record and its events well inside KV's 64 KiB per value.
export const interviewInput = z.strictObject({
  candidateId: id,
  skill: z.string().trim().min(1, "must not be empty").max(50)
    .transform((skill) => normaliseSkills([skill])[0]),
  prompt: z.string().trim().min(1, "must not be empty").max(4000),
  rubric: z.array(z.strictObject({
    criterion,
    // A weight is a share of the score: below 0.01 it would vanish in the sum (5e-324 did).
    weight: z.number().min(0.01, "must be at least 0.01").max(100),
  })).min(1, "needs at least one criterion").max(20)
    .refine(
      (rubric) =>
        new Set(rubric.map((item) => item.criterion.toLowerCase())).size === rubric.length,
      "criteria must differ",
    ),
  timeLimitMinutes: z.number().int().min(1).max(480).default(DEFAULT_TIME_LIMIT_MINUTES),
});

export const submissionInput = z.strictObject({
  answer: z.string().trim().min(1, "must not be empty").max(10_000),
  /** Files the candidate uploaded (POST /api/media) to go with the answer. */
  mediaIds: distinctMediaIds,
});

export const scoringInput = z.strictObject({
  scores: z.array(z.strictObject({ criterion, score: z.number().min(0).max(10) })).min(1).max(20),
  feedback: z.string().trim().max(2000).default(""),
});

const jobPayload = z.object({ interviewId: z.string().min(1).max(100) });

/** The outbox applier that records transitions in Postgres, and the evaluation and expiry jobs. */
export function registerInterviewWorkflows(deps: Deps) {
  deps.outbox.register(INTERVIEW_TRANSITION, interviewTransitionSchema, async (transition) => {
    await recordInterviewTransition(deps.database.db, transition);
  });
  deps.registry.register(EVALUATE_JOB, jobPayload, async ({ interviewId }) => {
    await evaluate(deps, interviewId);
  });
  deps.registry.register(EXPIRE_JOB, jobPayload, async ({ interviewId }) => {
    await expire(deps, interviewId);
  });
}

/** History, both participants' live events, notifications and follow-up jobs of a transition. */
function effects(deps: Deps): Effects {
  return (transition: Transition) => {
    const { interview } = transition;
    const { id, interviewerId, candidateId } = interview;
    const notify = (userId: string, actorId: string) =>
      notifyRecords(deps.outbox, {
        userId,
        actorId,
        type: "interview",
        subjectId: id,
        eventId: `${id}:${interview.version}:${userId}`,
      });
    const records: OutboxRecord[] = [deps.outbox.record(INTERVIEW_TRANSITION, transition)];
    switch (interview.state) {
      case "CREATED":
        records.push(...notify(candidateId, interviewerId));
        break;
      case "STARTED":
        // A second past the deadline, so no adapter's rounding delivers it before it is due.
        records.push(jobRecord(deps.outbox, EXPIRE_JOB, { interviewId: id }, {
          runAt: interview.expiresAt! + 1_000,
        }));
        break;
      case "SUBMITTED":
        records.push(jobRecord(deps.outbox, EVALUATE_JOB, { interviewId: id }));
        break;
      case "EVALUATING":
        records.push(...notify(interviewerId, candidateId));
        break;
      case "SCORED":
      case "EXPIRED":
        records.push(...notify(candidateId, interviewerId), ...notify(interviewerId, candidateId));
        break;
      case "CANCELLED": {
        const other = transition.actorId === candidateId ? interviewerId : candidateId;
        records.push(...notify(other, transition.actorId!)); // always a participant's move
        break;
      }
    }
    const data = {
      interviewId: id,
      state: interview.state,
      version: interview.version,
      from: transition.from,
      action: transition.action,
      actorId: transition.actorId,
      at: new Date(interview.updatedAt).toISOString(),
    };
    return {
      records,
      events: [interviewerId, candidateId].map((userId) => ({
        userId,
        type: "interview-updated",
        data,
      })),
    };
  };
}

/** The interview as `viewerId` sees it: the candidate reads the prompt only once started. */
export function interviewView(interview: Interview, viewerId: string) {
  const iso = (ms: number | null) => ms === null ? null : new Date(ms).toISOString();
  const promptHidden = viewerId === interview.candidateId && interview.state === "CREATED";
  return {
    id: interview.id,
    interviewerId: interview.interviewerId,
    candidateId: interview.candidateId,
    skill: interview.skill,
    prompt: promptHidden ? null : interview.prompt,
    promptHidden,
    rubric: interview.rubric,
    timeLimitMinutes: interview.timeLimitMinutes,
    state: interview.state,
    version: interview.version,
    answer: interview.answer,
    mediaIds: interview.mediaIds ?? [],
    media: mediaRefs(interview.mediaIds ?? []),
    metrics: interview.metrics,
    scores: interview.scores,
    feedback: interview.feedback,
    weightedScore: interview.weightedScore,
    passed: interview.passed,
    passMark: PASS_MARK,
    createdAt: iso(interview.createdAt),
    updatedAt: iso(interview.updatedAt),
    startedAt: iso(interview.startedAt),
    expiresAt: iso(interview.expiresAt),
    submittedAt: iso(interview.submittedAt),
    scoredAt: iso(interview.scoredAt),
    /** The moves the viewer may make now. */
    actions: allowedActions(interview, viewerId),
  };
}

export async function openInterview(
  deps: Deps,
  interviewerId: string,
  input: z.infer<typeof interviewInput>,
): Promise<Interview> {
  if (input.candidateId === interviewerId) {
    throw new Invalid("You cannot interview yourself.", [
      { path: "candidateId", message: "is your own id" },
    ]);
  }
  await reachableUser(deps, interviewerId, input.candidateId);
  const now = deps.clock.now();
  const interview: Interview = {
    id: newId(now),
    interviewerId,
    ...input,
    state: "CREATED",
    version: 1,
    answer: null,
    mediaIds: [],
    metrics: null,
    scores: null,
    feedback: null,
    weightedScore: null,
    passed: null,
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    expiresAt: null,
    submittedAt: null,
    scoredAt: null,
  };
  return (await createInterview(coordination(deps), interview, effects(deps))).interview;
}

/** A participant's move (start, submit, score, cancel); the interview as it now is. */
async function participantMove(
  deps: Deps,
  actorId: string,
  interviewId: string,
  action: InterviewAction,
  change?: (interview: Interview, now: number) => Partial<Interview>,
): Promise<Interview> {
  const transition = await moveInterview(
    coordination(deps),
    { interviewId, action, actorId, change },
    effects(deps),
  );
  return transition!.interview;
}

export function startInterview(deps: Deps, candidateId: string, interviewId: string) {
  return participantMove(deps, candidateId, interviewId, "start", (interview, now) => ({
    startedAt: now,
    expiresAt: now + interview.timeLimitMinutes * 60_000,
  }));
}

export async function submitInterview(
  deps: Deps,
  candidateId: string,
  interviewId: string,
  input: z.infer<typeof submissionInput>,
) {
  await ownMedia(deps, candidateId, input.mediaIds, "mediaIds");
  return await participantMove(deps, candidateId, interviewId, "submit", (_, now) => ({
    answer: input.answer,
    mediaIds: input.mediaIds,
    submittedAt: now,
  }));
}

export function scoreInterview(
  deps: Deps,
  interviewerId: string,
  interviewId: string,
  input: z.infer<typeof scoringInput>,
) {
  return participantMove(deps, interviewerId, interviewId, "score", (interview, now) => {
    const scores = matchRubric(interview.rubric, input.scores);
    const weightedScore = weigh(interview.rubric, scores);
    return {
      scores,
      feedback: input.feedback || null,
      weightedScore: Math.round(weightedScore * 100) / 100,
      passed: weightedScore >= PASS_MARK,
      scoredAt: now,
    };
  });
}

export function cancelInterview(deps: Deps, userId: string, interviewId: string) {
  return participantMove(deps, userId, interviewId, "cancel");
}

/** The evaluation job: SUBMITTED → EVALUATING with the automatic metrics (a no-op otherwise). */
export async function evaluate(deps: Deps, interviewId: string) {
  return await moveInterview(coordination(deps), {
    interviewId,
    action: "evaluate",
    actorId: null,
    change: (interview) => ({ metrics: measure(interview.answer ?? "", interview.rubric) }),
  }, effects(deps));
}

/** The expiry job: STARTED past its deadline → EXPIRED (a no-op otherwise). */
export async function expire(deps: Deps, interviewId: string) {
  return await moveInterview(
    coordination(deps),
    { interviewId, action: "expire", actorId: null },
    effects(deps),
  );
}

/** The cron backstop: every overdue expiry and every evaluation its job left undone. */
export async function sweepInterviews(deps: Deps): Promise<{ expired: number; evaluated: number }> {
  let expired = 0;
  let evaluated = 0;
  for (const due of await dueMoves(deps.kv, deps.clock.now(), SWEEP_BATCH)) {
    const moved = due.action === "expire"
      ? await expire(deps, due.interviewId)
      : await evaluate(deps, due.interviewId);
    if (moved?.action === "expire") expired++;
    else if (moved) evaluated++;
  }
  if (expired + evaluated > 0) {
    deps.log({ level: "info", msg: "interviews swept", expired, evaluated });
  }
  return { expired, evaluated };
}

/** Scores in rubric order; every criterion exactly once, nothing else (400 otherwise). */
function matchRubric(rubric: RubricItem[], scores: CriterionScore[]): CriterionScore[] {
  const given = new Map<string, number>();
  const errors = [];
  for (const [index, { criterion, score }] of scores.entries()) {
    const key = criterion.toLowerCase();
    if (!rubric.some((item) => item.criterion.toLowerCase() === key)) {
      errors.push({ path: `scores.${index}.criterion`, message: "is not in the rubric" });
    } else if (given.has(key)) {
      errors.push({ path: `scores.${index}.criterion`, message: "is scored twice" });
    }
    given.set(key, score);
  }
  for (const item of rubric) {
    if (!given.has(item.criterion.toLowerCase())) {
      errors.push({ path: "scores", message: `"${item.criterion}" is not scored` });
    }
  }
  if (errors.length > 0) {
    throw new Invalid("Score every rubric criterion exactly once.", errors);
  }
  return rubric.map((item) => ({
    criterion: item.criterion,
    score: given.get(item.criterion.toLowerCase())!,
  }));
}

/** Σ weight × score / Σ weight. */
export function weigh(rubric: RubricItem[], scores: CriterionScore[]): number {
  const total = rubric.reduce((sum, item) => sum + item.weight, 0);
  return scores.reduce((sum, { score }, index) => sum + rubric[index].weight * score, 0) / total;
}

const words = (text: string) => text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];

/**
 * What can be measured without judgement: the answer's length, and which rubric criteria it
 * mentions (any word of four or more letters from the criterion appears in the answer). A rough
 * signal for the interviewer, never a score.
 */
export function measure(answer: string, rubric: RubricItem[]): InterviewMetrics {
  const answered = new Set(words(answer));
  const criteriaMentioned = rubric
    .filter(({ criterion }) => {
      const significant = words(criterion).filter((word) => word.length >= 4);
      const terms = significant.length > 0 ? significant : words(criterion);
      return terms.some((term) => answered.has(term));
    })
    .map(({ criterion }) => criterion);
  return {
    answerLength: [...answer].length,
    wordCount: words(answer).length,
    criteriaMentioned,
    rubricCoverage: Math.round(criteriaMentioned.length / rubric.length * 100) / 100,
  };
}
