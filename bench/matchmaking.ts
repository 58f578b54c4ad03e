// Matchmaking with 1,000 concurrent joiners of one intent, next to raw KV atomic commits measured
// the same way in the same run (the floor: one pairing is at least one such commit).
//
// 1. Raw KV: 1,000 concurrent read → check → write commits (each reads two keys, checks them and
//    writes three), as commits per second.
// 2. Pairing in KV alone: 1,000 concurrent `joinQueue` calls (no HTTP, no Postgres), as matches per
//    second and commits per match, three rounds.
// 3. End to end: 1,000 members with open sockets join at once, from a process of their own, by
//    POST /api/match/queue and (on a fresh server) by a `join-queue` frame on their socket; latency
//    is from sending the join to that member's socket receiving `found-match`.
import { z } from "zod";
import { Outbox } from "../kv/outbox.ts";
import type { MatchRules } from "../kv/matches/match.ts";
import { joinQueue } from "../kv/matches/queue.ts";
import type { Participant } from "../db/records.ts";
import { createTestApp } from "../tests/helpers/app.ts";
import { members } from "../tests/helpers/members.ts";
import { matches } from "../db/schema.ts";
import { PGLITE, type Profile } from "./profiles.ts";
import { inOwnProcess } from "./load-process.ts";
import type { Joined, Joiners } from "./matchmaking-load.ts";

const JOINERS = Number(Deno.env.get("BENCH_MATCH_JOINERS") ?? 1000);
const ROUNDS = 3;

function percentile(sorted: number[], p: number) {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

const ms = (value: number) => value.toFixed(1).padStart(7);

/** 1,000 concurrent read-check-write commits on distinct keys: the floor for one pairing. */
async function rawCommits(kv: Deno.Kv, round: number): Promise<number> {
  const started = performance.now();
  await Promise.all(Array.from({ length: JOINERS }, async (_, i) => {
    const keys = [["raw", round, i, "a"], ["raw", round, i, "b"]];
    for (;;) {
      const [a, b] = await kv.getMany(keys);
      const ok = await kv.atomic().check(a, b)
        .set(keys[0], i).set(keys[1], i).set(["raw", round, i, "c"], i).commit();
      if (ok.ok) return;
    }
  }));
  return JOINERS / ((performance.now() - started) / 1000);
}

/** `joinQueue` alone, 1,000 at once: matches per second, and commits (won or lost) per match. */
async function pairingInKv(kv: Deno.Kv, round: number) {
  const outbox = new Outbox(kv, { now: Date.now }, () => {});
  outbox.register("bench", z.unknown(), async () => {});
  const rules: MatchRules = {
    callDurationMs: 180_000,
    cooldownMs: 1_800_000,
    effects: (change) => ({
      events: [change.match.offerer, change.match.answerer].map((person) => ({
        userId: person.id,
        type: "found-match",
        data: { matchId: change.match.id },
      })),
      records: [outbox.record("bench", change.match.id)],
    }),
  };
  // Counts every commit tried (won or lost), to show what contention costs per match.
  let commits = 0;
  const atomic = kv.atomic;
  kv.atomic = () => {
    const operation = atomic.call(kv);
    const commit = operation.commit.bind(operation);
    operation.commit = () => {
      commits++;
      return commit();
    };
    return operation;
  };
  const people: Participant[] = Array.from({ length: JOINERS }, (_, i) => ({
    id: `r${round}u${i}`,
    name: `Member ${i}`,
    gender: "undisclosed",
  }));
  const started = performance.now();
  const results = await Promise.all(
    people.map((person) =>
      joinQueue({ kv, outbox, now: Date.now }, person, `bench-${round}`, rules)
    ),
  );
  kv.atomic = atomic;
  const seconds = (performance.now() - started) / 1000;
  // Both members of a pair made in one batch are answered with its match: count matches once.
  const matched = new Set(results.flatMap((result) => result.match ? [result.match.id] : [])).size;
  return { matchesPerSecond: matched / seconds, matched, commitsPerMatch: commits / matched };
}

async function endToEnd(profile: Profile, over: Joiners["over"]) {
  const database = await profile.open();
  const t0 = await createTestApp({
    env: { RATE_LIMIT_API: "1000000000/1h" },
    realClock: true,
    database,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, t0.app.fetch);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const people = await members(t0.deps, JOINERS);
  // The joiners run in a process of their own (bench/matchmaking-load.ts), as chat's clients do.
  const { latencies, found, refused, seconds } = await inOwnProcess<Joiners, Joined>(
    new URL("./matchmaking-load.ts", import.meta.url),
    { base, tokens: people.map((who) => who.token), intent: "bench", over },
  );
  await t0.deps.hub.close();
  await server.shutdown();
  // Nobody in two matches: every member was found once, and the matches are disjoint pairs.
  await t0.deps.outbox.flush();
  const rows = await database.db.select().from(matches);
  const seats = rows.flatMap((row) => [row.offererId, row.answererId]);
  const doubled = seats.length - new Set(seats).size;
  await t0[Symbol.asyncDispose](); // its jobs stop before the database closes
  await database.close();
  return { latencies, found, refused, doubled, matchesPerSecond: found / 2 / seconds };
}

export async function benchMatchmaking(profile: Profile = PGLITE) {
  console.log(`\nMatchmaking on ${profile.name}: ${JOINERS} concurrent joiners of one intent`);
  const kv = await Deno.openKv(":memory:"); // the KV-alone floors: one connection, as measured
  const floors: number[] = [];
  const pairings: Awaited<ReturnType<typeof pairingInKv>>[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    floors.push(await rawCommits(kv, round));
    pairings.push(await pairingInKv(kv, round));
  }
  kv.close();
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];
  const floor = median(floors);
  console.log(
    `  ${"raw KV read→check→write commits (floor)".padEnd(52)} ${
      floor.toFixed(0).padStart(7)
    } /s   1.00×`,
  );
  const pairing = median(pairings.map((result) => result.matchesPerSecond));
  console.log(
    `  ${"pairing in KV alone (joinQueue), matches".padEnd(52)} ${
      pairing.toFixed(0).padStart(7)
    } /s   ${(pairing / floor).toFixed(2)}×   ${
      median(pairings.map((result) => result.commitsPerMatch)).toFixed(1)
    } commits per match, ${pairings.map((result) => result.matched).join("/")} matched`,
  );
  for (const over of ["http", "socket"] as const) {
    const e2e = await endToEnd(profile, over);
    const title = over === "http"
      ? "HTTP join → socket found-match, matches"
      : "socket join-queue → found-match, matches";
    console.log(
      `  ${title.padEnd(52)} ${e2e.matchesPerSecond.toFixed(0).padStart(7)} /s   ${
        (e2e.matchesPerSecond / floor).toFixed(2)
      }×   ${e2e.found}/${JOINERS} found, ${e2e.refused} refused, ${e2e.doubled} in two matches`,
    );
    console.log(
      `    join → found-match latency (ms): p50 ${ms(percentile(e2e.latencies, 0.5))}  p99 ${
        ms(percentile(e2e.latencies, 0.99))
      }  max ${ms(e2e.latencies[e2e.latencies.length - 1])}`,
    );
  }
}

if (import.meta.main) await benchMatchmaking();
