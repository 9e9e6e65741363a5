import { z } from "zod";
import { ConfigError, type ConfigIssue, errorMessage } from "./errors.ts";
import { parseCron } from "./util/cron.ts";
import { type Config, LOG_LEVELS, SUPPORTED_LOCALES } from "./config/types.ts";
import {
  booleanVar,
  connectionUrl,
  fail,
  httpUrl,
  oneOf,
  proxyUrl,
  seconds,
  secretVar,
  shown,
  variable,
  wholeNumber,
} from "./config/variables.ts";

export { LOG_LEVELS, SUPPORTED_LOCALES } from "./config/types.ts";
export type { Locale, LogLevel } from "./config/types.ts";
export type {
  Config,
  DatabaseConfig,
  FsmConfig,
  RateLimitConfig,
  StoreConfig,
  WebhookConfig,
} from "./config/types.ts";
export { redactedConfig, redactUrl, secretsOf, tokenSecrets } from "./config/secrets.ts";

/**
 * Every environment variable the program reads. The `start` task's permission set in
 * `deno.json` grants exactly these (`env.allow`; a test keeps the two equal).
 */
export const ENV_NAMES = [
  "BOT_TOKEN",
  "BOT_API_ROOT",
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "ALL_PROXY",
  "all_proxy",
  "BOT_MODE",
  "WEBHOOK_URL",
  "WEBHOOK_SECRET",
  "WEBHOOK_MAX_CONNECTIONS",
  "HTTP_HOST",
  "HTTP_PORT",
  "METRICS_TOKEN",
  "DATA_DIR",
  "BACKUP_DIR",
  "ADMIN_IDS",
  "STAFF_CHAT_ID",
  "REQUEST_CATEGORIES",
  "DEFAULT_LOCALE",
  "LOG_LEVEL",
  "LOG_FORMAT",
  "LOG_FILE",
  "SHUTDOWN_TIMEOUT",
  "UPDATE_CONCURRENCY",
  "DATABASE_URL",
  "DB_POOL_SIZE",
  "DB_IDLE_TIMEOUT",
  "DB_MAX_LIFETIME",
  "DB_CONNECT_TIMEOUT",
  "DB_STATEMENT_TIMEOUT",
  "DB_POOL_TIMEOUT",
  "MIGRATE_ON_START",
  "REDIS_URL",
  "REDIS_KEY_PREFIX",
  "USER_CACHE_TTL",
  "FSM_STATE_TTL",
  "FSM_DATA_TTL",
  "BACKUP_RETENTION_DAYS",
  "RATE_LIMIT_ENABLED",
  "RATE_LIMIT_MAX_REQUESTS",
  "RATE_LIMIT_TIME_WINDOW",
  "RATE_LIMIT_BAN_AFTER",
  "RATE_LIMIT_BAN_DURATION",
  "RATE_LIMIT_ADMIN_EXEMPT",
  "SLA_TAKE_MINUTES",
  "EVENT_RETENTION_DAYS",
  "BACKUP_SCHEDULE",
  "BROADCAST_RATE",
  "ALERT_AFTER",
  "DISK_MIN_FREE_MB",
] as const;
/** One of {@link ENV_NAMES}. */
export type EnvName = typeof ENV_NAMES[number];
/** The raw environment as the program sees it: only the variables it reads. */
export type Env = Partial<Record<EnvName, string>>;

const TOKEN_PATTERN = /^\d{3,20}:[A-Za-z0-9_-]{30,64}$/;
/** Paths the HTTP server serves itself; the webhook must not shadow them. */
const RESERVED_PATHS = ["/health", "/health/live", "/metrics"];

const schema = z.object({
  BOT_TOKEN: z.string({ error: "is required: the token @BotFather gave you" }).transform(
    (raw, ctx) => {
      const value = raw.trim();
      if (value === "") return fail(ctx, "is required: the token @BotFather gave you");
      // The value itself is never shown: it is a secret even when malformed.
      if (!TOKEN_PATTERN.test(value)) {
        return fail(
          ctx,
          "does not look like a bot token (expected digits, a colon, then 30+ letters, digits, _ or -)",
        );
      }
      return value;
    },
  ),
  BOT_API_ROOT: httpUrl("https://api.telegram.org", "an http(s) URL of a Bot API server"),
  HTTPS_PROXY: proxyUrl(),
  https_proxy: proxyUrl(),
  HTTP_PROXY: proxyUrl(),
  http_proxy: proxyUrl(),
  ALL_PROXY: proxyUrl(),
  all_proxy: proxyUrl(),
  BOT_MODE: oneOf(["polling", "webhook"] as const, "polling"),
  WEBHOOK_URL: httpUrl(null, "the public https URL Telegram should post updates to"),
  WEBHOOK_SECRET: secretVar("must be 16 to 256 characters of A-Z, a-z, 0-9, _ and -"),
  WEBHOOK_MAX_CONNECTIONS: wholeNumber(40, 1, 100),
  HTTP_HOST: variable(
    "127.0.0.1",
    (value, ctx) =>
      /^[A-Za-z0-9.:[\]-]+$/.test(value)
        ? value
        : fail(ctx, `must be a host name or IP address${shown(value)}`),
  ),
  HTTP_PORT: wholeNumber(8080, 1, 65535),
  METRICS_TOKEN: secretVar("must be 16 to 256 characters of A-Z, a-z, 0-9, _ and -"),
  DATA_DIR: variable("./data", (value) => value),
  BACKUP_DIR: variable("./backups", (value) => value),
  ADMIN_IDS: variable<number[]>([], (value, ctx) => {
    const parts = value.split(",").map((part) => part.trim()).filter((part) => part !== "");
    const bad = parts.filter((part) => !/^\d{1,16}$/.test(part));
    if (bad.length > 0) {
      return fail(ctx, `must be Telegram user ids separated by commas${shown(bad.join(","))}`);
    }
    return [...new Set(parts.map(Number))];
  }),
  STAFF_CHAT_ID: variable<number | null>(null, (value, ctx) => {
    if (!/^-?\d{1,16}$/.test(value.trim())) {
      return fail(ctx, `must be a Telegram chat id such as -1001234567890${shown(value)}`);
    }
    return Number(value.trim());
  }),
  REQUEST_CATEGORIES: variable<string[]>(
    ["Hardware", "Software", "Network", "Access", "Other"],
    (value, ctx) => {
      const parts = value.split(",").map((part) => part.trim()).filter((part) => part !== "");
      const long = parts.filter((part) => new TextEncoder().encode(part).length > 40);
      if (parts.length === 0 || parts.length > 20 || long.length > 0) {
        return fail(
          ctx,
          `must be 1 to 20 names separated by commas, each at most 40 bytes${shown(value)}`,
        );
      }
      if (new Set(parts).size !== parts.length) {
        return fail(ctx, `must not name a category twice${shown(value)}`);
      }
      return parts;
    },
  ),
  DEFAULT_LOCALE: oneOf(SUPPORTED_LOCALES, "en"),
  // logtape's names; `warn` and `err` are how most other programs spell two of them.
  LOG_LEVEL: oneOf(LOG_LEVELS, "info", { warn: "warning", err: "error" }),
  LOG_FORMAT: oneOf(["json", "pretty"] as const, "json"),
  LOG_FILE: variable<string | null>(null, (value) => value),
  SHUTDOWN_TIMEOUT: seconds(25, 1, 3600),
  UPDATE_CONCURRENCY: wholeNumber(100, 1, 10000),
  DATABASE_URL: connectionUrl(
    ["postgres:", "postgresql:"],
    "a postgres://user:password@host:port/database URL",
  ),
  DB_POOL_SIZE: wholeNumber(10, 1, 1000),
  DB_IDLE_TIMEOUT: seconds(60, 0, 86400),
  DB_MAX_LIFETIME: seconds(1800, 0, 604800),
  DB_CONNECT_TIMEOUT: seconds(10, 1, 300),
  DB_STATEMENT_TIMEOUT: seconds(5, 0, 3600),
  DB_POOL_TIMEOUT: seconds(5, 0.1, 300),
  MIGRATE_ON_START: booleanVar(true),
  REDIS_URL: connectionUrl(["redis:", "rediss:"], "a redis://[:password@]host:port[/db] URL"),
  REDIS_KEY_PREFIX: variable(
    "sdb:",
    (value, ctx) =>
      /^[A-Za-z0-9_:.-]{1,64}$/.test(value)
        ? value
        : fail(ctx, `must be 1 to 64 characters of A-Z, a-z, 0-9, _ : . and -${shown(value)}`),
  ),
  USER_CACHE_TTL: seconds(3600, 1, 604800),
  FSM_STATE_TTL: seconds(86400, 60, 31536000),
  FSM_DATA_TTL: seconds(86400, 60, 31536000),
  BACKUP_RETENTION_DAYS: wholeNumber(14, 1, 3650),
  RATE_LIMIT_ENABLED: booleanVar(true),
  RATE_LIMIT_MAX_REQUESTS: wholeNumber(20, 1, 10000),
  RATE_LIMIT_TIME_WINDOW: seconds(60, 1, 86400),
  RATE_LIMIT_BAN_AFTER: wholeNumber(5, 0, 10000),
  RATE_LIMIT_BAN_DURATION: seconds(3600, 1, 2592000),
  RATE_LIMIT_ADMIN_EXEMPT: booleanVar(true),
  SLA_TAKE_MINUTES: wholeNumber(60, 0, 10080),
  EVENT_RETENTION_DAYS: wholeNumber(30, 1, 3650),
  BACKUP_SCHEDULE: variable<string | null>("0 3 * * *", (value, ctx) => {
    if (value.toLowerCase() === "off") return null;
    try {
      parseCron(value);
      return value;
    } catch (error) {
      return fail(
        ctx,
        `must be "off" or a 5-field cron expression in UTC: ${errorMessage(error)}${shown(value)}`,
      );
    }
  }),
  BROADCAST_RATE: wholeNumber(25, 1, 30),
  ALERT_AFTER: seconds(60, 1, 86400),
  DISK_MIN_FREE_MB: wholeNumber(500, 0, 10_000_000),
});

/** Rules between variables, checked on the raw values so they report alongside the rest. */
function webhookIssues(env: Env): ConfigIssue[] {
  if (env.BOT_MODE?.trim().toLowerCase() !== "webhook") return [];
  const issues: ConfigIssue[] = [];
  const url = env.WEBHOOK_URL?.trim() ?? "";
  if (url === "") {
    issues.push({ variable: "WEBHOOK_URL", message: "is required when BOT_MODE=webhook" });
  } else if (URL.canParse(url) && !isAllowedWebhookUrl(new URL(url))) {
    issues.push({
      variable: "WEBHOOK_URL",
      message: "must use https (Telegram posts only to https; plain http only for loopback tests)",
    });
  } else if (URL.canParse(url) && RESERVED_PATHS.includes(new URL(url).pathname)) {
    issues.push({
      variable: "WEBHOOK_URL",
      message: `its path must not be one of ${
        RESERVED_PATHS.join(", ")
      }, which the HTTP server serves`,
    });
  }
  if ((env.WEBHOOK_SECRET?.trim() ?? "") === "") {
    issues.push({
      variable: "WEBHOOK_SECRET",
      message: "is required when BOT_MODE=webhook, so that only Telegram can post updates",
    });
  }
  return issues;
}

function isAllowedWebhookUrl(url: URL): boolean {
  if (url.protocol === "https:") return true;
  return ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
}

/**
 * Turns the environment into a resolved {@link Config}, or throws a {@link ConfigError} that
 * names every bad variable at once. Pure: reads nothing but `env`.
 */
export function loadConfig(env: Env): Config {
  const result = schema.safeParse(env);
  const issues: ConfigIssue[] = result.success ? [] : result.error.issues.map((issue) => ({
    variable: String(issue.path[0] ?? "environment"),
    message: issue.message,
  }));
  issues.push(...webhookIssues(env));
  if (!result.success || issues.length > 0) {
    const order = (variable: string) => ENV_NAMES.indexOf(variable as EnvName);
    throw new ConfigError(issues.sort((a, b) => order(a.variable) - order(b.variable)));
  }
  const e = result.data;
  const webhookUrl = e.WEBHOOK_URL;
  return {
    botToken: e.BOT_TOKEN,
    botApiRoot: (e.BOT_API_ROOT ?? "https://api.telegram.org").replace(/\/+$/, ""),
    // Deno's fetch reads either spelling (the upper case first), whatever the sandbox lets the
    // program see: the config must see both too, or a lower-case proxy would be bypassed.
    proxies: [
      e.HTTPS_PROXY ?? e.https_proxy,
      e.HTTP_PROXY ?? e.http_proxy,
      e.ALL_PROXY ?? e.all_proxy,
    ].filter((url) => url !== null),
    mode: e.BOT_MODE,
    webhook: e.BOT_MODE === "webhook" && webhookUrl !== null
      ? {
        url: webhookUrl,
        path: new URL(webhookUrl).pathname,
        secret: e.WEBHOOK_SECRET ?? "",
        maxConnections: e.WEBHOOK_MAX_CONNECTIONS,
      }
      : null,
    http: { host: e.HTTP_HOST, port: e.HTTP_PORT },
    metricsToken: e.METRICS_TOKEN,
    dataDir: e.DATA_DIR,
    backupDir: e.BACKUP_DIR,
    adminIds: e.ADMIN_IDS,
    staffChatId: e.STAFF_CHAT_ID,
    requestCategories: e.REQUEST_CATEGORIES,
    defaultLocale: e.DEFAULT_LOCALE,
    log: { level: e.LOG_LEVEL, format: e.LOG_FORMAT, file: e.LOG_FILE },
    shutdownTimeoutMs: Math.round(e.SHUTDOWN_TIMEOUT * 1000),
    updateConcurrency: e.UPDATE_CONCURRENCY,
    database: {
      url: e.DATABASE_URL,
      poolSize: e.DB_POOL_SIZE,
      idleTimeoutMs: Math.round(e.DB_IDLE_TIMEOUT * 1000),
      maxLifetimeMs: Math.round(e.DB_MAX_LIFETIME * 1000),
      connectTimeoutMs: Math.round(e.DB_CONNECT_TIMEOUT * 1000),
      statementTimeoutMs: Math.round(e.DB_STATEMENT_TIMEOUT * 1000),
      poolTimeoutMs: Math.round(e.DB_POOL_TIMEOUT * 1000),
      migrateOnStart: e.MIGRATE_ON_START,
    },
    store: { url: e.REDIS_URL, keyPrefix: e.REDIS_KEY_PREFIX },
    userCacheTtlMs: Math.round(e.USER_CACHE_TTL * 1000),
    backupRetentionDays: e.BACKUP_RETENTION_DAYS,
    backupSchedule: e.BACKUP_SCHEDULE,
    slaTakeMinutes: e.SLA_TAKE_MINUTES,
    eventRetentionDays: e.EVENT_RETENTION_DAYS,
    broadcastRate: e.BROADCAST_RATE,
    alertAfterMs: Math.round(e.ALERT_AFTER * 1000),
    diskMinFreeMb: e.DISK_MIN_FREE_MB,
    rateLimit: {
      enabled: e.RATE_LIMIT_ENABLED,
      capacity: e.RATE_LIMIT_MAX_REQUESTS,
      windowMs: Math.round(e.RATE_LIMIT_TIME_WINDOW * 1000),
      banAfter: e.RATE_LIMIT_BAN_AFTER,
      banMs: Math.round(e.RATE_LIMIT_BAN_DURATION * 1000),
      adminExempt: e.RATE_LIMIT_ADMIN_EXEMPT,
    },
    fsm: {
      stateTtlMs: Math.round(e.FSM_STATE_TTL * 1000),
      dataTtlMs: Math.round(e.FSM_DATA_TTL * 1000),
    },
  };
}
