// Jittered exponential backoff for commits that lost a versionstamp race and will decide again.

/** Waits up to 2^attempt ms (capped at `capMs`), at random, so racing writers spread out. */
export function backoff(attempt: number, capMs = 50): Promise<void> {
  const ms = Math.random() * Math.min(capMs, 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, ms));
}
