import type { Update } from "grammy/types";

/** Options of {@link textMessage}. */
export interface TextMessageOptions {
  /** The update's id. */
  updateId: number;
  /** The private chat, which is also the sender. */
  chatId: number;
  /** The message text; a leading `/command` gets its `bot_command` entity. */
  text: string;
  /** The sender's first name. @default "User" */
  firstName?: string;
  /** The sender's Telegram language; absent when not given, as for some real clients. */
  languageCode?: string;
  /** @default updateId */
  messageId?: number;
  /** Unix seconds. @default 0 */
  date?: number;
}

/** A private-chat text message update as Telegram sends it, for tests and benchmarks. */
export function textMessage(options: TextMessageOptions): Update {
  const { updateId, chatId, text, firstName = "User", languageCode } = options;
  const command = text.startsWith("/") ? text.split(/\s/, 1)[0]! : null;
  return {
    update_id: updateId,
    message: {
      message_id: options.messageId ?? updateId,
      date: options.date ?? 0,
      chat: { id: chatId, type: "private", first_name: firstName },
      from: {
        id: chatId,
        is_bot: false,
        first_name: firstName,
        ...(languageCode === undefined ? {} : { language_code: languageCode }),
      },
      text,
      ...(command
        ? { entities: [{ type: "bot_command", offset: 0, length: command.length }] }
        : {}),
    },
  } as Update;
}
