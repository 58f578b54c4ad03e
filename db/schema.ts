// Drizzle tables: Postgres is the system of record for everything with history.
import { sql } from "drizzle-orm";
import {
  type AnyPgColumn,
  bigint,
  boolean,
  check,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";

export const GENDERS = ["female", "male", "nonbinary", "undisclosed"] as const;
export const ROLES = ["user", "admin"] as const;

export type Gender = (typeof GENDERS)[number];
export type Role = (typeof ROLES)[number];

/** A skill proven by a scored interview; the interview id is the evidence. */
export interface VerifiedSkill {
  skill: string;
  interviewId: string;
  verifiedAt: string;
}

export const users = pgTable("users", {
  id: text("id").primaryKey(),
  email: text("email").notNull().unique(),
  name: text("name").notNull(),
  passwordHash: text("password_hash").notNull(),
  /** When the owner confirmed `email` by its link; null until then (see docs: what waits on it). */
  emailVerifiedAt: timestamp("email_verified_at", { withTimezone: true, mode: "date" }),
  /** A new address asked for, which becomes `email` once its link is opened. */
  pendingEmail: text("pending_email"),
  gender: text("gender").$type<Gender>().notNull().default("undisclosed"),
  role: text("role").$type<Role>().notNull().default("user"),
  headline: text("headline"),
  bio: text("bio"),
  skills: text("skills").array().notNull().default(sql`'{}'::text[]`),
  location: text("location"),
  verifiedSkills: jsonb("verified_skills").$type<VerifiedSkill[]>().notNull().default([]),
  /** The profile photo: one of the user's own media (never removed while set here). */
  avatarMediaId: text("avatar_media_id").references((): AnyPgColumn => media.id),
  /** A short video on the profile: one of the user's own MP4 or WebM uploads. */
  videoMediaId: text("video_media_id").references((): AnyPgColumn => media.id),
  /** Granted by a paid membership order (null: no membership). */
  membershipTier: text("membership_tier"),
  membershipSince: timestamp("membership_since", { withTimezone: true, mode: "date" }),
  /** Last post, comment, like or profile edit: discovery's recency signal. */
  lastActiveAt: timestamp("last_active_at", { withTimezone: true, mode: "date" }).notNull()
    .defaultNow(),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  /**
   * An admin's suspension as KV decided it (written behind): since when, until when (null with
   * `suspendedAt` set: for good), and why. Its posts and comments are hidden, and it leaves
   * discovery and search, while it lasts.
   */
  suspendedAt: timestamp("suspended_at", { withTimezone: true, mode: "date" }),
  suspendedUntil: timestamp("suspended_until", { withTimezone: true, mode: "date" }),
  suspensionReason: text("suspension_reason"),
  /**
   * What the member wants to be told of, per notification type, in the app and by email
   * (`{ inApp: { like: false }, email: { message: true } }`); a type not named takes its default.
   */
  notificationPrefs: jsonb("notification_prefs").$type<NotificationPrefs>().notNull().default({}),
}, (table) => [
  check(
    "users_gender_check",
    sql`${table.gender} in ('female', 'male', 'nonbinary', 'undisclosed')`,
  ),
  check("users_role_check", sql`${table.role} in ('user', 'admin')`),
  index("users_by_avatar_idx").on(table.avatarMediaId).where(
    sql`${table.avatarMediaId} is not null`,
  ),
  index("users_by_video_idx").on(table.videoMediaId).where(
    sql`${table.videoMediaId} is not null`,
  ),
]);

export type UserRow = typeof users.$inferSelect;

export const NOTIFICATION_TYPES = [
  "follow",
  "like",
  "comment",
  "connection_request",
  "connection_accepted",
  "message",
  "interview",
  "order",
  /** An admin took down one's post or comment. */
  "moderation",
] as const;

export type NotificationType = (typeof NOTIFICATION_TYPES)[number];

/** A member's choices per notification type; a type not named takes its default. */
export interface NotificationPrefs {
  inApp?: Partial<Record<NotificationType, boolean>>;
  email?: Partial<Record<NotificationType, boolean>>;
}

/**
 * One row per (recipient, actor, type, subject): a repeat of the same event collapses into it.
 * `createdAt` is when it last happened; `count` how many distinct events it stands for.
 */
export const notifications = pgTable("notifications", {
  id: text("id").primaryKey(),
  userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  actorId: text("actor_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  type: text("type").$type<NotificationType>().notNull(),
  subjectId: text("subject_id").notNull(),
  count: integer("count").notNull().default(1),
  /** The event that last raised it: a redelivered event changes nothing. */
  lastEventId: text("last_event_id").notNull(),
  readAt: timestamp("read_at", { withTimezone: true, mode: "date" }),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull(),
}, (table) => [
  uniqueIndex("notifications_collapse_idx").on(
    table.userId,
    table.actorId,
    table.type,
    table.subjectId,
  ),
  index("notifications_by_user_idx").on(table.userId, table.createdAt.desc(), table.id.desc()),
  index("notifications_unread_idx").on(table.userId).where(sql`${table.readAt} is null`),
  // Only news about one's own doings (an order) comes from oneself.
  check(
    "notifications_self_check",
    sql`${table.userId} <> ${table.actorId} or ${table.type} = 'order'`,
  ),
]);

export type NotificationRow = typeof notifications.$inferSelect;

const at = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/** Who follows whom (one row per follow; following is idempotent). */
export const follows = pgTable("follows", {
  followerId: text("follower_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  followeeId: text("followee_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  createdAt: at("created_at").notNull(),
}, (table) => [
  primaryKey({ columns: [table.followerId, table.followeeId] }),
  index("follows_by_followee_idx").on(table.followeeId, table.createdAt.desc(), table.followerId),
  index("follows_by_follower_idx").on(table.followerId, table.createdAt.desc(), table.followeeId),
  check("follows_self_check", sql`${table.followerId} <> ${table.followeeId}`),
]);

export const CONNECTION_STATUSES = [
  "pending",
  "accepted",
  "rejected",
  "withdrawn",
  /** Ended by a block. */
  "ended",
] as const;

export type ConnectionStatus = (typeof CONNECTION_STATUSES)[number];

/**
 * Connection requests as KV last decided them (KV holds the live state; this is the history and
 * the listing). `version` orders the outbox writes: an older one never overwrites a newer one.
 */
export const connectionRequests = pgTable("connection_requests", {
  id: text("id").primaryKey(),
  fromUserId: text("from_user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  toUserId: text("to_user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  message: text("message"),
  status: text("status").$type<ConnectionStatus>().notNull(),
  version: integer("version").notNull(),
  createdAt: at("created_at").notNull(),
  updatedAt: at("updated_at").notNull(),
}, (table) => [
  index("connection_requests_from_idx").on(table.fromUserId, table.createdAt.desc(), table.id),
  index("connection_requests_to_idx").on(table.toUserId, table.createdAt.desc(), table.id),
]);

/** Every transition of a connection request: who moved it, from what, to what, when. */
export const connectionEvents = pgTable("connection_events", {
  requestId: text("request_id").notNull(),
  version: integer("version").notNull(),
  actorId: text("actor_id").notNull(),
  fromStatus: text("from_status").$type<ConnectionStatus>(),
  toStatus: text("to_status").$type<ConnectionStatus>().notNull(),
  at: at("at").notNull(),
}, (table) => [primaryKey({ columns: [table.requestId, table.version] })]);

/** Accepted connections, one row per direction, so "my connections" is one index range. */
export const connections = pgTable("connections", {
  userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  otherId: text("other_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  requestId: text("request_id").notNull(),
  since: at("since").notNull(),
}, (table) => [primaryKey({ columns: [table.userId, table.otherId] })]);

/** Blocks as KV decided them; read paths filter on them in both directions. */
export const blocks = pgTable("blocks", {
  blockerId: text("blocker_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  blockedId: text("blocked_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  createdAt: at("created_at").notNull(),
}, (table) => [
  primaryKey({ columns: [table.blockerId, table.blockedId] }),
  index("blocks_by_blocked_idx").on(table.blockedId, table.blockerId),
]);

export const reports = pgTable("reports", {
  id: text("id").primaryKey(),
  reporterId: text("reporter_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  postId: text("post_id"),
  reason: text("reason").notNull(),
  createdAt: at("created_at").notNull(),
  /** When an admin resolved it, who (no foreign key: the record outlives the account), and how. */
  resolvedAt: at("resolved_at"),
  resolvedBy: text("resolved_by"),
  resolutionNote: text("resolution_note"),
}, (table) => [index("reports_by_time_idx").on(table.createdAt.desc(), table.id.desc())]);

export const posts = pgTable("posts", {
  id: text("id").primaryKey(),
  authorId: text("author_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  text: text("text").notNull(),
  mediaIds: text("media_ids").array().notNull().default(sql`'{}'::text[]`),
  likeCount: integer("like_count").notNull().default(0),
  commentCount: integer("comment_count").notNull().default(0),
  createdAt: at("created_at").notNull(),
  updatedAt: at("updated_at").notNull(),
  /** When an admin took it down: hidden from everyone, its author told. */
  takenDownAt: at("taken_down_at"),
}, (table) => [
  index("posts_by_author_idx").on(table.authorId, table.createdAt.desc(), table.id.desc()),
  index("posts_by_time_idx").on(table.createdAt.desc(), table.id.desc()),
  check("posts_like_count_check", sql`${table.likeCount} >= 0`),
  check("posts_comment_count_check", sql`${table.commentCount} >= 0`),
]);

export type PostRow = typeof posts.$inferSelect;

/**
 * Every member's feed, written ahead: one row per post they see (their own, and those of the
 * members they follow or are connected with). Triggers on posts, follows and connections keep it
 * (migration 0009), so a feed page is one index range, whoever wrote the rows.
 */
export const feedEntries = pgTable("feed_entries", {
  viewerId: text("viewer_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  createdAt: at("created_at").notNull(),
  postId: text("post_id").notNull().references(() => posts.id, { onDelete: "cascade" }),
  authorId: text("author_id").notNull(),
}, (table) => [
  primaryKey({ columns: [table.viewerId, table.createdAt, table.postId] }),
  index("feed_entries_by_source_idx").on(table.viewerId, table.authorId),
  index("feed_entries_by_post_idx").on(table.postId),
]);

export const likes = pgTable("likes", {
  postId: text("post_id").notNull().references(() => posts.id, { onDelete: "cascade" }),
  userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  createdAt: at("created_at").notNull(),
}, (table) => [primaryKey({ columns: [table.postId, table.userId] })]);

export const comments = pgTable("comments", {
  id: text("id").primaryKey(),
  postId: text("post_id").notNull().references(() => posts.id, { onDelete: "cascade" }),
  authorId: text("author_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  text: text("text").notNull(),
  createdAt: at("created_at").notNull(),
  /** When an admin took it down: hidden from everyone, its author told. */
  takenDownAt: at("taken_down_at"),
}, (table) => [index("comments_by_post_idx").on(table.postId, table.createdAt, table.id)]);

/**
 * A private conversation of two users, created with its first message. `userA`/`userB` are the
 * pair sorted as JavaScript sorts strings (not by the database's collation).
 */
export const conversations = pgTable("conversations", {
  id: text("id").primaryKey(),
  userA: text("user_a").notNull().references(() => users.id, { onDelete: "cascade" }),
  userB: text("user_b").notNull().references(() => users.id, { onDelete: "cascade" }),
  /** Sequence number of the newest message (KV hands them out, one per message). */
  lastSeq: integer("last_seq").notNull(),
  createdAt: at("created_at").notNull(),
  lastMessageAt: at("last_message_at").notNull(),
}, (table) => [
  uniqueIndex("conversations_pair_idx").on(table.userA, table.userB),
]);

/** One row per participant: what they have read, and their conversation list order. */
export const conversationMembers = pgTable("conversation_members", {
  conversationId: text("conversation_id").notNull()
    .references(() => conversations.id, { onDelete: "cascade" }),
  userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  otherId: text("other_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  /** Every message up to this sequence number has been read by `userId`. */
  lastReadSeq: integer("last_read_seq").notNull().default(0),
  lastMessageAt: at("last_message_at").notNull(),
}, (table) => [
  primaryKey({ columns: [table.conversationId, table.userId] }),
  index("conversation_members_by_user_idx")
    .on(table.userId, table.lastMessageAt.desc(), table.conversationId.desc()),
]);

export const messages = pgTable("messages", {
  id: text("id").primaryKey(),
  conversationId: text("conversation_id").notNull()
    .references(() => conversations.id, { onDelete: "cascade" }),
  /** Position in the conversation: the order both participants see. */
  seq: integer("seq").notNull(),
  senderId: text("sender_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  text: text("text").notNull(),
  tempId: text("temp_id").notNull(),
  createdAt: at("created_at").notNull(),
  /** When the other participant's read marker first passed it (null: unread). */
  readAt: at("read_at"),
  /** The private files sent with it, in order (`message_media` records their use). */
  attachments: jsonb("attachments").$type<AttachmentRef[]>().notNull().default([]),
}, (table) => [uniqueIndex("messages_by_conversation_idx").on(table.conversationId, table.seq)]);

/** A file sent with a message, as the message keeps it. */
export interface AttachmentRef {
  id: string;
  /** The name the sender's file had (cleaned), shown and offered when saving it. */
  name: string;
  contentType: MediaType;
  size: number;
}

export type MessageRow = typeof messages.$inferSelect;

export const INTERVIEW_STATES = [
  "CREATED",
  "STARTED",
  "SUBMITTED",
  "EVALUATING",
  "SCORED",
  "CANCELLED",
  "EXPIRED",
] as const;

export type InterviewState = (typeof INTERVIEW_STATES)[number];

export interface RubricItem {
  criterion: string;
  weight: number;
}

export interface CriterionScore {
  criterion: string;
  score: number;
}

/** What the evaluation job measures by itself before the interviewer scores. */
export interface InterviewMetrics {
  answerLength: number;
  wordCount: number;
  /** Rubric criteria the answer mentions, and that as a share of the rubric (0..1). */
  criteriaMentioned: string[];
  rubricCoverage: number;
}

/**
 * Interviews as KV last decided them (KV holds the live state; this is the history and the
 * listing). `version` orders the outbox writes: an older one never overwrites a newer one.
 */
export const interviews = pgTable("interviews", {
  id: text("id").primaryKey(),
  interviewerId: text("interviewer_id").notNull()
    .references(() => users.id, { onDelete: "cascade" }),
  candidateId: text("candidate_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  skill: text("skill").notNull(),
  prompt: text("prompt").notNull(),
  rubric: jsonb("rubric").$type<RubricItem[]>().notNull(),
  timeLimitMinutes: integer("time_limit_minutes").notNull(),
  state: text("state").$type<InterviewState>().notNull(),
  version: integer("version").notNull(),
  answer: text("answer"),
  /** Files the candidate submitted with the answer (their own media). */
  mediaIds: text("media_ids").array().notNull().default(sql`'{}'::text[]`),
  metrics: jsonb("metrics").$type<InterviewMetrics>(),
  scores: jsonb("scores").$type<CriterionScore[]>(),
  feedback: text("feedback"),
  weightedScore: doublePrecision("weighted_score"),
  passed: boolean("passed"),
  createdAt: at("created_at").notNull(),
  updatedAt: at("updated_at").notNull(),
  startedAt: at("started_at"),
  expiresAt: at("expires_at"),
  submittedAt: at("submitted_at"),
  scoredAt: at("scored_at"),
}, (table) => [
  index("interviews_by_interviewer_idx")
    .on(table.interviewerId, table.createdAt.desc(), table.id.desc()),
  index("interviews_by_candidate_idx")
    .on(table.candidateId, table.createdAt.desc(), table.id.desc()),
]);

export type InterviewRow = typeof interviews.$inferSelect;

/** Every transition of an interview: who moved it (null: the system), from what, to what, when. */
export const interviewEvents = pgTable("interview_events", {
  interviewId: text("interview_id").notNull()
    .references(() => interviews.id, { onDelete: "cascade" }),
  version: integer("version").notNull(),
  action: text("action").notNull(),
  actorId: text("actor_id"),
  fromState: text("from_state").$type<InterviewState>(),
  toState: text("to_state").$type<InterviewState>().notNull(),
  at: at("at").notNull(),
}, (table) => [primaryKey({ columns: [table.interviewId, table.version] })]);

export const MATCH_OUTCOMES = ["timeout", "ended", "connected", "blocked"] as const;

export type MatchOutcome = (typeof MATCH_OUTCOMES)[number];

/**
 * Every match and how it went (KV holds the live call; this is the history). `version` orders the
 * outbox writes: an older one never overwrites a newer one. `outcome` is null while the call lasts.
 */
export const matches = pgTable("matches", {
  id: text("id").primaryKey(),
  intent: text("intent").notNull(),
  offererId: text("offerer_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  answererId: text("answerer_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  version: integer("version").notNull(),
  startedAt: at("started_at").notNull(),
  endsAt: at("ends_at").notNull(),
  endedAt: at("ended_at"),
  durationSeconds: integer("duration_seconds"),
  endReason: text("end_reason"),
  endedBy: text("ended_by"),
  outcome: text("outcome").$type<MatchOutcome>(),
  connectedAt: at("connected_at"),
  videoApprovedAt: at("video_approved_at"),
}, (table) => [
  index("matches_by_offerer_idx").on(table.offererId, table.startedAt.desc(), table.id.desc()),
  index("matches_by_answerer_idx").on(table.answererId, table.startedAt.desc(), table.id.desc()),
]);

/** The catalogue: what can be sold, at its list price. */
export const products = pgTable("products", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  description: text("description"),
  priceCents: integer("price_cents").notNull(),
  currency: text("currency").notNull(),
  createdBy: text("created_by").references(() => users.id, { onDelete: "set null" }),
  createdAt: at("created_at").notNull(),
  /** Set when an admin archives it: off the public lists, and no new sale may offer it. */
  archivedAt: at("archived_at"),
});

/** Flash sales as created (KV holds their live stock). */
export const sales = pgTable("sales", {
  id: text("id").primaryKey(),
  startsAt: at("starts_at").notNull(),
  endsAt: at("ends_at").notNull(),
  perUserLimit: integer("per_user_limit").notNull(),
  createdBy: text("created_by").references(() => users.id, { onDelete: "set null" }),
  createdAt: at("created_at").notNull(),
  /** The definition's version in KV: history keeps the newest (an older write changes nothing). */
  version: integer("version").notNull().default(1),
  /** When an admin called it off. */
  cancelledAt: at("cancelled_at"),
});

/** What a sale offers: each product once, with its starting stock and sale price. */
export const saleItems = pgTable("sale_items", {
  saleId: text("sale_id").notNull().references(() => sales.id, { onDelete: "cascade" }),
  productId: text("product_id").notNull().references(() => products.id),
  stock: integer("stock").notNull(),
  priceCents: integer("price_cents").notNull(),
  currency: text("currency").notNull(),
}, (table) => [primaryKey({ columns: [table.saleId, table.productId] })]);

export const RESERVATION_STATUSES = ["held", "sold", "released", "expired"] as const;
export type ReservationStatus = (typeof RESERVATION_STATUSES)[number];

/**
 * Every hold as KV last decided it. `version` orders the outbox writes: an older one never
 * overwrites a newer one.
 */
export const reservations = pgTable("reservations", {
  id: text("id").primaryKey(),
  saleId: text("sale_id").notNull().references(() => sales.id, { onDelete: "cascade" }),
  productId: text("product_id").notNull(),
  userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  quantity: integer("quantity").notNull(),
  amountCents: integer("amount_cents").notNull(),
  currency: text("currency").notNull(),
  status: text("status").$type<ReservationStatus>().notNull(),
  version: integer("version").notNull(),
  orderId: text("order_id"),
  expiresAt: at("expires_at").notNull(),
  createdAt: at("created_at").notNull(),
  updatedAt: at("updated_at").notNull(),
}, (table) => [index("reservations_by_sale_idx").on(table.saleId, table.status)]);

export const ORDER_STATUSES = ["pending", "paid", "expired", "refunded", "cancelled"] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** Orders as KV last decided them, newest first per buyer. */
export const orders = pgTable("orders", {
  id: text("id").primaryKey(),
  userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  kind: text("kind").$type<"reservation" | "membership">().notNull(),
  reservationId: text("reservation_id"),
  tier: text("tier"),
  description: text("description").notNull(),
  amountCents: integer("amount_cents").notNull(),
  currency: text("currency").notNull(),
  status: text("status").$type<OrderStatus>().notNull(),
  provider: text("provider").notNull(),
  version: integer("version").notNull(),
  createdAt: at("created_at").notNull(),
  updatedAt: at("updated_at").notNull(),
  paidAt: at("paid_at"),
  refundedAt: at("refunded_at"),
}, (table) => [
  index("orders_by_user_idx").on(table.userId, table.createdAt.desc(), table.id.desc()),
]);

/**
 * Every provider event applied to an order, once per provider event id, and what it did
 * (`paid`, `refunded`: money to return, `cancelled`, `ignored`).
 */
export const payments = pgTable("payments", {
  provider: text("provider").notNull(),
  eventId: text("event_id").notNull(),
  orderId: text("order_id").notNull().references(() => orders.id, { onDelete: "cascade" }),
  type: text("type").notNull(),
  amountCents: integer("amount_cents").notNull(),
  currency: text("currency").notNull(),
  outcome: text("outcome").notNull(),
  receivedAt: at("received_at").notNull(),
  /** When the decision it caused was committed (null on rows from before 0010). */
  processedAt: at("processed_at"),
  /** The provider's event as it sent it (JSON; up to 16 KiB, else a note of its size). */
  payload: jsonb("payload"),
}, (table) => [
  primaryKey({ columns: [table.provider, table.eventId] }),
  index("payments_by_order_idx").on(table.orderId),
]);

/** Conversations a member muted: no notification of their messages, in the app or by email. */
export const conversationMutes = pgTable("conversation_mutes", {
  userId: text("user_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  conversationId: text("conversation_id").notNull(),
  createdAt: at("created_at").notNull(),
}, (table) => [primaryKey({ columns: [table.userId, table.conversationId] })]);

/**
 * What admins did: one row per action that changed something (who, what, to what, when), written
 * behind the action by the outbox record its commit carries.
 */
export const adminActions = pgTable("admin_actions", {
  id: text("id").primaryKey(),
  /** The admin (no foreign key: the record outlives the account). */
  actorId: text("actor_id").notNull(),
  /** What was done: `sale.restock`, `order.refund`, `product.edit`, … */
  action: text("action").notNull(),
  subjectType: text("subject_type").notNull(),
  subjectId: text("subject_id").notNull(),
  /** What the action was given (the change, the units, the note). */
  detail: jsonb("detail"),
  at: at("at").notNull(),
}, (table) => [index("admin_actions_at_idx").on(table.at, table.id)]);

export const MEDIA_TYPES = [
  "image/png",
  "image/jpeg",
  "image/webp",
  "image/gif",
  "application/pdf",
  "video/mp4",
  "video/webm",
] as const;

export type MediaType = (typeof MEDIA_TYPES)[number];

/**
 * Uploaded files: the blob lives in storage under `<owner id>/<id>`. The tables that use a file
 * reference this row without cascading, so the database refuses to delete a file still in use.
 */
export const media = pgTable("media", {
  id: text("id").primaryKey(),
  ownerId: text("owner_id").notNull().references(() => users.id, { onDelete: "cascade" }),
  contentType: text("content_type").$type<MediaType>().notNull(),
  size: bigint("size", { mode: "number" }).notNull(),
  /** Hex SHA-256 of the bytes: the strong ETag. */
  sha256: text("sha256").notNull(),
  createdAt: at("created_at").notNull(),
  /**
   * A private file (a message attachment): never served at /media/:id, only to the
   * conversation's members through short-lived signed URLs.
   */
  private: boolean("private").notNull().default(false),
  /** The uploaded file's name, kept for attachments (null for public media). */
  name: text("name"),
}, (table) => [
  index("media_by_owner_idx").on(table.ownerId, table.createdAt.desc(), table.id.desc()),
  index("media_by_time_idx").on(table.createdAt, table.id),
]);

export type MediaRow = typeof media.$inferSelect;

/** Which post shows which file (the post's `media_ids` keeps their order). */
export const postMedia = pgTable("post_media", {
  postId: text("post_id").notNull().references(() => posts.id, { onDelete: "cascade" }),
  mediaId: text("media_id").notNull().references(() => media.id),
}, (table) => [
  primaryKey({ columns: [table.postId, table.mediaId] }),
  index("post_media_by_media_idx").on(table.mediaId),
]);

/** Which message carries which private file. */
export const messageMedia = pgTable("message_media", {
  messageId: text("message_id").notNull().references(() => messages.id, { onDelete: "cascade" }),
  mediaId: text("media_id").notNull().references(() => media.id),
}, (table) => [
  primaryKey({ columns: [table.messageId, table.mediaId] }),
  index("message_media_by_media_idx").on(table.mediaId),
]);

/** Which interview submission carries which file. */
export const interviewMedia = pgTable("interview_media", {
  interviewId: text("interview_id").notNull()
    .references(() => interviews.id, { onDelete: "cascade" }),
  mediaId: text("media_id").notNull().references(() => media.id),
}, (table) => [
  primaryKey({ columns: [table.interviewId, table.mediaId] }),
  index("interview_media_by_media_idx").on(table.mediaId),
]);
