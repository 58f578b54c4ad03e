// Profiles: the edit rules (normalised skills, nothing a client may not set) and the public view.
import { z } from "zod";
import type { Deps } from "../app.ts";
import { countFollows, isFollowing } from "../db/graph.ts";
import { GENDERS } from "../db/schema.ts";
import { publicProfile, updateProfile } from "../db/users.ts";
import { isForeignKeyViolation } from "../db/client.ts";
import { Invalid, Unauthorized } from "../errors.ts";
import { ownMedia, releaseMedia } from "../media/media.ts";
import { livePairRequest } from "../kv/connections.ts";
import { discoveryCache } from "./per-user-cache.ts";
import { reachableUser } from "./graph.ts";
import { id } from "../input.ts";

export const MAX_SKILLS = 30;

/** Trimmed, lower-cased, inner spaces collapsed, empty ones dropped, each once, first kept. */
export function normaliseSkills(skills: string[]): string[] {
  const seen = new Set<string>();
  for (const skill of skills) {
    const clean = skill.trim().toLowerCase().replace(/\s+/g, " ");
    if (clean) seen.add(clean);
  }
  return [...seen];
}

/** Optional text that may be cleared with null or "". */
const clearable = (max: number) =>
  z.string().trim().max(max).nullable().transform((value) => value || null).optional();

export const profilePatch = z.strictObject({
  name: z.string().trim().min(1, "must not be empty").max(100).optional(),
  headline: clearable(200),
  bio: clearable(2000),
  skills: z.array(z.string().max(50, "a skill is at most 50 characters")).max(200)
    .transform(normaliseSkills)
    .pipe(z.array(z.string()).max(MAX_SKILLS, `at most ${MAX_SKILLS} distinct skills`))
    .optional(),
  location: clearable(100),
  gender: z.enum(GENDERS).optional(),
  /** One of the user's own uploaded images; null removes the photo. */
  avatarMediaId: id.nullable().optional(),
});

/**
 * Applies the patch. A new profile photo must be an image the user uploaded; the photo it
 * replaces (or removes) goes to the release job, which keeps it if a post still shows it.
 */
export async function editProfile(deps: Deps, userId: string, patch: z.infer<typeof profilePatch>) {
  if (patch.avatarMediaId) {
    const [photo] = await ownMedia(deps, userId, [patch.avatarMediaId], "avatarMediaId");
    if (!photo.contentType.startsWith("image/")) {
      throw new Invalid("A profile photo must be an image.", [
        { path: "avatarMediaId", message: `is ${photo.contentType}` },
      ]);
    }
  }
  const updated = await updateProfile(deps.database.db, userId, patch, new Date(deps.clock.now()))
    .catch((error) => {
      if (!isForeignKeyViolation(error)) throw error;
      throw new Invalid("This photo was deleted meanwhile.", [
        { path: "avatarMediaId", message: "no such media" },
      ]);
    });
  if (!updated) throw new Unauthorized("This account no longer exists.");
  await discoveryCache(deps.cache).invalidate(userId);
  const { row, previousAvatar } = updated;
  if (previousAvatar && previousAvatar !== row.avatarMediaId) {
    await releaseMedia(deps, userId, [previousAvatar]);
  }
  return row;
}

/** A member's public profile, with counts and how the viewer relates to them. */
export async function viewProfile(deps: Deps, viewerId: string, userId: string) {
  const user = await reachableUser(deps, viewerId, userId);
  const db = deps.database.db;
  const [counts, following, followedBy, request] = await Promise.all([
    countFollows(db, userId),
    viewerId === userId ? false : isFollowing(db, viewerId, userId),
    viewerId === userId ? false : isFollowing(db, userId, viewerId),
    viewerId === userId ? null : livePairRequest(deps.kv, viewerId, userId),
  ]);
  return {
    ...publicProfile(user),
    followerCount: counts.followers,
    followingCount: counts.following,
    connectionCount: counts.connections,
    relationship: viewerId === userId ? null : {
      following,
      followedBy,
      connection: request
        ? { id: request.id, status: request.status, fromUserId: request.fromUserId }
        : null,
    },
  };
}
