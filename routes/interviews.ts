// Skill-verification interviews (API.md "Skill-verification interviews").
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

const listQuery = pageQuery.extend({
  role: z.enum(["interviewer", "candidate"]).optional(),
  state: z.enum(INTERVIEW_STATES).optional(),
});

export function interviewRoutes(deps: Deps) {
  return signedIn(
    new Hono<SignedInEnv>()
      .post("/interviews", body(interviewInput), async (c) => {
        const userId = c.var.session.sub;
        const interview = await openInterview(deps, userId, c.req.valid("json"));
        return c.json(interviewView(interview, userId), 201);
      })
      .get("/interviews", query(listQuery), async (c) => {
        const userId = c.var.session.sub;
        const page = await listInterviews(
          await settledHistory(deps),
          userId,
          c.req.valid("query"),
          (interview) => interviewView(interview, userId),
        );
        return c.json(page);
      })
      .get("/interviews/:id", params(idParam), async (c) => {
        const userId = c.var.session.sub;
        const interview = await readInterview(deps.kv, c.req.valid("param").id, userId);
        return c.json(interviewView(interview, userId));
      })
      .get("/interviews/:id/events", params(idParam), async (c) => {
        const userId = c.var.session.sub;
        const { id } = await readInterview(deps.kv, c.req.valid("param").id, userId);
        return c.json({
          items: await listInterviewEvents(await settledHistory(deps), id),
          nextCursor: null,
        });
      })
      .post("/interviews/:id/start", params(idParam), async (c) => {
        const userId = c.var.session.sub;
        const interview = await startInterview(deps, userId, c.req.valid("param").id);
        return c.json(interviewView(interview, userId));
      })
      .post("/interviews/:id/submit", params(idParam), body(submissionInput), async (c) => {
        const userId = c.var.session.sub;
        const { id } = c.req.valid("param");
        const interview = await submitInterview(deps, userId, id, c.req.valid("json"));
        return c.json(interviewView(interview, userId));
      })
      .post("/interviews/:id/score", params(idParam), body(scoringInput), async (c) => {
        const userId = c.var.session.sub;
        const { id } = c.req.valid("param");
        const interview = await scoreInterview(deps, userId, id, c.req.valid("json"));
        return c.json(interviewView(interview, userId));
      })
      .post("/interviews/:id/cancel", params(idParam), async (c) => {
        const userId = c.var.session.sub;
        const interview = await cancelInterview(deps, userId, c.req.valid("param").id);
        return c.json(interviewView(interview, userId));
      }),
  );
}
