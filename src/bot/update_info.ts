import type { Update } from "grammy/types";

/** The kind of an update: its one field besides `update_id`. */
export function updateType(update: Update): string {
  return Object.keys(update).find((key) => key !== "update_id") ?? "unknown";
}

interface Payload {
  chat?: { id: number };
  message?: { chat?: { id: number } };
  from?: { id: number };
  user?: { id: number };
}

/** The chat and the sender of an update, as far as it has them; also what its log lines carry. */
export function updateIds(update: Update): { chat_id?: number; user_id?: number } {
  const payload = (update as unknown as Record<string, Payload | undefined>)[updateType(update)];
  if (payload === undefined || typeof payload !== "object") return {};
  const chat = payload.chat?.id ?? payload.message?.chat?.id;
  const user = payload.from?.id ?? payload.user?.id;
  return {
    ...(chat === undefined ? {} : { chat_id: chat }),
    ...(user === undefined ? {} : { user_id: user }),
  };
}

/**
 * The chat an update belongs to, for ordering: updates with the same key are handled one
 * after another. Falls back to the sender for updates without a chat; `null` for updates
 * that belong to nobody (e.g. poll state), which need no order.
 */
export function chatKey(update: Update): string | null {
  const { chat_id, user_id } = updateIds(update);
  if (chat_id !== undefined) return `chat:${chat_id}`;
  return user_id === undefined ? null : `user:${user_id}`;
}
