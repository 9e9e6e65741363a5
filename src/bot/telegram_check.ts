import { type Api, GrammyError } from "grammy";
import type { CheckResult } from "../health.ts";
import { errorMessage } from "../errors.ts";

/** Options of {@link cachedCheck}. */
export interface CacheOptions {
  /** How long one answer is reused, in milliseconds. @default 30000 */
  cacheMs?: number;
  /** The clock. @default Date.now */
  now?: () => number;
}

/**
 * Wraps a probe so that its answer is reused for `cacheMs` and concurrent callers share one
 * probe: a flood of health requests never becomes a flood of Bot API calls.
 */
export function cachedCheck(
  probe: () => Promise<CheckResult>,
  { cacheMs = 30_000, now = Date.now }: CacheOptions = {},
): () => Promise<CheckResult> {
  let cached: { at: number; result: CheckResult } | null = null;
  let inFlight: Promise<CheckResult> | null = null;
  return async () => {
    if (cached && now() - cached.at < cacheMs) return cached.result;
    inFlight ??= probe().then((result) => {
      cached = { at: now(), result };
      return result;
    }).finally(() => inFlight = null);
    return await inFlight;
  };
}

// Each probe has its own timeout: a health request that gave up must not cancel a call that
// the next request shares.
const PROBE_TIMEOUT_MS = 10_000;

/**
 * Telegram's health: a `getMe` round trip. A refused token fails; an unreachable Telegram only
 * warns (this process is fine, and restarting it would not help).
 */
export function telegramCheck(api: Api, options?: CacheOptions): () => Promise<CheckResult> {
  return cachedCheck(async () => {
    const started = performance.now();
    try {
      const me = await api.getMe(AbortSignal.timeout(PROBE_TIMEOUT_MS) as never);
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
        output: `Telegram unreachable: ${errorMessage(error)}`,
      };
    }
  }, options);
}

/**
 * The webhook as Telegram sees it (`getWebhookInfo`): warns when Telegram has another URL
 * registered or reported a delivery error in the last five minutes.
 */
export function webhookCheck(
  api: Api,
  url: string,
  options?: CacheOptions,
): () => Promise<CheckResult> {
  return cachedCheck(async () => {
    const started = performance.now();
    try {
      const info = await api.getWebhookInfo(AbortSignal.timeout(PROBE_TIMEOUT_MS) as never);
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
        output: `getWebhookInfo failed: ${errorMessage(error)}`,
      };
    }
  }, options);
}
