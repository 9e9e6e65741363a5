import type { MiddlewareFn } from "grammy";
import type { Locale } from "../../config.ts";
import type { EventRecord } from "../../db/events.ts";
import type { Metrics } from "../../metrics/metrics.ts";
import { type BotContext, PipelineContext, UPDATE_LOG } from "../context.ts";
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
 * Pipeline stage 1: sets the update's type, locale and defaults, then logs one line with the
 * outcome and duration (when `info` is logged at all) and hands the update to the event log
 * once everything below has finished. `ctx.t` and `ctx.log` come with {@link PipelineContext};
 * a plain grammY context gets them here.
 */
export function contextStage(options: ContextStageOptions): MiddlewareFn<BotContext> {
  const { metrics, events, defaultLocale } = options;
  return async function context(ctx, next) {
    const started = performance.now();
    const type = updateType(ctx.update);
    ctx.updateType = type;
    ctx.outcome = "handled";
    ctx.user = null;
    ctx.cachedProfile = undefined;
    // Without a gate (tests, benchmarks) dialogs start empty and are not stored.
    ctx.dialog = new DialogSession(NO_DIALOG);
    ctx.locale = pickLocale(ctx.from?.language_code, defaultLocale);
    if (!(ctx instanceof PipelineContext)) bindPlain(ctx);
    try {
      await next();
    } finally {
      const seconds = (performance.now() - started) / 1000;
      metrics.updates.inc({ type, outcome: ctx.outcome });
      metrics.updateDuration.observe({ type }, seconds);
      if (UPDATE_LOG.isEnabledFor("info")) {
        ctx.log.info("update {outcome}", {
          outcome: ctx.outcome,
          duration_ms: Math.round(seconds * 10_000) / 10,
        });
      }
      if (events) {
        const ids = updateIds(ctx.update);
        events.record({
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
    }
  };
}

/** `t` and `log` for a context that is no {@link PipelineContext}, as closures. */
function bindPlain(ctx: BotContext): void {
  ctx.t = (key, params) => translate(ctx.locale, key, params);
  ctx.log = UPDATE_LOG.with({
    update_id: ctx.update.update_id,
    update_type: ctx.updateType,
    ...updateIds(ctx.update),
  });
}
