// Jobs through the KV-queue adapter (dedupe bookkeeping, registry, done markers) next to raw
// `kv.enqueue`/`listenQueue`, and how late delayed jobs run against their due time.
import { JobRegistry } from "../workflows/jobs.ts";
import { kvQueueJobs, listenForJobs } from "../workflows/kv-queue.ts";
import { z } from "zod";

type Consumer = {
  /** Enqueues one message; `dueAt` is when it should run (ms, performance clock). */
  enqueue(index: number, delayMs: number): Promise<void>;
  /** Resolves once `count` messages were handled; returns each one's lateness in ms. */
  handled(count: number): Promise<number[]>;
  close(): Promise<void>;
};

async function rawQueue(): Promise<Consumer> {
  const kv = await Deno.openKv(":memory:");
  const late: number[] = [];
  let wake = () => {};
  const listening = kv.listenQueue((message: { dueAt: number }) => {
    late.push(performance.now() - message.dueAt);
    wake();
  });
  return {
    enqueue: async (_index, delayMs) => {
      await kv.enqueue({ dueAt: performance.now() + delayMs }, { delay: delayMs });
    },
    handled: (count) => until(count, late, (fn) => (wake = fn)),
    close: async () => {
      kv.close();
      await listening;
    },
  };
}

async function adapterQueue(): Promise<Consumer> {
  const kv = await Deno.openKv(":memory:");
  const late: number[] = [];
  const done: number[] = [];
  let wake = () => {};
  const registry = new JobRegistry().register(
    "noop",
    z.object({ dueAt: z.number() }),
    (payload) => {
      late.push(performance.now() - payload.dueAt);
      return Promise.resolve();
    },
  );
  const jobs = kvQueueJobs(kv);
  // A job counts once the runner has recorded it done (after the handler returned).
  const log = (record: Record<string, unknown>) => {
    if (record.msg !== "job done") return;
    done.push(0);
    wake();
  };
  const listening = listenForJobs({ kv, registry, jobs, clock: { now: Date.now }, log });
  return {
    enqueue: async (_index, delayMs) => {
      await jobs.enqueue("noop", { dueAt: performance.now() + delayMs }, {
        delaySeconds: delayMs / 1000,
      });
    },
    handled: async (count) => {
      await until(count, done, (fn) => (wake = fn));
      return late;
    },
    close: async () => {
      kv.close();
      await listening;
    },
  };
}

function until(count: number, late: number[], onWake: (fn: () => void) => void) {
  return new Promise<number[]>((resolve) => {
    const check = () => late.length >= count && resolve(late);
    onWake(check);
    check();
  });
}

function percentile(values: number[], p: number) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Enqueues `count` messages from 16 loops and waits until all were handled: messages/s. */
async function jobsPerSecond(open: () => Promise<Consumer>, count: number) {
  const consumer = await open();
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < count) await consumer.enqueue(next++, 0);
  }));
  await consumer.handled(count);
  const rate = count / ((performance.now() - started) / 1000);
  await consumer.close();
  return rate;
}

/** Lateness of `count` jobs due 1–2 s from now. */
async function delayedLateness(open: () => Promise<Consumer>, count: number) {
  const consumer = await open();
  for (let index = 0; index < count; index++) {
    await consumer.enqueue(index, 1000 + Math.random() * 1000);
  }
  const late = await consumer.handled(count);
  await consumer.close();
  return { p50: percentile(late, 50), p99: percentile(late, 99) };
}

export async function benchJobs(
  report: (title: string, baseline: [string, number], rows: [string, number][]) => void,
) {
  const count = Number(Deno.env.get("BENCH_JOBS") ?? 3000);
  const raw = await jobsPerSecond(rawQueue, count);
  report(`Jobs (${count} enqueued, then drained, in-memory KV)`, [
    "raw kv.enqueue + listenQueue",
    raw,
  ], [["jobs.enqueue + runJob, no-op handler", await jobsPerSecond(adapterQueue, count)]]);

  const rawLate = await delayedLateness(rawQueue, 200);
  const adapterLate = await delayedLateness(adapterQueue, 200);
  console.log("\nDelayed jobs: run time minus due time (200 jobs due in 1–2 s)");
  console.log(
    `  ${"raw kv.enqueue({ delay })".padEnd(48)} p50 ${fmt(rawLate.p50)}  p99 ${fmt(rawLate.p99)}`,
  );
  console.log(
    `  ${"jobs.enqueue(…, { delaySeconds })".padEnd(48)} p50 ${fmt(adapterLate.p50)}  p99 ${
      fmt(adapterLate.p99)
    }`,
  );
}

const fmt = (ms: number) => `${ms.toFixed(1).padStart(7)} ms`;
