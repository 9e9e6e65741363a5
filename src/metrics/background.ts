/**
 * The metrics of the background work: outbound flood control, broadcasts, retention,
 * scheduled backups and infrastructure alerts. Registered on the program's registry by
 * `Metrics`; components receive the parts they use.
 */
import { Counter, Gauge, Histogram, type Registry } from "./prometheus.ts";

/** Buckets for waits of the flood control, in seconds: a few ms of pacing to a long 429. */
const WAIT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The problems the infrastructure alerts know (see `jobs/alerts.ts`). */
export const ALERT_PROBLEMS = ["store", "database", "polling", "disk", "events", "backup"] as const;

/** Creates the background work's metrics on `registry`. */
export function backgroundMetrics(registry: Registry) {
  const registers = [registry];
  let newestBackup: () => Promise<number | null> = () => Promise.resolve(null);
  const priorities = ["interactive", "bulk"];
  const outboundMessages = new Counter({
    name: "bot_outbound_messages_total",
    help: "Messages let through the flood control, by priority (interactive, bulk)",
    labelNames: ["priority"],
    registers,
  });
  const outboundWaits = new Counter({
    name: "bot_outbound_waits_total",
    help: "Messages that waited for the flood control, by priority",
    labelNames: ["priority"],
    registers,
  });
  for (const priority of priorities) {
    outboundMessages.inc({ priority }, 0);
    outboundWaits.inc({ priority }, 0);
  }
  const outboundTurnsAhead = new Counter({
    name: "bot_outbound_turns_ahead_total",
    help: "Reply turns taken ahead with the gate, by result (used, given_back, refused)",
    labelNames: ["result"],
    registers,
  });
  for (const result of ["used", "given_back", "refused"]) outboundTurnsAhead.inc({ result }, 0);
  const outbound429 = new Counter({
    name: "bot_outbound_429_total",
    help: "429 answers from Telegram to messages, by what was paused (bot, chat)",
    labelNames: ["scope"],
    registers,
  });
  for (const scope of ["bot", "chat"]) outbound429.inc({ scope }, 0);
  const broadcastMessages = new Counter({
    name: "bot_broadcast_messages_total",
    help: "Broadcast messages by result (sent, failed, blocked, retried)",
    labelNames: ["result"],
    registers,
  });
  for (const result of ["sent", "failed", "blocked", "retried"]) {
    broadcastMessages.inc({ result }, 0);
  }
  const retentionDeleted = new Counter({
    name: "bot_retention_deleted_total",
    help: "Rows deleted by the retention job, by table",
    labelNames: ["table"],
    registers,
  });
  for (const table of ["events", "broadcast_recipients"]) retentionDeleted.inc({ table }, 0);
  const backups = new Counter({
    name: "bot_scheduled_backups_total",
    help: "Scheduled backups by result (ok, error)",
    labelNames: ["result"],
    registers,
  });
  for (const result of ["ok", "error"]) backups.inc({ result }, 0);
  const alerts = new Counter({
    name: "bot_alerts_total",
    help: "Infrastructure alerts sent to the admins, by problem and change (raised, cleared)",
    labelNames: ["problem", "change"],
    registers,
  });
  for (const problem of ALERT_PROBLEMS) {
    for (const change of ["raised", "cleared"]) alerts.inc({ problem, change }, 0);
  }
  return {
    /** Messages let through the flood control, by priority. */
    outboundMessages,
    /** Messages that had to wait, by priority. */
    outboundWaits,
    /** How long the messages that waited waited, by priority. */
    outboundWaitSeconds: new Histogram({
      name: "bot_outbound_wait_seconds",
      help: "Time messages waited for the flood control, by priority",
      labelNames: ["priority"],
      buckets: WAIT_BUCKETS,
      registers,
    }),
    /**
     * Reply turns taken ahead (`FloodControl.prefetch`), by what became of them: used by the
     * reply, given back (no reply in time), refused (the limits, or the store).
     */
    outboundTurnsAhead,
    /** 429s received, by what they paused. */
    outbound429,
    /** Flood control decisions made in memory because the store was unreachable. */
    floodFallback: new Counter({
      name: "bot_outbound_limiter_fallback_total",
      help: "Flood control decisions made per instance because the store was unreachable",
      registers,
    }),
    /** Broadcast messages by result. */
    broadcastMessages,
    /** Rows deleted by the retention job, by table. */
    retentionDeleted,
    /** Scheduled backups by result. */
    backups,
    /** Unix time of the newest complete backup in `BACKUP_DIR` (0: none), read at each scrape. */
    backupLastSuccess: new Gauge({
      name: "bot_backup_last_success_timestamp_seconds",
      help: "Unix time of the newest complete backup in BACKUP_DIR (0: none)",
      registers,
      async collect() {
        // Whoever made it (the schedule, /backup, the backup command): the directory knows.
        const seconds = await newestBackup().catch(() => null);
        if (seconds !== null) this.set(seconds);
      },
    }),
    /** Tells the backup gauge where to find the newest backup's time (Unix seconds). */
    watchBackups(source: () => Promise<number | null>): void {
      newestBackup = source;
    },
    /** Infrastructure alerts by problem and change. */
    alerts,
    /** Free disk space under DATA_DIR, in bytes (absent when it cannot be measured). */
    diskFree: new Gauge({
      name: "bot_disk_free_bytes",
      help: "Free disk space under DATA_DIR",
      registers,
    }),
  };
}

/** The background work's metrics. */
export type BackgroundMetrics = ReturnType<typeof backgroundMetrics>;
