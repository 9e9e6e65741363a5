import type { MiddlewareFn } from "grammy";
import type { RateLimitConfig } from "../../config.ts";
import { StoreUnavailableError } from "../../errors.ts";
import { logger } from "../../log.ts";
import type { Metrics } from "../../metrics.ts";
import {
  type GateArgs,
  gateScript,
  type GateVerdict,
  markSeen,
  seenKey,
} from "../../store/scripts/gate.ts";
import { rateLimitArgs } from "../../store/scripts/bucket.ts";
import type { KeyValueStore } from "../../store/store.ts";
import type { BotContext } from "../context.ts";
import { LocalGate } from "../local_gate.ts";

/** Options of {@link gateStage}. */
export interface GateStageOptions {
  store: KeyValueStore;
  rateLimit: RateLimitConfig;
  /** Admins, exempt from the limit when `rateLimit.adminExempt`. */
  adminIds: readonly number[];
  metrics: Pick<Metrics, "gate" | "gateDuration">;
  /** The clock, for the fallback's buckets. @default Date.now */
  now?: () => number;
}

/**
 * Pipeline stage "gate": before any feature runs, one atomic store call drops an update
 * handled before and takes a token from the sender's bucket; once handled, the update is
 * remembered for a day. (An update is marked only after handling, so one abandoned at a
 * shutdown or cut off by a crash is handled when Telegram delivers it again.) A limited sender gets one notice saying
 * how long to wait, a banned one is told once; everything else they send meanwhile is
 * dropped silently.
 *
 * Outage policy: when the store is unreachable, each instance dedups and limits in memory
 * (`LocalGate`) until the store answers again.
 */
export function gateStage(options: GateStageOptions): MiddlewareFn<BotContext> {
  const { store, rateLimit, adminIds, metrics, now = Date.now } = options;
  const log = logger("gate");
  const local = new LocalGate(rateLimit);
  const limiter = rateLimitArgs(rateLimit);
  let storeDown = false;

  async function decide(sender: number, updateId: number, limit: boolean): Promise<GateVerdict> {
    const started = performance.now();
    try {
      const args: GateArgs = [limit, ...limiter];
      const verdict = await store.run(
        gateScript,
        [seenKey(sender, updateId), ["rl", sender]],
        args,
      ) as GateVerdict;
      metrics.gateDuration.observe((performance.now() - started) / 1000);
      if (storeDown) log.info("the store answers again: the gate uses it");
      storeDown = false;
      return verdict;
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      if (!storeDown) {
        log.warning("the store is unreachable: deduplicating and limiting in memory", {
          error: error.message,
        });
      }
      storeDown = true;
      metrics.gate.inc({ outcome: "store_down" });
      return local.check(sender, updateId, limit, now());
    }
  }

  return async function gate(ctx, next) {
    const sender = ctx.from?.id;
    if (sender === undefined) return await next();
    const limit = rateLimit.enabled && !(rateLimit.adminExempt && adminIds.includes(sender));
    const verdict = await decide(sender, ctx.update.update_id, limit);
    metrics.gate.inc({ outcome: verdict.kind === "pass" ? "passed" : verdict.kind });
    if (verdict.kind === "pass") {
      try {
        return await next();
      } finally {
        // Handled, or failed for good (the errors stage answered): either way not again.
        local.markSeen(ctx.update.update_id);
        await markSeen(store, sender, ctx.update.update_id).catch((error) =>
          ctx.log.warning("could not remember the update as handled", { error: String(error) })
        );
      }
    }
    ctx.outcome = verdict.kind;
    if (verdict.kind === "duplicate" || !verdict.notify) return;
    const text = verdict.kind === "limited"
      ? ctx.t("gate.limited", { seconds: Math.max(1, Math.ceil(verdict.retryAfterMs / 1000)) })
      : ctx.t("gate.banned", {
        minutes: Math.max(1, Math.ceil((verdict.untilMs - now()) / 60_000)),
      });
    await tell(ctx, text);
  };
}

/** The notice goes where the user looks: the callback's answer, or the chat. */
async function tell(ctx: BotContext, text: string): Promise<void> {
  try {
    if (ctx.callbackQuery) await ctx.answerCallbackQuery({ text, show_alert: true });
    else if (ctx.chat) await ctx.reply(text);
  } catch (error) {
    ctx.log.warning("could not send the rate-limit notice", { error });
  }
}
