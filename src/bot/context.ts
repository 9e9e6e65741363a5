import type { Context } from "grammy";
import type { Locale } from "../config.ts";
import type { UserRow } from "../db/users.ts";
import type { Logger } from "../log.ts";
import type { Json } from "../store/store.ts";
import type { DialogSession } from "./dialog/session.ts";
import type { MessageKey } from "./i18n.ts";

/** What the pipeline adds to grammY's context for every feature. */
export interface PipelineFlavor {
  /** A logger bound to this update's id, chat, user and type. */
  log: Logger;
  /** The language this update is answered in. */
  locale: Locale;
  /** Translates `key` into {@link locale}. */
  t(key: MessageKey, params?: Record<string, string | number>): string;
  /** The update's kind, e.g. `message` or `callback_query`. */
  updateType: string;
  /** The sender's stored profile; null for updates without a sender or when unavailable. */
  user: UserRow | null;
  /** The sender's dialog state in this chat (see `dialog/dialog.ts` for the typed API). */
  dialog: DialogSession;
  /**
   * The sender's cached profile as the gate read it in the same round trip (null: not
   * cached); undefined when the gate did not read it (not a private chat, or no gate).
   */
  cachedProfile: Json | undefined;
  /** How handling ended: set by the errors stage when a feature failed, by the gate when it dropped the update. */
  outcome: "handled" | "error" | "duplicate" | "limited" | "banned";
}

/** The context every middleware of the bot receives. */
export type BotContext = Context & PipelineFlavor;
