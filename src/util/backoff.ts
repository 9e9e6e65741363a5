/** Options of {@link backoffDelay}. */
export interface BackoffOptions {
  /** Delay cap before jitter for the first retry, in milliseconds. @default 500 */
  baseMs?: number;
  /** Largest delay ever returned, in milliseconds. @default 30000 */
  maxMs?: number;
}

/**
 * Delay before retry number `attempt` (0 for the first retry): exponential growth with
 * "full jitter", so that many instances retrying at once spread out instead of colliding.
 * Pure: `random` is injected.
 */
export function backoffDelay(
  attempt: number,
  { baseMs = 500, maxMs = 30_000 }: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt));
  // Never below a tenth of the ceiling: a zero delay would turn a retry loop into a busy loop.
  return Math.round(ceiling * (0.1 + 0.9 * random()));
}
