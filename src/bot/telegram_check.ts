/**
 * Telegram's health as `/health` reports it, without ever making a probe wait for Telegram:
 * each check answers from its last probe and refreshes it in the background once it is older
 * than `cacheMs`, so concurrent probes share one Bot API call and a Telegram outage costs a
 * health request nothing. Probes use a plain API client without retries. Changes between
 * reachable and unreachable are logged once each way.
 */
import { type Api, GrammyError } from "grammy";
import { causeChain } from "../errors.ts";
import type { Check, CheckResult } from "../health.ts";
import type { Logger } from "../log.ts";

/** Options of {@link cachedCheck}. */
export interface CacheOptions {
  /** How long one answer is used before it is refreshed, in ms. @default 30000 */
  cacheMs?: number;
  /** How long the very first call waits for the first answer, in ms. @default 800 */
  firstWaitMs?: number;
  /** The clock. @default Date.now */
  now?: () => number;
  /** Told when the answer's status changes (not on the first answer when it passes). */
  onChange?: (result: CheckResult, previous: CheckResult | null) => void;
}

/**
 * Wraps a probe so that callers get its last answer at once and concurrent callers share one
 * probe; see the module documentation. A probe that throws counts as a `warn` answer.
 */
export function cachedCheck(
  probe: () => Promise<CheckResult>,
  { cacheMs = 30_000, firstWaitMs = 800, now = Date.now, onChange }: CacheOptions = {},
): Check {
  let cached: { at: number; result: CheckResult } | null = null;
  let inFlight: Promise<CheckResult> | null = null;

  function refresh(): Promise<CheckResult> {
    inFlight ??= probe()
      .catch((error): CheckResult => ({ status: "warn", output: causeChain(error) }))
      .then((result) => {
        const previous = cached?.result ?? null;
        cached = { at: now(), result };
        if (previous ? previous.status !== result.status : result.status !== "pass") {
          onChange?.(result, previous);
        }
        return result;
      })
      .finally(() => inFlight = null);
    return inFlight;
  }

  return async () => {
    if (cached === null || now() - cached.at >= cacheMs) {
      const pending = refresh();
      if (cached === null) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const first = await Promise.race([
          pending,
          new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), firstWaitMs)),
        ]);
        clearTimeout(timer);
        return first ?? { status: "warn", output: "no answer yet" };
      }
    }
    return cached.result;
  };
}

// Each probe has its own timeout: a health request never waits for it anyway.
const PROBE_TIMEOUT_MS = 10_000;

/** Logs a check's changes between reachable and not. */
function transitions(log: Logger | undefined, what: string): CacheOptions["onChange"] {
  return (result, previous) => {
    if (result.status === "pass") log?.info("{what} answers again", { what });
    else if (previous === null || previous.status === "pass") {
      log?.warning("{what}: {output}", { what, output: result.output ?? result.status });
    }
  };
}

/**
 * Telegram's health: a `getMe` round trip through `api` (a client without retries; null
 * before the bot is built). A refused token fails; an unreachable Telegram only warns (this
 * process is fine, and restarting it would not help).
 */
export function telegramCheck(
  api: () => Api | null,
  options: CacheOptions & { log?: Logger } = {},
): Check {
  return cachedCheck(async () => {
    const client = api();
    if (client === null) return { status: "warn", output: "not connected yet" };
    const started = performance.now();
    try {
      const me = await client.getMe(AbortSignal.timeout(PROBE_TIMEOUT_MS) as never);
      return {
        status: "pass",
        observedValue: performance.now() - started,
        output: `@${me.username}`,
      };
    } catch (error) {
      const observedValue = performance.now() - started;
      if (error instanceof GrammyError && error.error_code === 401) {
        return { status: "fail", observedValue, output: "Telegram refused the token (401)" };
      }
      return {
        status: "warn",
        observedValue,
        output: `Telegram unreachable: ${causeChain(error)}`,
      };
    }
  }, { onChange: transitions(options.log, "Telegram"), ...options });
}

/**
 * The webhook as Telegram sees it (`getWebhookInfo`): warns when Telegram has another URL
 * registered or reported a delivery error in the last five minutes.
 */
export function webhookCheck(
  api: () => Api | null,
  url: string,
  options?: CacheOptions,
): Check {
  return cachedCheck(async () => {
    const client = api();
    if (client === null) return { status: "warn", output: "not connected yet" };
    const started = performance.now();
    try {
      const info = await client.getWebhookInfo(AbortSignal.timeout(PROBE_TIMEOUT_MS) as never);
      const observedValue = performance.now() - started;
      if (info.url !== url) {
        return {
          status: "warn",
          observedValue,
          output: "Telegram has another webhook URL registered",
        };
      }
      const recentError = info.last_error_date !== undefined &&
        Date.now() / 1000 - info.last_error_date < 300;
      if (recentError) {
        return {
          status: "warn",
          observedValue,
          output: `Telegram reported: ${
            info.last_error_message ?? "delivery error"
          } (pending ${info.pending_update_count})`,
        };
      }
      return { status: "pass", observedValue, output: `pending ${info.pending_update_count}` };
    } catch (error) {
      return {
        status: "warn",
        observedValue: performance.now() - started,
        output: `getWebhookInfo failed: ${causeChain(error)}`,
      };
    }
  }, options);
}
