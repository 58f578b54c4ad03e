CREATE TABLE "feed_entries" (
	"viewer_id" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"post_id" text NOT NULL,
	"author_id" text NOT NULL,
	CONSTRAINT "feed_entries_viewer_id_created_at_post_id_pk" PRIMARY KEY("viewer_id","created_at","post_id")
);
--> statement-breakpoint
ALTER TABLE "feed_entries" ADD CONSTRAINT "feed_entries_viewer_id_users_id_fk" FOREIGN KEY ("viewer_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "feed_entries" ADD CONSTRAINT "feed_entries_post_id_posts_id_fk" FOREIGN KEY ("post_id") REFERENCES "public"."posts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "feed_entries_by_source_idx" ON "feed_entries" USING btree ("viewer_id","author_id");--> statement-breakpoint
CREATE INDEX "feed_entries_by_post_idx" ON "feed_entries" USING btree ("post_id");--> statement-breakpoint
-- Feed entries follow posts, follows and connections, whoever writes them. A post's audience and
-- a new source's posts are read after taking the author's row lock (a post: FOR NO KEY UPDATE; a
-- follow or connection: FOR SHARE, which two follows of one member do not contend for): so a post
-- racing a new follow of its author is written ahead by whichever commits second, never neither.
CREATE FUNCTION "feed_entries_of_new_posts"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM "users" WHERE "id" IN (SELECT "author_id" FROM "added") ORDER BY "id" FOR NO KEY UPDATE;
  INSERT INTO "feed_entries" ("viewer_id", "created_at", "post_id", "author_id")
  SELECT "audience"."id", "added"."created_at", "added"."id", "added"."author_id" FROM "added"
  CROSS JOIN LATERAL (
    SELECT "added"."author_id" AS "id"
    UNION SELECT "follower_id" FROM "follows" WHERE "followee_id" = "added"."author_id"
    UNION SELECT "other_id" FROM "connections" WHERE "user_id" = "added"."author_id"
  ) AS "audience"
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "feed_entries_of_new_posts" AFTER INSERT ON "posts" REFERENCING NEW TABLE AS "added"
FOR EACH STATEMENT EXECUTE FUNCTION "feed_entries_of_new_posts"();
--> statement-breakpoint
-- A new source (a follow, or a connection's row for one side): its author's posts join the
-- viewer's feed. TG_ARGV names the table's viewer and author columns.
CREATE FUNCTION "feed_entries_of_new_sources"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('SELECT 1 FROM "users" WHERE "id" IN (SELECT %I FROM "added") ORDER BY "id" FOR SHARE', TG_ARGV[1]);
  EXECUTE format($sql$
    INSERT INTO "feed_entries" ("viewer_id", "created_at", "post_id", "author_id")
    SELECT "added".%1$I, "posts"."created_at", "posts"."id", "posts"."author_id"
    FROM "added" JOIN "posts" ON "posts"."author_id" = "added".%2$I
    ON CONFLICT DO NOTHING$sql$, TG_ARGV[0], TG_ARGV[1]);
  RETURN NULL;
END $$;
--> statement-breakpoint
-- A source ended: its author's posts leave the viewer's feed, unless the viewer still follows or
-- is connected with the author.
CREATE FUNCTION "feed_entries_of_ended_sources"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('SELECT 1 FROM "users" WHERE "id" IN (SELECT %I FROM "removed") ORDER BY "id" FOR SHARE', TG_ARGV[1]);
  EXECUTE format($sql$
    DELETE FROM "feed_entries" USING "removed"
    WHERE "feed_entries"."viewer_id" = "removed".%1$I AND "feed_entries"."author_id" = "removed".%2$I
      AND NOT EXISTS (SELECT 1 FROM "follows"
        WHERE "follower_id" = "removed".%1$I AND "followee_id" = "removed".%2$I)
      AND NOT EXISTS (SELECT 1 FROM "connections"
        WHERE "user_id" = "removed".%1$I AND "other_id" = "removed".%2$I)$sql$,
    TG_ARGV[0], TG_ARGV[1]);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "feed_entries_of_new_follows" AFTER INSERT ON "follows" REFERENCING NEW TABLE AS "added"
FOR EACH STATEMENT EXECUTE FUNCTION "feed_entries_of_new_sources"('follower_id', 'followee_id');
--> statement-breakpoint
CREATE TRIGGER "feed_entries_of_ended_follows" AFTER DELETE ON "follows" REFERENCING OLD TABLE AS "removed"
FOR EACH STATEMENT EXECUTE FUNCTION "feed_entries_of_ended_sources"('follower_id', 'followee_id');
--> statement-breakpoint
CREATE TRIGGER "feed_entries_of_new_connections" AFTER INSERT ON "connections" REFERENCING NEW TABLE AS "added"
FOR EACH STATEMENT EXECUTE FUNCTION "feed_entries_of_new_sources"('user_id', 'other_id');
--> statement-breakpoint
CREATE TRIGGER "feed_entries_of_ended_connections" AFTER DELETE ON "connections" REFERENCING OLD TABLE AS "removed"
FOR EACH STATEMENT EXECUTE FUNCTION "feed_entries_of_ended_sources"('user_id', 'other_id');
--> statement-breakpoint
-- The feeds of what was already there.
INSERT INTO "feed_entries" ("viewer_id", "created_at", "post_id", "author_id")
SELECT "source"."viewer", "posts"."created_at", "posts"."id", "posts"."author_id"
FROM (
  SELECT "id" AS "viewer", "id" AS "author" FROM "users"
  UNION SELECT "follower_id", "followee_id" FROM "follows"
  UNION SELECT "user_id", "other_id" FROM "connections"
) AS "source" JOIN "posts" ON "posts"."author_id" = "source"."author"
ON CONFLICT DO NOTHING;
--> statement-breakpoint
-- A page of `viewer`'s feed, newest first, strictly before (`before_at`, `before_id`) (the first
-- page: before ('infinity', '')), without authors blocked either way. A function so that its plan is
-- made once per connection: planning these joins for every request cost more than running them.
CREATE FUNCTION "feed_page"("viewer" text, "before_at" timestamptz, "before_id" text, "size" int)
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
    AND NOT EXISTS (SELECT 1 FROM "blocks" "b"
      WHERE ("b"."blocker_id" = "viewer" AND "b"."blocked_id" = "f"."author_id")
         OR ("b"."blocker_id" = "f"."author_id" AND "b"."blocked_id" = "viewer"))
  ORDER BY "f"."created_at" DESC, "f"."post_id" DESC LIMIT "size";
END $$;
