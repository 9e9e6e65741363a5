/**
 * The staff side of the service desk. Each new request is posted to the staff chat (from the
 * outbox, `post.ts`), in its own topic when the chat is a forum. Staff (members of that chat,
 * and admins) move requests on with the buttons of the post or of `/queue` and `/find`: take,
 * release, done, reopen, reject with a reason (`actions.ts`); the author hears about each in
 * their language (`notices.ts`). Untaken requests are brought up again (`reminders.ts`).
 * Everyone else is refused, and forged or stale buttons change nothing.
 */
import { BotComposer } from "../../composer.ts";
import { z } from "zod";
import type { Locale } from "../../../config.ts";
import type { RequestLifecycle, StaffAction } from "../../../db/request_lifecycle.ts";
import type { RequestMessages } from "../../../db/request_messages.ts";
import { type RequestRepository, STAFF_POST } from "../../../db/requests.ts";
import type { UserRepository } from "../../../db/users.ts";
import type { RequestMetrics } from "../../../metrics/requests.ts";
import type { BotContext } from "../../context.ts";
import { messagesView } from "../../conversation_view.ts";
import { defineDialog, type Dialog } from "../../dialog/dialog.ts";
import type { Feature } from "../../feature.ts";
import { answerPress } from "../../reply.ts";
import type { Roles } from "../../roles.ts";
import type { StaffChat } from "../../staff_chat.ts";
import { staffActions } from "./actions.ts";
import { noticeDeliveries } from "./notices.ts";
import { staffPost } from "./post.ts";
import { findView, QUEUE_PAGE, queueView, requestView, type StaffView } from "./queue.ts";
import { remindersJob } from "./reminders.ts";

/** What the staff feature needs. */
export interface StaffOptions {
  requests: RequestRepository;
  lifecycle: RequestLifecycle;
  messages: RequestMessages;
  users: Pick<UserRepository, "get">;
  /** Records that an author blocked the bot. */
  markBlocked: (userId: number) => Promise<void>;
  roles: Roles;
  staffChat: StaffChat;
  /** The staff chat's language. */
  locale: Locale;
  /** `SLA_TAKE_MINUTES`; 0: no reminders. */
  slaTakeMinutes: number;
  metrics: RequestMetrics;
  /** Hurries the outbox after something was owed. */
  kickOutbox: () => void;
}

/** A staff member writing the reason for a rejection: their next message in that chat. */
export const rejectDialog = defineDialog({
  name: "reject",
  steps: ["reason"],
  schema: z.object({ number: z.number().int().positive() }),
});

const ACTION_PRESS = /^staff:(take|done|release|reopen|reject):(\d{1,15})$/;
/** Messages per page of a request's conversation. */
const MESSAGES_PAGE = 10;

/** The staff feature; see the module documentation. */
export function staffFeature(options: StaffOptions): Feature {
  const { requests, lifecycle, messages, users, roles, staffChat, locale } = options;
  const actions = staffActions({
    lifecycle,
    requests,
    users,
    staffChat,
    locale,
    metrics: options.metrics,
    kickOutbox: options.kickOutbox,
  });
  const composer = new BotComposer<BotContext>();
  /** Staff only: others are refused (buttons) or not answered at all (commands). */
  const isStaff = async (ctx: BotContext) =>
    ctx.from !== undefined && await roles.isStaff(ctx.api, ctx.from.id, ctx.log);

  async function show(ctx: BotContext, view: StaffView, edit: boolean): Promise<void> {
    const extra = {
      parse_mode: "HTML" as const,
      reply_markup: view.keyboard,
      link_preview_options: { is_disabled: true },
    };
    if (edit) {
      const edited = await ctx.editMessageText(view.text, extra).then(() => true, (error) => {
        ctx.log.debug("could not edit the view: {message}", { message: String(error) });
        return String(error).includes("not modified");
      });
      if (edited) return;
    }
    await ctx.reply(view.text, extra);
  }

  async function queuePage(ctx: BotContext, page: number, edit: boolean): Promise<void> {
    const [{ items }, counts] = await Promise.all([
      lifecycle.queue(QUEUE_PAGE, page * QUEUE_PAGE),
      lifecycle.openCounts(),
    ]);
    await show(ctx, queueView(ctx.t, items, counts, page), edit);
  }

  async function requestPage(ctx: BotContext, number: number, edit: boolean): Promise<boolean> {
    const request = await requests.get(number);
    if (request === null) return false;
    const [author, history, last] = await Promise.all([
      users.get(request.userId),
      requests.history(number),
      messages.page(number, 5, 0, true),
    ]);
    await show(ctx, requestView(ctx.t, request, author, history, last.items), edit);
    return true;
  }

  // Every staff button first checks who pressed it.
  composer.callbackQuery(/^staff:/, async (ctx, next) => {
    const allowed = await roles.isStaff(ctx.api, ctx.from.id, ctx.log);
    if (allowed === true) return await next();
    const key = allowed === null ? "staff.answer.check_failed" : "staff.answer.not_staff";
    await ctx.answerCallbackQuery({ text: ctx.t(key), show_alert: true });
  });

  composer.callbackQuery(ACTION_PRESS, async (ctx) => {
    const action = ctx.match[1] as StaffAction;
    const number = Number(ctx.match[2]);
    if (action === "reject") {
      rejectDialog.enter(ctx, "reason", { number });
      await answerPress(ctx);
      const thread = ctx.callbackQuery.message?.message_thread_id;
      await ctx.reply(ctx.t("staff.reject.ask", { number }), {
        ...(thread === undefined ? {} : { message_thread_id: thread }),
        reply_markup: { force_reply: true, selective: true },
      });
      return;
    }
    const outcome = await actions.apply(ctx, number, action);
    await ctx.answerCallbackQuery({ text: outcome.answer });
    // Pressed in a /queue view (not on the post, which the action updated): show the change.
    const pressed = ctx.callbackQuery.message?.message_id;
    if (outcome.ok && pressed !== undefined && pressed !== outcome.request.staffMessageId) {
      await requestPage(ctx, number, true);
    }
  });

  composer.callbackQuery(/^staff:open:(\d{1,15})$/, async (ctx) => {
    await answerPress(ctx);
    if (!(await requestPage(ctx, Number(ctx.match[1]), true))) {
      await answerPress(ctx, ctx.t("staff.answer.not_found", { number: Number(ctx.match[1]) }));
    }
  });

  composer.callbackQuery(/^staff:q:(\d{1,6})$/, async (ctx) => {
    await answerPress(ctx);
    await queuePage(ctx, Number(ctx.match[1]), true);
  });

  composer.callbackQuery(/^staff:m:(\d{1,15}):(\d{1,6})$/, async (ctx) => {
    const number = Number(ctx.match[1]);
    const index = Number(ctx.match[2]);
    await answerPress(ctx);
    const page = await messages.page(number, MESSAGES_PAGE, index * MESSAGES_PAGE, true);
    const back = { text: ctx.t("conversation.button.back"), callback_data: `staff:open:${number}` };
    await show(
      ctx,
      messagesView(ctx.t, {
        number,
        page,
        index,
        size: MESSAGES_PAGE,
        forUser: false,
        back,
        pageData: (i) => `staff:m:${number}:${i}`,
      }),
      true,
    );
  });

  // Anything else under `staff:` is malformed or from an older version of the bot.
  composer.callbackQuery(/^staff:/, async (ctx) => {
    await ctx.answerCallbackQuery({ text: ctx.t("staff.answer.invalid") });
  });

  // The reason for a rejection: the staff member's next message in that chat.
  const rejecting = composer.filter(rejectDialog.at("reason"));
  rejecting.command("cancel", async (ctx) => {
    const number = rejectDialog.current(ctx)!.data.number;
    rejectDialog.leave(ctx);
    await ctx.reply(ctx.t("staff.reject.cancelled", { number }));
  });
  rejecting.on("message", async (ctx) => {
    const number = rejectDialog.current(ctx)!.data.number;
    const reason = (ctx.message.text ?? ctx.message.caption ?? "").trim();
    if (reason === "" || reason.startsWith("/")) {
      await ctx.reply(ctx.t("staff.reject.empty"));
      return;
    }
    rejectDialog.leave(ctx);
    const outcome = await actions.apply(ctx, number, "reject", reason.slice(0, 1000));
    await ctx.reply(outcome.answer, { reply_parameters: { message_id: ctx.message.message_id } });
  });

  composer.command("queue", async (ctx, next) => {
    if (!(await isStaff(ctx))) return await next();
    await queuePage(ctx, 0, false);
  });

  composer.command("find", async (ctx, next) => {
    if (!(await isStaff(ctx))) return await next();
    const query = ctx.match.trim();
    if (query === "") {
      return void await ctx.reply(ctx.t("conversation.find.usage"), { parse_mode: "HTML" });
    }
    await show(ctx, findView(ctx.t, query, await lifecycle.find(query, 10)), false);
  });

  const sla = options.slaTakeMinutes;
  return {
    name: "staff",
    composer,
    commands: {
      staff: [
        { command: "queue", rank: 50 },
        { command: "find", rank: 51 },
        { command: "note", rank: 52 },
      ],
    },
    dialogs: [rejectDialog as Dialog<string, unknown>],
    deliveries: {
      [STAFF_POST]: staffPost({ requests, users, messages, staffChat, locale }),
      ...noticeDeliveries({
        requests,
        users,
        messages,
        staffChat,
        markBlocked: options.markBlocked,
        locale,
      }),
    },
    jobs: [
      remindersJob({
        lifecycle,
        slaTakeMinutes: sla,
        adminIds: roles.adminIds,
        metrics: options.metrics,
        kickOutbox: options.kickOutbox,
        // A quarter of the period, so a reminder is at most that late (5–30 s).
        everyMs: Math.min(30_000, Math.max(5_000, sla * 15_000)),
      }),
    ],
  };
}
