// Jittered exponential backoff for commits that lost a versionstamp race and will decide again,
// and the answer once a decision has lost too many races in a row.
import { Busy } from "../errors.ts";

/** Waits up to 2^attempt ms (capped at `capMs`), at random, so racing writers spread out. */
export function backoff(attempt: number, capMs = 50): Promise<void> {
  const ms = Math.random() * Math.min(capMs, 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** 503 `busy` for a decision whose commits kept losing races: `what` changed too often at once. */
export function busy(what: string) {
  return new Busy(what);
}
