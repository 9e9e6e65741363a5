import { Api, Bot, type MiddlewareFn } from "grammy";
import { BotComposer } from "./composer.ts";
import type { UserFromGetMe } from "grammy/types";
import { type Locale, tokenSecrets } from "../config.ts";
import { redactor } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { ApiFetch } from "./api_fetch.ts";
import { apiRetry } from "./api_retry.ts";
import type { FloodControl, Priority } from "./flood/flood_control.ts";
import { type BotContext, PipelineContext } from "./context.ts";
import { fallbackFeature } from "./features/fallback.ts";
import { greetingFeature } from "./features/account.ts";
import { contextStage } from "./middleware/context.ts";
import { errorsStage } from "./middleware/errors.ts";
import { userStage, type UserStageOptions } from "./middleware/user.ts";
import { createGate, type GateOptions } from "./gate/gate.ts";
import { dialogsOf, type Feature } from "./feature.ts";
import { dialogGuard } from "./dialog/guard.ts";
import type { ContextStageOptions } from "./middleware/context.ts";

/** How long a Bot API call may take: long polls take 30 s, and much slower is a dead connection. */
const API_TIMEOUT_SECONDS = 60;

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
  /**
   * The project's own client for the Bot API (`api_fetch.ts`): its `fetch` is used, and it
   * makes the JSON calls itself. Wins over `fetch`.
   */
  client?: ApiFetch;
  /** Cached user profiles; without it there is no user stage (`ctx.user` stays null). */
  users?: UserStageOptions["users"];
  /** The background event log. */
  events?: ContextStageOptions["events"];
  /**
   * Dedup, rate limiting, leases and dialog state; without it there are no gate and commit
   * stages and dialogs are not stored.
   */
  gate?: Omit<GateOptions, "metrics">;
  /**
   * The features, in order; the fallback answers what none of them handled.
   * @default the greeting alone
   */
  features?: readonly Feature[];
  /**
   * Admins: alerted when a handler fails, never dropped as banned.
   * @default the gate's `adminIds`, else none
   */
  adminIds?: readonly number[];
  /** Records that a user blocked the bot (Telegram's 403 in their private chat). */
  onBlocked?: (userId: number) => Promise<void>;
  /** The outbound flood control every message waits for; without it nothing waits. */
  flood?: FloodControl;
}

/**
 * The methods whose first call in an update may travel in the webhook's 200 instead of a request
 * of its own ("reply to the webhook"): Telegram makes it once it has the 200, which comes only
 * after the update was handled and remembered. Only calls whose result no code reads (grammY
 * answers `true`) and that need no retry qualify: if the 200 is lost, Telegram sends the update
 * again, the gate drops it as handled, and the call is not made. `answerCallbackQuery` is such a
 * call: it only stops the button's spinner (with a toast); losing it costs nothing but the
 * spinner running out, and a late one is refused by Telegram anyway. Replies (`sendMessage`) are
 * not: they are retried on 429 and 5xx and pass the flood control, and the user waits for them.
 */
export const WEBHOOK_REPLY_METHODS: ReadonlySet<string> = new Set(["answerCallbackQuery"]);

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
 *   2. errors    catches everything below; friendly reply in the user's language; alerts
 *                admins (deduplicated); a user who blocked the bot is recorded, not alerted
 *   3. gate      one atomic store call: drop duplicates, wait for the chat's lease, token
 *                bucket and bans, load the dialog state (and, in a private chat, the cached
 *                profile); a private chat's message has its reply's flood turn taken in the
 *                same round trip
 *   4. user      the sender's stored profile, from the gate's answer; Postgres only on a miss;
 *                drops the updates of users an admin banned
 *   5. features  the dialogs check (expired, no longer fitting, store unreachable), then one
 *                composer per feature; the fallback answers what nobody handled
 *   6. commit    once the features returned (whether or not one called next): write the
 *                dialog state if it changed, remember the update, release the lease
 * Stages 1–5 run on the way in; `commit` wraps the user stage and the features, so it runs on
 * the way out, also for an update the user stage dropped.
 */
export function pipelineStages(options: CreateBotOptions): Stage[] {
  const stages = pipeline(options);
  return (["context", "errors", "gate", "user", "features", "commit"] as const)
    .flatMap((name) => {
      const middleware = stages[name];
      return middleware ? [{ name, middleware }] : [];
    });
}

/** The stages by name; absent ones are off (no gate without a store, no user stage without users). */
function pipeline(options: CreateBotOptions) {
  const { defaultLocale, metrics, users, events, gate, onBlocked } = options;
  const adminIds = options.adminIds ?? gate?.adminIds ?? [];
  const gated = gate
    ? createGate({ ...gate, metrics, ...(options.flood ? { flood: options.flood } : {}) })
    : null;
  const features = new BotComposer<BotContext>();
  // Without features of its own (tests, benchmarks) the bot still greets.
  const list = options.features ?? [greetingFeature];
  if (gate) {
    features.use(dialogGuard({ dialogs: dialogsOf(list), stateTtlMs: gate.fsm.stateTtlMs }));
  }
  features.use(...list.map((feature) => feature.composer), fallbackFeature);
  return {
    context: contextStage({ defaultLocale, metrics, ...(events ? { events } : {}) }),
    errors: errorsStage({
      adminIds,
      alertLocale: defaultLocale,
      onBlocked,
      redact: redactor(tokenSecrets(options.token)),
    }),
    gate: gated?.gate,
    user: users ? userStage({ users, defaultLocale, adminIds }) : undefined,
    features: features.middleware(),
    commit: gated?.commit,
  };
}

/** Builds the grammY bot: API client with flood control, retries and metrics, and the pipeline. */
export function createBot(options: CreateBotOptions): Bot<BotContext> {
  const bot = new Bot<BotContext>(options.token, {
    ContextConstructor: PipelineContext,
    ...(options.botInfo ? { botInfo: options.botInfo } : {}),
    client: {
      apiRoot: options.apiRoot,
      timeoutSeconds: API_TIMEOUT_SECONDS,
      canUseWebhookReply: (method) => WEBHOOK_REPLY_METHODS.has(method),
      ...fetchOption(options),
    },
  });
  installTransformers(bot.api, options, "interactive");
  const { context, errors, gate, user, features, commit } = pipeline(options);
  const inner = new BotComposer<BotContext>(...(user ? [user] : []), features).middleware();
  // The commit wraps the user stage and the features: it runs after them whether or not one
  // called next(), so that a dropped update (a banned user's) is remembered and its lease released.
  const committed: MiddlewareFn<BotContext> = commit
    ? (ctx, next) =>
      commit(ctx, async () => {
        await inner(ctx, next);
      })
    : inner;
  // One flat list under grammY's own chain (see composer.ts).
  bot.use(
    new BotComposer<BotContext>(context, errors, ...(gate ? [gate] : []), committed).middleware(),
  );
  return bot;
}

/** What {@link createApi} needs: the client settings of {@link CreateBotOptions}. */
export type ApiOptions = Pick<
  CreateBotOptions,
  "token" | "apiRoot" | "metrics" | "fetch" | "client" | "flood"
>;

/**
 * Another API client of the same bot, whose messages wait for the flood control with
 * `priority`: bulk work (broadcasts) uses one with `bulk`, so that replies to users go first.
 * `retries` bounds its own retries of failed calls (see `apiRetry`); the start-up asks with 0,
 * since it retries each step itself and tells the operator of every failed attempt.
 */
export function createApi(options: ApiOptions, priority: Priority, retries?: number): Api {
  const api = new Api(options.token, {
    apiRoot: options.apiRoot,
    timeoutSeconds: API_TIMEOUT_SECONDS,
    ...fetchOption(options),
  });
  installTransformers(api, options, priority, retries);
  return api;
}

/** The `fetch` of grammY's client options. */
function fetchOption(options: ApiOptions): { fetch?: never } {
  const fetch = options.client?.fetch ?? options.fetch;
  return fetch ? { fetch: fetch as never } : {};
}

/**
 * The flood control next to the network, the retries around it (the last one installed runs
 * first): a call waits for its turn before each attempt, and a 429 pauses every instance
 * before the retry waits it out.
 */
function installTransformers(
  api: Api,
  options: ApiOptions,
  priority: Priority,
  retries?: number,
): void {
  if (options.client) {
    api.config.use(options.client.direct({
      apiRoot: options.apiRoot,
      token: options.token,
      timeoutSeconds: API_TIMEOUT_SECONDS,
      webhookReply: (method) => WEBHOOK_REPLY_METHODS.has(method),
    }));
  }
  if (options.flood) api.config.use(options.flood.transformer(priority));
  api.config.use(apiRetry({ metrics: options.metrics, maxRetries: retries }));
}
