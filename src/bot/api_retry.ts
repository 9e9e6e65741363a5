import type { Transformer } from "grammy";
import type { Metrics } from "../metrics/metrics.ts";
import { backoffDelay } from "../util/backoff.ts";
import { delay } from "../util/delay.ts";

/** Options of {@link apiRetry}. */
export interface ApiRetryOptions {
  /** Counters for calls and retries. */
  metrics: Pick<Metrics, "apiCalls" | "apiRetries">;
  /** Retries after the first attempt. @default 4 */
  maxRetries?: number;
  /** A `retry_after` longer than this is not waited for: the error goes to the caller. @default 60 */
  maxRetryAfterSeconds?: number;
  /** Backoff for 5xx and network errors, in milliseconds. @default { baseMs: 500, maxMs: 10000 } */
  backoff?: { baseMs: number; maxMs: number };
  /** Waits between attempts; tests pass a fake. @default abortable setTimeout */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Methods that the caller retries itself: `getUpdates` is re-issued by the poller with its
 * own backoff, and must not sleep inside a long-poll that a shutdown wants to abort.
 */
const SELF_RETRYING = new Set(["getUpdates"]);

/**
 * The wait Telegram asked for with a 429, in seconds (`parameters.retry_after`; 1 when it names
 * none); null for any other failure. Takes a failed answer or a `GrammyError`.
 */
export function retryAfterSeconds(
  failure: { error_code: number; parameters?: { retry_after?: number } },
): number | null {
  return failure.error_code === 429 ? failure.parameters?.retry_after ?? 1 : null;
}

/**
 * A grammY API transformer that retries flood waits (429, honouring `retry_after`), server
 * errors (5xx) and network failures, with a bound, and counts every attempt.
 */
export function apiRetry(options: ApiRetryOptions): Transformer {
  const {
    metrics,
    maxRetries = 4,
    maxRetryAfterSeconds = 60,
    backoff = { baseMs: 500, maxMs: 10_000 },
    sleep = delay,
  } = options;
  return async function retrying(prev, method, payload, signal) {
    const retries = SELF_RETRYING.has(method) ? 0 : maxRetries;
    // grammY types its signal with the abort-controller shim; at run time it is the global one.
    const abort = signal as unknown as AbortSignal | undefined;
    for (let attempt = 0;; attempt++) {
      let waitMs: number;
      let reason: string;
      try {
        const result = await prev(method, payload, signal);
        metrics.apiCalls.inc({ method, result: result.ok ? "ok" : String(result.error_code) });
        if (result.ok || attempt >= retries) return result;
        const retryAfter = retryAfterSeconds(result);
        if (retryAfter !== null) {
          if (retryAfter > maxRetryAfterSeconds) return result;
          waitMs = retryAfter * 1000;
          reason = "429";
        } else if (result.error_code >= 500) {
          waitMs = backoffDelay(attempt, backoff);
          reason = "5xx";
        } else {
          return result;
        }
      } catch (error) {
        if (abort?.aborted) throw error;
        metrics.apiCalls.inc({ method, result: "network_error" });
        if (attempt >= retries) throw error;
        waitMs = backoffDelay(attempt, backoff);
        reason = "network";
      }
      metrics.apiRetries.inc({ method, reason });
      await sleep(waitMs, abort);
    }
  };
}
