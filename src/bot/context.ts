import { Context } from "grammy";
import { type Locale, SUPPORTED_LOCALES } from "../config.ts";
import type { UserRow } from "../db/users.ts";
import { type Logger, logger } from "../log.ts";
import type { Json } from "../store/store.ts";
import type { DialogSession } from "./dialog/session.ts";
import { type MessageKey, translate } from "./i18n.ts";
import { updateIds } from "./update_info.ts";

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

/** The logger every update's own logger is bound from. */
export const UPDATE_LOG: Logger = logger("update");

/** A translator into one locale. */
type Translator = PipelineFlavor["t"];

/** One translator per locale, made once: what `ctx.t` hands out. */
const TRANSLATORS = Object.fromEntries(
  SUPPORTED_LOCALES.map((locale): [Locale, Translator] => [
    locale,
    (key, params) => translate(locale, key, params),
  ]),
) as Record<Locale, Translator>;

/**
 * The context grammY makes for each update of the bot (`ContextConstructor`): the pipeline's
 * additions that need no per-update work are accessors on the class instead of closures and
 * objects the context stage made for every update. `t` is the translator of the `locale` at the
 * time it is read (features pass it on as a plain function), one made once per locale; `log` is
 * bound to the update's ids on first use, so an update that logs nothing costs no logger. Both
 * may be replaced for the rest of the update by assigning them.
 */
export class PipelineContext extends Context implements PipelineFlavor {
  declare locale: Locale;
  declare updateType: string;
  declare user: UserRow | null;
  declare dialog: DialogSession;
  declare cachedProfile: Json | undefined;
  declare outcome: PipelineFlavor["outcome"];
  #log: Logger | undefined;
  #t: Translator | undefined;

  get t(): Translator {
    return this.#t ?? TRANSLATORS[this.locale];
  }

  set t(t: Translator) {
    this.#t = t;
  }

  get log(): Logger {
    this.#log ??= UPDATE_LOG.with({
      update_id: this.update.update_id,
      update_type: this.updateType,
      ...updateIds(this.update),
    });
    return this.#log;
  }

  set log(log: Logger) {
    this.#log = log;
  }
}
