/**
 * The user's side of the service desk: `/new` files a request through a persistent form
 * (`requests_form.ts`), `/my` and `/status` list them (`requests_list.ts`). Everything here
 * is for private chats; the buttons of both share one callback handler that refuses any
 * `callback_data` these flows never made.
 */
import { Composer } from "grammy";
import type { BotContext } from "../context.ts";
import type { StaffBoard } from "../staff_board.ts";
import type { FeatureDeps } from "./index.ts";
import { answer, requestDialog, requestForm } from "./requests_form.ts";
import { ACTION_DATA, decodeAction } from "./requests_input.ts";
import { requestLists } from "./requests_list.ts";

export { requestDialog };

/** `/new`, `/my`, `/status` and their buttons. */
export function requestsFeature(
  deps: FeatureDeps & { staffBoard: StaffBoard },
): Composer<BotContext> {
  const { requests } = deps.storage;
  const form = requestForm({
    categories: deps.config.requestCategories,
    requests,
    staffBoard: deps.staffBoard,
  });
  const lists = requestLists({ requests });
  const feature = new Composer<BotContext>();
  const privateChat = feature.chatType("private");

  privateChat.callbackQuery(ACTION_DATA, async (ctx) => {
    const action = decodeAction(ctx.callbackQuery.data);
    if (action === null) {
      ctx.log.info("refused a forged or garbled button {data}", { data: ctx.callbackQuery.data });
      await answer(ctx, ctx.t("requests.button.invalid"));
    } else if (action.kind === "page" || action.kind === "open") {
      await lists.press(ctx, action);
    } else {
      await form.press(ctx, action);
    }
  });
  privateChat.use(lists.composer, form.composer);
  return feature;
}
