/**
 * The first thing the features stage runs: makes sure features only ever see dialog state
 * that fits a dialog the bot knows, and tells the user what happened to the rest.
 *
 * - A dialog that expired (`FSM_STATE_TTL` without activity) is cleared and the user is told,
 *   instead of their late answer being silently ignored.
 * - A stored state that no longer fits its dialog (renamed step, changed data schema after an
 *   upgrade, a dialog that was removed) is cleared with an apology, not an exception.
 * - While the store is unreachable the state is unknown: commands still reach the features
 *   (those that need no dialog answer normally); anything else, and any attempt to change
 *   dialog state, gets "temporarily unavailable, your progress is kept".
 *
 * After a notice, a command still goes on to the features; anything else was an answer to the
 * lost dialog and stops here.
 */
import type { MiddlewareFn } from "grammy";
import type { BotContext } from "../context.ts";
import { commandOf } from "../middleware/context.ts";
import { notify } from "../reply.ts";
import type { Dialog } from "./dialog.ts";
import { DialogUnavailableError } from "./session.ts";

/** Options of {@link dialogGuard}. */
export interface DialogGuardOptions {
  /** Every dialog the features define. */
  dialogs: readonly Dialog<string, unknown>[];
  /** `FSM_STATE_TTL` in ms, for the expiry notice. */
  stateTtlMs: number;
}

/** The dialogs stage; see the module documentation. */
export function dialogGuard(options: DialogGuardOptions): MiddlewareFn<BotContext> {
  const { dialogs, stateTtlMs } = options;
  return async function dialogCheck(ctx, next) {
    const dialog = ctx.dialog;
    const command = commandOf(ctx) !== null;
    if (!dialog.available) {
      if (!command) return void await notify(ctx, ctx.t("dialog.unavailable"));
    } else if (dialog.expired !== null) {
      dialog.clear();
      ctx.log.info("dialog {state} expired", { state: dialog.expired });
      await notify(
        ctx,
        ctx.t("dialog.expired", { hours: Math.max(1, Math.round(stateTtlMs / 3_600_000)) }),
      );
      if (!command) return;
    } else if (dialog.state !== null) {
      const state = dialog.state;
      const owner = dialogs.find((d) => d.owns(state));
      if (!owner || owner.parse(state, dialog.data) === null) {
        ctx.log.warning("stored dialog state {state} no longer fits; reset", { state });
        dialog.clear();
        await notify(ctx, ctx.t("dialog.reset"));
        if (!command) return;
      }
    }
    try {
      await next();
    } catch (error) {
      if (!(error instanceof DialogUnavailableError)) throw error;
      await notify(ctx, ctx.t("dialog.unavailable"));
    }
  };
}
