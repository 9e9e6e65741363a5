/**
 * The start-up's retry policy: each step (open the storage, ask Telegram who we are, register
 * the webhook…) is repeated with backoff until it works, with `/health` saying what is being
 * waited for, one short log line per failed attempt and one when it works again. A failure
 * that waiting cannot fix (a refused token, refused database credentials, a database that
 * does not exist, a schema that does not fit) ends the start-up at once instead.
 */
import { GrammyError } from "grammy";
import { retryAfterSeconds } from "./bot/api_retry.ts";
import { causeChain, isPermanent, UnauthorizedTokenError } from "./errors.ts";
import type { Health } from "./health.ts";
import type { Logger } from "./log.ts";
import { backoffDelay } from "./util/backoff.ts";
import { delay } from "./util/delay.ts";

/** Options of {@link Startup}. */
export interface StartupOptions {
  /** Where the reason for not being ready yet is shown. */
  health: Pick<Health, "setPhase">;
  /** Aborts when the program is asked to stop: the waiting ends. */
  signal: AbortSignal;
  log: Logger;
  /** Backoff between attempts. @default { baseMs: 1000, maxMs: 30000 } */
  backoff?: { baseMs: number; maxMs: number };
}

/** Runs start-up steps under the retry policy; see the module documentation. */
export class Startup {
  readonly #o: StartupOptions;
  /** The step running now, and what is being retried (by step name): `/health` shows all. */
  #step = "starting up";
  readonly #retrying = new Map<string, string>();

  constructor(options: StartupOptions) {
    this.#o = options;
  }

  /** Aborted when the program stops: every wait of the start ends with it. */
  get signal(): AbortSignal {
    return this.#o.signal;
  }

  /** Tells `/health` (and the log) which step runs now. */
  step(what: string): void {
    this.#step = what;
    this.#show();
  }

  /**
   * What `/health` says while starting: every step being retried (the storage and Telegram are
   * waited for at once, and each may be the one to fix), then the step running now.
   */
  #show(): void {
    this.#o.health.setPhase("starting", [...this.#retrying.values(), this.#step].join("; "));
  }

  /** Repeats `call` until it works; rethrows permanent failures and the stop's reason. */
  async until<T>(what: string, call: () => Promise<T>): Promise<T> {
    const { signal, log } = this.#o;
    for (let attempt = 0;; attempt++) {
      try {
        const result = await call();
        if (attempt > 0) {
          log.info("{what} works after {attempts} attempts", { what, attempts: attempt + 1 });
          this.#retrying.delete(what);
          this.#show();
        }
        return result;
      } catch (error) {
        const failure = permanentForm(error);
        if (failure) throw failure;
        if (signal.aborted) throw signal.reason;
        const wait = Math.max(
          backoffDelay(attempt, this.#o.backoff ?? { baseMs: 1000, maxMs: 30_000 }),
          retryAfterMs(error),
        );
        const reason = causeChain(error);
        this.#retrying.set(what, `${what} failed, retrying: ${reason}`);
        this.#show();
        log.warning("{what} failed, retrying in {wait_ms} ms: {reason}", {
          what,
          wait_ms: wait,
          reason,
          attempt: attempt + 1,
        });
        await delay(wait, signal);
      }
    }
  }
}

/** How long Telegram asked to wait before the next call (a 429's `retry_after`), else 0. */
function retryAfterMs(error: unknown): number {
  return ((error instanceof GrammyError ? retryAfterSeconds(error) : null) ?? 0) * 1000;
}

/** The error to give up with, or null when waiting may help. */
function permanentForm(error: unknown): Error | null {
  if (error instanceof GrammyError && error.error_code === 401) {
    return new UnauthorizedTokenError({ cause: error });
  }
  return isPermanent(error) && error instanceof Error ? error : null;
}

/** A name for this process among the instances sharing a store: host, pid and a random part. */
export function newInstanceId(): string {
  let host = "instance";
  try {
    host = Deno.hostname();
  } catch {
    // Without --allow-sys=hostname the pid and the random part still make the name unique.
  }
  return `${host}-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}
