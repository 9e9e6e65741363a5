// deno-lint-ignore-file no-console -- a program's entry point reports on the console
/**
 * The peer of the webhook comparison (`bench/webhook_compare.ts`): a webhook bot built the way
 * a typical production grammY template builds one, done competently. It is the bar the real
 * program has to beat.
 *
 * Per update, in order:
 * 1. `limit()` from `@grammyjs/ratelimiter` on Redis: INCR of the user's counter (and PEXPIRE
 *    when a window starts). The limit is set so high that nothing is limited, as in the
 *    real program's runs.
 * 2. `session()` with `RedisAdapter` from `@grammyjs/storage-redis`: one GET (plus a SET the
 *    first time a chat is seen, when `initial` creates its session; handlers that do not touch
 *    the session cause no write).
 * 3. One upsert of the user into Postgres (postgres.js), which leaves an unchanged row alone.
 * 4. `/help` replies with one `sendMessage`.
 *
 * One ioredis connection and one postgres.js pool, both opened at start and shared by every
 * update; the table is created before the server listens.
 *
 * Environment: BOT_TOKEN, BOT_API_ROOT, HTTP_PORT, WEBHOOK_SECRET, REDIS_URL, DATABASE_URL.
 * The `start` task grants all of the environment: `debug`, which ioredis loads, lists it.
 * It serves the webhook at {@link WEBHOOK_PATH} on 127.0.0.1 and answers Telegram's POST
 * only after the update was handled, as `webhookCallback` does.
 *
 * @module
 */
import { limit } from "@grammyjs/ratelimiter";
import { RedisAdapter } from "@grammyjs/storage-redis";
import { Bot, type Context, session, type SessionFlavor, webhookCallback } from "grammy";
import { Redis } from "ioredis";
import postgres from "postgres";

/** Where the webhook is served, the same path as the real program's in the benchmarks. */
export const WEBHOOK_PATH = "/telegram/hook";

/** The environment, read once. */
export interface PeerConfig {
  token: string;
  apiRoot: string;
  port: number;
  secret: string;
  redisUrl: string;
  databaseUrl: string;
}

/** Reads {@link PeerConfig} from `env`; throws naming every missing variable. */
export function loadPeerConfig(env: (name: string) => string | undefined): PeerConfig {
  const names = [
    "BOT_TOKEN",
    "BOT_API_ROOT",
    "HTTP_PORT",
    "WEBHOOK_SECRET",
    "REDIS_URL",
    "DATABASE_URL",
  ] as const;
  const missing = names.filter((name) => !env(name));
  if (missing.length > 0) throw new Error(`missing environment: ${missing.join(", ")}`);
  return {
    token: env("BOT_TOKEN")!,
    apiRoot: env("BOT_API_ROOT")!,
    port: Number(env("HTTP_PORT")),
    secret: env("WEBHOOK_SECRET")!,
    redisUrl: env("REDIS_URL")!,
    databaseUrl: env("DATABASE_URL")!,
  };
}

/** What a template keeps per chat for its dialogs; `/help` does not use it. */
interface SessionData {
  step: string | null;
}

type PeerContext = Context & SessionFlavor<SessionData>;
type Sql = postgres.Sql;

const HELP = [
  "I am the service desk bot.",
  "",
  "/new: open a request",
  "/my: your requests",
  "/status: a request's status",
  "/language: change the language",
  "/stop: stop notifications",
].join("\n");

/** Creates the users table if it is missing. */
export async function migrate(sql: Sql): Promise<void> {
  await sql`
    create table if not exists users (
      id bigint primary key,
      first_name text not null,
      last_name text,
      username text,
      language_code text,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`;
}

/** The bot on one Redis connection and one Postgres pool that the caller owns. */
export function peerBot(config: PeerConfig, redis: Redis, sql: Sql): Bot<PeerContext> {
  const bot = new Bot<PeerContext>(config.token, { client: { apiRoot: config.apiRoot } });
  bot.use(limit({
    // As the real program is run in the comparison: on, with a limit nobody reaches.
    timeFrame: 60_000,
    limit: 10_000,
    storageClient: redis,
    keyGenerator: (ctx) => ctx.from?.id.toString(),
  }));
  bot.use(session({
    initial: (): SessionData => ({ step: null }),
    storage: new RedisAdapter<SessionData>({ instance: redis, ttl: 24 * 3600 }),
  }));
  bot.use(async (ctx, next) => {
    const user = ctx.from;
    if (user && !user.is_bot) {
      // The WHERE leaves an unchanged row alone: no dead tuple and no WAL for a known user.
      await sql`
        insert into users (id, first_name, last_name, username, language_code)
        values (${user.id}, ${user.first_name}, ${user.last_name ?? null},
          ${user.username ?? null}, ${user.language_code ?? null})
        on conflict (id) do update set
          first_name = excluded.first_name,
          last_name = excluded.last_name,
          username = excluded.username,
          language_code = excluded.language_code,
          updated_at = now()
        where (users.first_name, users.last_name, users.username, users.language_code)
          is distinct from
          (excluded.first_name, excluded.last_name, excluded.username, excluded.language_code)`;
    }
    await next();
  });
  bot.command("help", (ctx) => ctx.reply(HELP));
  bot.catch((error) => console.error("update failed:", error.error));
  return bot;
}

/** The HTTP handler: the webhook at {@link WEBHOOK_PATH}, 404 elsewhere. */
export function webhookHandler(
  bot: Bot<PeerContext>,
  secret: string,
): (req: Request) => Promise<Response> {
  const hook = webhookCallback(bot, "std/http", { secretToken: secret });
  return async (req) => {
    const { pathname } = new URL(req.url);
    if (req.method !== "POST" || pathname !== WEBHOOK_PATH) {
      return new Response("Not Found", { status: 404 });
    }
    return await hook(req);
  };
}

if (import.meta.main) {
  const config = loadPeerConfig((name) => Deno.env.get(name));
  const redis = new Redis(config.redisUrl);
  const sql = postgres(config.databaseUrl, { max: 10, onnotice: () => {} });
  await migrate(sql);
  const bot = peerBot(config, redis, sql);
  // getMe before the first update, so that no POST waits for it.
  await bot.init();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: config.port,
    onListen: ({ hostname, port }) => console.log(`listening on http://${hostname}:${port}`),
  }, webhookHandler(bot, config.secret));
  Deno.addSignalListener("SIGTERM", () => server.shutdown());
  await server.finished;
  await Promise.all([redis.quit(), sql.end({ timeout: 5 })]);
}
