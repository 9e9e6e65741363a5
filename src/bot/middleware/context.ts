import type { MiddlewareFn } from "grammy";
import type { Locale } from "../../config.ts";
import type { EventRecord } from "../../db/events.ts";
import { logger } from "../../log.ts";
import type { Metrics } from "../../metrics/metrics.ts";
import type { BotContext } from "../context.ts";
import { DialogSession, NO_DIALOG } from "../dialog/session.ts";
import { pickLocale, translate } from "../i18n.ts";
import { updateIds, updateType } from "../update_info.ts";

/** Options of {@link contextStage}. */
export interface ContextStageOptions {
  /** Language for users whose Telegram language the bot does not speak. */
  defaultLocale: Locale;
  /** Update counters and the duration histogram. */
  metrics: Pick<Metrics, "updates" | "updateDuration">;
  /** Where each handled update goes for the event log; must return at once. */
  events?: { record(event: EventRecord): void };
}

/** The bot command an update starts with (`/new`), without the bot's @username. */
export function commandOf(ctx: BotContext): string | null {
  const message = ctx.message ?? ctx.editedMessage;
  const entity = message?.entities?.[0];
  if (!message?.text || entity?.type !== "bot_command" || entity.offset !== 0) return null;
  return message.text.slice(0, entity.length).split("@")[0]!.toLowerCase();
}

/**
 * Pipeline stage 1: binds a logger, the locale and a translator to the update, then logs one
 * line with the outcome and duration once everything below has finished.
 */
export function contextStage(options: ContextStageOptions): MiddlewareFn<BotContext> {
  const log = logger("update");
  return async function context(ctx, next) {
    const started = performance.now();
    const type = updateType(ctx.update);
    ctx.updateType = type;
    ctx.outcome = "handled";
    ctx.user = null;
    ctx.cachedProfile = undefined;
    // Without a gate (tests, benchmarks) dialogs start empty and are not stored.
    ctx.dialog = new DialogSession(NO_DIALOG);
    const ids = updateIds(ctx.update);
    ctx.locale = pickLocale(ctx.from?.language_code, options.defaultLocale);
    ctx.t = (key, params) => translate(ctx.locale, key, params);
    ctx.log = log.with({
      update_id: ctx.update.update_id,
      update_type: type,
      ...ids,
    });
    try {
      await next();
    } finally {
      const seconds = (performance.now() - started) / 1000;
      options.metrics.updates.inc({ type, outcome: ctx.outcome });
      options.metrics.updateDuration.observe({ type }, seconds);
      ctx.log.info("update {outcome}", {
        outcome: ctx.outcome,
        duration_ms: Math.round(seconds * 10_000) / 10,
      });
      options.events?.record({
        updateId: ctx.update.update_id,
        userId: ids.user_id ?? null,
        chatId: ids.chat_id ?? null,
        type,
        command: commandOf(ctx),
        outcome: ctx.outcome,
        durationMs: seconds * 1000,
        at: new Date(),
      });
    }
  };
}
