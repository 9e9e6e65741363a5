/**
 * The staff side of the service desk: each new request is posted to the staff chat (from the
 * outbox, `post.ts`) with Take / Done buttons; staff (members of that chat, or admins) press
 * them to move the request on, the post shows where it stands, and the request's author hears
 * about it in their language.
 */
import { type Api, Composer } from "grammy";
import type { Locale } from "../../../config.ts";
import { STAFF_POST } from "../../../db/requests.ts";
import type { RequestRepository, RequestRow, RequestStatus } from "../../../db/requests.ts";
import type { UserRepository, UserRow } from "../../../db/users.ts";
import { errorMessage } from "../../../errors.ts";
import type { Logger } from "../../../log.ts";
import type { BotContext } from "../../context.ts";
import type { Feature } from "../../feature.ts";
import { type MessageKey, pickLocale, translate } from "../../i18n.ts";
import { blockedUser } from "../../middleware/errors.ts";
import type { Roles } from "../../roles.ts";
import { cardKeyboard, cardText, personHtml } from "./card.ts";
import { staffPost } from "./post.ts";

/** What the staff feature needs. */
export interface StaffOptions {
  requests: RequestRepository;
  users: Pick<UserRepository, "get">;
  /** Records that an author blocked the bot. */
  markBlocked: (userId: number) => Promise<void>;
  roles: Roles;
  /** The staff chat's language. */
  locale: Locale;
}

/** A button's callback data: `staff:<take|done>:<request number>`. */
const ACTION_DATA = /^staff:(take|done):(\d{1,15})$/;

type Action = "take" | "done";

/** What each button does: the status it moves to and the history's action name. */
const ACTIONS: Record<Action, { status: RequestStatus; history: string; answer: MessageKey }> = {
  take: { status: "in_progress", history: "taken", answer: "staff.answer.taken" },
  done: { status: "done", history: "closed", answer: "staff.answer.done" },
};

/** Take / Done on the staff chat's posts, and the posts themselves; see the module documentation. */
export function staffFeature(options: StaffOptions): Feature {
  const { requests, users, roles, locale } = options;
  const composer = new Composer<BotContext>();

  /** Tells the request's author what happened, in their language; notes when they blocked the bot. */
  async function notifyAuthor(
    api: Api,
    request: RequestRow,
    author: UserRow | null,
    log: Logger,
  ): Promise<void> {
    if (!author) return;
    const authorLocale = pickLocale(author.locale ?? author.languageCode ?? undefined, locale);
    const key: MessageKey = request.status === "done" ? "staff.notify.done" : "staff.notify.taken";
    try {
      await api.sendMessage(author.id, translate(authorLocale, key, { number: request.number }));
    } catch (error) {
      if (blockedUser(error) !== null) {
        // Blocked the bot (or deleted their account): trying again would only fail again.
        log.info("request #{number}: author {author} blocked the bot, not notified", {
          number: request.number,
          author: author.id,
        });
        await options.markBlocked(author.id).catch((e) =>
          log.warning("could not mark user {author} as blocked", { author: author.id, error: e })
        );
        return;
      }
      log.warning("request #{number}: could not notify its author: {message}", {
        number: request.number,
        message: errorMessage(error),
      });
    }
  }

  composer.callbackQuery(ACTION_DATA, async (ctx) => {
    const action = ctx.match[1] as Action;
    const number = Number(ctx.match[2]);
    const presser = ctx.callbackQuery.from;
    const allowed = await roles.isStaff(ctx.api, presser.id, ctx.log);
    if (allowed !== true) {
      const text = ctx.t(allowed === null ? "staff.answer.check_failed" : "staff.answer.not_staff");
      await ctx.answerCallbackQuery({ text, show_alert: true });
      return;
    }
    const { status, history, answer } = ACTIONS[action];
    const changed = await requests.changeStatus(number, status, presser.id, history);
    if (!changed) {
      // Already taken or closed (a late or second press), or no such request: change nothing.
      const current = await requests.get(number);
      const key: MessageKey = !current
        ? "staff.answer.not_found"
        : current.status === "in_progress"
        ? "staff.answer.in_progress"
        : current.status === "new"
        ? "staff.answer.invalid"
        : "staff.answer.closed";
      await ctx.answerCallbackQuery({ text: ctx.t(key, { number }) });
      return;
    }
    ctx.log.info("request #{number} {action} by {staff}", {
      number,
      action: history,
      staff: presser.id,
    });
    await ctx.answerCallbackQuery({ text: ctx.t(answer, { number }) });

    const author = await users.get(changed.userId).catch((error) => {
      ctx.log.warning("could not load the author of request #{number}", { number, error });
      return null;
    });
    const staff = personHtml(presser.id, [presser.first_name, presser.last_name], presser.username);
    const line = translate(
      locale,
      changed.status === "done" ? "staff.status.done" : "staff.status.in_progress",
      { staff },
    );
    await ctx.editMessageText(cardText(locale, changed, author, line), {
      parse_mode: "HTML",
      reply_markup: cardKeyboard(locale, changed),
      link_preview_options: { is_disabled: true },
    }).catch((error) =>
      ctx.log.warning("could not update the staff post of request #{number}", { number, error })
    );
    await notifyAuthor(ctx.api, changed, author, ctx.log);
  });

  // Anything else under `staff:` is malformed or from an older version of the bot.
  composer.callbackQuery(/^staff:/, async (ctx) => {
    await ctx.answerCallbackQuery({ text: ctx.t("staff.answer.invalid") });
  });

  return {
    name: "staff",
    composer,
    deliveries: {
      [STAFF_POST]: staffPost({ requests, users, staffChatId: roles.staffChatId, locale }),
    },
  };
}
