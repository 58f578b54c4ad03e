// Skill-verification interviews (the reference\'s "Skill-verification interviews" group).
import { Hono } from "hono";
import { z } from "zod";
import type { SignedInEnv } from "./env.ts";
import type { Deps } from "../deps.ts";
import { listInterviewEvents, listInterviews } from "../db/interviews.ts";
import { INTERVIEW_STATES } from "../db/schema.ts";
import {
  cancelInterview,
  interviewInput,
  interviewView,
  openInterview,
  scoreInterview,
  scoringInput,
  startInterview,
  submissionInput,
  submitInterview,
} from "../workflows/interviews.ts";
import { readInterview } from "../kv/interviews.ts";
import { settledHistory } from "../workflows/history.ts";
import { signedIn } from "./middleware/session.ts";
import { body, idParam, pageQuery, params, query } from "./middleware/validate.ts";
import { documented } from "./middleware/describe.ts";
import { interview, page, timestamp } from "./reference/schemas.ts";

const describe = documented("Interviews");

/** What a move of the state machine can answer besides the interview. */
const TRANSITION_ERRORS = {
  403: ["forbidden"],
  404: ["not-found"],
  409: ["invalid-transition", "interview-expired"],
};

const interviewEvent = z.object({
  version: z.int(),
  action: z.string(),
  actorId: z.string().nullable().meta({ description: "Null when the system moved it (expiry)." }),
  from: z.enum(INTERVIEW_STATES).nullable(),
  to: z.enum(INTERVIEW_STATES),
  at: timestamp,
});

const listQuery = pageQuery.extend({
  role: z.enum(["interviewer", "candidate"]).optional(),
  state: z.enum(INTERVIEW_STATES).optional(),
});

export function interviewRoutes(deps: Deps) {
  return signedIn(
    new Hono<SignedInEnv>()
      .post(
        "/interviews",
        describe({
          summary: "Open an interview (the caller is the interviewer)",
          answers: { 201: interview },
          errors: { 404: ["not-found"] },
        }),
        body(interviewInput),
        async (c) => {
          const userId = c.var.session.sub;
          const interview = await openInterview(deps, userId, c.req.valid("json"));
          return c.json(interviewView(interview, userId), 201);
        },
      )
      .get(
        "/interviews",
        describe({
          summary: "The caller's interviews, as interviewer or candidate",
          answers: { 200: page(interview) },
        }),
        query(listQuery),
        async (c) => {
          const userId = c.var.session.sub;
          const page = await listInterviews(
            await settledHistory(deps),
            userId,
            c.req.valid("query"),
            (interview) => interviewView(interview, userId),
          );
          return c.json(page);
        },
      )
      .get(
        "/interviews/:id",
        describe({
          summary: "One interview (participants only)",
          answers: { 200: interview },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          const userId = c.var.session.sub;
          const interview = await readInterview(deps.kv, c.req.valid("param").id, userId);
          return c.json(interviewView(interview, userId));
        },
      )
      .get(
        "/interviews/:id/events",
        describe({
          summary: "Every state change of an interview, in order",
          answers: { 200: page(interviewEvent) },
          errors: { 404: ["not-found"] },
        }),
        params(idParam),
        async (c) => {
          const userId = c.var.session.sub;
          const { id } = await readInterview(deps.kv, c.req.valid("param").id, userId);
          return c.json({
            items: await listInterviewEvents(await settledHistory(deps), id),
            nextCursor: null,
          });
        },
      )
      .post(
        "/interviews/:id/start",
        describe({
          summary: "Candidate: CREATED → STARTED; the time limit starts",
          answers: { 200: interview },
          errors: TRANSITION_ERRORS,
        }),
        params(idParam),
        async (c) => {
          const userId = c.var.session.sub;
          const interview = await startInterview(deps, userId, c.req.valid("param").id);
          return c.json(interviewView(interview, userId));
        },
      )
      .post(
        "/interviews/:id/submit",
        describe({
          summary: "Candidate: STARTED → SUBMITTED; evaluation runs as a job",
          answers: { 200: interview },
          errors: TRANSITION_ERRORS,
        }),
        params(idParam),
        body(submissionInput),
        async (c) => {
          const userId = c.var.session.sub;
          const { id } = c.req.valid("param");
          const interview = await submitInterview(deps, userId, id, c.req.valid("json"));
          return c.json(interviewView(interview, userId));
        },
      )
      .post(
        "/interviews/:id/score",
        describe({
          summary: "Interviewer: score each criterion; a pass (weighted ≥ 7) verifies the skill",
          answers: { 200: interview },
          errors: TRANSITION_ERRORS,
        }),
        params(idParam),
        body(scoringInput),
        async (c) => {
          const userId = c.var.session.sub;
          const { id } = c.req.valid("param");
          const interview = await scoreInterview(deps, userId, id, c.req.valid("json"));
          return c.json(interviewView(interview, userId));
        },
      )
      .post(
        "/interviews/:id/cancel",
        describe({
          summary: "Either participant: cancel a CREATED or STARTED interview",
          answers: { 200: interview },
          errors: TRANSITION_ERRORS,
        }),
        params(idParam),
        async (c) => {
          const userId = c.var.session.sub;
          const interview = await cancelInterview(deps, userId, c.req.valid("param").id);
          return c.json(interviewView(interview, userId));
        },
      ),
  );
}
