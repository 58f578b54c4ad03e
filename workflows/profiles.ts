// Profiles: the edit rules (normalised skills, nothing a client may not set) and the public view.
// Peer discovery: a ranking per user, each peer's score explained feature by feature, cached.
import { settledHistory } from "./history.ts";
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { countFollows, isFollowing } from "../db/graph.ts";
import { GENDERS } from "../db/schema.ts";
import {
  avatarPath,
  findUserById,
  type PublicProfile,
  publicProfile,
  updateProfile,
} from "../db/users.ts";
import { type MemberCard, readMemberCard, rememberMember } from "../kv/profiles.ts";
import { isForeignKeyViolation } from "../db/client.ts";
import { Conflict, Invalid, Unauthorized } from "../errors.ts";
import { ownMedia, releaseMedia } from "./media/uploads.ts";
import { livePairRequest } from "../kv/graph.ts";
import { discoveryCache } from "../providers/per-user-cache.ts";
import { reachableUser } from "./graph.ts";
import { mediaPath } from "../db/media.ts";
import { id } from "../input.ts";
import { decodeCursor, encodeCursor } from "../cursor.ts";
import {
  type Candidate,
  DISCOVERY_WEIGHTS,
  discoveryCandidates,
  MUTUALS_SATURATION,
} from "../db/profiles.ts";

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
  /** One of the user's own uploaded videos (MP4, WebM); null removes it. */
  videoMediaId: id.nullable().optional(),
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
  if (patch.videoMediaId) {
    const [video] = await ownMedia(deps, userId, [patch.videoMediaId], "videoMediaId");
    if (!video.contentType.startsWith("video/")) {
      throw new Invalid("A profile video must be an MP4 or WebM video.", [
        { path: "videoMediaId", message: `is ${video.contentType}` },
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
  if (updated === "gender-settled") {
    throw new Conflict(
      "Your gender was chosen already: matchmaking's safety rules rest on it, so only an admin " +
        "changes it, at your request.",
      "gender-settled",
    );
  }
  const { row, previous } = updated;
  await Promise.all([
    discoveryCache(deps.cache).invalidate(userId),
    rememberMember(deps.kv, row),
  ]);
  // A photo or video replaced (or removed) goes to the release job, which keeps it if a post
  // still shows it.
  const replaced = previous.filter((mediaId): mediaId is string =>
    mediaId !== null && mediaId !== row.avatarMediaId && mediaId !== row.videoMediaId
  );
  if (replaced.length > 0) await releaseMedia(deps, userId, replaced);
  return row;
}

/**
 * The member's name and gender as matchmaking needs them: from KV, or read from Postgres once and
 * kept there (profile edits replace it). Null when the account no longer exists.
 */
export async function memberCard(deps: Deps, userId: string): Promise<MemberCard | null> {
  const card = await readMemberCard(deps.kv, userId);
  if (card) return card;
  const user = await findUserById(deps.database.db, userId);
  return user ? await rememberMember(deps.kv, user) : null;
}

/**
 * A member's picture for `viewerId`: the path of their photo, or, without one, their initials and
 * a hue of their own (the same member, the same colour), so every member has a picture to show.
 * 404 as for the profile.
 */
export async function memberPicture(
  deps: Deps,
  viewerId: string,
  userId: string,
): Promise<{ photo: string } | { initials: string; hue: number }> {
  const user = await reachableUser(deps, viewerId, userId);
  if (user.avatarMediaId) return { photo: mediaPath(user.avatarMediaId) };
  const initials = user.name.trim().split(/\s+/).slice(0, 2)
    .map((word) => String.fromCodePoint(word.codePointAt(0) ?? 63).toUpperCase()).join("");
  const hue = [...user.id].reduce((sum, char) => (sum * 31 + char.charCodeAt(0)) % 360, 0);
  return { initials, hue };
}

/** A member's public profile, with counts and how the viewer relates to them. */
export async function viewProfile(deps: Deps, viewerId: string, userId: string) {
  const db = await settledHistory(deps); // a skill just verified, a follow just made
  const user = await reachableUser(deps, viewerId, userId);
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

export interface DiscoveryItem {
  profile: PublicProfile;
  score: number;
  /** Each feature's contribution to `score` (weight × feature value); they add up to it. */
  explain: { skills: number; location: number; mutuals: number; recency: number };
  /** What the features were computed from. */
  signals: {
    sharedSkills: string[];
    sameLocation: boolean;
    mutualConnections: number;
    lastActiveAt: string;
  };
}

interface Ranking {
  items: DiscoveryItem[];
  computedAt: string;
}

const round = (value: number) => Math.round(value * 1e6) / 1e6;

/** A candidate's score: each feature's weight × its value, explained feature by feature. */
export function rank(candidate: Candidate): DiscoveryItem {
  const w = DISCOVERY_WEIGHTS;
  const explain = {
    skills: round(w.skills * candidate.skillsScore),
    location: round(w.location * (candidate.sameLocation ? 1 : 0)),
    mutuals: round(
      w.mutuals * Math.min(candidate.mutuals, MUTUALS_SATURATION) / MUTUALS_SATURATION,
    ),
    recency: round(w.recency * candidate.recencyScore),
  };
  return {
    profile: {
      id: candidate.id,
      name: candidate.name,
      headline: candidate.headline,
      bio: candidate.bio,
      skills: candidate.skills,
      location: candidate.location,
      verifiedSkills: candidate.verifiedSkills as PublicProfile["verifiedSkills"],
      avatarMediaId: candidate.avatarMediaId,
      avatarUrl: avatarPath(candidate.avatarMediaId),
      videoMediaId: candidate.videoMediaId,
      videoUrl: avatarPath(candidate.videoMediaId),
      createdAt: candidate.createdAt,
    },
    score: round(explain.skills + explain.location + explain.mutuals + explain.recency),
    explain,
    signals: {
      sharedSkills: candidate.sharedSkills,
      sameLocation: candidate.sameLocation,
      mutualConnections: candidate.mutuals,
      lastActiveAt: candidate.lastActiveAt,
    },
  };
}

/** Best first; ties by id, so the order is total and a (score, id) cursor is a keyset. */
function byScore(a: DiscoveryItem, b: DiscoveryItem) {
  return b.score - a.score || (a.profile.id < b.profile.id ? -1 : 1);
}

const cursorShape = z.tuple([z.number(), z.string()]);

export async function discover(
  deps: Deps,
  userId: string,
  page: { cursor?: string; limit: number },
) {
  // A connection or block just made reaches Postgres and the cache's version first.
  const db = await settledHistory(deps);
  const { value: ranking } = await discoveryCache<Ranking>(deps.cache).through(
    userId,
    "",
    async () => {
      const now = new Date(deps.clock.now());
      const candidates = await discoveryCandidates(db, userId, now);
      return { items: candidates.map(rank).sort(byScore), computedAt: now.toISOString() };
    },
  );
  const after = page.cursor ? decodeCursor(page.cursor, cursorShape) : null;
  const rest = after
    ? ranking.items.filter((item) =>
      item.score < after[0] || (item.score === after[0] && item.profile.id > after[1])
    )
    : ranking.items;
  const items = rest.slice(0, page.limit);
  const last = items.at(-1);
  return {
    items,
    nextCursor: rest.length > page.limit && last
      ? encodeCursor([last.score, last.profile.id])
      : null,
    computedAt: ranking.computedAt,
  };
}
