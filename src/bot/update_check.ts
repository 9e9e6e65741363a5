/**
 * What comes in from the network is checked before anything reads it: an update must have a
 * numeric `update_id` and exactly one payload, and the fields the bot reads (ids, names,
 * texts, entities, buttons' data, attached files) must have the types Telegram documents. An
 * update that does not is dropped with a warning and a metric, never handed to a feature
 * and never answered with an error that would make Telegram send it again. NUL characters,
 * which no Telegram text holds and Postgres refuses, are replaced on the way in.
 */
import type { Update } from "grammy/types";

/** The verdict on a body: the update to handle, or why it was refused. */
export type UpdateCheck = { ok: true; update: Update } | { ok: false; problem: string };

type Json = Record<string, unknown>;
/**
 * A field's rule: null when `value` follows it, else the problem as the path below the field and
 * what is wrong (`" is not a string"`, `".chat.id is not an integer"`). The caller puts its own
 * key in front on the way out, so an update that passes builds no path at all.
 */
type Rule = (value: unknown) => string | null;

const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const int: Rule = (v) => Number.isSafeInteger(v) ? null : " is not an integer";
const num: Rule = (v) => typeof v === "number" && Number.isFinite(v) ? null : " is not a number";
const str: Rule = (v) => typeof v === "string" ? null : " is not a string";
const bool: Rule = (v) => typeof v === "boolean" ? null : " is not a boolean";

/** An object whose listed fields follow their rules; `?` marks optional ones. */
function shape(fields: Record<string, Rule>): Rule {
  const entries = Object.entries(fields).map(([key, rule]) => {
    const optional = key.endsWith("?");
    return [optional ? key.slice(0, -1) : key, rule, optional] as const;
  });
  return (value) => {
    if (!isObject(value)) return " is not an object";
    for (const [key, rule, optional] of entries) {
      const field = value[key];
      if (field === undefined) {
        if (optional) continue;
        return `.${key} is missing`;
      }
      const problem = rule(field);
      if (problem) return `.${key}${problem}`;
    }
    return null;
  };
}

function list(rule: Rule, max = 1000): Rule {
  return (value) => {
    if (!Array.isArray(value)) return " is not an array";
    if (value.length > max) return ` has more than ${max} items`;
    for (let i = 0; i < value.length; i++) {
      const problem = rule(value[i]);
      if (problem) return `[${i}]${problem}`;
    }
    return null;
  };
}

const user = shape({
  id: int,
  "is_bot?": bool,
  "first_name?": str,
  "last_name?": str,
  "username?": str,
  "language_code?": str,
});
const chat = shape({ id: int, type: str, "title?": str, "username?": str, "is_forum?": bool });
const entity = shape({ type: str, offset: int, length: int });
const file = shape({ file_id: str, "file_unique_id?": str });
const messageFields = {
  message_id: int,
  "date?": num,
  chat,
  "from?": user,
  "sender_chat?": chat,
  "message_thread_id?": int,
  "text?": str,
  "caption?": str,
  "entities?": list(entity),
  "caption_entities?": list(entity),
  "media_group_id?": str,
  "photo?": list(file, 100),
  "document?": file,
  "video?": file,
  "voice?": file,
  "audio?": file,
  "animation?": file,
  "sticker?": file,
  "video_note?": file,
  "contact?": shape({ phone_number: str, "first_name?": str, "user_id?": int }),
  "forward_origin?": shape({ type: str }),
};
/** A message; the one it replies to is checked the same way, one level deep. */
const message = shape({ ...messageFields, "reply_to_message?": shape(messageFields) });
const callbackQuery = shape({
  id: str,
  from: user,
  "message?": shape({ message_id: int, chat, "date?": num }),
  "data?": str,
  "chat_instance?": str,
});
const memberUpdate = shape({
  chat,
  from: user,
  "date?": num,
  new_chat_member: shape({ status: str, user }),
  old_chat_member: shape({ status: str, user }),
});

/** Any other payload: grammY still reads its sender and chat (`ctx.from`, `ctx.chat`). */
const anyPayload = shape({ "from?": user, "chat?": chat, "user?": user });

/** The rules for the payload of each update type the bot handles. */
const PAYLOADS: Record<string, Rule> = {
  message,
  edited_message: message,
  channel_post: message,
  edited_channel_post: message,
  business_message: message,
  callback_query: callbackQuery,
  my_chat_member: memberUpdate,
  chat_member: memberUpdate,
};

/** The update types the bot knows by name; anything else is `other` in metrics and logs. */
export const KNOWN_UPDATE_TYPES: ReadonlySet<string> = new Set([
  ...Object.keys(PAYLOADS),
  "inline_query",
  "chosen_inline_result",
  "shipping_query",
  "pre_checkout_query",
  "poll",
  "poll_answer",
  "chat_join_request",
  "message_reaction",
  "message_reaction_count",
  "chat_boost",
  "removed_chat_boost",
  "business_connection",
  "edited_business_message",
  "deleted_business_messages",
  "purchased_paid_media",
]);

/** Checks a parsed body; see the module documentation. */
export function checkUpdate(value: unknown): UpdateCheck {
  if (!isObject(value)) return { ok: false, problem: "the body is not a JSON object" };
  if (!Number.isSafeInteger(value.update_id) || (value.update_id as number) < 0) {
    return { ok: false, problem: "update_id is not a non-negative integer" };
  }
  const keys = Object.keys(value).filter((key) => key !== "update_id");
  if (keys.length !== 1) {
    return { ok: false, problem: `an update has one payload, this one has ${keys.length}` };
  }
  const type = keys[0]!;
  const payload = value[type];
  const rule = Object.hasOwn(PAYLOADS, type) ? PAYLOADS[type]! : anyPayload;
  const problem = rule(payload);
  if (problem) return { ok: false, problem: `${type}${problem}` };
  if (!withoutNul(value, 0)) {
    return { ok: false, problem: `nested deeper than ${MAX_DEPTH} levels` };
  }
  return { ok: true, update: value as unknown as Update };
}

/** Real updates are a handful of levels deep; a hostile body may be thousands. */
const MAX_DEPTH = 32;

/**
 * Replaces, in place, every NUL character in `value`'s strings by U+FFFD (one UTF-16 unit for
 * another, so entity offsets hold). False when `value` is nested deeper than {@link MAX_DEPTH}.
 */
function withoutNul(value: unknown, depth: number): boolean {
  if (depth > MAX_DEPTH) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (typeof item === "string") value[i] = clean(item);
      else if (typeof item === "object" && item !== null && !withoutNul(item, depth + 1)) {
        return false;
      }
    }
  } else if (isObject(value)) {
    for (const key of Object.keys(value)) {
      const item = value[key];
      if (typeof item === "string") value[key] = clean(item);
      else if (typeof item === "object" && item !== null && !withoutNul(item, depth + 1)) {
        return false;
      }
    }
  }
  return true;
}

function clean(text: string): string {
  return text.includes("\0") ? text.replaceAll("\0", "\uFFFD") : text;
}
