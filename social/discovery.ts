// Peer discovery: a ranking per user, each peer's score explained feature by feature, cached.
import { z } from "zod";
import type { Deps } from "../app.ts";
import { decodeCursor, encodeCursor } from "../cursor.ts";
import {
  type Candidate,
  DISCOVERY_WEIGHTS,
  discoveryCandidates,
  MUTUALS_SATURATION,
} from "../db/discovery.ts";
import { avatarPath, type PublicProfile } from "../db/users.ts";
import { discoveryCache } from "./per-user-cache.ts";

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

function rank(candidate: Candidate): DiscoveryItem {
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
  const { value: ranking } = await discoveryCache<Ranking>(deps.cache).through(
    userId,
    "",
    async () => {
      const now = new Date(deps.clock.now());
      const candidates = await discoveryCandidates(deps.database.db, userId, now);
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
