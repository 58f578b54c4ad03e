// The pure rules, each on its own: no app, no store, only inputs and what the rule decides.
import assert from "node:assert/strict";
import type { Sale } from "../db/records.ts";
import type { Candidate } from "../db/profiles.ts";
import { MAX_SHARDS, saleStatus, shardsOf, splitStock, take } from "../kv/sales/stock.ts";
import { measure, weigh } from "../workflows/interviews.ts";
import { rank } from "../workflows/profiles.ts";

const sum = (units: number[]) => units.reduce((total, n) => total + n, 0);

Deno.test("[rules] stock: split evenly over at most MAX_SHARDS counters, taken from as few as possible", () => {
  assert.deepEqual(splitStock(10, 4), [3, 3, 2, 2]);
  assert.deepEqual(splitStock(3, 3), [1, 1, 1]);
  for (const [stock, shards] of [[1, 1], [7, 3], [1000, 8], [9, 8]]) {
    const split = splitStock(stock, shards);
    assert.equal(sum(split), stock, `${stock} over ${shards} keeps every unit`);
    assert.ok(Math.max(...split) - Math.min(...split) <= 1, "as even as whole units allow");
  }
  const sale = { shards: 64 } as Sale;
  const item = (stock: number) => ({
    productId: "p",
    name: "P",
    priceCents: 1,
    currency: "USD",
    stock,
  });
  assert.equal(shardsOf(sale, item(1000)), MAX_SHARDS);
  assert.equal(shardsOf(sale, item(3)), 3, "never more counters than units");
  assert.equal(shardsOf({ shards: 0 } as Sale, item(5)), 1, "at least one");

  assert.deepEqual(take([2, 5, 1], 4, 0), [[1, 4]], "one shard that holds them all, if any");
  assert.deepEqual(take([2, 2, 1], 4, 1), [[1, 2], [2, 1], [0, 1]], "else from the preferred on");
  assert.equal(take([1, 1], 3, 0), null, "never more than there is");
  for (let run = 0; run < 50; run++) {
    const units = [3, 0, 4, 1];
    const taken = take(units, 6)!;
    assert.equal(sum(taken.map(([, n]) => n)), 6);
    for (const [shard, n] of taken) assert.ok(n <= units[shard], "no shard below zero");
  }
});

Deno.test("[rules] sale status: scheduled, live, sold out when every item is at zero, ended", () => {
  const sale = { startsAt: 1000, endsAt: 2000 } as Sale;
  const left = (...units: number[]) => new Map(units.map((n, i) => [`p${i}`, n]));
  assert.equal(saleStatus(sale, left(5), 999), "scheduled");
  assert.equal(saleStatus(sale, left(5, 0), 1000), "live");
  assert.equal(saleStatus(sale, left(0, 0), 1500), "sold-out");
  assert.equal(saleStatus(sale, left(5), 2000), "ended", "the end is exclusive");
  assert.equal(saleStatus(sale, left(0), 2500), "ended", "ended wins over sold out");
});

Deno.test("[rules] discovery: each feature weighed, mutuals saturate, the explanation adds up", () => {
  const candidate = (over: Partial<Candidate>): Candidate => ({
    id: "c",
    name: "C",
    headline: null,
    bio: null,
    skills: [],
    location: null,
    verifiedSkills: [],
    avatarMediaId: null,
    videoMediaId: null,
    createdAt: "2026-01-01T00:00:00.000Z",
    lastActiveAt: "2026-01-01T00:00:00.000Z",
    sharedSkills: [],
    skillsScore: 0,
    sameLocation: false,
    mutuals: 0,
    recencyScore: 0,
    ...over,
  });
  const full = rank(
    candidate({ skillsScore: 1, sameLocation: true, mutuals: 50, recencyScore: 1 }),
  );
  assert.deepEqual(full.explain, { skills: 0.5, location: 0.15, mutuals: 0.2, recency: 0.15 });
  assert.equal(full.score, 1);
  const some = rank(candidate({ skillsScore: 0.5, mutuals: 2, recencyScore: 0.25 }));
  assert.deepEqual(some.explain, { skills: 0.25, location: 0, mutuals: 0.08, recency: 0.0375 });
  assert.equal(some.score, 0.3675);
  assert.equal(rank(candidate({})).score, 0);
});

Deno.test("[rules] interview score: Σ weight × score / Σ weight; metrics only measure", () => {
  const rubric = [{ criterion: "Correctness", weight: 3 }, { criterion: "Clarity", weight: 1 }];
  assert.equal(
    weigh(rubric, [{ criterion: "Correctness", score: 8 }, { criterion: "Clarity", score: 4 }]),
    7,
  );
  assert.equal(
    weigh(rubric, [{ criterion: "Correctness", score: 0 }, { criterion: "Clarity", score: 10 }]),
    2.5,
  );
  const metrics = measure("It is correct, and the proof is short.", rubric);
  assert.deepEqual(metrics, {
    answerLength: 38,
    wordCount: 8,
    criteriaMentioned: [],
    rubricCoverage: 0,
  });
  assert.deepEqual(measure("Correctness first; clarity second.", rubric).criteriaMentioned, [
    "Correctness",
    "Clarity",
  ]);
});
