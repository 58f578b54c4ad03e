ALTER TABLE "users" ADD COLUMN "video_media_id" text;--> statement-breakpoint
ALTER TABLE "users" ADD CONSTRAINT "users_video_media_id_media_id_fk" FOREIGN KEY ("video_media_id") REFERENCES "public"."media"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "users_by_video_idx" ON "users" USING btree ("video_media_id") WHERE "users"."video_media_id" is not null;