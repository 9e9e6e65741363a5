// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * Polling delay benchmark: how long other chats wait for a reply while one chat's updates are
 * slow. The real program polls the fake Bot API; users of other chats send `/help` at a steady
 * pace, and each one's delay is measured from the moment the update is queued at "Telegram"
 * to the moment the reply reaches it. Once with nothing else going on, once while one chat
 * presses a button every few seconds whose answer Telegram takes as long to accept (as when
 * the bot waits out a 429 or uploads a large file): that chat always has an update in flight.
 *
 * Run alone with `deno run --unstable-kv --allow-net --allow-env --allow-read --allow-write
 * --allow-run=deno bench/polling_delay.ts`.
 *
 * @module
 */
import { BotProcess } from "../tests/e2e/program.ts";
import { FakeBotApi } from "../tests/fake_bot_api.ts";
import { markdownTable, ms, percentile } from "./stats.ts";

/** Options of {@link measurePollingDelay}. */
export interface PollingDelayOptions {
  /** Whether one chat keeps a slow update in flight throughout. */
  slowChat: boolean;
  /** Messages measured. @default 200 */
  messages?: number;
  /** Messages per second, from `chats` chats in turn. @default 10 */
  ratePerSecond?: number;
  /**
   * Chats the messages come from, in turn; few enough to be warm, many enough that none of
   * them posts more than once a second (Telegram's per-chat limit, which the bot keeps).
   * @default 30
   */
  chats?: number;
  /** How long Telegram takes to accept the slow chat's answer, in ms. @default 3000 */
  slowMs?: number;
  /** Extra environment for the program, e.g. `REDIS_URL`. @default {} */
  env?: Record<string, string>;
}

/** What one run measured. */
export interface PollingDelayResult {
  slowChat: boolean;
  slowMs: number;
  /** Queued at the fake Bot API → the reply reached it, in ms, one per message. */
  delaysMs: number[];
  /** Slow updates that were in flight during the measurement. */
  slowUpdates: number;
  /** `getUpdates` calls during the measurement. */
  polls: number;
}

const FIRST_CHAT = 900_000;
const SLOW_CHAT = 899_999;

/** One run against a fresh program with the embedded store; see the module documentation. */
export async function measurePollingDelay(
  options: PollingDelayOptions,
): Promise<PollingDelayResult> {
  const { slowChat, messages = 200, ratePerSecond = 10, chats = 30, slowMs = 3000 } = options;
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api, env: options.env ?? {} });
  await bot.waitReady();
  const chatOf = (i: number) => FIRST_CHAT + (i % chats);
  // Warm-up: every chat once, so that profiles are cached and the JIT has run.
  for (let i = 0; i < chats; i++) api.pushMessage({ chatId: chatOf(i), text: "/help" });
  await api.waitFor(() => api.sentMessages().length >= chats, 60_000, "warm-up replies");
  await new Promise((resolve) => setTimeout(resolve, 1500));

  const stop = new AbortController();
  let slowUpdates = 0;
  const presses = slowChat
    ? (async () => {
      api.delay("answerCallbackQuery", slowMs);
      while (!stop.signal.aborted) {
        api.pushCallbackQuery({ chatId: SLOW_CHAT, data: "no:such:button" });
        slowUpdates++;
        await sleep(slowMs, stop.signal);
      }
    })()
    : Promise.resolve();
  if (slowChat) {
    await api.waitFor(() => api.callsOf("answerCallbackQuery").length > 0, 10_000, "slow chat");
  }

  const pollsBefore = api.callsOf("getUpdates").length;
  const repliesBefore = new Map<number, number>();
  for (let i = 0; i < chats; i++) repliesBefore.set(chatOf(i), api.sentMessages(chatOf(i)).length);
  const pushedAt: number[] = [];
  const started = Date.now();
  for (let i = 0; i < messages; i++) {
    await sleep(started + (i * 1000) / ratePerSecond - Date.now());
    pushedAt.push(Date.now());
    api.pushMessage({ chatId: chatOf(i), text: "/help" });
  }
  const total = chats + messages;
  await api.waitFor(() => api.sentMessages().length >= total, 60_000, `${messages} replies`);
  const polls = api.callsOf("getUpdates").length - pollsBefore;
  stop.abort();
  await presses;
  api.delay("answerCallbackQuery", 0);

  // The k-th measured message of a chat is answered by its k-th reply after the warm-up.
  const replies = new Map<number, number[]>();
  for (const call of api.calls) {
    if (call.method !== "sendMessage" || (call.response as { ok?: boolean })?.ok !== true) {
      continue;
    }
    const chatId = Number(call.params.chat_id);
    const list = replies.get(chatId) ?? [];
    list.push(call.at);
    replies.set(chatId, list);
  }
  const seen = new Map<number, number>();
  const delaysMs = pushedAt.map((at, i) => {
    const chatId = chatOf(i);
    const k = seen.get(chatId) ?? 0;
    seen.set(chatId, k + 1);
    const reply = replies.get(chatId)?.[(repliesBefore.get(chatId) ?? 0) + k];
    if (reply === undefined) throw new Error(`no reply to message ${i} in chat ${chatId}`);
    return reply - at;
  });
  await bot.stop();
  return { slowChat, slowMs, delaysMs, slowUpdates, polls };
}

/** The report section: one row per run, then the extra delay the slow chat caused. */
export function formatPollingDelayReport(results: readonly PollingDelayResult[]): string {
  const figures = (r: PollingDelayResult) => {
    const d = r.delaysMs;
    return {
      p50: percentile(d, 50),
      p90: percentile(d, 90),
      p99: percentile(d, 99),
      max: Math.max(...d),
    };
  };
  const rows = results.map((r) => {
    const f = figures(r);
    return [
      r.slowChat ? `one chat slow (${r.slowMs / 1000} s per update)` : "no slow chat",
      String(r.delaysMs.length),
      ms(f.p50),
      ms(f.p90),
      ms(f.p99),
      ms(f.max),
      String(r.polls),
    ];
  });
  const quiet = results.find((r) => !r.slowChat);
  const slow = results.find((r) => r.slowChat);
  const extra = quiet && slow
    ? (() => {
      const [q, s] = [figures(quiet), figures(slow)];
      return [
        "",
        `- extra delay with the slow chat: p50 ${signed(s.p50 - q.p50)}, ` +
        `p90 ${signed(s.p90 - q.p90)}, p99 ${signed(s.p99 - q.p99)}, max ${signed(s.max - q.max)}`,
      ];
    })()
    : [];
  return [
    "### Polling: other chats' delay while one chat is slow",
    "",
    "The real program in polling mode (embedded store). Other chats send `/help` at 10 a second",
    "(30 warm chats in turn); the delay is from the update being queued at the fake Bot API to",
    "the reply reaching it. In the second run one chat presses a button every 3 s whose answer",
    "Telegram takes 3 s to accept, so that chat always has an update in flight. Both runs see the",
    "same occasional stalls of the handlers themselves (the embedded database), which set p99",
    "and max; p50 and p90 show what polling adds.",
    "",
    markdownTable(["scenario", "messages", "p50", "p90", "p99", "max", "getUpdates calls"], rows),
    ...extra,
  ].join("\n");
}

function signed(value: number): string {
  return `${value < 0 ? "−" : "+"}${ms(Math.abs(value))}`;
}

function sleep(msToWait: number, signal?: AbortSignal): Promise<void> {
  if (msToWait <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, msToWait);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

if (import.meta.main) {
  const results = [];
  for (const slowChat of [false, true]) {
    console.error(`[bench] polling delay: ${slowChat ? "one chat slow" : "no slow chat"} …`);
    results.push(await measurePollingDelay({ slowChat }));
  }
  console.log(formatPollingDelayReport(results));
}
