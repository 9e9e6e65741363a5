/**
 * Reads figures out of the program's `GET /metrics` (Prometheus text exposition).
 *
 * @module
 */

/**
 * The sum of every sample of metric `name` over all its label sets, or NaN when the text has
 * none. `name` is the full sample name, e.g. `bot_update_duration_seconds_sum`.
 */
export function sampleSum(text: string, name: string): number {
  let total = 0;
  let found = false;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    // Skip longer names that merely share the prefix (`_sum` vs `_summary`).
    if (rest[0] !== " " && rest[0] !== "{") continue;
    const value = Number(rest.slice(rest.lastIndexOf(" ") + 1));
    if (Number.isNaN(value)) continue;
    total += value;
    found = true;
  }
  return found ? total : NaN;
}

/** Fetches `url` (a `/metrics` endpoint) and returns its text; throws on a non-200. */
export async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  const body = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${body}`);
  return body;
}
