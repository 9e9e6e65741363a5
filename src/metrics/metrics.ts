import { Counter, Gauge, Histogram, Registry } from "./prometheus.ts";
import { PROGRAM_NAME, VERSION } from "../version.ts";
import { type BackgroundMetrics, backgroundMetrics } from "./background.ts";
import { registerProcessMetrics } from "./process.ts";
import { type RequestMetrics, requestMetrics } from "./requests.ts";

/** Buckets for update handling time, in seconds: Telegram users notice anything above ~1 s. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Buckets for round trips to the store and the database, in seconds. */
const ROUND_TRIP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/**
 * Label values every counter starts with at 0, so that `rate()` and absence-based alerts see
 * a series before the first event (Prometheus cannot tell "never happened" from "not
 * exported" otherwise).
 */
const KNOWN = {
  apiRetryReasons: ["429", "5xx", "network"],
  apiRetryMethods: ["sendMessage", "answerCallbackQuery", "editMessageText", "copyMessage"],
  pollErrors: ["conflict", "network", "api", "other"],
  webhookRejected: ["400", "401", "405", "413", "503"],
  eventsDropped: ["queue_full", "shutdown", "rejected"],
  leases: ["polling", "jobs"],
  leaseChanges: ["acquired", "lost", "released"],
  updatesDropped: ["malformed"],
} as const;

/** What the HTTP server counts about its connections (see `http/server.ts`). */
export interface HttpConnectionStats {
  open: number;
  accepted: number;
  evicted: number;
  refused: number;
  timeouts: { header: number; idle: number; body: number; write: number };
  acceptErrors: number;
}

/** Every metric the program exports, on one registry. Components receive the parts they use. */
export class Metrics implements Disposable {
  /** The Prometheus registry that `/metrics` renders. */
  readonly registry = new Registry();
  /** Updates seen, by update type and outcome (`handled`, `error`, `duplicate`, …). */
  readonly updates: Counter<"type" | "outcome">;
  /** Time to handle one update, by update type. */
  readonly updateDuration: Histogram<"type">;
  /** Updates being handled right now. */
  readonly updatesInFlight: Gauge;
  /** Updates dropped before the pipeline, by reason (`malformed`). */
  readonly updatesDropped: Counter<"reason">;
  /** Bot API calls by method and result (`ok`, the error code, or `network_error`). */
  readonly apiCalls: Counter<"method" | "result">;
  /** Bot API calls repeated after a 429, a 5xx or a network error, by method and reason. */
  readonly apiRetries: Counter<"method" | "reason">;
  /** Failed `getUpdates` polls, by reason (`conflict` for 409, `network`, `api`, `other`). */
  readonly pollErrors: Counter<"reason">;
  /** Webhook requests refused before handling, by HTTP status. */
  readonly webhookRejected: Counter<"status">;
  /** HTTP connections by event: `accepted`, `evicted`, `refused`, timeouts, accept errors. */
  readonly httpConnections: Counter<"event">;
  /** HTTP connections open now. */
  readonly httpConnectionsOpen: Gauge;
  #http: (() => HttpConnectionStats) | null = null;
  /** Queries sent to Postgres (or PGlite). */
  readonly dbQueries: Counter;
  /** Round trips of a trivial query (`select 1`) to the database: its health, over time. */
  readonly dbRoundTrip: Histogram;
  /** User profile lookups by result: `hit`, `miss`, or `error` when the store was down. */
  readonly userCache: Counter<"result">;
  /** Events waiting for the background writer. */
  readonly eventQueue: Gauge;
  /** Event-log rows written. */
  readonly eventsWritten: Counter;
  /** Event-log rows given up on, by reason (`queue_full`, `shutdown`, `rejected` by the database). */
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
  /** Leader lease changes by lease (`polling`, `jobs`) and change (`acquired`, `lost`, `released`). */
  readonly leaseChanges: Counter<"lease" | "change">;
  /** 1 while this instance holds the polling lease and polls, else 0. */
  readonly pollingLeader: Gauge;
  /** 1 while this instance runs the leader jobs, else 0. */
  readonly jobsLeader: Gauge;
  /** Rounds of background jobs by job and result (`ok`, `error`). */
  readonly jobRuns: Counter<"job" | "result">;
  /** Time of one round of a background job. */
  readonly jobDuration: Histogram<"job">;
  /** Outbox deliveries (staff posts, relayed messages…) by kind and result (`sent`, `retry`). */
  readonly outboxDeliveries: Counter<"kind" | "result">;
  /** Outbox items waiting for delivery, by kind. */
  readonly outboxPending: Gauge<"kind">;
  /** Age of the oldest undelivered outbox item, by kind, in seconds. */
  readonly outboxOldestAge: Gauge<"kind">;
  /** Readiness as `/health` last reported it: 1 for the current status, 0 for the others. */
  readonly healthStatus: Gauge<"status">;
  /** Requests and conversations (`requests.ts`). */
  readonly requests: RequestMetrics;
  /** Flood control, broadcasts, retention, backups and alerts (`background.ts`). */
  readonly background: BackgroundMetrics;
  readonly #lagTimer: ReturnType<typeof setInterval>;

  constructor() {
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Counter<L>({ name, help, labelNames, registers });
    const gauge = <L extends string>(name: string, help: string, labelNames: L[] = []) =>
      new Gauge<L>({ name, help, labelNames, registers });
    const histogram = <L extends string>(
      name: string,
      help: string,
      labelNames: L[],
      buckets: number[],
    ) => new Histogram<L>({ name, help, labelNames, buckets, registers });

    this.updates = counter("bot_updates_total", "Telegram updates by type and outcome", [
      "type",
      "outcome",
    ]);
    this.updateDuration = histogram(
      "bot_update_duration_seconds",
      "Time to handle one update",
      ["type"],
      DURATION_BUCKETS,
    );
    this.updatesInFlight = gauge("bot_updates_in_flight", "Updates being handled now");
    this.updatesDropped = counter(
      "bot_updates_dropped_total",
      "Updates dropped before the pipeline, by reason (malformed)",
      ["reason"],
    );
    this.apiCalls = counter(
      "bot_api_calls_total",
      "Bot API calls by method and result (ok, error code or network_error)",
      ["method", "result"],
    );
    this.apiRetries = counter(
      "bot_api_retries_total",
      "Bot API calls retried, by method and reason (429, 5xx, network)",
      ["method", "reason"],
    );
    this.pollErrors = counter(
      "bot_polling_errors_total",
      "Failed getUpdates polls by reason (conflict, network, api, other)",
      ["reason"],
    );
    this.webhookRejected = counter(
      "bot_webhook_rejected_total",
      "Webhook requests refused before handling, by HTTP status",
      ["status"],
    );
    const http = () => this.#http?.() ?? null;
    this.httpConnections = new Counter({
      name: "bot_http_connections_total",
      help: "HTTP connections by event (accepted, evicted, refused, header_timeout, " +
        "idle_timeout, body_timeout, write_timeout, accept_error)",
      labelNames: ["event"],
      registers,
      collect() {
        const stats = http();
        const counts: Record<string, number> = {
          accepted: stats?.accepted ?? 0,
          evicted: stats?.evicted ?? 0,
          refused: stats?.refused ?? 0,
          header_timeout: stats?.timeouts.header ?? 0,
          idle_timeout: stats?.timeouts.idle ?? 0,
          body_timeout: stats?.timeouts.body ?? 0,
          write_timeout: stats?.timeouts.write ?? 0,
          accept_error: stats?.acceptErrors ?? 0,
        };
        // The server keeps its own totals: a counter has no set(), so it is rebuilt.
        this.reset();
        for (const [event, count] of Object.entries(counts)) this.inc({ event }, count);
      },
    });
    this.httpConnectionsOpen = new Gauge({
      name: "bot_http_connections_open",
      help: "HTTP connections open now",
      registers,
      collect() {
        this.set(http()?.open ?? 0);
      },
    });
    this.dbQueries = counter("bot_db_queries_total", "Queries sent to the database");
    this.dbRoundTrip = histogram(
      "bot_db_round_trip_seconds",
      "Round trips of a trivial query to the database (health checks and probes)",
      [],
      ROUND_TRIP_BUCKETS,
    );
    this.userCache = counter(
      "bot_user_cache_total",
      "User profile lookups by result (hit, miss, error)",
      ["result"],
    );
    this.eventQueue = gauge(
      "bot_event_queue_size",
      "Events waiting to be written to the event log",
    );
    this.eventsWritten = counter("bot_events_written_total", "Event-log rows written");
    this.eventsDropped = counter(
      "bot_events_dropped_total",
      "Event-log rows dropped, by reason (queue_full, shutdown, rejected)",
      ["reason"],
    );
    this.eventWriteErrors = counter(
      "bot_event_write_errors_total",
      "Failed event-log batch writes (retried)",
    );
    this.gate = counter(
      "bot_gate_total",
      "Gate verdicts (passed, limited, banned, duplicate) and store_down fallbacks",
      ["outcome"],
    );
    this.storeRoundTrip = histogram(
      "bot_store_round_trip_seconds",
      "Time of the pipeline's store round trips by script (gate, finish, renew-lease)",
      ["script"],
      ROUND_TRIP_BUCKETS,
    );
    this.dialogCommits = counter(
      "bot_dialog_commits_total",
      "Dialog state commits by result (written, unchanged, conflict, lease_lost, store_down)",
      ["result"],
    );
    this.chatLeaseWaits = counter(
      "bot_chat_lease_waits_total",
      "Updates that waited for another instance to finish an update of the same chat",
    );
    this.leaseChanges = counter(
      "bot_lease_changes_total",
      "Lease changes by lease and change (acquired, lost, released)",
      ["lease", "change"],
    );
    this.pollingLeader = gauge(
      "bot_polling_leader",
      "1 while this instance holds the polling lease and polls",
    );
    this.jobsLeader = gauge("bot_jobs_leader", "1 while this instance runs the leader jobs");
    this.jobRuns = counter("bot_job_runs_total", "Background job rounds by job and result", [
      "job",
      "result",
    ]);
    this.jobDuration = histogram(
      "bot_job_duration_seconds",
      "Time of one round of a background job",
      ["job"],
      [0.001, 0.01, 0.1, 0.5, 1, 5, 30, 120, 600],
    );
    this.outboxDeliveries = counter(
      "bot_outbox_deliveries_total",
      "Outbox deliveries by kind and result (sent, retry)",
      ["kind", "result"],
    );
    this.outboxPending = gauge("bot_outbox_pending", "Outbox items waiting for delivery", [
      "kind",
    ]);
    this.outboxOldestAge = gauge(
      "bot_outbox_oldest_age_seconds",
      "Age of the oldest undelivered outbox item",
      ["kind"],
    );
    this.healthStatus = gauge(
      "bot_health_status",
      "Readiness as /health last reported it: 1 for the current status (pass, warn, fail)",
      ["status"],
    );
    gauge("bot_info", "Build information; the value is always 1", ["program", "version", "deno"])
      .set({ program: PROGRAM_NAME, version: VERSION, deno: Deno.version.deno }, 1);

    for (const reason of KNOWN.apiRetryReasons) {
      for (const method of KNOWN.apiRetryMethods) this.apiRetries.inc({ method, reason }, 0);
    }
    for (const reason of KNOWN.pollErrors) this.pollErrors.inc({ reason }, 0);
    for (const status of KNOWN.webhookRejected) this.webhookRejected.inc({ status }, 0);
    for (const reason of KNOWN.eventsDropped) this.eventsDropped.inc({ reason }, 0);
    for (const reason of KNOWN.updatesDropped) this.updatesDropped.inc({ reason }, 0);
    for (const lease of KNOWN.leases) {
      for (const change of KNOWN.leaseChanges) this.leaseChanges.inc({ lease, change }, 0);
    }
    for (const status of ["pass", "warn", "fail"]) this.healthStatus.set({ status }, 0);
    this.requests = requestMetrics(this.registry);
    this.background = backgroundMetrics(this.registry);
    this.#lagTimer = registerProcessMetrics(this.registry);
  }

  /** Reads the HTTP server's connection counters at each scrape. */
  observeHttp(stats: () => HttpConnectionStats): void {
    this.#http = stats;
  }

  /** Sets `bot_health_status` to the status `/health` reported. */
  recordHealth(status: "pass" | "warn" | "fail"): void {
    for (const s of ["pass", "warn", "fail"] as const) {
      this.healthStatus.set({ status: s }, s === status ? 1 : 0);
    }
  }

  /** Stops the event-loop lag probe. */
  [Symbol.dispose](): void {
    clearInterval(this.#lagTimer);
  }
}
