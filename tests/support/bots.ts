/**
 * In-process bots for pipeline tests: `createBot` options with a test token and the bench's
 * bot account (no `getMe`), gate settings on a given store, and a `fetch` that records every
 * Bot API call instead of reaching Telegram.
 */
import { BOT_INFO } from "../../bench/in_memory_bot_api.ts";
import type { CreateBotOptions } from "../../src/bot/pipeline.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import type { KeyValueStore } from "../../src/store/store.ts";

const HOUR = 3_600_000;

/** One recorded Bot API call: the method and its JSON parameters. */
export type Call = { method: string; body: Record<string, unknown> };

/** Telegram's answer to a failed call. */
export type ApiFailure = { error_code: number; description: string };

/**
 * A `fetch` whose calls land in `calls`; each succeeds with a plausible sent message unless
 * `fail` returns Telegram's error for it.
 */
export function recordingFetch(
  calls: Call[],
  fail: (call: Call) => ApiFailure | null = () => null,
): typeof fetch {
  return ((input: string | URL | Request, init?: RequestInit) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const body = JSON.parse(String(init?.body ?? "{}"));
    const call = { method: url.split("/").at(-1)!, body };
    calls.push(call);
    const error = fail(call);
    if (error) {
      return Promise.resolve(
        new Response(JSON.stringify({ ok: false, ...error }), {
          status: error.error_code,
          headers: { "content-type": "application/json" },
        }),
      );
    }
    return Promise.resolve(
      new Response(
        JSON.stringify({
          ok: true,
          result: { message_id: 1, date: 0, chat: { id: body.chat_id, type: "private" }, text: "" },
        }),
        { headers: { "content-type": "application/json" } },
      ),
    );
  }) as typeof fetch;
}

/** Gate settings on `store`: no rate limit, one-hour dialog TTLs, no lease unless asked. */
export function testGate(
  store: KeyValueStore,
  overrides: Partial<NonNullable<CreateBotOptions["gate"]>> = {},
): NonNullable<CreateBotOptions["gate"]> {
  return {
    store,
    rateLimit: {
      enabled: false,
      capacity: 20,
      windowMs: 60_000,
      banAfter: 5,
      banMs: 60_000,
      adminExempt: true,
    },
    fsm: { stateTtlMs: HOUR, dataTtlMs: HOUR },
    adminIds: [],
    leaseMs: 0,
    instanceId: "test",
    ...overrides,
  };
}

/** `createBot` options for tests: a test token, no network, metrics without timers. */
export function testBotOptions(extra: Partial<CreateBotOptions> = {}): CreateBotOptions {
  const metrics = new Metrics();
  // The event-loop lag probe is Metrics' only timer; the counters keep working without it.
  metrics[Symbol.dispose]();
  return {
    token: "123456:TEST-token_abcdefghijklmnopqrstuvwxyz",
    apiRoot: "http://bot-api.invalid",
    defaultLocale: "en",
    metrics,
    botInfo: BOT_INFO,
    ...extra,
  };
}
