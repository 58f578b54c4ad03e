// Peer discovery: every candidate's features, computed in one query, ranked by a weighted sum.
import { sql } from "drizzle-orm";
import { type Database, rowsOf } from "./client.ts";
import { blocks, connectionRequests, connections, users } from "./schema.ts";

/** How much each feature (each in [0, 1]) weighs; they add up to 1, so a score is in [0, 1]. */
export const DISCOVERY_WEIGHTS = { skills: 0.5, location: 0.15, mutuals: 0.2, recency: 0.15 };
/** This many mutual connections count fully; fewer count in proportion. */
export const MUTUALS_SATURATION = 5;
/** Activity this long ago counts half as much as activity now. */
export const RECENCY_HALF_LIFE_DAYS = 7;
/** How many peers one ranking keeps. */
export const DISCOVERY_SIZE = 100;

export interface Candidate {
  id: string;
  name: string;
  headline: string | null;
  bio: string | null;
  skills: string[];
  location: string | null;
  verifiedSkills: unknown;
  avatarMediaId: string | null;
  videoMediaId: string | null;
  createdAt: string;
  lastActiveAt: string;
  sharedSkills: string[];
  skillsScore: number;
  sameLocation: boolean;
  mutuals: number;
  recencyScore: number;
}

/**
 * The best `DISCOVERY_SIZE` peers for `userId`: everyone but the user, people blocked either way,
 * existing connections and pending requests, ranked by the weighted features.
 */
export async function discoveryCandidates(
  db: Database,
  userId: string,
  now: Date,
): Promise<Candidate[]> {
  const w = DISCOVERY_WEIGHTS;
  const result = await db.execute(sql`
    with me as (
      select skills, lower(btrim(location)) as place from ${users} where id = ${userId}
    ),
    mine as (select other_id from ${connections} where user_id = ${userId}),
    mutual as (
      select c.user_id as id, count(*)::int as n from ${connections} c
      where c.other_id in (select other_id from mine) and c.user_id <> ${userId}
      group by c.user_id
    ),
    features as (
      select u.*,
        array(select unnest(u.skills) intersect select unnest(me.skills) order by 1) as shared,
        cardinality(array(select unnest(u.skills) union select unnest(me.skills))) as union_size,
        (me.place is not null and me.place <> '' and lower(btrim(u.location)) = me.place)
          as same_place,
        coalesce(mutual.n, 0) as mutuals,
        power(0.5::float8, greatest(0, extract(epoch from (${now.toISOString()}::timestamptz - u.last_active_at))::float8)
          / ${RECENCY_HALF_LIFE_DAYS * 86400}::float8) as recency
      from ${users} u cross join me left join mutual on mutual.id = u.id
      where u.id <> ${userId}
        and (u.suspended_at is null or u.suspended_until <= now())
        and u.id not in (select other_id from mine)
        and not exists (select 1 from ${blocks} b where (b.blocker_id = ${userId} and b.blocked_id = u.id)
          or (b.blocker_id = u.id and b.blocked_id = ${userId}))
        and not exists (select 1 from ${connectionRequests} r where r.status = 'pending'
          and ((r.from_user_id = ${userId} and r.to_user_id = u.id)
            or (r.from_user_id = u.id and r.to_user_id = ${userId})))
    )
    select id, name, headline, bio, skills, location, verified_skills, avatar_media_id,
      video_media_id, created_at,
      last_active_at,
      shared, union_size, same_place, mutuals, recency::float8 as recency
    from features
    order by ${w.skills}::float8 * (case when union_size = 0 then 0 else cardinality(shared)::float8 / union_size end)
      + ${w.location}::float8 * (case when same_place then 1 else 0 end)
      + ${w.mutuals}::float8 * least(mutuals, ${MUTUALS_SATURATION}::int)::float8 / ${MUTUALS_SATURATION}::float8
      + ${w.recency}::float8 * recency desc, id
    limit ${DISCOVERY_SIZE}`);
  return rowsOf<Record<string, unknown>>(result).map((row) => {
    const shared = row.shared as string[];
    const unionSize = Number(row.union_size);
    return {
      id: row.id as string,
      name: row.name as string,
      headline: row.headline as string | null,
      bio: row.bio as string | null,
      skills: row.skills as string[],
      location: row.location as string | null,
      verifiedSkills: typeof row.verified_skills === "string"
        ? JSON.parse(row.verified_skills)
        : row.verified_skills,
      avatarMediaId: row.avatar_media_id as string | null,
      videoMediaId: row.video_media_id as string | null,
      createdAt: new Date(row.created_at as string).toISOString(),
      lastActiveAt: new Date(row.last_active_at as string).toISOString(),
      sharedSkills: shared,
      skillsScore: unionSize === 0 ? 0 : shared.length / unionSize,
      sameLocation: row.same_place === true,
      mutuals: Number(row.mutuals),
      recencyScore: Number(row.recency),
    };
  });
}
