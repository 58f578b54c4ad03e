CREATE TABLE "interview_events" (
	"interview_id" text NOT NULL,
	"version" integer NOT NULL,
	"action" text NOT NULL,
	"actor_id" text,
	"from_state" text,
	"to_state" text NOT NULL,
	"at" timestamp with time zone NOT NULL,
	CONSTRAINT "interview_events_interview_id_version_pk" PRIMARY KEY("interview_id","version")
);
--> statement-breakpoint
CREATE TABLE "interviews" (
	"id" text PRIMARY KEY NOT NULL,
	"interviewer_id" text NOT NULL,
	"candidate_id" text NOT NULL,
	"skill" text NOT NULL,
	"prompt" text NOT NULL,
	"rubric" jsonb NOT NULL,
	"time_limit_minutes" integer NOT NULL,
	"state" text NOT NULL,
	"version" integer NOT NULL,
	"answer" text,
	"metrics" jsonb,
	"scores" jsonb,
	"feedback" text,
	"weighted_score" double precision,
	"passed" boolean,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	"started_at" timestamp with time zone,
	"expires_at" timestamp with time zone,
	"submitted_at" timestamp with time zone,
	"scored_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "interview_events" ADD CONSTRAINT "interview_events_interview_id_interviews_id_fk" FOREIGN KEY ("interview_id") REFERENCES "public"."interviews"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "interviews" ADD CONSTRAINT "interviews_interviewer_id_users_id_fk" FOREIGN KEY ("interviewer_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "interviews" ADD CONSTRAINT "interviews_candidate_id_users_id_fk" FOREIGN KEY ("candidate_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "interviews_by_interviewer_idx" ON "interviews" USING btree ("interviewer_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "interviews_by_candidate_idx" ON "interviews" USING btree ("candidate_id","created_at" DESC NULLS LAST,"id" DESC NULLS LAST);