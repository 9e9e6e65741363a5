/**
 * `/my` (the user's requests, newest first, a page at a time, each openable with its history)
 * and `/status` (their open requests). Buttons edit the same message; a page or request
 * number that is not the presser's (forged, or from someone else's chat) gets a polite refusal.
 */
import { Composer, GrammyError } from "grammy";
import { BotComposer } from "../composer.ts";
import type { RequestRepository } from "../../db/requests.ts";
import type { BotContext } from "../context.ts";
import { answerPress } from "../reply.ts";
import { encodeAction, PAGE_SIZE, pageCount, type RequestAction } from "./requests_input.ts";
import type { RequestMessages } from "../../db/request_messages.ts";
import { messagesView } from "../conversation_view.ts";
import { detailsView, listView, openView, type View } from "./requests_view.ts";

/** What the lists need. */
export interface RequestListOptions {
  requests: RequestRepository;
  messages: Pick<RequestMessages, "page">;
}

/** Messages per page of a request's conversation. */
const MESSAGES_PAGE = 10;

/** The lists' handlers: commands, and presses of their buttons. */
export interface RequestLists {
  /** `/my` and `/status`. */
  composer: Composer<BotContext>;
  /** Handles a press of a `/my` button. */
  press(ctx: BotContext, action: RequestAction): Promise<void>;
}

/** Builds `/my` and `/status`; see the module documentation. */
export function requestLists(options: RequestListOptions): RequestLists {
  const { requests, messages } = options;
  const composer = new BotComposer<BotContext>();

  composer.command("my", async (ctx) => {
    const view = await pageView(ctx, 0);
    await ctx.reply(view.text, { parse_mode: "HTML", ...markup(view) });
  });

  composer.command("status", async (ctx) => {
    const open = await requests.openByUser(ctx.from!.id);
    await ctx.reply(openView(ctx.t, open), { parse_mode: "HTML" });
  });

  /** Page `page` (from 0) of the presser's list; a page past the end shows the last one. */
  async function pageView(ctx: BotContext, page: number): Promise<View> {
    const userId = ctx.from!.id;
    let { items, total } = await requests.listByUser(userId, PAGE_SIZE, page * PAGE_SIZE);
    const last = pageCount(total) - 1;
    if (page > last) {
      page = last;
      ({ items, total } = await requests.listByUser(userId, PAGE_SIZE, page * PAGE_SIZE));
    }
    return listView(ctx.t, items, total, page);
  }

  async function press(ctx: BotContext, action: RequestAction): Promise<void> {
    if (action.kind === "page") {
      await answerPress(ctx);
      await show(ctx, await pageView(ctx, action.page));
      return;
    }
    if (action.kind === "open") {
      const request = await requests.get(action.number);
      if (request === null || request.userId !== ctx.from!.id) {
        await answerPress(ctx, ctx.t("requests.button.not_yours"));
        return;
      }
      const history = await requests.history(request.number);
      await answerPress(ctx);
      await show(ctx, detailsView(ctx.t, request, history, action.page));
      return;
    }
    if (action.kind === "messages") {
      const request = await requests.get(action.number);
      if (request === null || request.userId !== ctx.from!.id) {
        await answerPress(ctx, ctx.t("requests.button.not_yours"));
        return;
      }
      const { number, index, back } = action;
      const page = await messages.page(number, MESSAGES_PAGE, index * MESSAGES_PAGE, false);
      await answerPress(ctx);
      const toDetails = {
        text: ctx.t("conversation.button.back"),
        callback_data: encodeAction({ kind: "open", number, page: back }),
      };
      await show(
        ctx,
        messagesView(ctx.t, {
          number,
          page,
          index,
          size: MESSAGES_PAGE,
          forUser: true,
          back: toDetails,
          pageData: (i) => encodeAction({ kind: "messages", number, index: i, back }),
        }),
      );
      return;
    }
    await answerPress(ctx, ctx.t("requests.button.invalid"));
  }

  return { composer, press };
}

function markup(view: View) {
  return view.keyboard ? { reply_markup: view.keyboard } : {};
}

/** Shows `view` in place of the pressed message; a message that can't be edited gets a new one. */
async function show(ctx: BotContext, view: View): Promise<void> {
  try {
    await ctx.editMessageText(view.text, { parse_mode: "HTML", ...markup(view) });
  } catch (error) {
    if (!(error instanceof GrammyError)) throw error;
    // Pressing the button of the page already shown changes nothing.
    if (error.description.includes("message is not modified")) return;
    ctx.log.debug("could not edit the list: {error}", { error: error.description });
    await ctx.reply(view.text, { parse_mode: "HTML", ...markup(view) });
  }
}
