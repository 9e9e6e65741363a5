/** The resolved configuration's shape: what `loadConfig` returns, every default filled in. */

/** Languages the bot speaks; the first is the fallback of last resort. */
export const SUPPORTED_LOCALES = ["en", "ru", "uk"] as const;
/** One of {@link SUPPORTED_LOCALES}. */
export type Locale = typeof SUPPORTED_LOCALES[number];

/** Log levels an operator may choose with `LOG_LEVEL`. */
export const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** The resolved configuration: every default filled in, every value checked. */
export interface Config {
  /** Token from @BotFather. Secret. */
  botToken: string;
  /** Base URL of the Bot API server, without a trailing slash. */
  botApiRoot: string;
  /**
   * The proxies configured (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, each in either case, those
   * set). Secret (they may carry passwords). With any, the Bot API is called through Deno's
   * `fetch`, which uses them, instead of the bot's own client.
   */
  proxies: string[];
  /** How updates arrive. */
  mode: "polling" | "webhook";
  /** Webhook settings; present exactly when `mode` is `webhook`. */
  webhook: WebhookConfig | null;
  /** Where the built-in HTTP server listens. */
  http: { host: string; port: number };
  /** Bearer token that `/metrics` requires; `null` leaves it open. Secret. */
  metricsToken: string | null;
  /** Directory for persistent data. */
  dataDir: string;
  /** Directory for backup files. */
  backupDir: string;
  /** Telegram user ids with admin rights. */
  adminIds: number[];
  /** The chat new requests are posted to, for staff to take; null posts nowhere. */
  staffChatId: number | null;
  /** What users choose from when they file a request, as the operator wrote them. */
  requestCategories: string[];
  /** Language for users whose Telegram language the bot does not speak. */
  defaultLocale: Locale;
  /** Logging settings. */
  log: { level: LogLevel; format: "json" | "pretty"; file: string | null };
  /** How long a stop waits for in-flight updates, in milliseconds. */
  shutdownTimeoutMs: number;
  /** How many updates may be handled at the same time (different chats). */
  updateConcurrency: number;
  /** Relational database settings. */
  database: DatabaseConfig;
  /** Key-value store settings. */
  store: StoreConfig;
  /** How long a cached user profile is trusted, in milliseconds. */
  userCacheTtlMs: number;
  /** Backups older than this many days are deleted after each new backup. */
  backupRetentionDays: number;
  /** When backups are made by themselves (5-field cron, UTC); null: only by hand. */
  backupSchedule: string | null;
  /** A request nobody took for this many minutes is brought up in the staff chat; 0: never. */
  slaTakeMinutes: number;
  /** Events older than this many days are deleted. */
  eventRetentionDays: number;
  /** Most broadcast messages per second (below Telegram's overall limit). */
  broadcastRate: number;
  /** A backend failing for this long is told to the admins, in milliseconds. */
  alertAfterMs: number;
  /** Below this much free disk space under `DATA_DIR` (MB), `/health` warns and admins are told. */
  diskMinFreeMb: number;
  /** Per-user rate limiting. */
  rateLimit: RateLimitConfig;
  /** Dialog state lifetimes. */
  fsm: FsmConfig;
}

/** How long dialog state lives without activity; every update of the user renews both. */
export interface FsmConfig {
  /** How long a dialog's step is kept, in milliseconds. */
  stateTtlMs: number;
  /** How long the data collected in a dialog is kept, in milliseconds. */
  dataTtlMs: number;
}

/** Per-user rate limiting, resolved. */
export interface RateLimitConfig {
  /** Whether updates are limited at all (duplicates are dropped either way). */
  enabled: boolean;
  /** Most updates in a burst, and per window. */
  capacity: number;
  /** The window the capacity refills over, in milliseconds. */
  windowMs: number;
  /** Limited updates tolerated before a ban; 0 never bans. */
  banAfter: number;
  /** How long a ban lasts, in milliseconds. */
  banMs: number;
  /** Whether `ADMIN_IDS` are never limited. */
  adminExempt: boolean;
}

/** Relational database settings, resolved. */
export interface DatabaseConfig {
  /** Postgres URL; `null` runs the embedded PGlite in `DATA_DIR`. Secret (may hold a password). */
  url: string | null;
  /** Most connections in the pool. */
  poolSize: number;
  /** Close a connection idle this long, in milliseconds; 0 keeps it. */
  idleTimeoutMs: number;
  /** Replace a connection after this long, in milliseconds; 0 keeps it. */
  maxLifetimeMs: number;
  /** Give up opening a connection after this long, in milliseconds. */
  connectTimeoutMs: number;
  /** A statement running longer than this is cancelled, in milliseconds; 0: no limit. */
  statementTimeoutMs: number;
  /** Longest wait for a free pooled connection before a query fails, in milliseconds. */
  poolTimeoutMs: number;
  /** Apply pending migrations at start-up. */
  migrateOnStart: boolean;
}

/** Key-value store settings, resolved. */
export interface StoreConfig {
  /** Redis URL; `null` uses the embedded Deno KV file in `DATA_DIR`. Secret (may hold a password). */
  url: string | null;
  /** Prefix of every Redis key, so several bots can share one Redis. */
  keyPrefix: string;
}

/** Webhook settings, resolved. */
export interface WebhookConfig {
  /** The public URL Telegram posts updates to. */
  url: string;
  /** The path of `url`, served by the built-in HTTP server. */
  path: string;
  /** Value Telegram sends in `X-Telegram-Bot-Api-Secret-Token`. Secret. */
  secret: string;
  /** Most concurrent webhook connections Telegram may open. */
  maxConnections: number;
}
