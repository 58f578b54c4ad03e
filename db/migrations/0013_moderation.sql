ALTER TABLE "comments" ADD COLUMN "taken_down_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "posts" ADD COLUMN "taken_down_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "reports" ADD COLUMN "resolved_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "reports" ADD COLUMN "resolved_by" text;--> statement-breakpoint
ALTER TABLE "reports" ADD COLUMN "resolution_note" text;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "suspended_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "suspended_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "users" ADD COLUMN "suspension_reason" text;--> statement-breakpoint
CREATE OR REPLACE FUNCTION "feed_page"("viewer" text, "before_at" timestamptz, "before_id" text, "size" int)
RETURNS TABLE ("id" text, "author_id" text, "author_name" text, "text" text, "media_ids" text[],
  "like_count" int, "comment_count" int, "liked_by_me" boolean, "created_at" text, "updated_at" text)
LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN QUERY SELECT "p"."id", "p"."author_id", "u"."name", "p"."text", "p"."media_ids",
    "p"."like_count", "p"."comment_count",
    EXISTS (SELECT 1 FROM "likes" WHERE "likes"."post_id" = "p"."id" AND "likes"."user_id" = "viewer"),
    to_char("p"."created_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    to_char("p"."updated_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  FROM "feed_entries" "f" JOIN "posts" "p" ON "p"."id" = "f"."post_id"
  JOIN "users" "u" ON "u"."id" = "f"."author_id"
  WHERE "f"."viewer_id" = "viewer" AND ("f"."created_at", "f"."post_id") < ("before_at", "before_id")
    AND "p"."taken_down_at" IS NULL
    AND ("u"."suspended_at" IS NULL OR "u"."suspended_until" <= now())
    AND NOT EXISTS (SELECT 1 FROM "blocks" "b"
      WHERE ("b"."blocker_id" = "viewer" AND "b"."blocked_id" = "f"."author_id")
         OR ("b"."blocker_id" = "f"."author_id" AND "b"."blocked_id" = "viewer"))
  ORDER BY "f"."created_at" DESC, "f"."post_id" DESC LIMIT "size";
END $$;
