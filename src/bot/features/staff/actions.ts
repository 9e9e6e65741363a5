/**
 * Applying a staff action (take, release, done, reopen, reject) to a request: the change, its
 * history and the author's notification are one statement (`RequestLifecycle.act`); then the
 * request's post in the staff chat shows where it stands, a forum topic is closed or reopened
 * with it, and the metrics count it. A late or repeated press changes nothing and says why.
 */
import type { Api } from "grammy";
import type { User } from "grammy/types";
import type { Locale } from "../../../config.ts";
import { errorMessage } from "../../../errors.ts";
import type { Logger } from "../../../log.ts";
import type { RequestMetrics } from "../../../metrics/requests.ts";
import type { RequestLifecycle, StaffAction } from "../../../db/request_lifecycle.ts";
import type { RequestRepository, RequestRow } from "../../../db/requests.ts";
import type { UserRepository } from "../../../db/users.ts";
import type { BotContext } from "../../context.ts";
import type { MessageKey } from "../../i18n.ts";
import type { StaffChat } from "../../staff_chat.ts";
import { cardKeyboard, cardText, personHtml, statusLine } from "./card.ts";

/** What applying actions needs. */
export interface StaffActionsOptions {
  lifecycle: Pick<RequestLifecycle, "act">;
  requests: Pick<RequestRepository, "get">;
  users: Pick<UserRepository, "get">;
  staffChat: StaffChat;
  /** The staff chat's language. */
  locale: Locale;
  metrics: Pick<RequestMetrics, "events" | "timeToTake" | "timeToClose">;
  /** Hurries the outbox: the author's notification is owed. */
  kickOutbox: () => void;
}

/** What the presser is told, by action. */
const ANSWERS: Record<StaffAction, MessageKey> = {
  take: "staff.answer.taken",
  release: "staff.answer.released",
  done: "staff.answer.done",
  reopen: "staff.answer.reopened",
  reject: "staff.answer.rejected",
};

/** The metric's event name of each action. */
const EVENTS: Record<StaffAction, string> = {
  take: "taken",
  release: "released",
  done: "done",
  reopen: "reopened",
  reject: "rejected",
};

/** The outcome of an action: the request now, or why nothing changed (for the presser). */
export type ActionOutcome = { ok: true; request: RequestRow; answer: string } | {
  ok: false;
  answer: string;
};

/** Applies staff actions; see the module documentation. */
export function staffActions(options: StaffActionsOptions) {
  const { lifecycle, requests, users, staffChat, locale, metrics } = options;

  /** Shows on the request's post where it stands; `staff` names who moved it (HTML). */
  async function updatePost(api: Api, request: RequestRow, staff: string, log: Logger) {
    if (staffChat.id === null || request.staffMessageId === null) return;
    const author = await users.get(request.userId).catch(() => null);
    await api.editMessageText(
      staffChat.id,
      request.staffMessageId,
      cardText(locale, request, author, statusLine(locale, request, staff)),
      {
        parse_mode: "HTML",
        reply_markup: cardKeyboard(locale, request),
        link_preview_options: { is_disabled: true },
      },
    ).catch((error) =>
      log.warning("could not update the staff post of request #{number}: {message}", {
        number: request.number,
        message: errorMessage(error),
      })
    );
  }

  /** Closes a forum topic with the request, or opens it again. */
  async function followTopic(api: Api, request: RequestRow, action: StaffAction, log: Logger) {
    if (staffChat.id === null || request.staffThreadId === null) return;
    const thread = request.staffThreadId;
    const call = action === "done" || action === "reject"
      ? () => api.closeForumTopic(staffChat.id!, thread)
      : action === "reopen"
      ? () => api.reopenForumTopic(staffChat.id!, thread)
      : null;
    await call?.().catch((error) =>
      // An already closed (or open) topic answers TOPIC_NOT_MODIFIED: nothing to do.
      log.info("topic of request #{number} unchanged: {message}", {
        number: request.number,
        message: errorMessage(error),
      })
    );
  }

  function count(action: StaffAction, request: RequestRow, wasTakenAt: Date | null): void {
    metrics.events.inc({ event: EVENTS[action] });
    const seconds = (end: Date | null) =>
      end === null ? null : (end.getTime() - request.createdAt.getTime()) / 1000;
    const take = seconds(request.takenAt);
    if (action === "take" && wasTakenAt === null && take !== null) metrics.timeToTake.observe(take);
    const close = seconds(request.closedAt);
    if (action === "done" && close !== null) metrics.timeToClose.observe(close);
  }

  /** Applies `action` to request `number` on behalf of whoever sent `ctx`'s update. */
  async function apply(
    ctx: BotContext,
    number: number,
    action: StaffAction,
    reason: string | null = null,
  ): Promise<ActionOutcome> {
    const presser = ctx.from as User;
    const applied = await lifecycle.act(number, action, presser.id, reason);
    if (applied === null) {
      const current = await requests.get(number);
      if (current === null) {
        return { ok: false, answer: ctx.t("staff.answer.not_found", { number }) };
      }
      if (current.status === "in_progress" && action === "take") {
        return { ok: false, answer: ctx.t("staff.answer.in_progress", { number }) };
      }
      if (["done", "rejected", "cancelled"].includes(current.status) && action !== "reopen") {
        return { ok: false, answer: ctx.t("staff.answer.closed", { number }) };
      }
      const status = ctx.t(`requests.status.${current.status}` as MessageKey);
      return { ok: false, answer: ctx.t("staff.answer.not_now", { number, status }) };
    }
    const { request, wasTakenAt } = applied;
    ctx.log.info("request #{number} {action} by {staff}", { number, action, staff: presser.id });
    count(action, request, wasTakenAt);
    options.kickOutbox();
    const staff = personHtml(presser.id, [presser.first_name, presser.last_name], presser.username);
    await updatePost(ctx.api, request, staff, ctx.log);
    await followTopic(ctx.api, request, action, ctx.log);
    return { ok: true, request, answer: ctx.t(ANSWERS[action], { number }) };
  }

  return { apply };
}
