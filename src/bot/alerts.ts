/**
 * Deduplication of error alerts to admins: the same error (same message and first stack
 * frame) is alerted at most once per window, and the next alert after the window says how
 * many repeats were held back. Pure bookkeeping with an injectable clock; sending is the
 * errors stage's business.
 */

/** Options of {@link AlertThrottle}. */
export interface AlertThrottleOptions {
  /** How long after an alert the same error stays quiet, in ms. @default 300_000 (5 min) */
  windowMs?: number;
  /** Distinct errors remembered; the least recently alerted is forgotten first. @default 1000 */
  maxErrors?: number;
  /** The clock, in ms. @default Date.now */
  now?: () => number;
}

/** What to do about one occurrence of an error. */
export type AlertDecision =
  /** Alert now; `suppressed` repeats were held back since the previous alert of this error. */
  | { alert: true; suppressed: number }
  /** Stay quiet: this error was alerted less than a window ago. */
  | { alert: false };

interface Seen {
  /** When this error was last alerted. */
  alertedAt: number;
  /** Occurrences since then that were not alerted. */
  suppressed: number;
}

/** Decides, per error key, whether an occurrence is alerted or counted as a repeat. */
export class AlertThrottle {
  readonly #windowMs: number;
  readonly #maxErrors: number;
  readonly #now: () => number;
  // Insertion order is alert order, so the first key is the least recently alerted.
  readonly #seen = new Map<string, Seen>();

  constructor(options: AlertThrottleOptions = {}) {
    this.#windowMs = options.windowMs ?? 300_000;
    this.#maxErrors = options.maxErrors ?? 1000;
    this.#now = options.now ?? Date.now;
  }

  /** Records one occurrence of the error `key` and says whether to alert. */
  check(key: string): AlertDecision {
    const now = this.#now();
    const seen = this.#seen.get(key);
    if (seen && now - seen.alertedAt < this.#windowMs) {
      seen.suppressed++;
      return { alert: false };
    }
    const suppressed = seen?.suppressed ?? 0;
    this.#seen.delete(key);
    this.#seen.set(key, { alertedAt: now, suppressed: 0 });
    if (this.#seen.size > this.#maxErrors) {
      this.#seen.delete(this.#seen.keys().next().value!);
    }
    return { alert: true, suppressed };
  }
}

/** The first `at …` line of a stack trace, trimmed; "" when there is none. */
export function firstStackFrame(stack: string | undefined): string {
  const frame = stack?.split("\n").find((line) => /^\s*at /.test(line));
  return frame?.trim() ?? "";
}

/** What makes two errors "the same" for alerting: their message and first stack frame. */
export function errorKey(error: unknown): string {
  if (error instanceof Error) {
    return `${error.name}: ${error.message}\n${firstStackFrame(error.stack)}`;
  }
  return String(error);
}
