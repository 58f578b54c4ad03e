// Drizzle tables: Postgres is the system of record for everything with history.
import { sql } from "drizzle-orm";
import {
  check,
  index,
  integer,
  jsonb,
  pgTable,
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
  gender: text("gender").$type<Gender>().notNull().default("undisclosed"),
  role: text("role").$type<Role>().notNull().default("user"),
  headline: text("headline"),
  bio: text("bio"),
  skills: text("skills").array().notNull().default(sql`'{}'::text[]`),
  location: text("location"),
  verifiedSkills: jsonb("verified_skills").$type<VerifiedSkill[]>().notNull().default([]),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
}, (table) => [
  check(
    "users_gender_check",
    sql`${table.gender} in ('female', 'male', 'nonbinary', 'undisclosed')`,
  ),
  check("users_role_check", sql`${table.role} in ('user', 'admin')`),
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
] as const;

export type NotificationType = (typeof NOTIFICATION_TYPES)[number];

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
  check("notifications_self_check", sql`${table.userId} <> ${table.actorId}`),
]);

export type NotificationRow = typeof notifications.$inferSelect;
