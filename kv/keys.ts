// Every Deno KV key shape, as builder functions: the one place key layouts are defined.
// User input only ever appears as a single key part, never as a prefix a caller can widen.

/**
 * Deno KV reads at most this many keys in one `getMany` (more throws): a decision that checks more
 * reads them in batches sent at once, which is still one round trip.
 */
export const GET_MANY_LIMIT = 10;

/** Deno KV checks at most this many versionstamps in one atomic commit (more throws). */
export const KV_CHECK_LIMIT = 100;

/** Session generation of a user: tokens of older generations are dead. */
export const sessionGenerationKey = (userId: string) => ["session_generation", userId] as const;

/** A revoked token id, kept until the token would have expired anyway. */
export const revokedTokenKey = (jti: string) => ["revoked_token", jti] as const;

/** A session as its owner sees it in their list (created, where from), until its token expires. */
export const sessionRecordKey = (userId: string, jti: string) =>
  ["session_record", userId, jti] as const;
export const sessionRecordPrefix = (userId: string) => ["session_record", userId] as const;
/** When a session was last seen (ms), kept apart so that seeing it rewrites only a number. */
export const sessionSeenKey = (userId: string, jti: string) =>
  ["session_seen", userId, jti] as const;

/** A member's standing: present while an admin's suspension of them lasts (see kv/moderation.ts). */
export const memberStandingKey = (userId: string) => ["member_standing", userId] as const;

/** An emailed link's token (a reset, a confirmation), by its SHA-256 (never the token itself). */
export const emailLinkKey = (kind: string, tokenHash: string) =>
  ["email_link", kind, tokenHash] as const;
/** The one token of a kind a user has that is still good: asking again ends the one before. */
export const emailLinkUserKey = (kind: string, userId: string) =>
  ["email_link_user", kind, userId] as const;

/** A cached value of the KV cache adapter. */
export const cacheKey = (key: string) => ["cache", key] as const;

/** Probe key used by /readyz. */
export const readinessKey = () => ["readiness"] as const;

/** A deduplication id of an enqueued job, held while the job may still be pending. */
export const jobDedupeKey = (dedupeId: string) => ["job_dedupe", dedupeId] as const;

/** A job message that exhausted its deliveries (KV queue `keysIfUndelivered`). */
export const deadLetterKey = (jobId: string) => [...deadLetterPrefix(), jobId] as const;
export const deadLetterPrefix = () => ["dead_letter"] as const;

/** Set when a job has run to completion: later deliveries of the same job id do nothing. */
export const jobDoneKey = (jobId: string) => ["job_done", jobId] as const;

/** Held while one delivery of a job runs, so a concurrent duplicate waits instead of running. */
export const jobLeaseKey = (jobId: string) => ["job_lease", jobId] as const;

/** How often a job has failed so far, and its last error. */
export const jobFailureKey = (jobId: string) => ["job_failure", jobId] as const;

/** A side effect decided by a commit and not yet applied (the transactional outbox). */
export const outboxKey = (recordId: string) => [...outboxPrefix(), recordId] as const;
export const outboxPrefix = () => ["outbox"] as const;

/** An email kept by the development mail outbox instead of being sent. */
export const devMailKey = (messageId: string) => [...devMailPrefix(), messageId] as const;
export const devMailPrefix = () => ["dev_mail"] as const;

/** The live connection request of an unordered pair (while pending or accepted); ids sorted. */
export const connectionPairKey = (userId: string, otherId: string) =>
  ["connection_pair", ...[userId, otherId].sort()] as const;

/**
 * `userId` is connected with `otherId` (both directions are written): a user's connections, the
 * audience of their presence, listed from KV so no socket waits on Postgres for them.
 */
export const connectionKey = (userId: string, otherId: string) =>
  [...connectionPrefix(userId), otherId] as const;
export const connectionPrefix = (userId: string) => ["connection", userId] as const;

/** Marks one-time data migrations of KV as done (e.g. the connection index filled from Postgres). */
export const migrationKey = (name: string) => ["migration", name] as const;

/** The profile facts hot paths need (matchmaking: name and gender), kept beside the user's row. */
export const memberCardKey = (userId: string) => ["member_card", userId] as const;

/** A connection request's current state and version. */
export const connectionRequestKey = (requestId: string) =>
  ["connection_request", requestId] as const;

/** `blockerId` blocked `blockedId` (one key per direction; a pair is blocked if either exists). */
export const blockKey = (blockerId: string, blockedId: string) =>
  ["block", blockerId, blockedId] as const;

/** A private file uploaded to be sent in a message: whose it is, and where it was sent. */
export const attachmentKey = (mediaId: string) => ["attachment", mediaId] as const;

/** The sequence number of a user's newest durable event; changes on every append (watched). */
export const eventHeadKey = (userId: string) => ["event_head", userId] as const;

/** One durable event of a user's log, ordered by its sequence number. */
export const eventKey = (userId: string, seq: number) => [...eventPrefix(userId), seq] as const;
export const eventPrefix = (userId: string) => ["event", userId] as const;

/** A chat message's `tempId` as its sender used it: re-sending it returns the same message. */
export const chatTempKey = (senderId: string, tempId: string) =>
  ["chat_temp", senderId, tempId] as const;

/** The conversation of an unordered pair and its last message sequence number; ids sorted. */
export const conversationPairKey = (userId: string, otherId: string) =>
  ["conversation_pair", ...[userId, otherId].sort()] as const;

/** A user's presence: status and the sockets holding it, each with its expiry. */
export const presenceKey = (userId: string) => [...presencePrefix(), userId] as const;
export const presencePrefix = () => ["presence"] as const;

/** An interview's current state, version and content. */
export const interviewKey = (interviewId: string) => ["interview", interviewId] as const;

/**
 * An interview waiting for a move of the system (expiry at its deadline, evaluation after its
 * submission), ordered by when that move is due, so the sweep reads only what is overdue.
 */
export const interviewDueKey = (dueAt: number, interviewId: string) =>
  [...interviewDuePrefix(), dueAt, interviewId] as const;
export const interviewDuePrefix = () => ["interview_due"] as const;

/**
 * A member waiting for a match of `intent`, ordered by when they joined. The intent is one key
 * part (validated as a slug), so a caller can never widen a listing to another queue.
 */
export const matchQueueKey = (intent: string, joinedAt: number, userId: string) =>
  [...matchQueuePrefix(intent), joinedAt, userId] as const;
export const matchQueuePrefix = (intent: string) => [...matchQueuesPrefix(), intent] as const;
export const matchQueuesPrefix = () => ["match_queue"] as const;

/** Where a member is in matchmaking: queuing (and where) or in a call (and which); absent: idle. */
export const matchMemberKey = (userId: string) => ["match_member", userId] as const;

/** A match's current state, version, participants and safety decisions. */
export const matchKey = (matchId: string) => ["match", matchId] as const;

/** A live match, ordered by when its call ends, so the sweep reads only overdue calls. */
export const matchDueKey = (endsAt: number, matchId: string) =>
  [...matchDuePrefix(), endsAt, matchId] as const;
export const matchDuePrefix = () => ["match_due"] as const;

/** Two members matched recently (until the cooldown passes), never paired again before; ids sorted. */
export const recentMatchKey = (userId: string, otherId: string) =>
  ["recent_match", ...[userId, otherId].sort()] as const;

/** A flash sale's definition: window, per-user limit, items with price and starting stock. */
export const saleKey = (saleId: string) => ["sale", saleId] as const;

/**
 * Units of one sale item left in one shard of its stock (a `Deno.KvU64`). Buyers take from any
 * shard with stock, each with a checked commit; returned units are added back with `sum`.
 */
export const saleStockKey = (saleId: string, productId: string, shard: number) =>
  ["sale_stock", saleId, productId, shard] as const;

/** Set by every commit that changes a sale's stock (never checked): the key rooms watch. */
export const saleStockHeadKey = (saleId: string) => ["sale_stock_head", saleId] as const;

/** A sale's latest purchase, for its live feed: `{ seq, item, place, at }` (never who). */
export const salePurchaseKey = (saleId: string) => ["sale_purchase", saleId] as const;

/** Units a buyer holds or has bought in a sale (a `Deno.KvU64`), checked against the limit. */
export const saleBuyerKey = (saleId: string, userId: string) =>
  ["sale_buyer", saleId, userId] as const;

/** A reservation's current state, version and what it took from which shard. */
export const reservationKey = (reservationId: string) => ["reservation", reservationId] as const;

/** A held reservation, ordered by when it expires, so the sweep reads only overdue holds. */
export const reservationDueKey = (expiresAt: number, reservationId: string) =>
  [...reservationDuePrefix(), expiresAt, reservationId] as const;
export const reservationDuePrefix = () => ["reservation_due"] as const;

/** A buyer's `Idempotency-Key` for reservations: a retried request gets the same hold. */
export const reservationIdempotencyKey = (userId: string, key: string) =>
  ["reservation_idempotency", userId, key] as const;

/** An order's current state and version (orders for sale items and memberships alike). */
export const orderKey = (orderId: string) => ["order", orderId] as const;

/** A payment provider's event that has been applied: a repeated delivery changes nothing. */
export const paymentEventKey = (provider: string, eventId: string) =>
  ["payment_event", provider, eventId] as const;

/** A notification waiting for its member's next email digest. */
export const digestItemKey = (userId: string, eventId: string) =>
  ["digest_item", userId, eventId] as const;
export const digestItemPrefix = (userId: string) => ["digest_item", userId] as const;
/** When the member's next digest is due (ms): set while one is scheduled. */
export const digestDueKey = (userId: string) => ["digest_due", userId] as const;
