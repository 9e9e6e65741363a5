/**
 * The outbox job: delivers what the bot owes because of stored facts (the staff post of a new
 * request, relayed messages, …), as the features that own each kind of item say how
 * (`Feature.deliveries`). Items are claimed, delivered and marked done one by one; a failed
 * delivery is retried with growing delays (up to an hour: a bot removed from the staff chat
 * may be added back any time) and never given up. A crash between Telegram's answer and the
 * mark leaves the item to be delivered again once its claim runs out: at least once, with a
 * window of the time one database update takes.
 */
import type { Api } from "grammy";
import type { OutboxItem, OutboxRepository } from "../db/outbox.ts";
import { errorMessage } from "../errors.ts";
import type { CheckResult } from "../health.ts";
import type { Logger } from "../log.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { Json } from "../store/store.ts";
import { backoffDelay } from "../util/backoff.ts";
import type { Job } from "./job.ts";

/** What a delivery gets besides its item. */
export interface DeliveryTools {
  /** The bot's API client (with retries). */
  api: Api;
  log: Logger;
}

/**
 * Delivers one item; its result (JSON) is stored with the item. A rejection reschedules it.
 * A delivery must be safe to repeat in the rare case described in the module documentation.
 */
export type OutboxHandler = (item: OutboxItem, tools: DeliveryTools) => Promise<unknown>;

/** Options of {@link outboxJob}. */
export interface OutboxJobOptions {
  outbox: OutboxRepository;
  /** The deliveries by kind. */
  handlers: Readonly<Record<string, OutboxHandler>>;
  /** The bot's API client, once the bot is built. */
  api: () => Api;
  /** Who claims items (this instance's id). */
  instanceId: string;
  metrics: Pick<Metrics, "outboxDeliveries" | "outboxPending" | "outboxOldestAge">;
  /** How often to look for due items. @default 1000 */
  everyMs?: number;
  /**
   * How long a claim holds an item; after a crash its items wait this long. Longer than one
   * delivery with its retries normally takes. @default 30000
   */
  claimMs?: number;
}

/** The name of the outbox job (for `JobRunner.trigger`). */
export const OUTBOX_JOB = "outbox";

/** An undelivered item older than this makes `/health` warn. */
const STUCK_SECONDS = 300;

/** The outbox job and its health check; see the module documentation. */
export function outboxJob(options: OutboxJobOptions): Job & { check(): Promise<CheckResult> } {
  const { outbox, handlers, instanceId, metrics } = options;
  const kinds = Object.keys(handlers);
  const claimMs = options.claimMs ?? 30_000;

  async function deliver(item: OutboxItem, log: Logger): Promise<void> {
    const handler = handlers[item.kind]!;
    try {
      const result = await handler(item, { api: options.api(), log });
      await outbox.complete(item.id, (result ?? null) as Json);
      metrics.outboxDeliveries.inc({ kind: item.kind, result: "sent" });
      if (item.attempts > 1) {
        log.info("{kind} {ref} delivered after {attempts} attempts", {
          kind: item.kind,
          ref: item.ref,
          attempts: item.attempts,
        });
      }
    } catch (error) {
      const message = errorMessage(error);
      const waitMs = backoffDelay(item.attempts - 1, { baseMs: 2000, maxMs: 3_600_000 });
      await outbox.retry(item.id, message, waitMs);
      metrics.outboxDeliveries.inc({ kind: item.kind, result: "retry" });
      // Attempts 1, 2, 4, 8…: an item stuck for a day logs a dozen lines, not thousands.
      if ((item.attempts & (item.attempts - 1)) === 0) {
        log.warning(
          "could not deliver {kind} {ref} (attempt {attempts}), retrying in {wait_s} s: {message}",
          {
            kind: item.kind,
            ref: item.ref,
            attempts: item.attempts,
            wait_s: Math.round(waitMs / 1000),
            message,
          },
        );
      }
    }
  }

  async function refreshGauges(): Promise<void> {
    const backlog = await outbox.backlog();
    for (const kind of kinds) {
      const entry = backlog.find((b) => b.kind === kind);
      metrics.outboxPending.set({ kind }, entry?.count ?? 0);
      metrics.outboxOldestAge.set({ kind }, entry?.oldestSeconds ?? 0);
    }
  }

  return {
    name: OUTBOX_JOB,
    schedule: { everyMs: options.everyMs ?? 1000 },
    async run({ signal, log }) {
      if (kinds.length === 0) return;
      while (!signal.aborted) {
        const items = await outbox.claim(kinds, 20, instanceId, claimMs);
        for (const [i, item] of items.entries()) {
          if (signal.aborted) {
            // Not tried: let the next instance (or this one after a restart) take them at once.
            await outbox.release(items.slice(i).map((rest) => rest.id));
            break;
          }
          await deliver(item, log);
        }
        if (items.length < 20) break;
      }
      await refreshGauges();
    },
    async check() {
      const backlog = await outbox.backlog();
      const stuck = backlog.filter((b) => b.oldestSeconds > STUCK_SECONDS);
      if (stuck.length === 0) {
        const waiting = backlog.reduce((n, b) => n + b.count, 0);
        return { status: "pass", observedValue: waiting, observedUnit: "items" };
      }
      return {
        status: "warn",
        observedValue: stuck.reduce((n, b) => n + b.count, 0),
        observedUnit: "items",
        output: stuck.map((b) =>
          `${b.count} ${b.kind} undelivered for up to ${Math.round(b.oldestSeconds / 60)} min` +
          (b.lastError ? ` (${b.lastError})` : "")
        ).join("; "),
      };
    },
  };
}
