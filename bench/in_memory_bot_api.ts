/**
 * What the in-process benchmarks give grammY instead of Telegram: the bot's own account, and
 * a `fetch` that answers in memory, so that only the bot's own work is timed.
 *
 * @module
 */
import type { UserFromGetMe } from "grammy/types";

/** The bot's account, so that `createBot` needs no `getMe`. */
export const BOT_INFO: UserFromGetMe = {
  id: 123456,
  is_bot: true,
  first_name: "Service Desk",
  username: "service_desk_bench_bot",
  can_join_groups: true,
  can_read_all_group_messages: false,
  supports_inline_queries: false,
  can_connect_to_business: false,
  has_main_web_app: false,
  has_topics_enabled: false,
  allows_users_to_create_topics: false,
  can_manage_bots: false,
  supports_join_request_queries: false,
};

const SENT_MESSAGE = JSON.stringify({
  ok: true,
  result: { message_id: 1, date: 0, chat: { id: 1, type: "private" }, text: "x" },
});
const NOT_FOUND = JSON.stringify({ ok: false, error_code: 404, description: "Not Found" });

/** A Bot API that lives in memory: `sendMessage` succeeds, anything else is a 404. */
export const cannedFetch: typeof fetch = (input) => {
  const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
  const ok = url.endsWith("/sendMessage");
  return Promise.resolve(
    new Response(ok ? SENT_MESSAGE : NOT_FOUND, {
      status: ok ? 200 : 404,
      headers: { "content-type": "application/json" },
    }),
  );
};
