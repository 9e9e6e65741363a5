/**
 * Just enough PromQL and Prometheus text format to tell which metrics a dashboard or a rule
 * file uses, and which ones the program exports.
 *
 * @module
 */

/** Words of PromQL that look like metric names: aggregations, operators, modifiers. */
const KEYWORDS = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
  "atan2",
  "inf",
  "nan",
]);

/** Suffixes of the series a histogram or summary exports besides its base name. */
const SERIES_SUFFIXES = ["_bucket", "_sum", "_count"];

/**
 * The metric names a PromQL expression selects, as written (`x_bucket` stays `x_bucket`).
 * Grafana variables (`$instance`, `$__rate_interval`) are ignored.
 */
export function selectedNames(expr: string): Set<string> {
  const stripped = expr
    // String literals first: they may hold braces, brackets or words.
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, " ")
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges and subqueries
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\boffset\s+-?[\w$]+/g, " ")
    .replace(/@\s*[\w.()]+/g, " ")
    .replace(/\$\{?\w+\}?/g, " ");
  const names = new Set<string>();
  // A whole identifier (not part of a number or a longer name) that is not called.
  for (const [name] of stripped.matchAll(/(?<![\w.:])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()/g)) {
    if (!KEYWORDS.has(name.toLowerCase())) names.add(name);
  }
  return names;
}

/**
 * Maps a series name to the metric that exports it: `x_bucket`, `x_sum` and `x_count` to `x`
 * when `x` is one of `known`; any other name to itself.
 */
export function baseName(name: string, known: ReadonlySet<string>): string {
  for (const suffix of SERIES_SUFFIXES) {
    if (name.endsWith(suffix) && known.has(name.slice(0, -suffix.length))) {
      return name.slice(0, -suffix.length);
    }
  }
  return name;
}

/**
 * The metric names in a Prometheus text exposition: every `# TYPE` line (a labelled metric
 * with no samples yet still has one) and every sample's name.
 */
export function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split("\n")) {
    const typed = line.match(/^# TYPE ([A-Za-z_:][\w:]*) /);
    if (typed) names.add(typed[1]!);
    const sample = line.match(/^([A-Za-z_:][\w:]*)[{ ]/);
    if (sample) names.add(sample[1]!);
  }
  return names;
}
