/**
 * The metrics of the background work: outbound flood control, broadcasts, retention,
 * scheduled backups and infrastructure alerts. Registered on the program's registry by
 * `Metrics`; components receive the parts they use.
 */
import type { Registry } from "prom-client";

/** Creates the background work's metrics on `registry`. */
export function backgroundMetrics(_registry: Registry) {
  return {};
}

/** The background work's metrics. */
export type BackgroundMetrics = ReturnType<typeof backgroundMetrics>;
