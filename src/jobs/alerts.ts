/**
 * The alerts job: on every instance, every few seconds, asks each probe whether its part of the
 * infrastructure works (the store, the database, polling Telegram, the disk, the event log)
 * and reports what it saw to the {@link Alerter}, which tells the admins once a problem has
 * lasted `ALERT_AFTER` and once it clears. The probes are built here from what they watch;
 * each answers null when all is well, else what is wrong.
 */
import type { Counter, Histogram } from "../metrics/prometheus.ts";
import { errorMessage } from "../errors.ts";
import type { PollerStatus } from "../transport/polling.ts";
import { pollingHealth } from "../transport/polling.ts";
import type { Alerter, Problem } from "./alerter.ts";
import type { Job } from "./job.ts";

/** One thing watched: null when it works, else what is wrong. */
export interface Probe {
  problem: Problem;
  check(): Promise<string | null>;
  /** Instead of `ALERT_AFTER`: 0 tells at once. */
  alertAfterMs?: number;
  /** Decided by each instance alone (the store cannot keep its own outage). */
  local?: boolean;
}

/** Longest a probe may take before it counts as failing. */
const PROBE_TIMEOUT_MS = 5000;

/** How often the job looks: often enough to tell soon after `ALERT_AFTER`, at most every 15 s. */
export function alertsInterval(alertAfterMs: number): number {
  return Math.min(15_000, Math.max(1000, Math.round(alertAfterMs / 4)));
}

/** The alerts job; see the module documentation. */
export function alertsJob(
  options: { alerter: Alerter; probes: readonly Probe[]; everyMs: number },
): Job {
  const { alerter, probes } = options;
  return {
    name: "alerts",
    scope: "instance",
    schedule: { everyMs: options.everyMs },
    async run() {
      const seen = await Promise.all(probes.map((probe) => withTimeout(probe.check())));
      for (const [i, probe] of probes.entries()) {
        const problem = seen[i] ?? null;
        await alerter.report(probe.problem, problem !== null, problem ?? "", {
          ...(probe.alertAfterMs === undefined ? {} : { alertAfterMs: probe.alertAfterMs }),
          ...(probe.local ? { local: true } : {}),
        });
      }
    },
  };
}

/** A probe's answer, or a failure when it threw or took too long. */
async function withTimeout(check: Promise<string | null>): Promise<string | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(
      () => resolve(`no answer within ${PROBE_TIMEOUT_MS / 1000} s`),
      PROBE_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([check, late]);
  } catch (error) {
    return errorMessage(error);
  } finally {
    clearTimeout(timer);
  }
}

/** The store answers a ping (decided per instance: the store cannot hold its own outage). */
export function storeProbe(store: { ping(): Promise<number> }): Probe {
  return {
    problem: "store",
    local: true,
    async check() {
      await store.ping();
      return null;
    },
  };
}

/** The database answers a ping; its round trip goes to `bot_db_round_trip_seconds`. */
export function databaseProbe(
  db: { ping(): Promise<number> },
  metrics: { dbRoundTrip: Histogram },
): Probe {
  return {
    problem: "database",
    async check() {
      metrics.dbRoundTrip.observe((await db.ping()) / 1000);
      return null;
    },
  };
}

/** The poller gets answers from Telegram (nothing to say while this instance does not poll). */
export function pollingProbe(status: () => PollerStatus | null): Probe {
  return {
    problem: "polling",
    check() {
      const current = status();
      if (current === null) return Promise.resolve(null);
      const health = pollingHealth(current);
      return Promise.resolve(health.status === "pass" ? null : health.output ?? "polling fails");
    },
  };
}

/** No event was dropped for `quietMs` (told at once: a dropped event is lost). */
export function eventsProbe(dropped: Counter<"reason">, quietMs: number, now = Date.now): Probe {
  let last = -1;
  let lastDropAt = 0;
  return {
    problem: "events",
    alertAfterMs: 0,
    async check() {
      const total = (await dropped.get()).values.reduce((sum, v) => sum + v.value, 0);
      if (last >= 0 && total > last) lastDropAt = now();
      const count = last >= 0 ? total - last : 0;
      last = total;
      if (lastDropAt === 0 || now() - lastDropAt > quietMs) return null;
      return count > 0
        ? `${count} events dropped in the last seconds (${total} since the start)`
        : `events were dropped ${
          Math.round((now() - lastDropAt) / 1000)
        } s ago (${total} since the start)`;
    },
  };
}
