// How events reach connected clients live. This is the hook the realtime hub plugs into; until a
// hub is connected, `offline` drops live pushes (the notification itself is already stored).
import type { NotificationView } from "../db/notifications.ts";

export interface Live {
  /** A notification was stored for `userId` (new, or raised again). */
  notification(userId: string, notification: NotificationView): Promise<void>;
}

export const offline: Live = {
  notification: () => Promise.resolve(),
};
