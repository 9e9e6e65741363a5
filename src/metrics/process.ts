import process from "node:process";
import { Counter, Gauge, type Registry } from "./prometheus.ts";

/**
 * Process metrics from Deno's own APIs. prom-client's defaults read `/proc`, which the
 * program may not read under its permission flags, and would report zeros.
 */
export function registerProcessMetrics(registry: Registry): ReturnType<typeof setInterval> {
  const registers = [registry];
  const startSeconds = Date.now() / 1000 - performance.now() / 1000;
  new Gauge({
    name: "process_start_time_seconds",
    help: "Start time of the process since the Unix epoch in seconds",
    registers,
    collect() {
      this.set(Math.round(startSeconds));
    },
  });
  new Gauge({
    name: "process_uptime_seconds",
    help: "Seconds since the process started",
    registers,
    collect() {
      this.set(performance.now() / 1000);
    },
  });
  const memory = (name: string, help: string, pick: (m: Deno.MemoryUsage) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(pick(Deno.memoryUsage()));
      },
    });
  memory("process_resident_memory_bytes", "Resident memory size in bytes", (m) => m.rss);
  memory("process_heap_bytes", "V8 heap size in bytes", (m) => m.heapTotal);
  memory("deno_heap_used_bytes", "V8 heap used in bytes", (m) => m.heapUsed);
  memory("deno_external_memory_bytes", "Memory used by V8 external objects", (m) => m.external);
  for (const kind of ["user", "system"] as const) {
    new Counter({
      name: `process_cpu_${kind}_seconds_total`,
      help: `${kind} CPU time spent in seconds`,
      registers,
      collect() {
        // A counter has no set(): the total is read from the process each scrape.
        this.reset();
        // process.cpuUsage is in microseconds.
        this.inc(process.cpuUsage()[kind] / 1e6);
      },
    });
  }
  const lag = new Gauge({
    name: "deno_event_loop_lag_seconds",
    help: "How late the last event-loop probe ran, in seconds",
    registers,
  });
  const everyMs = 1000;
  let expected = performance.now() + everyMs;
  const timer = setInterval(() => {
    const now = performance.now();
    lag.set(Math.max(0, now - expected) / 1000);
    expected = now + everyMs;
  }, everyMs);
  Deno.unrefTimer(Number(timer));
  return timer;
}
