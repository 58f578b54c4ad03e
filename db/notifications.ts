// Queries over notifications: record (collapsing repeats), list, count unread, mark read.
import { and, count, desc, eq, inArray, isNull, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/pg-core";
import { afterPosition } from "./keyset.ts";
import { decodeCursor, keysetPage, timeCursor } from "../cursor.ts";
import { newId } from "../ids.ts";
import { type Database, isForeignKeyViolation } from "./client.ts";
import {
  conversationMutes,
  NOTIFICATION_TYPES,
  type NotificationPrefs,
  type NotificationRow,
  notifications,
  type NotificationType,
  users,
} from "./schema.ts";

/**
 * Types where a repeat is news (another message, another comment): it raises the collapsed
 * notification again, unread, with its count bumped. A repeated follow or like changes nothing.
 */
const RESURFACING = new Set<NotificationType>(["message", "comment", "interview", "order"]);

/** About the user's own doings, told by the system: the actor is the user (an order paid). */
const ABOUT_ONESELF = new Set<NotificationType>(["order"]);

/** Whether `userId` is told of this at all: never of their own acts, except about themselves. */
export function isNotified(event: { userId: string; actorId: string; type: NotificationType }) {
  return event.userId !== event.actorId || ABOUT_ONESELF.has(event.type);
}

export interface NotificationEvent {
  userId: string;
  actorId: string;
  type: NotificationType;
  subjectId: string;
  /** Identifies the event: delivering it twice has one effect. */
  eventId: string;
  at: Date;
}

export interface NotificationView {
  id: string;
  type: NotificationType;
  actor: { id: string; name: string };
  subjectId: string;
  read: boolean;
  count: number;
  createdAt: string;
}

/**
 * Stores an event as a notification of `userId`, collapsing it into an existing one of the same
 * (actor, type, subject). Returns the notification when it is new or raised again; null when the
 * user is not told of it (isNotified), a repeat changes nothing, or either user no longer exists.
 */
export async function recordNotification(
  db: Database,
  event: NotificationEvent,
): Promise<NotificationView | null> {
  if (!isNotified(event)) return null;
  const values = {
    id: newId(event.at.getTime()),
    userId: event.userId,
    actorId: event.actorId,
    type: event.type,
    subjectId: event.subjectId,
    lastEventId: event.eventId,
    createdAt: event.at,
  };
  const target = [
    notifications.userId,
    notifications.actorId,
    notifications.type,
    notifications.subjectId,
  ];
  try {
    const insert = db.insert(notifications).values(values);
    const [row] = RESURFACING.has(event.type)
      ? await insert.onConflictDoUpdate({
        target,
        set: {
          count: sql`${notifications.count} + 1`,
          lastEventId: sql`excluded.last_event_id`,
          createdAt: sql`greatest(${notifications.createdAt}, excluded.created_at)`,
          readAt: null,
        },
        setWhere: sql`${notifications.lastEventId} <> excluded.last_event_id`,
      }).returning()
      : await insert.onConflictDoNothing({ target }).returning();
    if (!row) return null;
    const [actor] = await db.select({ id: users.id, name: users.name }).from(users)
      .where(eq(users.id, row.actorId));
    return view(row, actor);
  } catch (error) {
    if (isForeignKeyViolation(error)) return null;
    throw error;
  }
}

function view(row: NotificationRow, actor: { id: string; name: string }): NotificationView {
  return {
    id: row.id,
    type: row.type,
    actor,
    subjectId: row.subjectId,
    read: row.readAt !== null,
    count: row.count,
    createdAt: row.createdAt.toISOString(),
  };
}

const cursorShape = timeCursor;

/** Newest first; the cursor is the (createdAt, id) of the last item of the previous page. */
export async function listNotifications(
  db: Database,
  userId: string,
  options: { unread: boolean; cursor?: string; limit: number },
) {
  const after = options.cursor ? decodeCursor(options.cursor, cursorShape) : null;
  const rows = await db.select({ notification: notifications, actorName: users.name })
    .from(notifications)
    .innerJoin(users, eq(users.id, notifications.actorId))
    .where(and(
      eq(notifications.userId, userId),
      options.unread ? isNull(notifications.readAt) : undefined,
      afterPosition(notifications.createdAt, notifications.id, after),
    ))
    .orderBy(desc(notifications.createdAt), desc(notifications.id))
    .limit(options.limit + 1);
  return keysetPage(
    rows,
    options.limit,
    ({ notification, actorName }) =>
      view(notification, { id: notification.actorId, name: actorName }),
    ({ notification }) => [notification.createdAt.toISOString(), notification.id],
  );
}

export async function countUnread(db: Database, userId: string): Promise<number> {
  const [row] = await db.select({ count: count() }).from(notifications)
    .where(and(eq(notifications.userId, userId), isNull(notifications.readAt)));
  return row?.count ?? 0;
}

/** Marks the user's notifications read: the given ids (others' ids are ignored), or all. */
export async function markRead(db: Database, userId: string, ids: string[] | undefined, at: Date) {
  if (ids && ids.length === 0) return;
  await db.update(notifications).set({ readAt: at })
    .where(and(
      eq(notifications.userId, userId),
      isNull(notifications.readAt),
      ids ? inArray(notifications.id, ids) : undefined,
    ));
}

/** Types emailed to an offline member unless they say otherwise; the rest only if they ask. */
const EMAILED_BY_DEFAULT = new Set<NotificationType>([
  "message",
  "connection_request",
  "connection_accepted",
  "interview",
  "order",
  "moderation",
]);

export type Preferences = {
  inApp: Record<NotificationType, boolean>;
  email: Record<NotificationType, boolean>;
};

/** A member's stored choices with every type's default filled in. */
export function resolvePrefs(prefs: NotificationPrefs): Preferences {
  const each = (pick: (type: NotificationType) => boolean) =>
    Object.fromEntries(NOTIFICATION_TYPES.map((type) => [type, pick(type)])) as Record<
      NotificationType,
      boolean
    >;
  return {
    inApp: each((type) => prefs.inApp?.[type] ?? true),
    email: each((type) => prefs.email?.[type] ?? EMAILED_BY_DEFAULT.has(type)),
  };
}

export async function preferencesOf(db: Database, userId: string): Promise<Preferences | null> {
  const [row] = await db.select({ prefs: users.notificationPrefs }).from(users)
    .where(eq(users.id, userId));
  return row ? resolvePrefs(row.prefs) : null;
}

/** Merges `change` into the member's choices in one statement (concurrent changes both land). */
export async function changePreferences(db: Database, userId: string, change: NotificationPrefs) {
  const [row] = await db.update(users).set({
    notificationPrefs: sql`jsonb_build_object(
      'inApp', coalesce(${users.notificationPrefs} -> 'inApp', '{}'::jsonb) || ${
      JSON.stringify(change.inApp ?? {})
    }::jsonb,
      'email', coalesce(${users.notificationPrefs} -> 'email', '{}'::jsonb) || ${
      JSON.stringify(change.email ?? {})
    }::jsonb)`,
  }).where(eq(users.id, userId)).returning({ prefs: users.notificationPrefs });
  return row ? resolvePrefs(row.prefs) : null;
}

/**
 * What the notify job needs of a recipient, in one query: their email, name and choices, the
 * actor's name, and (for a message) whether they muted its conversation.
 */
export async function recipientOf(
  db: Database,
  event: { userId: string; actorId: string; type: NotificationType; subjectId: string },
) {
  const actor = alias(users, "actor");
  const [row] = await db.select({
    email: users.email,
    name: users.name,
    prefs: users.notificationPrefs,
    actorName: actor.name,
    muted: event.type === "message"
      ? sql<
        boolean
      >`exists (select 1 from ${conversationMutes} where ${conversationMutes.userId} = ${event.userId} and ${conversationMutes.conversationId} = ${event.subjectId})`
      : sql<boolean>`false`,
  }).from(users).leftJoin(actor, eq(actor.id, event.actorId)).where(eq(users.id, event.userId));
  return row ? { ...row, prefs: resolvePrefs(row.prefs) } : null;
}

/** Mutes (or unmutes) a conversation for a member; idempotent. */
export async function setMuted(
  db: Database,
  userId: string,
  conversationId: string,
  muted: boolean,
  at: Date,
) {
  if (muted) {
    await db.insert(conversationMutes).values({ userId, conversationId, createdAt: at })
      .onConflictDoNothing();
  } else {
    await db.delete(conversationMutes).where(
      and(
        eq(conversationMutes.userId, userId),
        eq(conversationMutes.conversationId, conversationId),
      ),
    );
  }
}

/** Turns every email off (the unsubscribe link), keeping the in-app choices. */
export async function stopEmails(db: Database, userId: string) {
  const off = Object.fromEntries(NOTIFICATION_TYPES.map((type) => [type, false]));
  return await changePreferences(db, userId, { email: off });
}
