import { type Bot, GrammyError } from "grammy";
import type { BotContext } from "./bot/context.ts";
import type { Config } from "./config.ts";
import { publishCommands } from "./bot/features/account.ts";
import { SERVICE_DESK_DIALOGS, serviceDeskFeatures } from "./bot/features/index.ts";
import { ALLOWED_UPDATES, createBot, type CreateBotOptions } from "./bot/pipeline.ts";
import { telegramCheck, webhookCheck } from "./bot/telegram_check.ts";
import { DatabaseError, UnauthorizedTokenError } from "./errors.ts";
import { Health } from "./health.ts";
import { healthHandler } from "./http/health.ts";
import { metricsHandler } from "./http/metrics.ts";
import { type Handler, router } from "./http/router.ts";
import { logger } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { LeaderLease, standbyHealth } from "./transport/leader.ts";
import { Poller, pollingHealth } from "./transport/polling.ts";
import { UpdateScheduler } from "./transport/scheduler.ts";
import { registerWebhook, webhookHandler } from "./transport/webhook.ts";
import { openStorage, registerStorageChecks, type Storage } from "./storage.ts";
import { backoffDelay } from "./util/backoff.ts";
import { delay } from "./util/delay.ts";

/** A name for this process among the instances sharing a store: host, pid and a random part. */
function newInstanceId(): string {
  let host = "instance";
  try {
    host = Deno.hostname();
  } catch {
    // Without --allow-sys=hostname the pid and the random part still make the name unique.
  }
  return `${host}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

/** What a stop did, for the summary line. */
export interface StopSummary {
  /** Why the program stopped (signal name or error). */
  reason: string;
  /** From the start of the stop to its end, in ms. */
  durationMs: number;
  /** Updates that were in flight at the stop and finished. */
  finished: number;
  /** Ids of updates still running at the deadline; Telegram will deliver them again. */
  abandoned: number[];
  /** Updates handled since the start. */
  handledTotal: number;
}

/** The running application: everything but sockets and signals, which `main.ts` owns. */
export interface App {
  /** The HTTP server's handler (health, metrics, webhook). */
  handler: Handler;
  /** Readiness registry; storage layers register their checks here. */
  health: Health;
  /** Connects to Telegram and starts the transport; resolves once ready. */
  start(): Promise<void>;
  /** Settles when the transport died for good (e.g. the token was revoked). */
  failed: Promise<Error>;
  /** Stops gracefully; calling it again returns the same promise. */
  stop(reason: string): Promise<StopSummary>;
}

/** What a program adds to the built-in features (the tests' own dialogs, for one). */
export interface AppExtensions {
  /** Feature composers, run after the service desk's own and before the fallback. */
  features?: CreateBotOptions["features"];
  /** The dialogs those features define. */
  dialogs?: CreateBotOptions["dialogs"];
}

/**
 * How long an instance holds a chat while handling an update of it (renewed while it runs).
 * After a crash, the chat's next update waits at most this long.
 */
const CHAT_LEASE_MS = 10_000;

/** Builds the application from a resolved configuration (wiring only). */
export function createApp(config: Config, extensions: AppExtensions = {}): App {
  const log = logger("app");
  const instanceId = newInstanceId();
  const metrics = new Metrics();
  const health = new Health();
  // Built by start() once storage is open; the transport delivers nothing before that.
  let bot: Bot<BotContext> | null = null;
  let storage: Storage | null = null;
  const scheduler = new UpdateScheduler({
    handle: (update) => bot!.handleUpdate(update),
    concurrency: config.updateConcurrency,
    metrics,
    onError: (update, error) =>
      log.error("update {update_id} failed outside the pipeline", {
        update_id: update.update_id,
        error,
      }),
  });
  const lifetime = new AbortController();
  let accepting = false;
  let poller: Poller | null = null;
  // Polling mode: the poller runs only while this instance holds the polling lease.
  let lease: LeaderLease | null = null;
  let reportFailure: (error: Error) => void = () => {};
  const failed = new Promise<Error>((resolve) => reportFailure = resolve);

  function registerTelegramChecks(api: Bot<BotContext>["api"]): void {
    health.register("telegram:responseTime", telegramCheck(api), {
      timeoutMs: 5000,
      onTimeout: "warn",
    });
    if (config.webhook) {
      health.register("webhook:telegram", webhookCheck(api, config.webhook.url), {
        timeoutMs: 5000,
        onTimeout: "warn",
      });
    } else {
      health.register(
        "polling:getUpdates",
        () =>
          Promise.resolve(
            (lease && standbyHealth(lease.status)) ?? pollingHealth(poller?.status ?? null),
          ),
      );
    }
  }

  const webhookRoute = config.webhook
    ? {
      path: config.webhook.path,
      handler: webhookHandler({
        secret: config.webhook.secret,
        scheduler,
        accepting: () => accepting,
        log: logger("webhook"),
        metrics,
      }),
    }
    : undefined;
  const handler = router({
    health: healthHandler(health),
    metrics: metricsHandler({ registry: metrics.registry, token: config.metricsToken }),
    ...(webhookRoute ? { webhook: webhookRoute } : {}),
  });

  /**
   * Repeats a start-up call until it works. Final: a refused token, and database problems
   * that waiting cannot fix (a changed migration, a newer schema, DATA_DIR in use).
   */
  async function untilDone<T>(what: string, call: () => Promise<T>): Promise<T> {
    for (let attempt = 0;; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (error instanceof GrammyError && error.error_code === 401) {
          throw new UnauthorizedTokenError({ cause: error });
        }
        if (error instanceof DatabaseError) throw error;
        if (lifetime.signal.aborted) throw lifetime.signal.reason;
        const wait = backoffDelay(attempt, { baseMs: 1000, maxMs: 30_000 });
        health.setPhase(
          "starting",
          `${what} failed, retrying: ${error instanceof Error ? error.message : error}`,
        );
        log.warning("{what} failed, retrying in {wait_ms} ms", { what, wait_ms: wait, error });
        await delay(wait, lifetime.signal);
      }
    }
  }

  async function start(): Promise<void> {
    const started = performance.now();
    await Deno.mkdir(config.dataDir, { recursive: true });
    health.setPhase("starting", "opening the database and the store");
    const opened = await untilDone("opening storage", () => openStorage(config, { metrics }));
    storage = opened;
    if (lifetime.signal.aborted) return;
    await prepareSchema(opened);
    registerStorageChecks(health, opened);
    log.info("storage: {storage}", { storage: opened.describe() });
    const created = createBot({
      token: config.botToken,
      apiRoot: config.botApiRoot,
      defaultLocale: config.defaultLocale,
      metrics,
      users: opened.userCache,
      events: opened.events,
      gate: {
        store: opened.store,
        rateLimit: config.rateLimit,
        fsm: config.fsm,
        adminIds: config.adminIds,
        // Only webhook instances sharing Redis can handle one chat at the same time; a poller
        // is alone (the polling lease) and the embedded store belongs to one instance.
        leaseMs: config.webhook && opened.store.backend === "redis" ? CHAT_LEASE_MS : 0,
        instanceId,
      },
      features: [
        ...serviceDeskFeatures({ config, storage: opened, health, metrics }),
        ...(extensions.features ?? []),
      ],
      dialogs: [...SERVICE_DESK_DIALOGS, ...(extensions.dialogs ?? [])],
      adminIds: config.adminIds,
      onBlocked: (userId) => opened.userCache.markBlocked(userId),
    });
    bot = created;
    registerTelegramChecks(created.api);
    health.setPhase("starting", "connecting to Telegram");
    // Not bot.init(): grammY would retry a failing getMe forever without telling anyone.
    created.botInfo = await untilDone("getMe", () => created.api.getMe(lifetime.signal as never));
    // The command menu is a convenience: it must neither delay readiness nor keep the bot down.
    publishCommands(created.api, config.defaultLocale, lifetime.signal, config.adminIds).catch((
      error,
    ) => lifetime.signal.aborted || log.warning("could not publish the command menu", { error }));
    if (config.webhook) {
      const webhook = config.webhook;
      // Accept before registering: Telegram may post the moment setWebhook returns.
      accepting = true;
      await untilDone(
        "setWebhook",
        () => registerWebhook(created.api, webhook, ALLOWED_UPDATES, lifetime.signal),
      );
    } else {
      const info = await untilDone(
        "getWebhookInfo",
        () => created.api.getWebhookInfo(lifetime.signal as never),
      );
      if (info.url !== "") {
        log.warning("a webhook is registered; removing it to use long polling", {
          pending: info.pending_update_count,
        });
        await untilDone(
          "deleteWebhook",
          () => created.api.deleteWebhook({}, lifetime.signal as never),
        );
      }
      const startPolling = () => {
        if (lifetime.signal.aborted) return;
        poller = new Poller({
          api: created.api,
          scheduler,
          allowedUpdates: ALLOWED_UPDATES,
          log: logger("polling"),
          metrics,
        });
        poller.run().catch((error) =>
          reportFailure(error instanceof Error ? error : new Error(String(error)))
        );
      };
      if (opened.store.backend === "kv") {
        // The embedded store serves the one instance that owns DATA_DIR: nobody to stand by for.
        metrics.pollingLeader.set(1);
        startPolling();
      } else {
        lease = new LeaderLease({
          store: opened.store,
          name: "polling",
          holder: instanceId,
          log: logger("leader"),
          metrics: { leaseChanges: metrics.leaseChanges, leader: metrics.pollingLeader },
          onElected: startPolling,
          async onDeposed() {
            const deposed = poller;
            poller = null;
            await deposed?.stop();
            if (deposed) await confirmPolled(deposed);
          },
        });
        lease.run();
      }
    }
    if (lifetime.signal.aborted) return;
    health.setPhase("ready");
    log.info("ready as @{username} in {mode} mode after {startup_ms} ms", {
      username: created.botInfo.username,
      mode: config.mode,
      instance: instanceId,
      storage: opened.describe(),
      startup_ms: Math.round(performance.now() - started),
    });
  }

  /** Applies pending migrations, or with MIGRATE_ON_START=false refuses an outdated schema. */
  async function prepareSchema(opened: Storage): Promise<void> {
    const { migrator } = opened;
    if (config.database.migrateOnStart) {
      health.setPhase("starting", "applying database migrations");
      const applied = await migrator.up();
      for (const migration of applied) {
        log.info("applied migration {name}", { name: migration.name });
      }
      return;
    }
    const current = await migrator.current();
    if (current !== migrator.latest) {
      throw new DatabaseError(
        `the database schema is at version ${current} but this program needs ` +
          `${migrator.latest}: run "service-desk-bot migrate" (MIGRATE_ON_START is false)`,
      );
    }
  }

  /** Tells Telegram which fetched updates finished; the unfinished ones come again. */
  async function confirmPolled(stopped: Poller): Promise<void> {
    await stopped.confirm(AbortSignal.timeout(5000)).catch((error) =>
      log.warning("could not confirm the handled updates to Telegram; they will come again", {
        error,
      })
    );
  }

  let stopping: Promise<StopSummary> | null = null;
  function stop(reason: string): Promise<StopSummary> {
    stopping ??= (async () => {
      const started = performance.now();
      health.setPhase("stopping", `stopping: ${reason}`);
      log.info("stopping ({reason}): {in_flight} updates in flight", {
        reason,
        in_flight: scheduler.inFlight,
      });
      accepting = false;
      lifetime.abort(new Error(`stopping: ${reason}`));
      await poller?.stop();
      const drained = await scheduler.drain(config.shutdownTimeoutMs);
      if (poller) await confirmPolled(poller);
      // Only now: a standby that took over earlier would poll while we still confirm.
      await lease?.release();
      await storage?.close(5000).catch((error) =>
        log.error("closing the storage failed", { error })
      );
      metrics[Symbol.dispose]();
      return {
        reason,
        durationMs: Math.round(performance.now() - started),
        finished: drained.finished,
        abandoned: drained.abandoned,
        handledTotal: scheduler.handled,
      };
    })();
    return stopping;
  }

  return { handler, health, start, stop, failed };
}
