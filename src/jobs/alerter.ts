/**
 * Infrastructure alerts to the admins: what an instance sees of each problem goes through the
 * shared problem state in the store (`alert_state.ts`), so that the admins get one message
 * when a problem is raised and one when it clears, however many instances see it and however
 * often they look. While the store cannot be used (the store itself is the problem, or it
 * is down), the instance decides alone with the same rules in memory: each instance then
 * alerts for itself. Messages go straight through the bot's API (the database may be what is
 * down); one that cannot be delivered is kept and tried again at the next report.
 */
import type { Api } from "grammy";
import { translate } from "../bot/i18n.ts";
import type { Locale } from "../config.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ALERT_PROBLEMS, BackgroundMetrics } from "../metrics/background.ts";
import type { KeyValueStore } from "../store/store.ts";
import {
  type ProblemAnswer,
  problemKey,
  problemScript,
  type ProblemState,
  reportProblem,
} from "./alert_state.ts";
import { formatDuration } from "../bot/duration.ts";
import { escapeHtml } from "../bot/html.ts";

/** A problem the admins are told about. */
export type Problem = typeof ALERT_PROBLEMS[number];

/** Options of {@link Alerter}. */
export interface AlerterOptions {
  store: KeyValueStore;
  /** This instance's name among those sharing the store. */
  instanceId: string;
  /** The bot's API client. */
  api: () => Api;
  adminIds: readonly number[];
  /** The language of the messages (the admins' own is not known when the database is down). */
  locale: Locale;
  /** How long a problem must last before it is told (`ALERT_AFTER`), in ms. */
  alertAfterMs: number;
  /** An instance that has not reported for this long no longer counts, in ms. */
  staleMs: number;
  metrics: Pick<BackgroundMetrics, "alerts">;
  log: Logger;
  /** The clock. @default Date.now */
  now?: () => number;
}

/** How a report is handled. */
export interface ReportOptions {
  /** Instead of `ALERT_AFTER`: 0 tells at once (a failed backup). */
  alertAfterMs?: number;
  /** Decide in memory only: the store cannot know about itself. */
  local?: boolean;
}

/** A message not delivered to every admin yet. */
interface Owed {
  problem: Problem;
  action: "raise" | "clear";
  text: string;
  to: Set<number>;
}

/** Most undelivered messages kept; beyond that the oldest are dropped. */
const OWED_LIMIT = 50;

/** Tells the admins about infrastructure problems; see the module documentation. */
export class Alerter {
  readonly #o: AlerterOptions;
  readonly #now: () => number;
  /** Problems this instance decides alone, until they clear. */
  readonly #local = new Map<string, ProblemState>();
  #owed: Owed[] = [];
  #flushing: Promise<void> | null = null;

  constructor(options: AlerterOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Reports whether this instance sees `problem` now (`detail` says why it fails), and tells
   * the admins when that raises or clears it. Never rejects.
   */
  async report(
    problem: Problem,
    failing: boolean,
    detail = "",
    options: ReportOptions = {},
  ): Promise<void> {
    const { instanceId, staleMs, alertAfterMs } = this.#o;
    const report = {
      instance: instanceId,
      failing,
      detail,
      alertAfterMs: options.alertAfterMs ?? alertAfterMs,
      staleMs,
    };
    let answer: ProblemAnswer | null = null;
    if (!options.local && !this.#local.has(problem)) {
      try {
        answer = await this.#o.store.run(problemScript, [problemKey(problem)], [
          report.instance,
          report.failing,
          report.detail,
          report.alertAfterMs,
          report.staleMs,
        ]);
      } catch {
        // The store is down too: this instance decides alone until the problem clears.
      }
    }
    if (answer === null) {
      const decided = reportProblem(this.#local.get(problem) ?? null, report, this.#now());
      if (decided.state === null) this.#local.delete(problem);
      else this.#local.set(problem, decided.state);
      answer = decided.answer;
    }
    if (answer.action !== "none") this.#queue(problem, answer);
    await this.flush();
  }

  /**
   * Sends the messages still owed; keeps those Telegram did not take. One flush at a time, so
   * that nobody gets a message twice. Never rejects.
   */
  flush(): Promise<void> {
    this.#flushing ??= this.#send().finally(() => this.#flushing = null);
    return this.#flushing;
  }

  async #send(): Promise<void> {
    for (const owed of this.#owed) {
      for (const admin of [...owed.to]) {
        try {
          await this.#o.api().sendMessage(admin, owed.text, {
            parse_mode: "HTML",
            link_preview_options: { is_disabled: true },
          });
          owed.to.delete(admin);
        } catch (error) {
          this.#o.log.warning("could not tell admin {admin_id} about {problem}: {message}", {
            admin_id: admin,
            problem: owed.problem,
            message: errorMessage(error),
          });
        }
      }
    }
    this.#owed = this.#owed.filter((owed) => owed.to.size > 0);
  }

  #queue(problem: Problem, answer: ProblemAnswer): void {
    const { log, metrics, locale } = this.#o;
    const action = answer.action as "raise" | "clear";
    const duration = formatDuration(this.#now() - answer.since, locale);
    const title = translate(locale, `background.problem.${problem}`);
    if (action === "raise") {
      log.warning("alert: {problem} fails for {duration}: {detail}", {
        problem,
        duration,
        detail: answer.detail,
      });
    } else {
      log.info("alert cleared: {problem} works again", { problem });
    }
    metrics.alerts.inc({ problem, change: action === "raise" ? "raised" : "cleared" });
    // A problem that cleared before anybody heard of it needs no message either way.
    const untold = this.#owed.findIndex((o) => o.problem === problem && o.action === "raise");
    if (action === "clear" && untold >= 0) {
      this.#owed.splice(untold, 1);
      return;
    }
    const detail = escapeHtml(answer.detail.slice(0, 1000));
    // A problem told at once (a failed backup) has no duration worth saying.
    const text = action === "clear"
      ? translate(locale, "background.alert.cleared", { title })
      : this.#now() - answer.since < 1000
      ? translate(locale, "background.alert.raised_now", { title, detail })
      : translate(locale, "background.alert.raised", { title, duration, detail });
    this.#owed.push({ problem, action, text, to: new Set(this.#o.adminIds) });
    if (this.#owed.length > OWED_LIMIT) this.#owed.shift();
  }
}
