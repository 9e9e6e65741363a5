// deno-lint-ignore-file no-console -- a program's entry point reports on the console
/**
 * The floor of the webhook comparison (`bench/webhook_compare.ts`): the barest grammY webhook
 * bot, which answers every message with one `sendMessage` and does nothing else. No storage,
 * no rate limit, no logging per update: what grammY and `Deno.serve` cost on their own.
 *
 * Environment: BOT_TOKEN, BOT_API_ROOT, HTTP_PORT, WEBHOOK_SECRET. It serves the webhook at
 * {@link WEBHOOK_PATH} on 127.0.0.1 and answers Telegram's POST only after the reply was sent,
 * as `webhookCallback` does. It sets no webhook itself: the benchmark posts to it directly.
 *
 * @module
 */
import { Bot, webhookCallback } from "grammy";

/** Where the webhook is served, the same path as the real program's in the benchmarks. */
export const WEBHOOK_PATH = "/telegram/hook";

/** The environment, read once. */
export interface FloorConfig {
  token: string;
  apiRoot: string;
  port: number;
  secret: string;
}

/** Reads {@link FloorConfig} from `env`; throws naming every missing variable. */
export function loadFloorConfig(env: (name: string) => string | undefined): FloorConfig {
  const names = ["BOT_TOKEN", "BOT_API_ROOT", "HTTP_PORT", "WEBHOOK_SECRET"] as const;
  const missing = names.filter((name) => !env(name));
  if (missing.length > 0) throw new Error(`missing environment: ${missing.join(", ")}`);
  return {
    token: env("BOT_TOKEN")!,
    apiRoot: env("BOT_API_ROOT")!,
    port: Number(env("HTTP_PORT")),
    secret: env("WEBHOOK_SECRET")!,
  };
}

/** The bot: one reply to every message. */
export function floorBot(config: FloorConfig): Bot {
  const bot = new Bot(config.token, { client: { apiRoot: config.apiRoot } });
  bot.on("message", (ctx) => ctx.reply("Hello!"));
  bot.catch((error) => console.error("update failed:", error.error));
  return bot;
}

/** The HTTP handler: the webhook at {@link WEBHOOK_PATH}, 404 elsewhere. */
export function webhookHandler(bot: Bot, secret: string): (req: Request) => Promise<Response> {
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
  const config = loadFloorConfig((name) => Deno.env.get(name));
  const bot = floorBot(config);
  // getMe before the first update, so that no POST waits for it.
  await bot.init();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: config.port,
    onListen: ({ hostname, port }) => console.log(`listening on http://${hostname}:${port}`),
  }, webhookHandler(bot, config.secret));
  Deno.addSignalListener("SIGTERM", () => server.shutdown());
  await server.finished;
}
