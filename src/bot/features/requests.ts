/**
 * The user's side of the service desk: `/new` files a request through a persistent form
 * (`requests_form.ts`), `/my` and `/status` list them (`requests_list.ts`). Everything here
 * is for private chats; the buttons of both share one callback handler that refuses any
 * `callback_data` these flows never made.
 */
import { BotComposer } from "../composer.ts";
import type { BotContext } from "../context.ts";
import type { Dialog } from "../dialog/dialog.ts";
import type { RequestLifecycle } from "../../db/request_lifecycle.ts";
import type { RequestMessages } from "../../db/request_messages.ts";
import type { RequestRepository } from "../../db/requests.ts";
import { ratingComposer, ratingDialog } from "./requests_rating.ts";
import type { Feature } from "../feature.ts";
import { requestDialog, requestForm } from "./requests_form.ts";
import { answerPress } from "../reply.ts";
import { ACTION_DATA, decodeAction } from "./requests_input.ts";
import { requestLists } from "./requests_list.ts";

export { requestDialog };

/** What the requests feature needs. */
export interface RequestsOptions {
  requests: RequestRepository;
  /** Ratings of closed requests. */
  lifecycle: Pick<RequestLifecycle, "rate" | "comment">;
  /** Requests' conversations, for `/my`. */
  messages: Pick<RequestMessages, "page">;
  /** The categories users choose from (`REQUEST_CATEGORIES`). */
  categories: readonly string[];
  /** Called when a request was filed, so that its staff post goes out without waiting. */
  onFiled?: () => void;
}

/** `/new`, `/my`, `/status` and their buttons. */
export function requestsFeature(options: RequestsOptions): Feature {
  const { requests } = options;
  const form = requestForm({
    categories: options.categories,
    requests,
    onFiled: options.onFiled ?? (() => {}),
  });
  const lists = requestLists({ requests, messages: options.messages });
  const feature = new BotComposer<BotContext>();
  const privateChat = feature.chatType("private");

  privateChat.callbackQuery(ACTION_DATA, async (ctx) => {
    const action = decodeAction(ctx.callbackQuery.data);
    if (action === null) {
      ctx.log.info("refused a forged or garbled button {data}", { data: ctx.callbackQuery.data });
      await answerPress(ctx, ctx.t("requests.button.invalid"));
    } else if (action.kind === "page" || action.kind === "open" || action.kind === "messages") {
      await lists.press(ctx, action);
    } else {
      await form.press(ctx, action);
    }
  });
  privateChat.use(lists.composer, form.composer, ratingComposer(options.lifecycle));
  return {
    name: "requests",
    composer: feature,
    commands: {
      user: [
        { command: "new", rank: 2 },
        { command: "my", rank: 3 },
        { command: "status", rank: 4 },
      ],
    },
    dialogs: [requestDialog as Dialog<string, unknown>, ratingDialog as Dialog<string, unknown>],
  };
}
