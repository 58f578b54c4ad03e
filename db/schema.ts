// Drizzle tables: Postgres is the system of record for everything with history.
import { sql } from "drizzle-orm";
import { check, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";

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
