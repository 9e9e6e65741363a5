/**
 * Builds the running application from a resolved configuration: wiring only, read top to
 * bottom. `main.ts` owns the sockets and the signals; everything else is made here.
 */
import { Api, type Bot } from "grammy";
import type { BotContext } from "./bot/context.ts";
import { allowedUpdates, publishMenus } from "./bot/feature.ts";
import { type BotExtensions, buildBot, connectTelegram } from "./bot/build.ts";
import { telegramCheck } from "./bot/telegram_check.ts";
import { type Config, secretsOf } from "./config.ts";
import { Health } from "./health.ts";
import { startBackground } from "./jobs/background.ts";
import { OUTBOX_JOB } from "./jobs/outbox.ts";
import { JobRunner } from "./jobs/runner.ts";
import { logger } from "./log.ts";
import { Metrics } from "./metrics/metrics.ts";
import { newInstanceId, Startup } from "./startup.ts";
import { startStorageWhile, type Storage } from "./storage.ts";
import { PollingTransport } from "./transport/polling_transport.ts";
import { UpdateScheduler } from "./transport/scheduler.ts";
import type { Transport } from "./transport/transport.ts";
import { webhookReplyOf, WebhookTransport } from "./transport/webhook.ts";

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
  /** Readiness registry (`GET /health`). */
  health: Health;
  /** Every metric (`GET /metrics`). */
  metrics: Metrics;
  /**
   * The webhook's path and handler in webhook mode, for the HTTP server; `direct` is the same
   * endpoint without WHATWG objects, for the program's own server.
   */
  webhook: WebhookTransport["route"] | null;
  /** Opens the storage, connects to Telegram and starts the transport; resolves once ready. */
  start(): Promise<void>;
  /** Settles when the transport died for good (e.g. the token was revoked). */
  failed: Promise<Error>;
  /** Stops gracefully; calling it again returns the same promise. */
  stop(reason: string): Promise<StopSummary>;
}

/** What a program adds to the built-in bot (the tests' own dialogs, for one). */
export type AppExtensions = BotExtensions;

/** Builds the application from a resolved configuration (wiring only). */
export function createApp(config: Config, extensions: AppExtensions = {}): App {
  const log = logger("app");
  const instanceId = newInstanceId();
  const metrics = new Metrics();
  const secrets = secretsOf(config);
  const health = new Health({ onReport: (status) => metrics.recordHealth(status), secrets });
  const lifetime = new AbortController();
  const startup = new Startup({ health, signal: lifetime.signal, log });
  const probeApi = new Api(config.botToken, { apiRoot: config.botApiRoot });
  let bot: Bot<BotContext> | null = null;
  let storage: Storage | null = null;
  let jobs: JobRunner | null = null;
  let transport: Transport | null = null;
  const storageStart = { metrics, health, startup, log, keep: (open: Storage) => storage = open };
  const scheduler = new UpdateScheduler({
    handle: (update) => bot!.handleUpdate(update, webhookReplyOf(update)),
    concurrency: config.updateConcurrency,
    metrics,
    onError: (update, error) =>
      log.error("update {update_id} failed outside the pipeline", {
        update_id: update.update_id,
        error,
      }),
  });
  // The webhook route exists from the start: the HTTP server serves it before Telegram is told.
  const webhook = config.webhook
    ? new WebhookTransport({
      webhook: config.webhook,
      scheduler,
      startup,
      signal: lifetime.signal,
      log: logger("webhook"),
      metrics,
      probeApi: () => bot ? probeApi : null,
    })
    : null;
  health.register(
    "telegram:responseTime",
    telegramCheck(() => bot ? probeApi : null, { log: logger("telegram") }),
  );
  const { promise: failed, resolve: fail } = Promise.withResolvers<Error>();

  async function start(): Promise<void> {
    const started = performance.now();
    const telegram = connectTelegram({ config, metrics, startup });
    const [opened, botInfo] = await startStorageWhile(config, telegram.botInfo, storageStart);
    const { store } = opened;
    const runner = jobs = new JobRunner({ store, shared: store.shared, instanceId, metrics });
    const { bot: built, features } = buildBot({
      config,
      storage: opened,
      metrics,
      health,
      instanceId,
      extensions,
      kickOutbox: () => runner.trigger(OUTBOX_JOB),
      telegram: { client: telegram.client, botInfo },
    });
    bot = built;

    // The menus are a convenience: they must neither delay readiness nor keep the bot down.
    publishMenus(built.api, features, {
      defaultLocale: config.defaultLocale,
      adminIds: config.adminIds,
      staffChatId: config.staffChatId,
      signal: lifetime.signal,
    }).catch((error) =>
      lifetime.signal.aborted || log.warning("could not publish the command menus", { error })
    );

    startBackground({
      storage: opened,
      features,
      api: built.api,
      instanceId,
      metrics,
      health,
      runner,
      config,
      polling: () => transport instanceof PollingTransport ? transport.pollerStatus : null,
    });

    transport = webhook ?? new PollingTransport({
      scheduler,
      startup,
      signal: lifetime.signal,
      store: opened.store,
      instanceId,
      metrics,
      log: logger("polling"),
    });
    for (const [name, check] of Object.entries(transport.checks)) health.register(name, check);
    transport.failed.then(fail);
    await transport.start(telegram.api, allowedUpdates(features));
    if (lifetime.signal.aborted) return;
    health.setPhase("ready");
    log.info("ready as @{username} in {mode} mode after {startup_ms} ms", {
      username: built.botInfo.username,
      mode: config.mode,
      instance: instanceId,
      storage: opened.describe(),
      startup_ms: Math.round(performance.now() - started),
    });
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
      lifetime.abort(new Error(`stopping: ${reason}`));
      // Background rounds save their progress and end while the updates in flight finish.
      const halted = jobs?.halt(config.shutdownTimeoutMs);
      const drain = () => scheduler.drain(config.shutdownTimeoutMs);
      const drained = transport ? await transport.stop(drain) : await drain();
      await halted;
      // After the drain: the updates that finished have queued their events.
      await jobs?.stop(5000);
      await storage?.close(5000).catch((error) =>
        log.error("closing the storage failed", { error })
      );
      metrics[Symbol.dispose]();
      const durationMs = Math.round(performance.now() - started);
      // The drain's own figures: finished and abandoned.
      return { reason, durationMs, ...drained, handledTotal: scheduler.handled };
    })();
    return stopping;
  }

  return { health, metrics, webhook: webhook?.route ?? null, start, stop, failed };
}
