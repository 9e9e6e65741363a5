/**
 * The real program as the throughput benchmarks run it (`BotProcess.start({ entry })`, the
 * `start` task's exact flags): the same in every respect but the outbound flood limits (see
 * {@link benchFloodLimits}). The benchmarks' fake Bot API takes any rate, while Telegram's own
 * limits (30 messages a second per bot, 3 in 3 s per private chat) would hold a burst of
 * thousands of replies to 30 a second and time nothing but the limiter.
 *
 * @module
 */
import { type FloodLimits, floodLimits, type WindowLimit } from "../src/bot/flood/limits.ts";

/** How many times shorter the per-chat and broadcast windows are than Telegram's. */
export const WINDOW_SHRINK = 200;

/**
 * The flood limits of the benchmarks: every message still takes its turn in the logs shared
 * through the store (the same script, the same keys, one log write per message), but nothing
 * waits. Per chat and for broadcasts, Telegram's counts over windows {@link WINDOW_SHRINK}
 * times shorter; bot-wide, 200 messages per 5 ms (40,000 a second): a burst of replies to as
 * many updates as are in flight at once (64) must not wait either, and at a few thousand
 * updates a second the log holds a few dozen send times, about as many as Telegram's 30 a
 * second keep it at in production. A reply's turn taken ahead is recorded 5 ms ahead (in
 * production 50 ms, a twentieth of the bot-wide window; here the window's length): 50 ms
 * would hold each send in these short windows eleven times as long as the window itself, and
 * the bench would time the limiter again.
 */
export function benchFloodLimits(): FloodLimits {
  const telegram = floodLimits(25);
  const shorter = (limit: WindowLimit): WindowLimit => ({
    count: limit.count,
    windowMs: limit.windowMs / WINDOW_SHRINK,
  });
  return {
    global: { count: 200, windowMs: 5 },
    privateChat: shorter(telegram.privateChat),
    group: shorter(telegram.group),
    reserve: telegram.reserve,
    bulk: shorter(telegram.bulk),
    aheadMs: 5,
  };
}

/** The program's entry point relative to the project root, for `BotProcess.start`. */
export const BENCH_PROGRAM = "bench/bench_program.ts";

if (import.meta.main) {
  // Imported here, so that the benchmarks importing this module do not load the program.
  const { main } = await import("../main.ts");
  Deno.exit(await main(Deno.args, { floodLimits: benchFloodLimits() }));
}
