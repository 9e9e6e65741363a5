/**
 * What an admin wants to know from the registry (`/metrics` in Telegram): totals, success
 * rate, latency percentiles estimated from the histogram as Prometheus would, cache and limiter
 * counters.
 */
import type { MetricObject, Registry } from "./prometheus.ts";

/** One metric of `Registry.getMetricsAsJSON()` (only its name and samples are read). */
export type MetricJson = Pick<MetricObject, "name" | "values">;

/** What `/metrics` shows, read from the registry. */
export interface MetricsSummary {
  updates: number;
  handled: number;
  errors: number;
  /** Handling time percentiles in seconds (estimated from the histogram), null without data. */
  p50: number | null;
  p95: number | null;
  p99: number | null;
  uptimeSeconds: number;
  cacheHits: number;
  cacheLookups: number;
  limited: number;
  banned: number;
  duplicates: number;
  retries: { total: number; "429": number; "5xx": number; network: number };
}

/** Sums the registry's counters into what an admin wants to know. */
export function summarizeMetrics(json: readonly MetricJson[]): MetricsSummary {
  const values = (name: string) => json.find((m) => m.name === name)?.values ?? [];
  const sum = (name: string, label?: string, value?: string) =>
    values(name)
      .filter((v) => label === undefined || String(v.labels[label]) === value)
      .reduce((total, v) => total + v.value, 0);
  const buckets = new Map<number, number>();
  for (const v of values("bot_update_duration_seconds")) {
    if (v.metricName !== "bot_update_duration_seconds_bucket") continue;
    const le = Number(v.labels.le);
    buckets.set(le, (buckets.get(le) ?? 0) + v.value);
  }
  const cumulative = [...buckets].map(([le, count]) => ({ le, count }))
    .sort((a, b) => a.le - b.le);
  return {
    updates: sum("bot_updates_total"),
    handled: sum("bot_updates_total", "outcome", "handled"),
    errors: sum("bot_updates_total", "outcome", "error"),
    p50: histogramQuantile(0.5, cumulative),
    p95: histogramQuantile(0.95, cumulative),
    p99: histogramQuantile(0.99, cumulative),
    uptimeSeconds: sum("process_uptime_seconds"),
    cacheHits: sum("bot_user_cache_total", "result", "hit"),
    cacheLookups: sum("bot_user_cache_total"),
    limited: sum("bot_gate_total", "outcome", "limited"),
    banned: sum("bot_gate_total", "outcome", "banned"),
    duplicates: sum("bot_gate_total", "outcome", "duplicate"),
    retries: {
      total: sum("bot_api_retries_total"),
      "429": sum("bot_api_retries_total", "reason", "429"),
      "5xx": sum("bot_api_retries_total", "reason", "5xx"),
      network: sum("bot_api_retries_total", "reason", "network"),
    },
  };
}

/**
 * The `q` quantile of a histogram given as cumulative bucket counts sorted by upper bound
 * (the last being +Inf), interpolated linearly inside the bucket as Prometheus'
 * `histogram_quantile` does: beyond the last finite bound it is that bound; null when nothing
 * was observed.
 */
export function histogramQuantile(
  q: number,
  buckets: readonly { le: number; count: number }[],
): number | null {
  const total = buckets.at(-1)?.count ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const { le, count } of buckets) {
    if (count >= rank && count > below) {
      if (le === Infinity) return lower;
      return lower + (le - lower) * (rank - below) / (count - below);
    }
    lower = le;
    below = count;
  }
  return lower;
}

/** Reads `registry` and summarises it. */
export async function summarizeRegistry(registry: Registry): Promise<MetricsSummary> {
  return summarizeMetrics(await registry.getMetricsAsJSON());
}
