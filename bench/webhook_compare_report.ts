/**
 * The Markdown report of `webhook_compare.ts`: per bot the medians of the timed rounds and
 * the counts of its accounting burst, the ratios of ours to the others round by round, and
 * how each figure is counted.
 *
 * @module
 */
import { markdownTable, median, mib, ms, percentile, perSecond } from "./stats.ts";
import type { BurstFigures, CompareBot, WebhookCompareFigures } from "./webhook_compare.ts";

const sum = (values: Iterable<number>) => [...values].reduce((total, n) => total + n, 0);
const fixed = (value: number, digits = 2) => Number.isFinite(value) ? value.toFixed(digits) : "n/a";

/** One bot's timed rounds as medians, and its counts from its accounting burst. */
function summary(timed: BurstFigures[], counted: BurstFigures | undefined) {
  const commands = new Map(Object.entries(counted?.redisCommands ?? {}));
  const roundTrips = new Map<string, number>();
  for (const [name, n] of commands) {
    // A script's own commands are no round trip; EVALSHA/EVAL and the rest are one each.
    const trips = n - (counted?.scriptCommands?.[name] ?? 0);
    if (trips > 0) roundTrips.set(name, trips);
  }
  return {
    rate: median(timed.map((b) => b.updatesPerSecond)),
    p50: median(timed.map((b) => percentile(b.latenciesMs, 50))),
    p99: median(timed.map((b) => percentile(b.latenciesMs, 99))),
    cpuPerUpdate: median(timed.map((b) => b.cpuMicros / b.updates)),
    redisCpuPerUpdate: median(timed.map((b) => b.redisCpuMicros / b.updates)),
    rss: median(timed.map((b) => b.rssBytes)),
    /** Updates of the accounting burst, which the counts below are over. */
    counted: counted?.updates ?? NaN,
    commands,
    roundTrips,
    inScripts: new Map(Object.entries(counted?.scriptCommands ?? {})),
    queries: counted?.queries ? new Map(Object.entries(counted.queries)) : null,
  };
}

/**
 * `2.00 (evalsha 2.00, set 0.01)`: a per-update total and its biggest parts by name; parts
 * under 0.005 per update (another bot's background work, mostly) show as `…`.
 */
function perUpdateBreakdown(counts: Map<string, number>, updates: number, top = 6): string {
  const entries = [...counts].sort((a, b) => b[1] - a[1]);
  const shown = entries.slice(0, top).filter(([, n]) => n / updates >= 0.005);
  const parts = shown.map(([name, n]) => `${name} ${fixed(n / updates)}`);
  if (entries.length > shown.length) parts.push("…");
  return `${fixed(sum(counts.values()) / updates)}${parts.length ? ` (${parts.join(", ")})` : ""}`;
}

/** A statement's text on one line, cut to `width`. */
function shortQuery(query: string, width = 70): string {
  const line = query.replace(/\s+/g, " ").trim();
  return line.length > width ? `${line.slice(0, width - 1)}…` : line;
}

const rate = (b: BurstFigures) => b.updatesPerSecond;
const cpu = (b: BurstFigures) => b.cpuMicros / b.updates;
const p50 = (b: BurstFigures) => percentile(b.latenciesMs, 50);
const p99 = (b: BurstFigures) => percentile(b.latenciesMs, 99);

/** The figures as Markdown: medians per bot, ratios per round, then what was counted. */
export function formatWebhookCompareReport(figures: WebhookCompareFigures): string {
  const { options, bursts, accounting, querySource } = figures;
  // In the order they ran: floor, peer, ours.
  const bots = [...new Set(bursts.map((b) => b.bot))];
  const summaries = Object.fromEntries(bots.map((bot) => [
    bot,
    summary(bursts.filter((b) => b.bot === bot), accounting.find((b) => b.bot === bot)),
  ])) as Record<CompareBot, ReturnType<typeof summary>>;
  const rows = bots.map((bot) => {
    const s = summaries[bot];
    return [
      bot,
      `**${perSecond(s.rate)}**`,
      ms(s.p50),
      ms(s.p99),
      fixed(sum(s.roundTrips.values()) / s.counted),
      fixed(sum(s.commands.values()) / s.counted),
      s.queries ? fixed(sum(s.queries.values()) / s.counted, 3) : "– (none)",
      `${Math.round(s.cpuPerUpdate)} µs`,
      s.redisCpuPerUpdate >= 0.5 ? `${Math.round(s.redisCpuPerUpdate)} µs` : "–",
      mib(s.rss),
    ];
  });
  const rounds = Array.from({ length: options.rounds }, (_, i) => i + 1);
  const burstOf = (bot: CompareBot, round: number) =>
    bursts.find((b) => b.bot === bot && b.round === round);
  const ratioRow = (label: string, figure: (b: BurstFigures) => number, other: CompareBot) => {
    const ratios = rounds.map((round) => {
      const [o, x] = [burstOf("ours", round), burstOf(other, round)];
      return o && x ? figure(o) / figure(x) : NaN;
    });
    return [
      `${label} ours/${other}`,
      ...ratios.map((r) => fixed(r)),
      `**${fixed(median(ratios))}**`,
    ];
  };
  const ratios = (["peer", "floor"] as const).flatMap((other) => [
    ratioRow("updates/s", rate, other),
    ratioRow("CPU per update", cpu, other),
    ratioRow("p50", p50, other),
    ratioRow("p99", p99, other),
  ]);
  const perRound = rounds.map((round) => [
    String(round),
    ...bots.map((bot) => {
      const b = burstOf(bot, round);
      return b ? `${perSecond(rate(b))}, ${Math.round(cpu(b))} µs, p99 ${ms(p99(b))}` : "n/a";
    }),
  ]);
  const loadShares = bots.map((bot) => {
    const shares = bursts.filter((b) => b.bot === bot)
      .map((b) => Math.round((b.loadCpuMicros / 10) / b.elapsedMs));
    return `${bot} ${Math.min(...shares)}–${Math.max(...shares)}%`;
  });
  // Over the timed rounds: how often ours' replies went on the turn taken with their gate.
  const turns = new Map<string, number>();
  for (const b of bursts) {
    for (const [result, n] of Object.entries(b.turnsAhead ?? {})) {
      turns.set(result, (turns.get(result) ?? 0) + n);
    }
  }
  const turnsTotal = sum(turns.values());
  const turnsLine = turnsTotal > 0
    ? "Ours' replies' turns taken ahead with the gate, over the timed rounds " +
      "(`bot_outbound_turns_ahead_total`): " +
      [...turns].map(([result, n]) => `${result} ${Math.round((100 * n) / turnsTotal)} %`)
        .join(", ") +
      ". A turn the reply was too late for (`given_back`, the bench records turns 5 ms ahead, " +
      "production 50 ms) costs the reply a take of its own, which gives it back."
    : null;
  const redisLines = bots.map((bot) => {
    const s = summaries[bot];
    return `- ${bot}: round trips ${perUpdateBreakdown(s.roundTrips, s.counted)}` +
      (sum(s.inScripts.values()) / s.counted >= 0.005
        ? `; inside scripts ${perUpdateBreakdown(s.inScripts, s.counted)} more`
        : "");
  });
  const queryLines = bots.flatMap((bot) => {
    const s = summaries[bot];
    if (!s.queries) return [];
    const top = [...s.queries].sort((a, b) => b[1] - a[1]).slice(0, 4);
    const parts = top.map(([query, n]) => `\`${shortQuery(query)}\` ${fixed(n / s.counted, 3)}`);
    return [`- ${bot}: ${parts.length === 0 ? "none" : parts.join("; ")}`];
  });
  const queryNote = querySource === "pg_stat_statements"
    ? "`pg_stat_statements` calls in the bot's database: every top-level statement, BEGIN " +
      "and COMMIT included"
    : "`pg_stat_database.xact_commit` in the bot's database: committed transactions " +
      "(pg_stat_statements was not available)";
  return [
    "### Webhook bots side by side: floor, peer, ours",
    "",
    `${figures.description}; one Redis, one Postgres (a database per bot), one fake Bot API. ` +
    `Per bot and round ${options.updates} \`/help\` updates from ${options.users} users, ` +
    `${options.concurrency} POSTs in flight over keep-alive connections; ${options.rounds} ` +
    `rounds (floor, peer, ours in turn) after a warm-up of ${options.warmup} updates per bot. ` +
    "Time, CPU and memory are medians over the rounds; Redis and Postgres counts come from " +
    "one more, untimed burst per bot with Redis MONITOR attached. Ours runs with all its " +
    "protection on, its flood control included (every reply takes its turn in the shared logs, " +
    "under limits no burst reaches: `bench/bench_program.ts`).",
    "",
    markdownTable(
      [
        "bot",
        "updates/s",
        "POST→200 p50",
        "p99",
        "Redis round trips / update",
        "Redis commands / update (incl. in scripts)",
        "Postgres queries / update",
        "bot CPU / update",
        "Redis CPU / update",
        "RSS after",
      ],
      rows,
    ),
    "",
    markdownTable(["ratio", ...rounds.map((r) => `round ${r}`), "median"], ratios),
    "",
    markdownTable(
      ["round", ...bots.map((b) => `${b}: updates/s, CPU/update, p99`)],
      perRound,
    ),
    "",
    "Throughput above 1 and latency or CPU below 1 mean ours is faster or cheaper. The ratios",
    "pair bots within a round, so they resist load from elsewhere on the machine; the CPU ratios",
    "depend on it least.",
    "",
    "Redis per update by command (`INFO commandstats` deltas minus what scripts ran inside):",
    "",
    ...redisLines,
    "",
    ...(turnsLine ? [turnsLine, ""] : []),
    `Postgres statements per update, the most frequent (${queryNote}):`,
    "",
    ...queryLines,
    "",
    "How each column is counted:",
    "",
    "- updates/s: updates over first POST sent to last 200 received; p50/p99: POST → 200 of",
    "  each update (all three bots answer after handling it, reply included).",
    "- Redis round trips: the `INFO commandstats` delta over the accounting burst and its",
    "  settling, minus the commands Lua scripts ran inside Redis (MONITOR shows them as client",
    "  `lua`): each EVALSHA or EVAL counts one, every other command one. The other bots idle",
    "  meanwhile; what they send in the background is counted too (a few commands a burst).",
    `- Postgres queries: ${queryNote}.`,
    "- bot CPU: utime + stime of the bot's process (`/proc/<pid>/stat`, all threads) from the",
    `  first POST to ${figures.settleMs} ms after the last 200 (and ours' event log written).`,
    "- Redis CPU: `used_cpu_user` + `used_cpu_sys` of the shared Redis (`INFO cpu`) over the",
    "  same span; the floor uses no Redis (what shows is the others' background work).",
    "- RSS after: VmRSS of the bot's process (`/proc/<pid>/status`) right after the burst.",
    "- Every burst must bring the fake Bot API one `sendMessage` per update. The load generator",
    "  and the fake share this process; its CPU during the bursts, in shares of one core: " +
    `${loadShares.join(", ")}.`,
  ].join("\n");
}
