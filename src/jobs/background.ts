/**
 * The background work of a running bot: the event log and the infrastructure alerts (every
 * instance), the outbox, retention, scheduled backups and the features' own jobs (one instance
 * at a time), in one runner whose rounds `/health` reports, together with the features' own
 * health checks and the free disk space.
 */
import type { Api } from "grammy";
import type { Feature } from "../bot/feature.ts";
import type { Health } from "../health.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Config } from "../config.ts";
import { BroadcastRepository } from "../db/broadcasts.ts";
import { deleteEventsBefore } from "../db/events.ts";
import { logger } from "../log.ts";
import { backupAndPrune } from "../ops/backup.ts";
import type { Storage } from "../storage.ts";
import type { PollerStatus } from "../transport/polling.ts";
import { Alerter } from "./alerter.ts";
import {
  alertsInterval,
  alertsJob,
  databaseProbe,
  eventsProbe,
  pollingProbe,
  storeProbe,
} from "./alerts.ts";
import { DiskWatch } from "./disk.ts";
import { eventLogJob } from "./event_log.ts";
import { outboxJob } from "./outbox.ts";
import { retentionJob } from "./retention.ts";
import { JobRunner } from "./runner.ts";
import { newestBackupSeconds, scheduledBackupJob } from "./scheduled_backup.ts";

/** What {@link startBackground} needs. */
export interface BackgroundOptions {
  storage: Storage;
  features: readonly Feature[];
  /** The bot's API client. */
  api: Api;
  /** This instance's name among those sharing the store. */
  instanceId: string;
  metrics: Metrics;
  health: Pick<Health, "register">;
  /** The runner to fill and start (made early, so that features can trigger its jobs). */
  runner: JobRunner;
  config: Config;
  /** How the poller is doing, while this instance polls (null otherwise). */
  polling?: () => PollerStatus | null;
}

/** Adds every job to the runner, registers their health checks and starts them. */
export function startBackground(options: BackgroundOptions): JobRunner {
  const { storage, features, runner, health } = options;
  const outbox = outboxJob({
    outbox: storage.outbox,
    handlers: Object.assign({}, ...features.map((feature) => feature.deliveries ?? {})),
    api: () => options.api,
    instanceId: options.instanceId,
    metrics: options.metrics,
  });
  runner.add(eventLogJob(storage.events));
  runner.add(outbox);
  const disk = addInfrastructureJobs(options);
  for (const feature of features) for (const job of feature.jobs ?? []) runner.add(job);
  for (const [name, check] of runner.checks()) health.register(name, check);
  health.register("outbox:pending", () => outbox.check());
  health.register("disk:free", () => disk.check());
  for (const feature of features) {
    for (const [name, check] of Object.entries(feature.checks ?? {})) health.register(name, check);
  }
  runner.start();
  return runner;
}

/** Retention, scheduled backups and the alerts; returns the disk watch for `/health`. */
function addInfrastructureJobs(options: BackgroundOptions): DiskWatch {
  const { storage, runner, config, metrics } = options;
  const { db, store } = storage;
  const api = () => options.api;
  const everyMs = alertsInterval(config.alertAfterMs);
  const alerter = new Alerter({
    store,
    instanceId: options.instanceId,
    api,
    adminIds: config.adminIds,
    locale: config.defaultLocale,
    alertAfterMs: config.alertAfterMs,
    // An instance that missed three rounds is gone (or cannot reach the store any more).
    staleMs: 3 * everyMs + 5000,
    metrics: metrics.background,
    log: logger("alerts"),
  });
  const disk = new DiskWatch({
    dir: config.dataDir,
    minFreeMb: config.diskMinFreeMb,
    metrics: metrics.background,
  });
  const broadcasts = new BroadcastRepository(db.sql);
  runner.add(retentionJob({
    purges: {
      events: (before, limit) => deleteEventsBefore(db.sql, before, limit),
      broadcast_recipients: (before, limit) => broadcasts.purgeRecipients(before, limit),
      outbox: (before, limit) => storage.outbox.purgeDelivered(before, limit),
    },
    days: config.eventRetentionDays,
    metrics: metrics.background,
  }));
  if (config.backupSchedule !== null) {
    runner.add(scheduledBackupJob({
      cron: config.backupSchedule,
      backup: () => backupAndPrune({ db, store, config }),
      alerter,
      api,
      adminIds: config.adminIds,
      locale: config.defaultLocale,
      metrics: metrics.background,
    }));
  }
  runner.add(alertsJob({
    alerter,
    everyMs,
    probes: [
      storeProbe(store),
      databaseProbe(db, metrics),
      pollingProbe(options.polling ?? (() => null)),
      { problem: "disk", check: () => disk.problem() },
      eventsProbe(metrics.eventsDropped, config.alertAfterMs),
    ],
  }));
  metrics.background.watchBackups(() => newestBackupSeconds(config.backupDir));
  return disk;
}
