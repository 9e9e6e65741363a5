/**
 * The broadcast job: on one instance at a time, sends each running broadcast to its recipients.
 * The recipients are first added in pages of subscribed users who have not blocked the bot;
 * then, one by one, a recipient is claimed, the message is copied to them through the bulk API
 * client (which keeps `BROADCAST_RATE` and leaves Telegram's limit to the replies to users)
 * and the outcome is marked. A recipient that was marked is never sent to again: across a
 * restart, a crash or another instance taking over, each gets the message exactly once, except
 * in one window: a crash between Telegram's answer and the mark (one database update) leaves
 * the recipient claimed, and it is sent to again once the claim runs out (`CLAIM_MS`). A
 * network failure after which Telegram may or may not have delivered is retried the same way.
 *
 * While it runs, the admin's progress message is updated every few seconds; at the end the
 * broadcast's counts are stored and its summary is owed (an outbox item) in one statement.
 */
import { type Api, GrammyError } from "grammy";
import type { Counter } from "../../../metrics/prometheus.ts";
import type { Locale } from "../../../config.ts";
import type { BroadcastRepository, BroadcastRow } from "../../../db/broadcasts.ts";
import { errorMessage } from "../../../errors.ts";
import type { Logger } from "../../../log.ts";
import type { Job } from "../../../jobs/job.ts";
import { progressText } from "./texts.ts";

/** How long a claim holds a recipient; a crashed sender's recipient waits this long. */
export const CLAIM_MS = 10_000;
/** Users per page when the recipients are added. */
const PAGE = 1000;
/** The progress message changes at most this often. */
const PROGRESS_EVERY_MS = 3000;
/** Tries for a recipient whose sends fail with a server or network error. */
const MAX_ATTEMPTS = 3;

/** Options of {@link broadcastJob}. */
export interface BroadcastJobOptions {
  broadcasts: BroadcastRepository;
  /** Pages of subscribed users who have not blocked the bot (`UserRepository.notifiable`). */
  notifiable: (afterId: number, limit: number) => Promise<number[]>;
  /** Records that a user blocked the bot. */
  markBlocked: (userId: number) => Promise<void>;
  /** The bulk API client: its messages leave the replies to users first. */
  api: Api;
  /** Who claims recipients (this instance's id). */
  instanceId: string;
  /** Messages per second, for the estimate of the time left. */
  rate: number;
  /** Hurries the outbox (the summary) once a broadcast ended. */
  kickOutbox: () => void;
  metrics: { broadcastMessages: Counter<"result"> };
  /** How often to look for work. @default 1000 */
  everyMs?: number;
}

/** The name of the broadcast job. */
export const BROADCAST_JOB = "broadcast";

/** The broadcast job; see the module documentation. */
export function broadcastJob(options: BroadcastJobOptions): Job {
  const { broadcasts, api, instanceId, metrics } = options;

  async function enqueue(broadcast: BroadcastRow, signal: AbortSignal): Promise<void> {
    let after = broadcast.queuedThrough;
    while (!signal.aborted) {
      const ids = await options.notifiable(after, PAGE);
      const last = ids.length < PAGE;
      await broadcasts.enqueue(broadcast.id, ids, last);
      if (last) return;
      after = ids[ids.length - 1]!;
    }
  }

  /** Sends to one claimed recipient and marks (or gives back) the recipient. */
  async function deliver(
    broadcast: BroadcastRow,
    recipient: { userId: number; attempts: number },
    signal: AbortSignal,
    log: Logger,
  ): Promise<void> {
    const { id } = broadcast;
    const { userId } = recipient;
    // A long wait (Telegram asked to pause) must not let the claim run out meanwhile.
    const heartbeat = setInterval(
      () => broadcasts.extendClaim(id, userId, instanceId, CLAIM_MS).catch(() => {}),
      CLAIM_MS / 3,
    );
    try {
      const copy = await api.copyMessage(
        userId,
        broadcast.sourceChatId,
        broadcast.sourceMessageId,
        {},
        signal as never,
      );
      clearInterval(heartbeat);
      await mark(id, userId, { status: "sent", messageId: copy.message_id }, log);
      metrics.broadcastMessages.inc({ result: "sent" });
    } catch (error) {
      clearInterval(heartbeat);
      const code = error instanceof GrammyError ? error.error_code : null;
      if (code === 403) {
        await mark(id, userId, { status: "blocked", error: errorMessage(error) }, log);
        metrics.broadcastMessages.inc({ result: "blocked" });
        await options.markBlocked(userId).catch((e) =>
          log.warning("could not record that user {blocked_user_id} blocked the bot: {message}", {
            blocked_user_id: userId,
            message: errorMessage(e),
          })
        );
      } else if (code !== null && code !== 429 && code < 500) {
        // Telegram refused it for good (the chat is gone, the message cannot be copied).
        await mark(id, userId, { status: "failed", error: errorMessage(error) }, log);
        metrics.broadcastMessages.inc({ result: "failed" });
      } else if (code === 429 || signal.aborted || recipient.attempts < MAX_ATTEMPTS) {
        // Not sent (a stop cancels waits, never sends; 429 refused it), or its fate is
        // unknown: it goes again, at least once.
        await broadcasts.release(id, userId, instanceId, errorMessage(error));
        metrics.broadcastMessages.inc({ result: "retried" });
      } else {
        await mark(id, userId, { status: "failed", error: errorMessage(error) }, log);
        metrics.broadcastMessages.inc({ result: "failed" });
      }
    }
  }

  async function mark(
    id: number,
    userId: number,
    outcome: Parameters<BroadcastRepository["mark"]>[3],
    log: Logger,
  ): Promise<void> {
    if (!await broadcasts.mark(id, userId, instanceId, outcome)) {
      log.warning("broadcast {broadcast_id}: the claim on user {user_id} ran out before its mark", {
        broadcast_id: id,
        user_id: userId,
      });
    }
  }

  /** Updates the progress message; `pace` (null: it ended) estimates the time left. */
  async function showProgress(
    broadcast: BroadcastRow,
    pace: { startedAt: number; handled: number } | null,
  ): Promise<void> {
    if (broadcast.progressMessageId === null) return;
    const counts = await broadcasts.counts(broadcast.id);
    let secondsLeft: number | null = null;
    if (pace !== null) {
      const elapsed = (Date.now() - pace.startedAt) / 1000;
      // The measured pace once there is one, else the configured one.
      const rate = pace.handled >= 10 && elapsed > 0 ? pace.handled / elapsed : options.rate;
      secondsLeft = counts.remaining / rate;
    }
    const text = progressText(broadcast.locale as Locale, broadcast.id, counts, secondsLeft);
    await api.editMessageText(broadcast.chatId, broadcast.progressMessageId, text)
      .catch(() => {}); // "message is not modified", or the admin deleted it: no matter
  }

  async function send(broadcast: BroadcastRow, signal: AbortSignal, log: Logger): Promise<void> {
    const startedAt = Date.now();
    let lastProgress = 0;
    let handled = 0;
    while (!signal.aborted) {
      const recipient = await broadcasts.claim(broadcast.id, instanceId, CLAIM_MS);
      if (recipient === null) break;
      await deliver(broadcast, recipient, signal, log);
      handled++;
      if (Date.now() - lastProgress >= PROGRESS_EVERY_MS) {
        lastProgress = Date.now();
        await showProgress(broadcast, { startedAt, handled });
      }
    }
  }

  return {
    name: BROADCAST_JOB,
    schedule: { everyMs: options.everyMs ?? 1000 },
    async run({ signal, log }) {
      for (const broadcast of await broadcasts.running()) {
        if (signal.aborted) return;
        if (broadcast.status === "sending") {
          if (!broadcast.queued) await enqueue(broadcast, signal);
          await send(broadcast, signal, log);
        }
        if (signal.aborted) return;
        const ended = await broadcasts.finish(broadcast.id);
        if (ended === null) continue;
        log.info("broadcast {broadcast_id} ended: {status}", {
          broadcast_id: ended.id,
          status: ended.status,
        });
        await showProgress(ended, null);
        options.kickOutbox();
      }
    },
  };
}
