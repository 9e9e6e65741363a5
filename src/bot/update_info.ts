import type { Update } from "grammy/types";
import { KNOWN_UPDATE_TYPES } from "./update_check.ts";

/** The payload's field name: the one field besides `update_id`. */
function payloadKey(update: Update): string | undefined {
  for (const key in update) if (key !== "update_id") return key;
  return undefined;
}

/**
 * The kind of an update, e.g. `message`: its one field besides `update_id` when that is a type
 * Telegram documents, else `other` (a metric label must never come from the network as is).
 */
export function updateType(update: Update): string {
  const key = payloadKey(update);
  return key !== undefined && KNOWN_UPDATE_TYPES.has(key) ? key : "other";
}

/** The parts of a payload that name its chat and sender; unchecked for unknown update types. */
interface Payload {
  chat?: { id?: unknown } | null;
  message?: { chat?: { id?: unknown } | null } | null;
  from?: { id?: unknown } | null;
  user?: { id?: unknown } | null;
}

/** `value` when it is an id (a safe integer), else undefined. */
function idOf(value: unknown): number | undefined {
  return Number.isSafeInteger(value) ? value as number : undefined;
}

/** The chat and the sender of an update, as far as it has them; also what its log lines carry. */
export function updateIds(update: Update): { chat_id?: number; user_id?: number } {
  const key = payloadKey(update);
  const payload = key === undefined
    ? undefined
    : (update as unknown as Record<string, Payload | null | undefined>)[key];
  if (payload === undefined || payload === null || typeof payload !== "object") return {};
  const chat = idOf(payload.chat?.id) ?? idOf(payload.message?.chat?.id);
  const user = idOf(payload.from?.id) ?? idOf(payload.user?.id);
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
