/**
 * The background work of a running bot: the event log (every instance), the outbox and the
 * features' own jobs (one instance at a time), in one runner whose rounds `/health` reports,
 * together with the features' own health checks.
 */
import type { Api } from "grammy";
import type { Feature } from "../bot/feature.ts";
import type { Health } from "../health.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Storage } from "../storage.ts";
import { eventLogJob } from "./event_log.ts";
import { outboxJob } from "./outbox.ts";
import { JobRunner } from "./runner.ts";

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
  for (const feature of features) for (const job of feature.jobs ?? []) runner.add(job);
  for (const [name, check] of runner.checks()) health.register(name, check);
  health.register("outbox:pending", () => outbox.check());
  for (const feature of features) {
    for (const [name, check] of Object.entries(feature.checks ?? {})) health.register(name, check);
  }
  runner.start();
  return runner;
}
