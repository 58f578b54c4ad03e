CREATE TABLE "matches" (
	"id" text PRIMARY KEY NOT NULL,
	"intent" text NOT NULL,
	"offerer_id" text NOT NULL,
	"answerer_id" text NOT NULL,
	"version" integer NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"ends_at" timestamp with time zone NOT NULL,
	"ended_at" timestamp with time zone,
	"duration_seconds" integer,
	"end_reason" text,
	"ended_by" text,
	"outcome" text,
	"connected_at" timestamp with time zone,
	"video_approved_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "matches" ADD CONSTRAINT "matches_offerer_id_users_id_fk" FOREIGN KEY ("offerer_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "matches" ADD CONSTRAINT "matches_answerer_id_users_id_fk" FOREIGN KEY ("answerer_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "matches_by_offerer_idx" ON "matches" USING btree ("offerer_id","started_at" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "matches_by_answerer_idx" ON "matches" USING btree ("answerer_id","started_at" DESC NULLS LAST,"id" DESC NULLS LAST);