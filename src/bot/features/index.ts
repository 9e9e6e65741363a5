/**
 * The service desk's features, in the order they run, each given only what it uses. This is
 * the one place that knows them all: to add a feature, write it as a `Feature` (see
 * `../feature.ts`) and add it to the list here.
 */
import type { Api } from "grammy";
import type { Registry } from "../../metrics/prometheus.ts";
import type { Config } from "../../config.ts";
import type { Database } from "../../db/database.ts";
import type { RequestLifecycle } from "../../db/request_lifecycle.ts";
import type { RequestMessages } from "../../db/request_messages.ts";
import type { RequestRepository } from "../../db/requests.ts";
import { readStats } from "../../db/stats.ts";
import type { UserRepository } from "../../db/users.ts";
import type { Health } from "../../health.ts";
import { summarizeRegistry } from "../../metrics/summary.ts";
import { backupAndPrune } from "../../ops/backup.ts";
import type { KeyValueStore } from "../../store/store.ts";
import type { UserCache } from "../../store/user_cache.ts";
import type { Feature } from "../feature.ts";
import type { Roles } from "../roles.ts";
import { StaffChat } from "../staff_chat.ts";
import type { RequestMetrics } from "../../metrics/requests.ts";
import { accountFeature } from "./account.ts";
import { adminFeature } from "./admin.ts";
import { broadcastFeature } from "./broadcast/broadcast.ts";
import { BroadcastRepository } from "../../db/broadcasts.ts";
import type { BackgroundMetrics } from "../../metrics/background.ts";
import { requestsFeature } from "./requests.ts";
import { conversationFeature } from "./conversation/conversation.ts";
import { staffFeature } from "./staff/staff.ts";

/** What the service desk's features are built from. */
export interface ServiceDeskDeps {
  config: Config;
  db: Database;
  store: KeyValueStore;
  users: UserRepository;
  requests: RequestRepository;
  lifecycle: RequestLifecycle;
  messages: RequestMessages;
  userCache: UserCache;
  roles: Roles;
  health: Pick<Health, "report">;
  /** The registry `/metrics` renders, for the admins' summary. */
  registry: Registry;
  /** The requests' metrics. */
  requestMetrics: RequestMetrics;
  /** Hurries the outbox after something was queued in it. */
  kickOutbox: () => void;
  /** The API client for bulk messages (broadcasts), behind the replies to users. */
  bulkApi: Api;
  /** This instance's name among those sharing the store. */
  instanceId: string;
  /** The background work's metrics (broadcasts). */
  backgroundMetrics: BackgroundMetrics;
}

/** Every feature of the service desk, in order; the fallback comes after them. */
export function serviceDeskFeatures(deps: ServiceDeskDeps): Feature[] {
  const { config, roles, userCache } = deps;
  const staffChat = new StaffChat(config.staffChatId);
  return [
    accountFeature({ profiles: userCache, roles }),
    adminFeature({
      roles,
      health: deps.health,
      metrics: () => summarizeRegistry(deps.registry),
      stats: () => readStats(deps.db.sql),
      backup: () => backupAndPrune({ db: deps.db, store: deps.store, config }),
      bans: userCache,
    }),
    broadcastFeature({
      broadcasts: new BroadcastRepository(deps.db.sql),
      notifiable: (afterId, limit) => deps.users.notifiable(afterId, limit),
      markBlocked: (id) => userCache.markBlocked(id),
      roles,
      bulkApi: deps.bulkApi,
      instanceId: deps.instanceId,
      rate: config.broadcastRate,
      kickOutbox: deps.kickOutbox,
      metrics: deps.backgroundMetrics,
    }),
    staffFeature({
      requests: deps.requests,
      lifecycle: deps.lifecycle,
      messages: deps.messages,
      users: deps.users,
      markBlocked: (id) => userCache.markBlocked(id),
      roles,
      staffChat,
      locale: config.defaultLocale,
      slaTakeMinutes: config.slaTakeMinutes,
      metrics: deps.requestMetrics,
      kickOutbox: deps.kickOutbox,
    }),
    requestsFeature({
      requests: deps.requests,
      lifecycle: deps.lifecycle,
      messages: deps.messages,
      categories: config.requestCategories,
      onFiled: deps.kickOutbox,
    }),
    conversationFeature({
      requests: deps.requests,
      messages: deps.messages,
      users: deps.users,
      roles,
      staffChat,
      markBlocked: (id) => userCache.markBlocked(id),
      locale: config.defaultLocale,
      metrics: deps.requestMetrics,
      kickOutbox: deps.kickOutbox,
    }),
  ];
}
