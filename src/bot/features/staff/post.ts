/**
 * The staff post of a new request, delivered from the outbox (`jobs/outbox.ts`): the request
 * and its outbox item are stored in one statement, so a request is never filed without being
 * owed to staff, and the post is retried until the staff chat takes it (the bot may have been
 * removed from the group, or Telegram may be down for a while).
 */
import type { Locale } from "../../../config.ts";
import type { RequestRepository } from "../../../db/requests.ts";
import type { UserRepository } from "../../../db/users.ts";
import type { OutboxHandler } from "../../../jobs/outbox.ts";
import type { Json } from "../../../store/store.ts";
import { translate } from "../../i18n.ts";
import { cardKeyboard, cardText } from "./card.ts";

/** What the staff post needs. */
export interface StaffPostOptions {
  requests: Pick<RequestRepository, "get" | "setStaffMessage">;
  users: Pick<UserRepository, "get">;
  /** `STAFF_CHAT_ID`; null: requests are only stored. */
  staffChatId: number | null;
  /** The staff chat's language. */
  locale: Locale;
}

/** The delivery of `staff_post` outbox items; see the module documentation. */
export function staffPost(options: StaffPostOptions): OutboxHandler {
  const { requests, users, staffChatId, locale } = options;
  return async (item, { api }): Promise<Json> => {
    if (staffChatId === null) return { skipped: "no staff chat" };
    const request = await requests.get(Number(item.ref));
    if (request === null) return { skipped: "no such request" };
    const author = await users.get(request.userId);
    // Staff may have moved it on already (from the queue) before the post got through.
    const status = request.status === "new" ? translate(locale, "staff.status.new") : translate(
      locale,
      request.status === "in_progress" ? "staff.status.in_progress" : "staff.status.done",
      {
        staff: "—",
      },
    );
    const message = await api.sendMessage(staffChatId, cardText(locale, request, author, status), {
      parse_mode: "HTML",
      reply_markup: cardKeyboard(locale, request),
      link_preview_options: { is_disabled: true },
    });
    await requests.setStaffMessage(request.number, message.message_id);
    return { chatId: staffChatId, messageId: message.message_id };
  };
}
