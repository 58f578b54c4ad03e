// Matchmaking's records: where a member is (queuing, in a call), what a match decision is and
// causes, who may see and decide on a match, and the answers it refuses with. The queue
// (queue.ts) and the decisions on a live match (calls.ts) are built on these.
import type { ConnectionTransition, Match, Participant } from "../../db/records.ts";
import { Conflict, Forbidden, NotFound } from "../../errors.ts";
import type { EventDraft } from "../events.ts";
import { matchKey, matchMemberKey } from "../keys.ts";
import type { OutboxRecord } from "../outbox.ts";

/** Where a member is in matchmaking (absent: neither queuing nor in a call). */
export type Membership =
  | { status: "queuing"; intent: string; joinedAt: number }
  | { status: "in-call"; matchId: string; peerId: string };

/** A waiting member as the queue holds them. */
export interface QueueEntry extends Participant {
  intent: string;
  joinedAt: number;
}

export type MatchAction =
  | "start"
  | "end"
  | "connect-ask"
  | "connect"
  | "video-request"
  | "video-approve";

/** A decided change: the match as it now is, what happened, and who did it (null: the system). */
export interface MatchChange {
  match: Match;
  action: MatchAction;
  actorId: string | null;
  /** The connection a `connect` made (null when the two were connected already). */
  connection?: ConnectionTransition | null;
}

/** What a change causes, written into the commit that decides it. */
export type MatchEffects = (
  change: MatchChange,
) => { events: EventDraft[]; records: OutboxRecord[] };

export interface MatchRules {
  callDurationMs: number;
  /** Two members matched within this long are not paired again. */
  cooldownMs: number;
  effects: MatchEffects;
}

/** The outbox kind a block writes: it ends a call between the two, if they are in one. */
export const BLOCK_ENDS_CALL = "match-block";

/** Ended matches stay in KV this long (for `connect` after the call); history is in Postgres. */
export const MATCH_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;
/** `connect` is possible this long after a call ended. */
export const CONNECT_WINDOW_MS = 24 * 60 * 60 * 1000;
/** Commits contended by concurrent decisions are retried this often before answering 409. */
export const ATTEMPTS = 100;

export const isParticipant = (match: Match, userId: string) =>
  match.offerer.id === userId || match.answerer.id === userId;

export const peerOf = (match: Match, userId: string) =>
  match.offerer.id === userId ? match.answerer : match.offerer;

/** The participant whose consent alone decides `connect` and video: the only woman, if one is. */
export function decider(match: Match): Participant | null {
  const women = [match.offerer, match.answerer].filter((person) => person.gender === "female");
  return women.length === 1 ? women[0] : null;
}

/** A live match whose time is up is over for everyone, whether or not its end is committed yet. */
export const isLive = (match: Match, now: number) => match.state === "live" && now < match.endsAt;

export async function readMembership(kv: Deno.Kv, userId: string): Promise<Membership | null> {
  return (await kv.get<Membership>(matchMemberKey(userId))).value;
}

/** The match, for its participants only (404 for everyone else: its existence is private). */
export async function readMatch(kv: Deno.Kv, matchId: string, userId: string): Promise<Match> {
  const { value } = await kv.get<Match>(matchKey(matchId));
  if (!value || !isParticipant(value, userId)) throw noSuchMatch();
  return value;
}

export function noSuchMatch() {
  return new NotFound("No match of yours has this id.");
}

export function alreadyQueued(member: { intent: string; joinedAt: number }) {
  return new Conflict(`You are already queued for "${member.intent}".`, "already-queued", {
    intent: member.intent,
    joinedAt: new Date(member.joinedAt).toISOString(),
  });
}

export function inCall(matchId: string) {
  return new Conflict("You are in a call; end it before joining a queue.", "in-call", { matchId });
}

export function callOver(match: Match) {
  return new Conflict("This call has ended.", "call-ended", { matchId: match.id });
}

export function peerDecides(what: string) {
  return new Forbidden(`In this match, ${what} is your peer's decision.`, "peer-decides");
}
