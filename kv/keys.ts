// Every Deno KV key shape, as builder functions: the one place key layouts are defined.
// User input only ever appears as a single key part, never as a prefix a caller can widen.

/** Session generation of a user: tokens of older generations are dead. */
export const sessionGenerationKey = (userId: string) => ["session_generation", userId] as const;

/** A revoked token id, kept until the token would have expired anyway. */
export const revokedTokenKey = (jti: string) => ["revoked_token", jti] as const;

/** A cached value of the KV cache adapter. */
export const cacheKey = (key: string) => ["cache", key] as const;

/** Probe key used by /readyz. */
export const readinessKey = () => ["readiness"] as const;

/** A deduplication id of an enqueued job, held while the job may still be pending. */
export const jobDedupeKey = (dedupeId: string) => ["job_dedupe", dedupeId] as const;

/** A job message that exhausted its deliveries (KV queue `keysIfUndelivered`). */
export const deadLetterKey = (jobId: string) => ["dead_letter", jobId] as const;
