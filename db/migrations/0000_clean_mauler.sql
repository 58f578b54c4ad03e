CREATE TABLE "users" (
	"id" text PRIMARY KEY NOT NULL,
	"email" text NOT NULL,
	"name" text NOT NULL,
	"password_hash" text NOT NULL,
	"gender" text DEFAULT 'undisclosed' NOT NULL,
	"role" text DEFAULT 'user' NOT NULL,
	"headline" text,
	"bio" text,
	"skills" text[] DEFAULT '{}'::text[] NOT NULL,
	"location" text,
	"verified_skills" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "users_email_unique" UNIQUE("email"),
	CONSTRAINT "users_gender_check" CHECK ("users"."gender" in ('female', 'male', 'nonbinary', 'undisclosed')),
	CONSTRAINT "users_role_check" CHECK ("users"."role" in ('user', 'admin'))
);
