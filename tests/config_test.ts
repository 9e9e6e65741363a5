import assert from "node:assert/strict";
import { parseStartTask } from "../scripts/start_command.ts";
import {
  type Config,
  type Env,
  ENV_NAMES,
  loadConfig,
  redactedConfig,
  secretsOf,
} from "../src/config.ts";
import { ConfigError } from "../src/errors.ts";

const TOKEN = "123456:TEST-token_abcdefghijklmnopqrstuvwxyz";

/** Runs `loadConfig` and returns the ConfigError it must throw. */
function configError(env: Env): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  assert.fail(`loadConfig accepted ${JSON.stringify(env)}`);
}

const variablesOf = (error: ConfigError) => error.issues.map((issue) => issue.variable);

Deno.test("loadConfig() fills every default when only BOT_TOKEN is set", () => {
  const config = loadConfig({ BOT_TOKEN: TOKEN });
  const expected: Config = {
    botToken: TOKEN,
    botApiRoot: "https://api.telegram.org",
    proxies: [],
    mode: "polling",
    webhook: null,
    http: { host: "127.0.0.1", port: 8080 },
    metricsToken: null,
    dataDir: "./data",
    backupDir: "./backups",
    adminIds: [],
    staffChatId: null,
    requestCategories: ["Hardware", "Software", "Network", "Access", "Other"],
    defaultLocale: "en",
    log: { level: "info", format: "json", file: null },
    shutdownTimeoutMs: 25_000,
    updateConcurrency: 100,
    database: {
      url: null,
      poolSize: 10,
      idleTimeoutMs: 60_000,
      maxLifetimeMs: 1_800_000,
      connectTimeoutMs: 10_000,
      statementTimeoutMs: 5_000,
      poolTimeoutMs: 5_000,
      migrateOnStart: true,
    },
    store: { url: null, keyPrefix: "sdb:" },
    userCacheTtlMs: 3_600_000,
    backupRetentionDays: 14,
    backupSchedule: "0 3 * * *",
    slaTakeMinutes: 60,
    eventRetentionDays: 30,
    broadcastRate: 25,
    alertAfterMs: 60_000,
    diskMinFreeMb: 500,
    rateLimit: {
      enabled: true,
      capacity: 20,
      windowMs: 60_000,
      banAfter: 5,
      banMs: 3_600_000,
      adminExempt: true,
    },
    fsm: { stateTtlMs: 86_400_000, dataTtlMs: 86_400_000 },
  };
  assert.deepEqual(config, expected);
});

Deno.test("loadConfig() reads every variable when all are set", () => {
  const config = loadConfig({
    BOT_TOKEN: TOKEN,
    BOT_API_ROOT: "http://localhost:8081/",
    BOT_MODE: "Webhook",
    WEBHOOK_URL: "https://bot.example.com/tg/hook",
    WEBHOOK_SECRET: "hook_secret-1_0123456789",
    WEBHOOK_MAX_CONNECTIONS: "10",
    HTTP_HOST: "0.0.0.0",
    HTTP_PORT: "9000",
    METRICS_TOKEN: "metrics_secret_0123456789",
    DATA_DIR: "/var/lib/bot",
    BACKUP_DIR: "/var/backups/bot",
    ADMIN_IDS: "1,2",
    STAFF_CHAT_ID: "-1001234567890",
    REQUEST_CATEGORIES: " Printers , VPN,Другое ",
    DEFAULT_LOCALE: "RU",
    LOG_LEVEL: "debug",
    LOG_FORMAT: "pretty",
    LOG_FILE: "/var/log/bot.log",
    SHUTDOWN_TIMEOUT: "10",
    UPDATE_CONCURRENCY: "7",
    HTTPS_PROXY: "socks5://proxy:secret@10.0.0.2:1080",
    DATABASE_URL: "postgres://bot:pw@db.internal:5432/desk",
    DB_POOL_SIZE: "20",
    DB_IDLE_TIMEOUT: "0",
    DB_MAX_LIFETIME: "600",
    DB_CONNECT_TIMEOUT: "2.5",
    MIGRATE_ON_START: "false",
    REDIS_URL: "redis://:pw@cache.internal:6379/2",
    REDIS_KEY_PREFIX: "desk:",
    USER_CACHE_TTL: "60",
    BACKUP_RETENTION_DAYS: "30",
    RATE_LIMIT_ENABLED: "no",
    RATE_LIMIT_MAX_REQUESTS: "5",
    RATE_LIMIT_TIME_WINDOW: "10",
    RATE_LIMIT_BAN_AFTER: "0",
    RATE_LIMIT_BAN_DURATION: "600",
    RATE_LIMIT_ADMIN_EXEMPT: "false",
    FSM_STATE_TTL: "7200",
    FSM_DATA_TTL: "3600",
    DB_STATEMENT_TIMEOUT: "2",
    DB_POOL_TIMEOUT: "1.5",
    SLA_TAKE_MINUTES: "0",
    EVENT_RETENTION_DAYS: "7",
    BACKUP_SCHEDULE: "OFF",
    BROADCAST_RATE: "10",
    ALERT_AFTER: "30",
    DISK_MIN_FREE_MB: "1000",
  });
  assert.deepEqual(
    config,
    {
      botToken: TOKEN,
      botApiRoot: "http://localhost:8081",
      proxies: ["socks5://proxy:secret@10.0.0.2:1080"],
      mode: "webhook",
      webhook: {
        url: "https://bot.example.com/tg/hook",
        path: "/tg/hook",
        secret: "hook_secret-1_0123456789",
        maxConnections: 10,
      },
      http: { host: "0.0.0.0", port: 9000 },
      metricsToken: "metrics_secret_0123456789",
      dataDir: "/var/lib/bot",
      backupDir: "/var/backups/bot",
      adminIds: [1, 2],
      staffChatId: -1001234567890,
      requestCategories: ["Printers", "VPN", "Другое"],
      defaultLocale: "ru",
      log: { level: "debug", format: "pretty", file: "/var/log/bot.log" },
      shutdownTimeoutMs: 10_000,
      updateConcurrency: 7,
      database: {
        url: "postgres://bot:pw@db.internal:5432/desk",
        poolSize: 20,
        idleTimeoutMs: 0,
        maxLifetimeMs: 600_000,
        connectTimeoutMs: 2_500,
        statementTimeoutMs: 2_000,
        poolTimeoutMs: 1_500,
        migrateOnStart: false,
      },
      store: { url: "redis://:pw@cache.internal:6379/2", keyPrefix: "desk:" },
      userCacheTtlMs: 60_000,
      backupRetentionDays: 30,
      backupSchedule: null,
      slaTakeMinutes: 0,
      eventRetentionDays: 7,
      broadcastRate: 10,
      alertAfterMs: 30_000,
      diskMinFreeMb: 1000,
      rateLimit: {
        enabled: false,
        capacity: 5,
        windowMs: 10_000,
        banAfter: 0,
        banMs: 600_000,
        adminExempt: false,
      },
      fsm: { stateTtlMs: 7_200_000, dataTtlMs: 3_600_000 },
    } satisfies Config,
  );
});

Deno.test("loadConfig() reads the proxy variables in either case, the upper case first", async (t) => {
  const proxies = (env: Record<string, string>) => loadConfig({ BOT_TOKEN: TOKEN, ...env }).proxies;
  await t.step("lower case alone: used (Deno's fetch uses it too)", () => {
    assert.deepEqual(proxies({ https_proxy: "http://proxy.internal:3128" }), [
      "http://proxy.internal:3128",
    ]);
    assert.deepEqual(proxies({ http_proxy: "http://a:1", all_proxy: "socks5://b:2" }), [
      "http://a:1",
      "socks5://b:2",
    ]);
  });
  await t.step("both cases: the upper case wins", () => {
    assert.deepEqual(
      proxies({ HTTPS_PROXY: "http://upper:1", https_proxy: "http://lower:2" }),
      ["http://upper:1"],
    );
  });
  await t.step("none: none", () => assert.deepEqual(proxies({}), []));
});

Deno.test("loadConfig() accepts LOG_LEVEL's common spellings warn and err", async (t) => {
  const cases: Array<[string, Config["log"]["level"]]> = [
    ["warn", "warning"],
    ["WARN", "warning"],
    ["warning", "warning"],
    ["err", "error"],
    ["Error", "error"],
    ["debug", "debug"],
  ];
  for (const [value, level] of cases) {
    await t.step(`${value} → ${level}`, () => {
      assert.equal(loadConfig({ BOT_TOKEN: TOKEN, LOG_LEVEL: value }).log.level, level);
    });
  }
  await t.step("an unknown spelling still names the levels", () => {
    const [issue] = configError({ BOT_TOKEN: TOKEN, LOG_LEVEL: "warnings" }).issues;
    assert.match(issue!.message, /must be one of trace, debug, info, warning, error, fatal/);
  });
});

Deno.test("loadConfig() names the variable of each bad value", async (t) => {
  // `secret`: the value must not be echoed; otherwise the operator sees what was wrong
  // (`shows`, when only part of the value was wrong).
  const cases: Array<{ variable: keyof Env; value: string; secret?: boolean; shows?: string }> = [
    { variable: "BOT_TOKEN", value: "not-a-token", secret: true },
    { variable: "BOT_TOKEN", value: "123:short", secret: true },
    { variable: "BOT_TOKEN", value: `abc:${"x".repeat(35)}`, secret: true },
    { variable: "BOT_API_ROOT", value: "not a url" },
    { variable: "BOT_API_ROOT", value: "ftp://api.example.com" },
    { variable: "BOT_MODE", value: "push" },
    { variable: "WEBHOOK_URL", value: "not a url" },
    { variable: "WEBHOOK_URL", value: "ftp://bot.example.com/hook" },
    { variable: "WEBHOOK_SECRET", value: "has spaces in it", secret: true },
    { variable: "WEBHOOK_SECRET", value: "ünïcode", secret: true },
    { variable: "WEBHOOK_SECRET", value: "x".repeat(257), secret: true },
    { variable: "WEBHOOK_SECRET", value: "tooShort_15chrs", secret: true },
    { variable: "BACKUP_SCHEDULE", value: "every day" },
    { variable: "BACKUP_SCHEDULE", value: "61 * * * *" },
    { variable: "BROADCAST_RATE", value: "31" },
    { variable: "SLA_TAKE_MINUTES", value: "-1" },
    { variable: "DB_STATEMENT_TIMEOUT", value: "5s" },
    { variable: "WEBHOOK_MAX_CONNECTIONS", value: "0" },
    { variable: "WEBHOOK_MAX_CONNECTIONS", value: "101" },
    { variable: "WEBHOOK_MAX_CONNECTIONS", value: "ten" },
    { variable: "HTTP_HOST", value: "host/with/slash" },
    { variable: "HTTP_HOST", value: "a host" },
    { variable: "HTTP_PORT", value: "0" },
    { variable: "HTTP_PORT", value: "65536" },
    { variable: "HTTP_PORT", value: "80.5" },
    { variable: "HTTP_PORT", value: "-1" },
    { variable: "HTTP_PORT", value: "8080abc" },
    { variable: "METRICS_TOKEN", value: "bad token!", secret: true },
    { variable: "METRICS_TOKEN", value: "short", secret: true },
    { variable: "ADMIN_IDS", value: "12,abc", shows: "abc" },
    { variable: "ADMIN_IDS", value: "-5" },
    { variable: "ADMIN_IDS", value: "1.5" },
    { variable: "DEFAULT_LOCALE", value: "de" },
    { variable: "LOG_LEVEL", value: "verbose" },
    { variable: "LOG_FORMAT", value: "xml" },
    { variable: "SHUTDOWN_TIMEOUT", value: "0" },
    { variable: "SHUTDOWN_TIMEOUT", value: "3601" },
    { variable: "SHUTDOWN_TIMEOUT", value: "ten" },
    { variable: "SHUTDOWN_TIMEOUT", value: "10s" },
    { variable: "UPDATE_CONCURRENCY", value: "0" },
    { variable: "UPDATE_CONCURRENCY", value: "10001" },
    { variable: "DATABASE_URL", value: "mysql://u:hunter2@db/x", secret: true },
    { variable: "DATABASE_URL", value: "not a url with hunter2", secret: true },
    { variable: "DB_POOL_SIZE", value: "0" },
    { variable: "DB_IDLE_TIMEOUT", value: "-1" },
    { variable: "DB_MAX_LIFETIME", value: "forever" },
    { variable: "DB_CONNECT_TIMEOUT", value: "0" },
    { variable: "MIGRATE_ON_START", value: "maybe" },
    { variable: "REDIS_URL", value: "http://:hunter2@cache:6379", secret: true },
    { variable: "HTTPS_PROXY", value: "proxy.internal:3128", secret: true },
    { variable: "https_proxy", value: "proxy.internal:3128", secret: true },
    { variable: "REDIS_KEY_PREFIX", value: "has space" },
    { variable: "USER_CACHE_TTL", value: "0" },
    { variable: "BACKUP_RETENTION_DAYS", value: "0" },
    { variable: "RATE_LIMIT_ENABLED", value: "sometimes" },
    { variable: "RATE_LIMIT_MAX_REQUESTS", value: "0" },
    { variable: "RATE_LIMIT_TIME_WINDOW", value: "0" },
    { variable: "RATE_LIMIT_BAN_AFTER", value: "-1" },
    { variable: "RATE_LIMIT_BAN_DURATION", value: "forever" },
    { variable: "RATE_LIMIT_ADMIN_EXEMPT", value: "2" },
    { variable: "FSM_STATE_TTL", value: "30" },
    { variable: "STAFF_CHAT_ID", value: "staff" },
    { variable: "REQUEST_CATEGORIES", value: "A,B,A" },
    { variable: "REQUEST_CATEGORIES", value: ",,," },
    { variable: "FSM_DATA_TTL", value: "a day" },
  ];
  for (const { variable, value, secret, shows } of cases) {
    await t.step(`${variable}=${JSON.stringify(value.slice(0, 40))}`, () => {
      const env: Env = { BOT_TOKEN: TOKEN, [variable]: value };
      const error = configError(env);
      assert.deepEqual(variablesOf(error), [variable]);
      const [issue] = error.issues;
      assert.ok(issue!.message.length > 0);
      if (secret) {
        assert.ok(!error.message.includes(value), error.message);
      } else {
        assert.ok(
          issue!.message.includes(shows ?? value.slice(0, 60)),
          `message should show the bad value: ${issue!.message}`,
        );
      }
      assert.match(error.message, new RegExp(`\\b${variable}\\b`));
    });
  }
});

Deno.test("loadConfig() reports every bad variable in one ConfigError", () => {
  const error = configError({
    BOT_TOKEN: "oops",
    HTTP_PORT: "99999",
    LOG_LEVEL: "loud",
    ADMIN_IDS: "me",
    SHUTDOWN_TIMEOUT: "-3",
    BOT_MODE: "webhook",
  });
  assert.equal(error.name, "ConfigError");
  // Sorted in the order of ENV_NAMES, so the report reads like the README's table.
  assert.deepEqual(variablesOf(error), [
    "BOT_TOKEN",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "HTTP_PORT",
    "ADMIN_IDS",
    "LOG_LEVEL",
    "SHUTDOWN_TIMEOUT",
  ]);
  for (const variable of variablesOf(error)) {
    assert.ok(error.message.includes(`${variable}: `), error.message);
  }
});

Deno.test("loadConfig() never shows the token's value in a ConfigError", async (t) => {
  const tokens = [
    "123456:MY-RECOGNIZABLE-SECRET-VALUE!", // forbidden character
    "MY-RECOGNIZABLE-SECRET-VALUE-abcdefghijklmnopqrstuv", // no id part
    "123456:MY_RECOGNIZABLE_SECRET", // too short
    `123456:MY_RECOGNIZABLE_SECRET${"x".repeat(60)}`, // too long
  ];
  for (const token of tokens) {
    await t.step(token.slice(0, 40), () => {
      const error = configError({ BOT_TOKEN: token, HTTP_PORT: "nope" });
      assert.deepEqual(variablesOf(error), ["BOT_TOKEN", "HTTP_PORT"]);
      const everything = [error.message, ...error.issues.map((issue) => issue.message)].join("\n");
      assert.ok(!everything.includes("RECOGNIZABLE"), everything);
      assert.ok(!everything.includes(token), everything);
    });
  }
});

Deno.test("loadConfig() in webhook mode", async (t) => {
  await t.step("requires WEBHOOK_URL and WEBHOOK_SECRET", () => {
    const error = configError({ BOT_TOKEN: TOKEN, BOT_MODE: "webhook" });
    assert.deepEqual(variablesOf(error), ["WEBHOOK_URL", "WEBHOOK_SECRET"]);
  });

  await t.step("reports missing webhook settings together with other errors", () => {
    const error = configError({
      BOT_TOKEN: TOKEN,
      BOT_MODE: "webhook",
      WEBHOOK_URL: "https://bot.example.com/hook",
      HTTP_PORT: "none",
    });
    assert.deepEqual(variablesOf(error), ["WEBHOOK_SECRET", "HTTP_PORT"]);
  });

  await t.step("refuses a webhook path that would shadow /health or /metrics", () => {
    for (const path of ["/health", "/health/live", "/metrics"]) {
      const error = configError({
        BOT_TOKEN: TOKEN,
        BOT_MODE: "webhook",
        WEBHOOK_URL: `https://bot.example.com${path}`,
        WEBHOOK_SECRET: "a_long_enough_secret",
      });
      assert.deepEqual(variablesOf(error), ["WEBHOOK_URL"], path);
      assert.match(error.issues[0]!.message, /must not be one of/);
    }
  });

  await t.step("does not require webhook settings in polling mode", () => {
    assert.equal(loadConfig({ BOT_TOKEN: TOKEN, BOT_MODE: "polling" }).webhook, null);
  });

  const urls: Array<{ url: string; allowed: boolean }> = [
    { url: "https://bot.example.com/hook", allowed: true },
    { url: "http://bot.example.com/hook", allowed: false },
    { url: "http://10.0.0.5:8080/hook", allowed: false },
    { url: "http://127.0.0.1:8443/hook", allowed: true },
    { url: "http://localhost:8443/hook", allowed: true },
    { url: "http://[::1]:8443/hook", allowed: true },
  ];
  for (const { url, allowed } of urls) {
    await t.step(`${allowed ? "accepts" : "refuses"} ${url}`, () => {
      const env: Env = {
        BOT_TOKEN: TOKEN,
        BOT_MODE: "webhook",
        WEBHOOK_URL: url,
        WEBHOOK_SECRET: "s3cret_s3cret_s3cret",
      };
      if (allowed) {
        const config = loadConfig(env);
        assert.equal(config.webhook?.url, url);
        assert.equal(config.webhook?.path, "/hook");
        assert.equal(config.webhook?.secret, "s3cret_s3cret_s3cret");
        assert.equal(config.webhook?.maxConnections, 40);
      } else {
        const error = configError(env);
        assert.deepEqual(variablesOf(error), ["WEBHOOK_URL"]);
        assert.match(error.issues[0]!.message, /https/);
      }
    });
  }
});

Deno.test("loadConfig() treats empty and blank strings as unset", async (t) => {
  await t.step("a blank BOT_TOKEN is reported as required", () => {
    for (const value of ["", "   "]) {
      const error = configError({ BOT_TOKEN: value });
      assert.deepEqual(variablesOf(error), ["BOT_TOKEN"]);
      assert.match(error.issues[0]!.message, /required/);
    }
  });

  await t.step("a missing BOT_TOKEN is reported as required", () => {
    const error = configError({});
    assert.deepEqual(variablesOf(error), ["BOT_TOKEN"]);
    assert.match(error.issues[0]!.message, /required/);
  });

  await t.step("blank optional variables take their defaults", () => {
    const env: Env = { BOT_TOKEN: TOKEN };
    for (const name of ENV_NAMES) if (name !== "BOT_TOKEN") env[name] = "";
    env.HTTP_PORT = "  ";
    assert.deepEqual(loadConfig(env), loadConfig({ BOT_TOKEN: TOKEN }));
  });

  await t.step("a blank WEBHOOK_SECRET counts as missing in webhook mode", () => {
    const error = configError({
      BOT_TOKEN: TOKEN,
      BOT_MODE: "webhook",
      WEBHOOK_URL: "https://bot.example.com/hook",
      WEBHOOK_SECRET: " ",
    });
    assert.deepEqual(variablesOf(error), ["WEBHOOK_SECRET"]);
  });
});

Deno.test("loadConfig() parses ADMIN_IDS", async (t) => {
  const cases: Array<{ value: string; ids: number[] }> = [
    { value: "42", ids: [42] },
    { value: "1,2,3", ids: [1, 2, 3] },
    { value: " 1 , 2 ,, 3, ", ids: [1, 2, 3] },
    { value: "7,7,8", ids: [7, 8] },
    { value: "6000000001", ids: [6_000_000_001] },
    { value: ",", ids: [] },
  ];
  for (const { value, ids } of cases) {
    await t.step(JSON.stringify(value), () => {
      assert.deepEqual(loadConfig({ BOT_TOKEN: TOKEN, ADMIN_IDS: value }).adminIds, ids);
    });
  }
});

Deno.test("loadConfig() turns SHUTDOWN_TIMEOUT seconds into shutdownTimeoutMs", async (t) => {
  const cases = [
    { value: "1", ms: 1_000 },
    { value: "2.5", ms: 2_500 },
    { value: "30", ms: 30_000 },
    { value: "3600", ms: 3_600_000 },
  ];
  for (const { value, ms } of cases) {
    await t.step(value, () => {
      assert.equal(loadConfig({ BOT_TOKEN: TOKEN, SHUTDOWN_TIMEOUT: value }).shutdownTimeoutMs, ms);
    });
  }
});

const FULL_SECRET_ENV: Env = {
  BOT_TOKEN: TOKEN,
  BOT_MODE: "webhook",
  WEBHOOK_URL: "https://bot.example.com/hook",
  WEBHOOK_SECRET: "the-webhook-secret",
  METRICS_TOKEN: "the_metrics_token",
  DATABASE_URL: "postgres://bot:db%23pass@db.internal/desk",
  REDIS_URL: "rediss://default:redis-pass@cache.internal:6380",
  HTTPS_PROXY: "http://me:proxy-pass@proxy.internal:3128",
};

Deno.test("secretsOf() lists the token and every secret", () => {
  const secrets = secretsOf(loadConfig(FULL_SECRET_ENV));
  assert.ok(secrets.includes(TOKEN));
  // The part after the colon alone is enough to use the bot, so it is a secret too.
  assert.ok(secrets.includes("TEST-token_abcdefghijklmnopqrstuvwxyz"));
  assert.ok(secrets.includes("the-webhook-secret"));
  assert.ok(secrets.includes("the_metrics_token"));
  assert.ok(secrets.includes("db#pass") && secrets.includes("db%23pass"));
  assert.ok(secrets.includes("redis-pass"));
  assert.ok(secrets.includes("proxy-pass"));
  assert.deepEqual(
    secretsOf(loadConfig({ BOT_TOKEN: TOKEN })).sort(),
    [
      TOKEN,
      "TEST-token_abcdefghijklmnopqrstuvwxyz",
    ].sort(),
  );
});

Deno.test("redactedConfig() contains no secret", () => {
  const config = loadConfig(FULL_SECRET_ENV);
  const json = JSON.stringify(redactedConfig(config));
  for (const secret of secretsOf(config)) {
    assert.ok(!json.includes(secret), `${secret} leaked into ${json}`);
  }
  const redacted = redactedConfig(config);
  // What is not secret stays readable for the operator.
  assert.equal(redacted.botToken, "123456:[redacted]");
  assert.equal(redacted.botApiRoot, "https://api.telegram.org");
  assert.equal((redacted.webhook as { url: string }).url, "https://bot.example.com/hook");
  assert.equal(redacted.metricsToken, "[redacted]");
  assert.equal(redactedConfig(loadConfig({ BOT_TOKEN: TOKEN })).metricsToken, null);
  // Where the databases are stays visible; only the passwords go.
  assert.equal(
    (redacted.database as { url: string }).url,
    "postgres://bot:***@db.internal/desk",
  );
  assert.equal(
    (redacted.store as { url: string }).url,
    "rediss://default:***@cache.internal:6380",
  );
  assert.deepEqual(redacted.proxies, ["http://me:***@proxy.internal:3128/"]);
});

Deno.test("ENV_NAMES equals the env list of deno.json's start task", async () => {
  const denoJson = await Deno.readTextFile(new URL("../deno.json", import.meta.url));
  const { runFlags } = parseStartTask(denoJson);
  const allowEnv = runFlags.filter((flag) => flag.startsWith("--allow-env"));
  assert.equal(allowEnv.length, 1, `expected one --allow-env flag, got ${allowEnv.join(" ")}`);
  // Every other variable looks unset (postgres.js probes PGHOST…) instead of throwing.
  assert.ok(runFlags.includes("--ignore-env"), runFlags.join(" "));
  const granted = allowEnv[0]!.slice("--allow-env=".length).split(",");
  assert.equal(new Set(granted).size, granted.length, "duplicate names in --allow-env");
  assert.deepEqual([...granted].sort(), [...ENV_NAMES].sort());
});
