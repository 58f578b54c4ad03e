// Wires every job handler and outbox applier to the app's dependencies, and the cron sweeps.
import type { Deps } from "../app.ts";
import { registerChatAppliers } from "../chat/messages.ts";
import { registerInterviewWorkflows, sweepInterviews } from "../interviews/interviews.ts";
import { registerMedia, sweepMedia } from "../media/media.ts";
import { registerMatchmaking, sweepMatches } from "../matchmaking/matchmaking.ts";
import { registerSales, sweepReservations } from "../sales/sales.ts";
import { registerGraphAppliers } from "../social/graph.ts";
import { registerNotifyJob } from "./notify.ts";
import { registerEnqueueApplier } from "./outbox-jobs.ts";
import { registerSendEmailJob } from "./send-email.ts";

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
}

/** `Deno.cron` sweeps; main.ts registers them at start-up (tests call the sweeps directly). */
export function scheduleSweeps(deps: Deps) {
  Deno.cron("outbox sweep", "* * * * *", async () => {
    await deps.outbox.sweep();
  });
  Deno.cron("presence sweep", "* * * * *", async () => {
    await deps.hub.sweepPresence();
  });
  Deno.cron("interview sweep", "* * * * *", async () => {
    await sweepInterviews(deps);
  });
  Deno.cron("match sweep", "* * * * *", async () => {
    await sweepMatches(deps);
  });
  Deno.cron("reservation sweep", "* * * * *", async () => {
    await sweepReservations(deps);
  });
  Deno.cron("media sweep", "17 3 * * *", async () => {
    await sweepMedia(deps);
  });
}
