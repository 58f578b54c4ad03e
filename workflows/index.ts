// Wires every job handler and outbox applier to the app's dependencies, and the cron sweeps.
import type { Deps } from "../deps.ts";
import { isUnreachable } from "../errors.ts";
import { registerChatAppliers } from "./chat.ts";
import { registerInterviewWorkflows, sweepInterviews } from "./interviews.ts";
import { registerMedia, sweepMedia } from "./media/uploads.ts";
import { registerMatchmaking, sweepMatches } from "./matches.ts";
import { registerSales } from "./sales/effects.ts";
import { reconcilePayments, sweepReservations } from "./sales/orders.ts";
import { registerGraphAppliers } from "./graph.ts";
import { registerNotifyJob } from "./notifications.ts";
import { registerEnqueueApplier } from "./outbox-jobs.ts";
import { registerSendEmailJob } from "./send-email.ts";
import { registerAudit } from "./audit.ts";
import { registerModeration } from "./moderation.ts";

export function registerWorkflows(deps: Deps) {
  registerNotifyJob(deps);
  registerSendEmailJob(deps);
  registerEnqueueApplier(deps.outbox, deps.jobs, deps.clock);
  registerGraphAppliers(deps);
  registerChatAppliers(deps);
  registerInterviewWorkflows(deps);
  registerMatchmaking(deps);
  registerSales(deps);
  registerMedia(deps);
  registerAudit(deps);
  registerModeration(deps);
}

/** How the server runs its sweeps: until `signal` aborts, each run counted by `track`. */
export interface SweepSchedule {
  signal: AbortSignal;
  track: <T>(work: () => Promise<T>) => Promise<T>;
}

/** `Deno.cron` sweeps; main.ts registers them at start-up (tests call the sweeps directly). */
export function scheduleSweeps(deps: Deps, schedule: SweepSchedule) {
  const sweeps: [name: string, cron: string, sweep: () => Promise<unknown>][] = [
    ["outbox sweep", "* * * * *", () => deps.outbox.sweep()],
    ["presence sweep", "* * * * *", () => deps.hub.sweepPresence()],
    ["interview sweep", "* * * * *", () => sweepInterviews(deps)],
    ["match sweep", "* * * * *", () => sweepMatches(deps)],
    ["reservation sweep", "* * * * *", () => sweepReservations(deps)],
    ["payment reconciliation", "* * * * *", () => reconcilePayments(deps)],
    ["media sweep", "17 3 * * *", () => sweepMedia(deps)],
    ["history maintenance", "*/10 * * * *", () => deps.database.maintain()],
  ];
  for (const [name, cron, sweep] of sweeps) {
    Deno.cron(name, cron, { signal: schedule.signal }, async () => {
      // A sweep that fails runs again at its next minute; its failure is one JSON log line (an
      // outage's is a warning: the database or a provider will be back).
      await schedule.track(sweep).catch((error) =>
        deps.log({
          level: isUnreachable(error) ? "warn" : "error",
          msg: isUnreachable(error)
            ? "sweep put off: a dependency cannot be reached"
            : "sweep failed",
          sweep: name,
          error: error instanceof Error ? error.message : String(error),
        })
      );
    });
  }
}
