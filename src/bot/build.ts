/**
 * The service desk's bot over open storage: the roles, the features (the service desk's and
 * any a program adds) and the grammY bot with its pipeline.
 */
import type { Api, Bot } from "grammy";
import type { UserFromGetMe } from "grammy/types";
import type { Startup } from "../startup.ts";
import type { Config } from "../config.ts";
import type { Health } from "../health.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Storage } from "../storage.ts";
import type { BotContext } from "./context.ts";
import { type ApiFetch, apiFetch } from "./api_fetch.ts";
import type { Feature } from "./feature.ts";
import { serviceDeskFeatures } from "./features/index.ts";
import { createApi, createBot } from "./pipeline.ts";
import { Roles } from "./roles.ts";
import { FloodControl } from "./flood/flood_control.ts";
import { type FloodLimits, floodLimits } from "./flood/limits.ts";
import { logger } from "../log.ts";

/**
 * How long an instance holds a chat while handling an update of it (renewed while it runs).
 * After a crash, the chat's next update waits at most this long.
 */
const CHAT_LEASE_MS = 10_000;

/** What {@link buildBot} needs. */
export interface BuildBotOptions {
  config: Config;
  storage: Storage;
  metrics: Metrics;
  health: Pick<Health, "report">;
  /** This instance's name among those sharing the store. */
  instanceId: string;
  /** What a program adds (the tests' own dialogs, the benchmarks' flood limits). */
  extensions?: BotExtensions;
  /** Hurries the outbox after something was queued in it. */
  kickOutbox: () => void;
  /**
   * What the start learnt from Telegram ({@link connectTelegram}): the HTTP client of every Bot
   * API call of this instance, and who the bot is.
   */
  telegram: { client: ApiFetch; botInfo: UserFromGetMe };
}

/**
 * The start's first contact with Telegram, made before the storage is open: the HTTP client of
 * every Bot API call of this instance (idle connections end on their own), and who the bot is,
 * asked under the start-up's retry policy through that client and the metrics. `api` is that
 * client without retries of its own and without the flood control (which lives in the store;
 * these calls are no messages): for the start-up's steps, whose own retries log each failed
 * attempt, and for the poller, which retries `getUpdates` itself. Not `bot.init()`: grammY
 * would retry a failing `getMe` forever without telling anyone.
 */
export function connectTelegram(
  options: { config: Config; metrics: Metrics; startup: Startup },
): { client: ApiFetch; api: Api; botInfo: Promise<UserFromGetMe> } {
  const { config, metrics, startup } = options;
  const client = apiFetch({ viaFetch: config.proxies.length > 0 });
  // One request per attempt: the start-up's own retries log each failure as it happens.
  const api = createApi(
    { token: config.botToken, apiRoot: config.botApiRoot, metrics, client },
    "interactive",
    0,
  );
  return {
    client,
    api,
    botInfo: startup.until("getMe", () => api.getMe(startup.signal as never)),
  };
}

/** What a program adds to the built-in bot. */
export interface BotExtensions {
  /** Features run after the service desk's own and before the fallback. */
  features?: readonly Feature[];
  /**
   * The outbound flood limits instead of Telegram's: the benchmarks shorten the windows, since
   * their fake Bot API takes any rate. @default `floodLimits(BROADCAST_RATE)`
   */
  floodLimits?: FloodLimits;
}

/** Builds the bot and returns it with its features. */
export function buildBot(options: BuildBotOptions): { bot: Bot<BotContext>; features: Feature[] } {
  const { config, storage, metrics, instanceId } = options;
  const { client, botInfo } = options.telegram;
  const roles = new Roles({
    adminIds: config.adminIds,
    staffChatId: config.staffChatId,
    store: storage.store,
  });
  // One limiter for every message this instance sends, shared with the others through the store.
  const flood = new FloodControl({
    store: storage.store,
    limits: options.extensions?.floodLimits ?? floodLimits(config.broadcastRate),
    metrics: metrics.background,
    log: logger("flood"),
  });
  const api = { token: config.botToken, apiRoot: config.botApiRoot, metrics, flood, client };
  const features = [
    ...serviceDeskFeatures({
      config,
      ...storage,
      roles,
      health: options.health,
      registry: metrics.registry,
      requestMetrics: metrics.requests,
      kickOutbox: options.kickOutbox,
      bulkApi: createApi(api, "bulk"),
      instanceId,
      backgroundMetrics: metrics.background,
    }),
    ...(options.extensions?.features ?? []),
  ];
  const bot = createBot({
    token: config.botToken,
    apiRoot: config.botApiRoot,
    botInfo,
    defaultLocale: config.defaultLocale,
    metrics,
    users: storage.userCache,
    events: storage.events,
    gate: {
      store: storage.store,
      rateLimit: config.rateLimit,
      fsm: config.fsm,
      adminIds: config.adminIds,
      // Only webhook instances sharing a store handle one chat at the same time; a poller is
      // alone (the polling lease) and an unshared store belongs to one instance.
      leaseMs: config.webhook && storage.store.shared ? CHAT_LEASE_MS : 0,
      instanceId,
    },
    features,
    adminIds: config.adminIds,
    onBlocked: (userId) => storage.userCache.markBlocked(userId),
    flood,
    client,
  });
  return { bot, features };
}
