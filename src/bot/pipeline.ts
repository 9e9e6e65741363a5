import { Bot, type MiddlewareFn } from "grammy";
import type { UserFromGetMe } from "grammy/types";
import type { Locale } from "../config.ts";
import type { Metrics } from "../metrics.ts";
import { apiRetry } from "./api_retry.ts";
import type { BotContext } from "./context.ts";
import { fallbackFeature } from "./features/fallback.ts";
import { startFeature } from "./features/start.ts";
import { contextStage } from "./middleware/context.ts";
import { errorsStage } from "./middleware/errors.ts";
import { userStage, type UserStageOptions } from "./middleware/user.ts";
import { gateStage, type GateStageOptions } from "./middleware/gate.ts";
import type { ContextStageOptions } from "./middleware/context.ts";

/** The update types the bot asks Telegram for (`allowed_updates`). */
export const ALLOWED_UPDATES = [
  "message",
  "edited_message",
  "callback_query",
  "my_chat_member",
] as const;

/** Options of {@link createBot}. */
export interface CreateBotOptions {
  /** Token from @BotFather. */
  token: string;
  /** Base URL of the Bot API server. */
  apiRoot: string;
  /** Language for users whose Telegram language the bot does not speak. */
  defaultLocale: Locale;
  /** Where counters go. */
  metrics: Metrics;
  /** The bot's own account, when already known (skips `getMe` in `bot.init()`). */
  botInfo?: UserFromGetMe;
  /** HTTP client for the Bot API. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Cached user profiles; without it there is no user stage (`ctx.user` stays null). */
  users?: UserStageOptions["users"];
  /** The background event log. */
  events?: ContextStageOptions["events"];
  /** Dedup and rate limiting; without it there is no gate stage. */
  gate?: Omit<GateStageOptions, "metrics">;
}

/** One named stage of the pipeline. */
export interface Stage {
  /** The stage's name as the architecture documents it. */
  name: string;
  /** Its middleware. */
  middleware: MiddlewareFn<BotContext>;
}

/**
 * The pipeline's stages in the order the architecture fixes:
 *   1. context   update id, chat, user, locale, bound logger, timing, metrics
 *   2. errors    catches everything below; friendly reply in the user's language
 *   3. gate      one atomic store call: drop duplicates, token bucket, bans
 *   4. user      the sender's stored profile, from the cache; Postgres only on a miss
 *   5. features  one composer per feature; the fallback answers what nobody handled
 * (the commit stage arrives with the dialog layer).
 */
export function pipelineStages(options: CreateBotOptions): Stage[] {
  const { defaultLocale, metrics, users, events, gate } = options;
  return [
    {
      name: "context",
      middleware: contextStage({ defaultLocale, metrics, ...(events ? { events } : {}) }),
    },
    { name: "errors", middleware: errorsStage() },
    ...(gate ? [{ name: "gate", middleware: gateStage({ ...gate, metrics }) }] : []),
    ...(users ? [{ name: "user", middleware: userStage({ users, defaultLocale }) }] : []),
    { name: "features", middleware: startFeature.middleware() },
    { name: "features", middleware: fallbackFeature.middleware() },
  ];
}

/** Builds the grammY bot: API client with retries and metrics, and the pipeline. */
export function createBot(options: CreateBotOptions): Bot<BotContext> {
  const bot = new Bot<BotContext>(options.token, {
    ...(options.botInfo ? { botInfo: options.botInfo } : {}),
    client: {
      apiRoot: options.apiRoot,
      // Long polls take 30 s; anything much slower than that is a dead connection.
      timeoutSeconds: 60,
      ...(options.fetch ? { fetch: options.fetch as never } : {}),
    },
  });
  bot.api.config.use(apiRetry({ metrics: options.metrics }));
  for (const stage of pipelineStages(options)) bot.use(stage.middleware);
  return bot;
}
