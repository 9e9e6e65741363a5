/**
 * Small statistics and formatting helpers shared by the benchmarks.
 *
 * @module
 */

/** The `p`-th percentile (0–100) of `values` by the nearest-rank method; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? NaN;
}

/** The median of `values` (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? sorted[mid] ?? NaN
    : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

/** Milliseconds with one decimal below 100 ms and none above, e.g. `12.3 ms`, `845 ms`. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  return `${value < 100 ? value.toFixed(1) : Math.round(value)} ms`;
}

/** Bytes as MiB with one decimal, e.g. `48.2 MiB`. */
export function mib(bytes: number): string {
  if (!Number.isFinite(bytes)) return "n/a";
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** A rate with no decimals above 100, e.g. `1234 /s`. */
export function perSecond(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  return `${value < 100 ? value.toFixed(1) : Math.round(value)} /s`;
}

/** A Markdown table from a header row and body rows. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}
