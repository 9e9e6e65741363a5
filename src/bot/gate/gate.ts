import type { MiddlewareFn } from "grammy";
import type { FsmConfig, RateLimitConfig } from "../../config.ts";
import { StoreUnavailableError } from "../../errors.ts";
import { logger } from "../../log.ts";
import type { Metrics } from "../../metrics/metrics.ts";
import { rateLimitArgs } from "./bucket_script.ts";
import {
  type DialogWrite,
  finishScript,
  finishScriptKeys,
  type GateArgs,
  type GateKeys,
  gateKeys,
  gateScript,
  gateScriptKeys,
  type GateVerdict,
  renewLeaseScript,
} from "./scripts.ts";
import { type DialogRecord, EXPIRED_DIALOG_MEMORY_MS } from "../dialog/record.ts";
import type { Json, KeyValueStore } from "../../store/store.ts";
import { backoffDelay } from "../../util/backoff.ts";
import { delay } from "../../util/delay.ts";
import type { BotContext } from "../context.ts";
import { DialogSession, readRecord } from "../dialog/session.ts";
import { LocalGate } from "./local_gate.ts";
import { type HeldLease, LeaseRenewals } from "./lease_renewal.ts";
import { notify } from "../reply.ts";
import type { FloodControl } from "../flood/flood_control.ts";

/** Options of {@link createGate}. */
export interface GateOptions {
  store: KeyValueStore;
  rateLimit: RateLimitConfig;
  /** Dialog state lifetimes. */
  fsm: FsmConfig;
  /** Admins, exempt from the limit when `rateLimit.adminExempt`. */
  adminIds: readonly number[];
  metrics: Pick<Metrics, "gate" | "storeRoundTrip" | "dialogCommits" | "chatLeaseWaits">;
  /**
   * How long an instance may hold a chat while handling one of its updates, renewed while it
   * runs; 0 takes no lease (only one instance handles updates: polling, or the embedded store).
   */
  leaseMs: number;
  /** This instance's name, unique among the instances sharing the store. */
  instanceId: string;
  /** The clock, for the fallback's buckets. @default Date.now */
  now?: () => number;
  /**
   * The outbound flood control: a message in a private chat has the turn of its reply taken
   * ahead, together with the gate's own call (see `FloodControl.prefetch`).
   */
  flood?: Pick<FloodControl, "prefetch" | "forgo">;
}

/** What the gate hands to the commit stage for one update. */
interface Ticket extends HeldLease {
  ctx: BotContext;
  keys: GateKeys;
  token: string;
  /** The store was unreachable at the gate: nothing to commit but the local dedup. */
  local: boolean;
}

/** Most limited or banned senders remembered (see `quiet` in {@link createGate}). */
const QUIET_LIMIT = 10_000;

/** The label of each store call in `bot_store_round_trip_seconds`, made once. */
const SCRIPT_LABELS = {
  gate: { script: "gate" },
  finish: { script: "finish" },
  "renew-lease": { script: "renew-lease" },
} as const;

/**
 * The pipeline's gate and commit stages, which share the store and the in-memory fallback.
 *
 * Gate: before any feature runs, one atomic store call drops an update handled before, waits
 * while another instance handles an update of the same chat, takes a token from the sender's
 * bucket, takes the chat's lease and loads the sender's dialog state and cached profile. A
 * limited sender gets one notice saying how long to wait, a banned one is told once; whatever
 * else they send meanwhile is dropped silently.
 *
 * Commit: once the features are done (or failed), one more store call writes the dialog
 * state if it changed, remembers the update as handled for a day and releases the lease. A
 * failed update's dialog change is dropped, as a rolled-back transaction would be.
 *
 * Outage policy: while the store is unreachable each instance dedups and limits in memory
 * (`LocalGate`), `ctx.dialog` is unavailable (the dialogs stage tells the user their progress
 * is kept), and the store is used again as soon as it answers.
 */
export function createGate(options: GateOptions): {
  gate: MiddlewareFn<BotContext>;
  commit: MiddlewareFn<BotContext>;
} {
  const { store, rateLimit, fsm, adminIds, metrics, leaseMs, instanceId, flood, now = Date.now } =
    options;
  const log = logger("gate");
  const admins = new Set(adminIds);
  const local = new LocalGate(rateLimit);
  const limiter = rateLimitArgs(rateLimit);
  const tickets = new WeakMap<BotContext, Ticket>();
  const recordTtlMs = Math.max(fsm.stateTtlMs, fsm.dataTtlMs) + EXPIRED_DIALOG_MEMORY_MS;
  // An update waits at most this long for another instance's lease (which lapses after leaseMs).
  const maxWaitMs = 2 * leaseMs + 1000;
  let storeDown = false;
  // Senders this instance saw limited or banned, until when: their messages get no reply, so
  // no turn is taken ahead for them (a flood of them would fill the bot-wide log).
  const quiet = new Map<number, number>();

  const renewals = new LeaseRenewals<Ticket>(renew, Math.max(100, Math.floor(leaseMs / 4)));

  /**
   * Records a store call's round trip that started at `started` (`performance.now()`); the
   * callers time their own await: a timing wrapper would cost every call an async frame.
   */
  function timed(script: keyof typeof SCRIPT_LABELS, started: number): void {
    metrics.storeRoundTrip.observe(SCRIPT_LABELS[script], (performance.now() - started) / 1000);
  }

  function storeAnswered(): void {
    if (storeDown) log.info("the store answers again: the gate uses it");
    storeDown = false;
  }

  function storeFailed(error: StoreUnavailableError): void {
    if (!storeDown) {
      log.warning("the store is unreachable: deduplicating and limiting in memory", {
        error: error.message,
      });
    }
    storeDown = true;
  }

  async function decide(
    ctx: BotContext,
    keys: GateKeys,
    token: string,
    limit: boolean,
  ): Promise<Exclude<GateVerdict, { kind: "busy" }> | null> {
    const args: GateArgs = [
      limit,
      ...limiter,
      token,
      leaseMs,
      fsm.stateTtlMs,
      fsm.dataTtlMs,
    ];
    const storeKeys = gateScriptKeys(keys);
    const started = performance.now();
    for (let attempt = 0;; attempt++) {
      let verdict: GateVerdict;
      try {
        const called = performance.now();
        verdict = await store.run(gateScript, storeKeys, args) as GateVerdict;
        timed("gate", called);
      } catch (error) {
        if (!(error instanceof StoreUnavailableError)) throw error;
        storeFailed(error);
        return null;
      }
      storeAnswered();
      if (verdict.kind !== "busy") return verdict;
      if (attempt === 0) {
        metrics.chatLeaseWaits.inc();
        ctx.log.debug("another instance handles this chat; waiting");
      }
      if (performance.now() - started > maxWaitMs) {
        throw new Error(
          `chat ${keys.lease[1]} stayed busy on another instance for ${maxWaitMs} ms`,
        );
      }
      await delay(Math.min(verdict.waitMs, backoffDelay(attempt, { baseMs: 5, maxMs: 100 })));
    }
  }

  const gate: MiddlewareFn<BotContext> = async function gate(ctx, next) {
    const sender = ctx.from?.id;
    if (sender === undefined) return await next();
    const updateId = ctx.update.update_id;
    const keys = gateKeys(ctx.chat?.id ?? sender, sender, updateId);
    const token = leaseMs > 0 ? `${instanceId}:${updateId}` : "";
    const limit = rateLimit.enabled && !(rateLimit.adminExempt && admins.has(sender));
    // In the same tick as the gate's call, so that both travel to the store together.
    if (flood && ctx.chat?.type === "private" && ctx.update.message && !isQuiet(sender)) {
      flood.prefetch(sender);
    }
    const stored = await decide(ctx, keys, token, limit);
    const verdict = stored ?? local.check(sender, updateId, limit, now());
    if (stored === null) metrics.gate.inc({ outcome: "store_down" });
    metrics.gate.inc({ outcome: verdict.kind === "pass" ? "passed" : verdict.kind });
    if (verdict.kind === "pass") {
      if (stored?.kind === "pass") {
        ctx.dialog = new DialogSession(readRecord(stored.dialog, stored.at));
        if (stored.profileRead) {
          ctx.cachedProfile = stored.profile ?? null;
        }
      } else {
        ctx.dialog = new DialogSession(null);
      }
      const ticket: Ticket = { ctx, keys, token, local: stored === null, renewedAt: 0 };
      tickets.set(ctx, ticket);
      const renewed = leaseMs > 0 && stored !== null;
      if (renewed) {
        ticket.renewedAt = performance.now();
        renewals.add(ticket);
      }
      try {
        return await next();
      } finally {
        if (renewed) renewals.delete(ticket);
      }
    }
    ctx.outcome = verdict.kind;
    if (verdict.kind === "limited") quietUntil(sender, now() + verdict.retryAfterMs);
    if (verdict.kind === "banned") quietUntil(sender, verdict.untilMs);
    if (verdict.kind === "duplicate" || !verdict.notify) {
      flood?.forgo(sender);
      return;
    }
    const text = verdict.kind === "limited"
      ? ctx.t("gate.limited", { seconds: Math.max(1, Math.ceil(verdict.retryAfterMs / 1000)) })
      : ctx.t("gate.banned", {
        minutes: Math.max(1, Math.ceil((verdict.untilMs - now()) / 60_000)),
      });
    try {
      await notify(ctx, text);
    } finally {
      flood?.forgo(sender);
    }
  };

  function isQuiet(sender: number): boolean {
    const until = quiet.get(sender);
    if (until === undefined) return false;
    if (until > now()) return true;
    quiet.delete(sender);
    return false;
  }

  function quietUntil(sender: number, until: number): void {
    // Many at once only in an attack; forgetting them costs a turn each, taken ahead in vain.
    if (quiet.size >= QUIET_LIMIT) quiet.clear();
    quiet.set(sender, until);
  }

  /** Renews the chat's lease of a long update (called by {@link LeaseRenewals}). */
  function renew({ ctx, keys, token }: Ticket): void {
    const called = performance.now();
    store.run(renewLeaseScript, [keys.lease], [token, leaseMs])
      .then(({ held }) => {
        timed("renew-lease", called);
        if (!held) ctx.log.warning("lost the chat's lease while handling the update");
      })
      .catch((error) => ctx.log.warning("could not renew the chat's lease", { error }));
  }

  const commit: MiddlewareFn<BotContext> = async function commit(ctx, next) {
    let failed = true;
    try {
      await next();
      failed = false;
    } finally {
      const ticket = tickets.get(ctx);
      if (ticket) await finish(ctx, ticket, failed);
    }
  };

  async function finish(ctx: BotContext, ticket: Ticket, failed: boolean): Promise<void> {
    // Handled, or failed for good (the errors stage answers): either way not again. The
    // fallback remembers it too, in case the store goes down before Telegram stops re-sending.
    local.markSeen(ctx.update.update_id);
    // A reply's turn taken ahead and not used goes back with the commit.
    if (ctx.chat) flood?.forgo(ctx.chat.id);
    if (ticket.local) return;
    const change = failed ? null : ctx.dialog.change();
    const write: DialogWrite | null = change === null ? null : {
      expect: ctx.dialog.version,
      record: toRecord(change, ctx.dialog.version + 1, now()),
      ttlMs: recordTtlMs,
    };
    try {
      const called = performance.now();
      const result = await store.run(finishScript, finishScriptKeys(ticket.keys), [
        ticket.token,
        write,
      ]);
      timed("finish", called);
      storeAnswered();
      if (write === null) {
        metrics.dialogCommits.inc({ result: "unchanged" });
      } else if (result.written) {
        metrics.dialogCommits.inc({ result: "written" });
      } else {
        const conflict = "conflict" in result ? result.conflict : "version";
        metrics.dialogCommits.inc({ result: conflict === "lease" ? "lease_lost" : "conflict" });
        ctx.log.warning("dialog state not saved: {conflict} conflict", { conflict });
        await notify(ctx, ctx.t("dialog.conflict"));
      }
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      storeFailed(error);
      metrics.dialogCommits.inc({ result: "store_down" });
      if (write !== null) {
        ctx.log.warning("dialog state not saved: the store is unreachable");
        await notify(ctx, ctx.t("dialog.unsaved"));
      }
    }
  }

  function toRecord(
    change: { state: string | null; data: Json },
    version: number,
    nowMs: number,
  ): DialogRecord {
    if (change.state === null) return { v: version, s: null, d: null, sAt: nowMs, dAt: nowMs };
    return {
      v: version,
      s: change.state,
      d: JSON.stringify(change.data),
      sAt: nowMs + fsm.stateTtlMs,
      dAt: nowMs + fsm.dataTtlMs,
    };
  }

  return { gate, commit };
}
