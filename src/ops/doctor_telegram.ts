/**
 * The doctor's questions to Telegram: is the token accepted, can the bot post in the staff
 * chat (and is it a forum), can alerts reach every admin, and can Telegram reach the webhook.
 * Each answer is a finding; a failed call is a finding too, never a crash.
 */
import { Api, GrammyError } from "grammy";
import type { ChatFullInfo, ChatMember, UserFromGetMe } from "grammy/types";
import type { Config } from "../config.ts";
import { causeChain } from "../errors.ts";

/** The verdict of one doctor line. */
export type Verdict = "ok" | "warn" | "fail";

/** Adds one finding: its area (e.g. `telegram`), verdict and text for a human. */
export type AddFinding = (area: string, verdict: Verdict, text: string) => void;

/** Options of {@link telegramFindings}. */
export interface TelegramFindingsOptions {
  /** HTTP client for the Bot API. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Per-call timeout in ms. @default 10000 */
  timeoutMs?: number;
  /** The clock, for the age of a webhook error. @default Date.now */
  now?: () => number;
}

/** A webhook delivery error younger than this means Telegram cannot reach the bot now. */
const RECENT_WEBHOOK_ERROR_S = 600;

/** Asks Telegram what `doctor` reports about the token, staff chat, admins and webhook. */
export async function telegramFindings(
  config: Config,
  add: AddFinding,
  options: TelegramFindingsOptions = {},
): Promise<void> {
  const api = new Api(config.botToken, {
    apiRoot: config.botApiRoot,
    ...(options.fetch ? { fetch: options.fetch as never } : {}),
  });
  const signal = () => AbortSignal.timeout(options.timeoutMs ?? 10_000) as never;
  let me: UserFromGetMe;
  try {
    me = await api.getMe(signal());
    add("telegram", "ok", `token accepted: @${me.username} (id ${me.id})`);
  } catch (error) {
    const refused = error instanceof GrammyError && error.error_code === 401;
    add(
      "telegram",
      "fail",
      refused
        ? "Telegram refused BOT_TOKEN (401): get a new one from @BotFather"
        : `cannot reach the Bot API: ${causeChain(error)}`,
    );
    return;
  }
  await staffChatFindings(api, signal, config.staffChatId, me, add);
  await adminFindings(api, signal, config.adminIds, add);
  await webhookFindings(api, signal, config, add, options.now ?? Date.now);
}

type Signal = () => never;

/** Whether the bot is in STAFF_CHAT_ID and may post there, and whether it is a forum. */
async function staffChatFindings(
  api: Api,
  signal: Signal,
  chatId: number | null,
  me: UserFromGetMe,
  add: AddFinding,
): Promise<void> {
  if (chatId === null) {
    add("staff", "warn", "STAFF_CHAT_ID is not set: new requests are stored but posted nowhere");
    return;
  }
  let chat: ChatFullInfo;
  let member: ChatMember;
  try {
    chat = await api.getChat(chatId, signal());
    member = await api.getChatMember(chatId, me.id, signal());
  } catch (error) {
    add("staff", "fail", `STAFF_CHAT_ID ${chatId}: ${staffChatProblem(error)}`);
    return;
  }
  const name = `STAFF_CHAT_ID ${chatId} ("${"title" in chat ? chat.title : "untitled"}")`;
  if (member.status === "left" || member.status === "kicked") {
    add(
      "staff",
      "fail",
      member.status === "left"
        ? `the bot is not a member of ${name}: add it to the group`
        : `the bot was removed and banned from ${name}: unban it and add it again`,
    );
    return;
  }
  if (member.status === "restricted" && (!member.is_member || !member.can_send_messages)) {
    add(
      "staff",
      "fail",
      member.is_member
        ? `the bot may not send messages in ${name}: lift its restriction`
        : `the bot is not a member of ${name}: add it to the group`,
    );
    return;
  }
  const role = member.status === "creator"
    ? "its owner"
    : member.status === "administrator"
    ? "an administrator"
    : "a member";
  add("staff", "ok", `the bot is ${role} of ${name} and may post there`);
  const forum = chat.type === "supergroup" && chat.is_forum === true;
  if (!forum) {
    add("staff", "ok", `${name} is not a forum: a request's messages are replies to its post`);
  } else if (
    member.status === "creator" || member.status === "administrator" && member.can_manage_topics
  ) {
    add("staff", "ok", `${name} is a forum: each request gets its own topic`);
  } else {
    add(
      "staff",
      "warn",
      `${name} is a forum, but the bot may not create topics there: make it an administrator ` +
        `with the right to manage topics, so that each request gets its own topic`,
    );
  }
}

function staffChatProblem(error: unknown): string {
  if (error instanceof GrammyError && /chat not found/i.test(error.description)) {
    return "Telegram knows no such chat for this bot: add the bot to the group, or fix the id";
  }
  if (error instanceof GrammyError && error.error_code === 403) {
    return `the bot may not see the chat (${error.description}): add it to the group again`;
  }
  return `could not be checked: ${causeChain(error)}`;
}

/** Whether each admin has started the bot, which alerts need: a bot cannot write first. */
async function adminFindings(
  api: Api,
  signal: Signal,
  adminIds: readonly number[],
  add: AddFinding,
): Promise<void> {
  if (adminIds.length === 0) {
    add("admins", "warn", "ADMIN_IDS is empty: nobody gets alerts or may use admin commands");
    return;
  }
  for (const id of adminIds) {
    try {
      const chat = await api.getChat(id, signal());
      const name = "first_name" in chat && chat.first_name ? ` (${chat.first_name})` : "";
      add("admins", "ok", `admin ${id}${name} has started the bot: alerts can reach them`);
    } catch (error) {
      const notStarted = error instanceof GrammyError && /chat not found/i.test(error.description);
      add(
        "admins",
        "warn",
        notStarted
          ? `admin ${id} has not started the bot, so alerts cannot reach them: they should ` +
            `send it /start`
          : `admin ${id}: could not be checked: ${causeChain(error)}`,
      );
    }
  }
}

/** The webhook as Telegram sees it: which URL, and whether its deliveries fail. */
async function webhookFindings(
  api: Api,
  signal: Signal,
  config: Config,
  add: AddFinding,
  now: () => number,
): Promise<void> {
  let info: Awaited<ReturnType<Api["getWebhookInfo"]>>;
  try {
    info = await api.getWebhookInfo(signal());
  } catch (error) {
    add("webhook", "warn", `getWebhookInfo failed: ${causeChain(error)}`);
    return;
  }
  const waiting = info.pending_update_count;
  const pending = `${waiting} update${waiting === 1 ? "" : "s"} waiting`;
  if (!config.webhook) {
    if (info.url) {
      add(
        "webhook",
        "warn",
        `a webhook is registered (${info.url}); polling mode removes it at start`,
      );
    } else {
      add("webhook", "ok", `none registered (polling mode); ${pending}`);
    }
    return;
  }
  if (info.url !== config.webhook.url) {
    add(
      "webhook",
      "warn",
      `Telegram has ${info.url || "no webhook"}; the bot registers ${config.webhook.url} at start`,
    );
    return;
  }
  if (!info.last_error_message) {
    add("webhook", "ok", `registered at ${info.url}; no delivery errors reported; ${pending}`);
    return;
  }
  const ageS = info.last_error_date
    ? Math.max(0, Math.round(now() / 1000 - info.last_error_date))
    : null;
  const when = ageS === null ? "at an unknown time" : `${ageS} s ago`;
  if (ageS !== null && ageS <= RECENT_WEBHOOK_ERROR_S) {
    add(
      "webhook",
      "fail",
      `Telegram cannot reach ${info.url}: its last delivery failed ${when}: ` +
        `${info.last_error_message}; ${pending}. Check that the bot runs, and the reverse ` +
        `proxy, DNS and TLS certificate in front of it`,
    );
  } else {
    add(
      "webhook",
      "warn",
      `registered at ${info.url}; a delivery failed ${when}: ${info.last_error_message}`,
    );
  }
}
