import process from "node:process";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { PROGRAM_NAME, VERSION } from "./version.ts";

/** Buckets for update handling time, in seconds: Telegram users notice anything above ~1 s. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Every metric the program exports, on one registry. Components receive the parts they use. */
export class Metrics implements Disposable {
  /** The Prometheus registry that `/metrics` renders. */
  readonly registry = new Registry();
  /** Updates seen, by update type and outcome (`handled`, `error`, `dropped`). */
  readonly updates: Counter<"type" | "outcome">;
  /** Time to handle one update, by update type. */
  readonly updateDuration: Histogram<"type">;
  /** Updates being handled right now. */
  readonly updatesInFlight: Gauge;
  /** Bot API calls by method and result (`ok`, the error code, or `network_error`). */
  readonly apiCalls: Counter<"method" | "result">;
  /** Bot API calls repeated after a 429, a 5xx or a network error, by method and reason. */
  readonly apiRetries: Counter<"method" | "reason">;
  /** Failed `getUpdates` polls, by reason (`conflict` for 409, `network`, `api`). */
  readonly pollErrors: Counter<"reason">;
  /** Webhook requests refused before handling, by HTTP status. */
  readonly webhookRejected: Counter<"status">;
  /** Queries sent to Postgres (or PGlite). */
  readonly dbQueries: Counter;
  /** User profile lookups by result: `hit`, `miss`, or `error` when the store was down. */
  readonly userCache: Counter<"result">;
  /** Events waiting for the background writer. */
  readonly eventQueue: Gauge;
  /** Event-log rows written. */
  readonly eventsWritten: Counter;
  /** Event-log rows given up on (queue full or database down at shutdown). */
  readonly eventsDropped: Counter<"reason">;
  /** Failed event-log batch writes (each is retried). */
  readonly eventWriteErrors: Counter;
  /** Gate verdicts: `passed`, `limited`, `banned`, `duplicate`; `store_down` when the fallback ran. */
  readonly gate: Counter<"outcome">;
  /** Time of each store round trip of the pipeline, by script (`gate`, `finish`, `renew-lease`). */
  readonly storeRoundTrip: Histogram<"script">;
  /** Dialog commits by result: `written`, `unchanged`, `conflict`, `lease_lost`, `store_down`. */
  readonly dialogCommits: Counter<"result">;
  /** Times an update waited for another instance to finish an update of the same chat. */
  readonly chatLeaseWaits: Counter;
  /** Leader lease changes by lease (`polling`) and change (`acquired`, `lost`, `released`). */
  readonly leaseChanges: Counter<"lease" | "change">;
  /** 1 while this instance holds the polling lease and polls, else 0. */
  readonly pollingLeader: Gauge;
  readonly #lagTimer: ReturnType<typeof setInterval>;

  constructor() {
    const registers = [this.registry];
    this.updates = new Counter({
      name: "bot_updates_total",
      help: "Telegram updates by type and outcome",
      labelNames: ["type", "outcome"],
      registers,
    });
    this.updateDuration = new Histogram({
      name: "bot_update_duration_seconds",
      help: "Time to handle one update",
      labelNames: ["type"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.updatesInFlight = new Gauge({
      name: "bot_updates_in_flight",
      help: "Updates being handled now",
      registers,
    });
    this.apiCalls = new Counter({
      name: "bot_api_calls_total",
      help: "Bot API calls by method and result (ok, error code or network_error)",
      labelNames: ["method", "result"],
      registers,
    });
    this.apiRetries = new Counter({
      name: "bot_api_retries_total",
      help: "Bot API calls retried, by method and reason (429, 5xx, network)",
      labelNames: ["method", "reason"],
      registers,
    });
    this.pollErrors = new Counter({
      name: "bot_polling_errors_total",
      help: "Failed getUpdates polls by reason (conflict, network, api)",
      labelNames: ["reason"],
      registers,
    });
    this.webhookRejected = new Counter({
      name: "bot_webhook_rejected_total",
      help: "Webhook requests refused before handling, by HTTP status",
      labelNames: ["status"],
      registers,
    });
    this.dbQueries = new Counter({
      name: "bot_db_queries_total",
      help: "Queries sent to the database",
      registers,
    });
    this.userCache = new Counter({
      name: "bot_user_cache_total",
      help: "User profile lookups by result (hit, miss, error)",
      labelNames: ["result"],
      registers,
    });
    this.eventQueue = new Gauge({
      name: "bot_event_queue_size",
      help: "Events waiting to be written to the event log",
      registers,
    });
    this.eventsWritten = new Counter({
      name: "bot_events_written_total",
      help: "Event-log rows written",
      registers,
    });
    this.eventsDropped = new Counter({
      name: "bot_events_dropped_total",
      help: "Event-log rows dropped, by reason (queue_full, shutdown)",
      labelNames: ["reason"],
      registers,
    });
    this.eventWriteErrors = new Counter({
      name: "bot_event_write_errors_total",
      help: "Failed event-log batch writes (retried)",
      registers,
    });
    this.gate = new Counter({
      name: "bot_gate_total",
      help: "Gate verdicts (passed, limited, banned, duplicate) and store_down fallbacks",
      labelNames: ["outcome"],
      registers,
    });
    this.storeRoundTrip = new Histogram({
      name: "bot_store_round_trip_seconds",
      help: "Time of the pipeline's store round trips by script (gate, finish, renew-lease)",
      labelNames: ["script"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.dialogCommits = new Counter({
      name: "bot_dialog_commits_total",
      help: "Dialog state commits by result (written, unchanged, conflict, lease_lost, store_down)",
      labelNames: ["result"],
      registers,
    });
    this.chatLeaseWaits = new Counter({
      name: "bot_chat_lease_waits_total",
      help: "Updates that waited for another instance to finish an update of the same chat",
      registers,
    });
    this.leaseChanges = new Counter({
      name: "bot_lease_changes_total",
      help: "Lease changes by lease and change (acquired, lost, released)",
      labelNames: ["lease", "change"],
      registers,
    });
    this.pollingLeader = new Gauge({
      name: "bot_polling_leader",
      help: "1 while this instance holds the polling lease and polls",
      registers,
    });
    new Gauge({
      name: "bot_info",
      help: "Build information; the value is always 1",
      labelNames: ["program", "version", "deno"],
      registers,
    }).set({ program: PROGRAM_NAME, version: VERSION, deno: Deno.version.deno }, 1);
    this.#lagTimer = registerProcessMetrics(this.registry);
  }

  /** Stops the event-loop lag probe. */
  [Symbol.dispose](): void {
    clearInterval(this.#lagTimer);
  }
}

/**
 * Process metrics from Deno's own APIs. prom-client's defaults read `/proc`, which the
 * program may not read under its permission flags, and would report zeros.
 */
function registerProcessMetrics(registry: Registry): ReturnType<typeof setInterval> {
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
  for (const [kind, pick] of [["user", "user"], ["system", "system"]] as const) {
    new Gauge({
      name: `process_cpu_${kind}_seconds_total`,
      help: `${kind} CPU time spent in seconds`,
      registers,
      collect() {
        // process.cpuUsage is in microseconds.
        this.set(process.cpuUsage()[pick] / 1e6);
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
