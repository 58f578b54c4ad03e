// The social graph's rules: follows, connection requests and blocks, and what each one causes
// (history in Postgres, notifications, fresh feeds and discovery) through the outbox.
// Reports: any member may report another (also one they blocked); administrators read them.
import { z } from "zod";
import type { Deps } from "../deps.ts";
import {
  connectionPairs,
  deleteFollow,
  insertFollow,
  insertReport,
  recordConnectionTransition,
  syncBlock,
} from "../db/graph.ts";
import { CONNECTION_STATUSES } from "../db/schema.ts";
import { findUserById, isSuspended } from "../db/users.ts";
import { unverified, UNVERIFIED_REQUESTS, verificationRequired } from "./auth/verification.ts";
import { Invalid, NotFound } from "../errors.ts";
import {
  type Effects,
  indexConnectionIfLive,
  isBlocked,
  liftBlock,
  moveConnectionRequest,
  noSuchUser,
  placeBlock,
  sendConnectionRequest,
} from "../kv/graph.ts";
import type { ConnectionTransition as Transition } from "../db/records.ts";
import { blockKey, migrationKey } from "../kv/keys.ts";
import { BLOCK_ENDS_CALL } from "../kv/matches/match.ts";
import { coordination, type OutboxRecord } from "../kv/outbox.ts";
import { notifyRecords } from "./notifications.ts";
import { feedCache, invalidateGraphViews } from "../providers/per-user-cache.ts";
import { findPostAuthor } from "../db/posts.ts";
import { newId } from "../ids.ts";
import { id } from "../input.ts";

const CONNECTION_TRANSITION = "connection-transition";
const BLOCK_SYNC = "block-sync";

const transitionPayload = z.object({
  request: z.object({
    id: z.string(),
    fromUserId: z.string(),
    toUserId: z.string(),
    message: z.string().nullable(),
    status: z.enum(CONNECTION_STATUSES),
    version: z.number().int(),
    createdAt: z.number(),
    updatedAt: z.number(),
  }),
  from: z.enum(CONNECTION_STATUSES).nullable(),
  actorId: z.string(),
});

const blockPayload = z.object({ blockerId: z.string(), blockedId: z.string() });

const CONNECTION_INDEX = "connection_index";

/**
 * Start-up, once per store: fills KV's connection index (the presence audience) with the
 * connections Postgres holds from before the index existed. Later connections are indexed by the
 * commits that make them.
 */
export async function indexExistingConnections(deps: Pick<Deps, "kv" | "database">) {
  if ((await deps.kv.get(migrationKey(CONNECTION_INDEX))).value) return 0;
  let after: [string, string] | null = null;
  let indexed = 0;
  for (;;) {
    const page = await connectionPairs(deps.database.db, after, 500);
    for (const [userId, otherId] of page) {
      if (userId < otherId) await indexConnectionIfLive(deps.kv, userId, otherId);
    }
    indexed += page.length / 2;
    if (page.length < 500) break;
    after = page.at(-1)!;
  }
  await deps.kv.set(migrationKey(CONNECTION_INDEX), { at: Date.now() });
  return indexed;
}

/** The outbox appliers that carry graph decisions made in KV over to Postgres and the caches. */
export function registerGraphAppliers(deps: Deps) {
  const db = deps.database.db;
  deps.outbox.register(CONNECTION_TRANSITION, transitionPayload, async (transition) => {
    await recordConnectionTransition(db, transition);
    const { fromUserId, toUserId } = transition.request;
    await invalidateGraphViews(deps.cache, fromUserId, toUserId);
  });
  deps.outbox.register(BLOCK_SYNC, blockPayload, async ({ blockerId, blockedId }) => {
    // Read the decision now rather than trusting the record: a late sweep must not undo a lift.
    const block = await deps.kv.get<{ at: number }>(blockKey(blockerId, blockedId));
    await syncBlock(db, blockerId, blockedId, block.value ? new Date(block.value.at) : null);
    await invalidateGraphViews(deps.cache, blockerId, blockedId);
  });
}

/** The member `targetId` as `viewerId` may reach them: 404 when missing or blocked either way. */
export async function reachableUser(deps: Deps, viewerId: string, targetId: string) {
  const [user, blocked] = await Promise.all([
    findUserById(deps.database.db, targetId),
    isBlocked(deps.kv, viewerId, targetId),
  ]);
  if (!user || blocked || isSuspended(user, deps.clock.now())) throw noSuchUser();
  return user;
}

/** `field` names where the target came from (a path's `userId`, a body's `toUserId`). */
function notSelf(viewerId: string, targetId: string, what: string, field = "userId") {
  if (viewerId === targetId) {
    throw new Invalid(`You cannot ${what} yourself.`, [{ path: field, message: "is your own id" }]);
  }
}

export async function follow(deps: Deps, followerId: string, followeeId: string) {
  notSelf(followerId, followeeId, "follow");
  await reachableUser(deps, followerId, followeeId);
  const created = await insertFollow(
    deps.database.db,
    followerId,
    followeeId,
    new Date(deps.clock.now()),
  );
  if (!created) return;
  // Independent: one round trip for both.
  await Promise.all([
    feedCache(deps.cache).invalidate(followerId),
    deps.outbox.send(...notifyRecords(deps.outbox, {
      userId: followeeId,
      actorId: followerId,
      type: "follow",
      subjectId: followerId,
    })),
  ]);
}

export async function unfollow(deps: Deps, followerId: string, followeeId: string) {
  notSelf(followerId, followeeId, "unfollow");
  if (await deleteFollow(deps.database.db, followerId, followeeId)) {
    await feedCache(deps.cache).invalidate(followerId);
  }
}

/** History, and the notification a transition deserves, as outbox records of its commit. */
function transitionEffects(deps: Deps): Effects {
  return (transition: Transition): OutboxRecord[] => {
    const { request } = transition;
    const notice = request.status === "pending"
      ? notifyRecords(deps.outbox, {
        userId: request.toUserId,
        actorId: request.fromUserId,
        type: "connection_request",
        subjectId: request.id,
      })
      : request.status === "accepted"
      ? notifyRecords(deps.outbox, {
        userId: request.fromUserId,
        actorId: request.toUserId,
        type: "connection_accepted",
        subjectId: request.id,
      })
      : [];
    return [deps.outbox.record(CONNECTION_TRANSITION, transition), ...notice];
  };
}

/** History, and the peer's notification, of a connection a match made (both consented). */
export function connectionRecords(deps: Deps, transition: Transition): OutboxRecord[] {
  const { request, actorId } = transition;
  const other = request.fromUserId === actorId ? request.toUserId : request.fromUserId;
  return [
    deps.outbox.record(CONNECTION_TRANSITION, transition),
    ...notifyRecords(deps.outbox, {
      userId: other,
      actorId,
      type: "connection_accepted",
      subjectId: request.id,
    }),
  ];
}

export async function requestConnection(
  deps: Deps,
  fromUserId: string,
  input: { toUserId: string; message?: string },
) {
  notSelf(fromUserId, input.toUserId, "connect with", "toUserId");
  await reachableUser(deps, fromUserId, input.toUserId);
  // Unconfirmed, a member may send UNVERIFIED_REQUESTS requests in all (a counter every attempt
  // takes a slot of, so a burst cannot slip past it).
  if (verificationRequired(deps.config)) {
    const sender = await findUserById(deps.database.db, fromUserId);
    if (sender && !sender.emailVerifiedAt) {
      const sent = await deps.cache.increment(`unverified-requests:${fromUserId}`, 30 * 86_400);
      if (sent.count > UNVERIFIED_REQUESTS) {
        throw unverified(`sending more than ${UNVERIFIED_REQUESTS} connection requests`);
      }
    }
  }
  const { request } = await sendConnectionRequest(coordination(deps), {
    fromUserId,
    toUserId: input.toUserId,
    message: input.message ?? null,
  }, transitionEffects(deps));
  return request;
}

export async function answerConnection(
  deps: Deps,
  actorId: string,
  requestId: string,
  to: "accepted" | "rejected" | "withdrawn",
) {
  const { request } = await moveConnectionRequest(
    coordination(deps),
    { requestId, actorId, to },
    transitionEffects(deps),
  );
  return request;
}

export async function block(deps: Deps, blockerId: string, blockedId: string) {
  notSelf(blockerId, blockedId, "block");
  if (!await findUserById(deps.database.db, blockedId)) throw noSuchUser();
  await placeBlock(coordination(deps), { blockerId, blockedId }, {
    block: () => [
      deps.outbox.record(BLOCK_SYNC, { blockerId, blockedId }),
      // A call between them ends too (rule 2: the same commit decides it, the outbox carries it).
      deps.outbox.record(BLOCK_ENDS_CALL, { blockerId, blockedId }),
    ],
    transition: transitionEffects(deps),
  });
}

/** Lifts a block the caller placed; false when there was none. */
export async function unblock(deps: Deps, blockerId: string, blockedId: string) {
  return await liftBlock(
    coordination(deps),
    { blockerId, blockedId },
    () => [deps.outbox.record(BLOCK_SYNC, { blockerId, blockedId })],
  );
}

export const reportInput = z.strictObject({
  userId: id,
  reason: z.string().trim().min(1, "must not be empty").max(2000),
  /** The post that prompted the report, if any; it must be the reported member's. */
  postId: id.optional(),
});

export async function fileReport(
  deps: Deps,
  reporterId: string,
  input: z.infer<typeof reportInput>,
) {
  if (input.userId === reporterId) {
    throw new Invalid("You cannot report yourself.", [{
      path: "userId",
      message: "is your own id",
    }]);
  }
  const db = deps.database.db;
  if (!await findUserById(db, input.userId)) throw new NotFound("No member has this id.");
  if (input.postId && await findPostAuthor(db, input.postId) !== input.userId) {
    throw new Invalid("The post is not one of this member's.", [
      { path: "postId", message: "not a post of the reported member" },
    ]);
  }
  const now = deps.clock.now();
  return await insertReport(db, {
    id: newId(now),
    reporterId,
    userId: input.userId,
    postId: input.postId ?? null,
    reason: input.reason,
    at: new Date(now),
  });
}
