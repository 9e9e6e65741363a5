// deno-lint-ignore-file no-console -- the CLI prints to the terminal by design
/**
 * The command-line entry point and the only place that reads the environment, opens sockets
 * and installs signal handlers. Exit codes: 0 clean stop, 78 bad configuration, 77 a start-up
 * refused for good (restarting cannot fix it), 1 anything else, 2 usage (unknown command, missing
 * or bad arguments).
 */
import { type AppExtensions, createApp } from "./src/app.ts";
import { type Config, type Env, ENV_NAMES, loadConfig, secretsOf } from "./src/config.ts";
import {
  causeChain,
  ConfigError,
  errorMessage,
  EXIT_CONFIG,
  EXIT_REFUSED,
  isPermanent,
} from "./src/errors.ts";
import { healthHandler } from "./src/http/health.ts";
import { metricsHandler } from "./src/http/metrics.ts";
import { router } from "./src/http/router.ts";
import { type HttpServer, serveHttp } from "./src/http/server.ts";
import { logger, redactor, setupLogging } from "./src/log.ts";
import { backupCommand, migrateCommand, restoreCommand, UsageError } from "./src/ops/commands.ts";
import { doctor, formatFindings } from "./src/ops/doctor.ts";
import { healthcheck } from "./src/ops/healthcheck.ts";
import { pathIssues, symlinkIssues } from "./src/ops/sandbox.ts";
import { PROGRAM_NAME, VERSION } from "./src/version.ts";

/**
 * A signal repeated within this long after the first is the same request to stop: a terminal's
 * Ctrl-C reaches both `deno task` and the bot, which may pass it on once more.
 */
const SAME_SIGNAL_MS = 2000;
/**
 * A repeat within this long is that copy of the same press (`deno task` passes it on at once),
 * not a second press: it is logged at debug level only, so that one Ctrl-C does not log "again".
 */
const COPY_OF_SIGNAL_MS = 100;

const USAGE = `${PROGRAM_NAME} ${VERSION}: a Telegram service-desk bot

Usage: ${PROGRAM_NAME} [command]

Commands:
  (none)            run the bot until SIGTERM or SIGINT
  migrate           apply pending database migrations
  migrate status    list migrations and whether each is applied
  migrate down N    revert the N newest migrations
  backup            write a backup of the database and dialog state to BACKUP_DIR
  restore FILE      restore a backup: FILE is its name in BACKUP_DIR (or a path under
                    backups/ or data/); refuses existing data and a running bot unless --force
  healthcheck       ask the running instance's GET /health; exit 0 on pass or warn, 1 otherwise
  doctor            check the configuration, sandbox, disk, storage, token, staff chat,
                    admins and webhook
  version           print the version
  help              print this help

Configuration comes from environment variables; see README.md.
Exit codes: 0 clean stop, 78 bad configuration, 77 refused for good (token, database
credentials or schema: fix it, restarting will not), 1 error, 2 usage (an unknown
command, or a command's arguments missing or wrong, such as restore without FILE).`;

/** Commands that take arguments after their name. */
const WITH_ARGUMENTS = ["help", "migrate", "restore"];

/** Runs a storage subcommand: its report on stdout, a failure as one line on stderr. */
async function storageCommand(
  work: (
    config: Config,
    print: (line: string) => void,
    warn: (line: string) => void,
  ) => Promise<number>,
): Promise<number> {
  const config = configOrReport();
  if (!config) return EXIT_CONFIG;
  // What it prints may quote an error, and an error a URL: never a secret.
  const redact = redactor(secretsOf(config));
  try {
    return await work(
      config,
      (line) => console.log(redact(line)),
      (line) => console.error(redact(line)),
    );
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${PROGRAM_NAME}: ${error.message}`);
      return 2;
    }
    const denied = [error, error instanceof Error ? error.cause : null]
      .find((e) => e instanceof Deno.errors.NotCapable) as Error | undefined;
    if (denied) {
      // Deno's own text suggests a flag the operator cannot add to the binary.
      const path = /"([^"]+)"/.exec(denied.message)?.[1] ?? "that path";
      console.error(
        `${PROGRAM_NAME}: the sandbox does not allow access to ${path}. The program may only ` +
          `read and write under data/, backups/ and logs/ of its working directory: put the ` +
          `file into BACKUP_DIR.`,
      );
      return 1;
    }
    // The chain says each message once: a message often quotes its cause already.
    console.error(`${PROGRAM_NAME}: ${redact(causeChain(error))}`);
    return 1;
  }
}

function readEnv(): Env {
  const env: Env = {};
  for (const name of ENV_NAMES) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** Loads and checks the configuration; prints every problem and returns null when bad. */
function configOrReport(): Config | null {
  try {
    const config = loadConfig(readEnv());
    const outside = pathIssues(config);
    // Only paths inside the sandbox can be looked at for links that lead out of it.
    const issues = outside.length > 0 ? outside : symlinkIssues(config);
    if (issues.length > 0) throw new ConfigError(issues);
    return config;
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    const count = error.issues.length;
    console.error(
      `${PROGRAM_NAME}: invalid configuration (${count} problem${count === 1 ? "" : "s"}):`,
    );
    for (const issue of error.issues) console.error(`  ${issue.variable}: ${issue.message}`);
    console.error(`See the environment table in README.md.`);
    return null;
  }
}

async function run(extensions: AppExtensions): Promise<number> {
  const config = configOrReport();
  if (!config) return EXIT_CONFIG;
  const closeLogs = await setupLogging({ ...config.log, secrets: secretsOf(config) });
  const log = logger("main");
  globalThis.addEventListener("unhandledrejection", (event) => {
    // A stray rejection must not take every user's conversation down with it.
    event.preventDefault();
    log.error("unhandled promise rejection", { error: event.reason });
  });
  log.info(
    "starting {program} {version}: {mode} mode, Bot API {api}, HTTP {host}:{port}, database {database}, store {store}, data in {data_dir}",
    {
      program: PROGRAM_NAME,
      version: VERSION,
      mode: config.mode,
      api: config.botApiRoot,
      host: config.http.host,
      port: config.http.port,
      data_dir: config.dataDir,
      database: config.database.url === null ? "pglite (embedded)" : "postgres",
      store: config.store.url === null ? "deno-kv (embedded)" : "redis",
      webhook_path: config.webhook?.path ?? null,
      update_concurrency: config.updateConcurrency,
    },
  );

  const app = createApp(config, extensions);
  const handler = router({
    health: healthHandler(app.health),
    metrics: metricsHandler({ registry: app.metrics.registry, token: config.metricsToken }),
    ...(app.webhook ? { webhook: app.webhook } : {}),
  });
  const { promise: stopRequested, resolve: requestStop } = Promise.withResolvers<
    { reason: string; code: number }
  >();
  let firstSignalAt: number | null = null;
  const onSignal = (signal: Deno.Signal) => () => {
    const now = performance.now();
    if (firstSignalAt !== null) {
      if (now - firstSignalAt < COPY_OF_SIGNAL_MS) {
        log.debug("{signal} repeated at once (passed on by `deno task`): ignored", { signal });
        return;
      }
      if (now - firstSignalAt < SAME_SIGNAL_MS) {
        log.info("{signal} again: still stopping gracefully (send it once more to exit at once)", {
          signal,
        });
        return;
      }
      log.warning("second {signal}: exiting at once", { signal });
      Deno.exit(1);
    }
    firstSignalAt = now;
    requestStop({ reason: signal, code: 0 });
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, onSignal(signal));
  }
  let server: HttpServer;
  try {
    // After the signal listeners: Deno starts its signal thread with the first one, which
    // needs a descriptor that a flood of connections may have taken by then.
    server = serveHttp({
      hostname: config.http.host,
      port: config.http.port,
      handler,
      // Every update passes the webhook: served straight from the parser.
      ...(app.webhook ? { direct: app.webhook.direct } : {}),
      log: logger("http"),
      onError: (error) => {
        log.error("HTTP handler failed", { error });
        return new Response("internal error\n", { status: 500 });
      },
    });
  } catch (error) {
    log.fatal("cannot listen on {host}:{port}: {message}", {
      host: config.http.host,
      port: config.http.port,
      message: errorMessage(error),
    });
    await closeLogs();
    return 1;
  }
  app.metrics.observeHttp(() => server.stats);
  let stopping = false;
  server.finished.then(
    () => {
      if (stopping) return;
      log.fatal("the HTTP server stopped unexpectedly: exiting so that it is restarted");
      requestStop({ reason: "the HTTP server stopped", code: 1 });
    },
    (error) => {
      log.fatal("the HTTP server failed, exiting so that it is restarted: {message}", {
        message: causeChain(error),
      });
      requestStop({ reason: "the HTTP server failed", code: 1 });
    },
  );
  app.failed.then((error) => {
    log.fatal("transport failed: {message}", { message: causeChain(error) });
    requestStop({ reason: error.message, code: isPermanent(error) ? EXIT_REFUSED : 1 });
  });
  app.start().catch((error) => {
    if (firstSignalAt !== null) return;
    const permanent = isPermanent(error);
    log.fatal(
      permanent ? "cannot start: {message}" : "start-up failed: {message}",
      { message: causeChain(error), ...(permanent ? {} : { error }) },
    );
    requestStop({ reason: "start-up failed", code: permanent ? EXIT_REFUSED : 1 });
  });

  const { reason, code } = await stopRequested;
  stopping = true;
  const summary = await app.stop(reason);
  // Abandoned webhook requests never finish; do not let them hold the exit.
  await server.shutdown(2000);
  log.info(
    "stopped after {duration_ms} ms: {finished} in-flight updates finished, {abandoned_count} abandoned",
    {
      reason: summary.reason,
      duration_ms: summary.durationMs,
      finished: summary.finished,
      abandoned_count: summary.abandoned.length,
      abandoned: summary.abandoned,
      handled_total: summary.handledTotal,
    },
  );
  await closeLogs();
  return code;
}

/**
 * Runs the command in `args` and returns the exit code. `extensions` adds features to the bot
 * (the end-to-end tests' own dialogs use it; the binary adds none).
 */
export async function main(args: string[], extensions: AppExtensions = {}): Promise<number> {
  const [command, ...rest] = args;
  if (command !== undefined && rest.length > 0 && !WITH_ARGUMENTS.includes(command)) {
    console.error(`${PROGRAM_NAME}: unexpected arguments: ${rest.join(" ")}\n\n${USAGE}`);
    return 2;
  }
  switch (command) {
    case undefined:
      return await run(extensions);
    case "migrate":
      return await storageCommand((config, print) => migrateCommand(config, rest, print));
    case "backup":
      return await storageCommand((config, print) => backupCommand(config, print));
    case "restore":
      return await storageCommand((config, print, warn) =>
        restoreCommand(config, rest, print, warn)
      );
    case "healthcheck": {
      const port = Number(Deno.env.get("HTTP_PORT") || 8080);
      const result = await healthcheck({ host: Deno.env.get("HTTP_HOST") || "127.0.0.1", port });
      console.log(result.line);
      return result.code;
    }
    case "doctor": {
      const config = configOrReport();
      if (!config) return EXIT_CONFIG;
      const findings = await doctor(config);
      console.log(formatFindings(findings));
      return findings.some((f) => f.verdict === "fail") ? 1 : 0;
    }
    case "version":
    case "--version":
      console.log(`${PROGRAM_NAME} ${VERSION} (deno ${Deno.version.deno}, v8 ${Deno.version.v8})`);
      return 0;
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return 0;
    default:
      console.error(`${PROGRAM_NAME}: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
