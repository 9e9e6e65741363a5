/**
 * Staff and users talking through the bot. In the staff chat, a message in a request's topic
 * (forum) or in reply to its post or to any message relayed for it goes to the request's
 * author; one that starts with `//` (or is sent with `/note`) is an internal note, stored and
 * never relayed. In a private chat, a user's text or file after filing goes to their request:
 * the one they reply to, their only open one, or the one they pick with a button when they
 * have several (an album waits for the pick as one). Every message is stored with its
 * delivery owed (`relay.ts` delivers), so a crash never loses or repeats one.
 */
import { InlineKeyboard } from "grammy";
import { BotComposer } from "../../composer.ts";
import type { Message } from "grammy/types";
import { z } from "zod";
import type { Locale } from "../../../config.ts";
import type { RequestMessages } from "../../../db/request_messages.ts";
import type { RequestRepository } from "../../../db/requests.ts";
import type { UserRepository } from "../../../db/users.ts";
import type { RequestMetrics } from "../../../metrics/requests.ts";
import type { BotContext } from "../../context.ts";
import { defineDialog, type Dialog } from "../../dialog/dialog.ts";
import type { Feature } from "../../feature.ts";
import { commandOf } from "../../middleware/context.ts";
import { answerPress } from "../../reply.ts";
import type { Roles } from "../../roles.ts";
import type { StaffChat } from "../../staff_chat.ts";
import { type Content, contentOf } from "../../message_content.ts";
import { relayDeliveries } from "./relay.ts";

/** What the conversation needs. */
export interface ConversationOptions {
  requests: Pick<RequestRepository, "get" | "openByUser">;
  messages: RequestMessages;
  users: Pick<UserRepository, "get">;
  roles: Roles;
  staffChat: StaffChat;
  markBlocked: (userId: number) => Promise<void>;
  /** The staff chat's language. */
  locale: Locale;
  metrics: Pick<RequestMetrics, "relayed">;
  /** Hurries the outbox after a message was stored. */
  kickOutbox: () => void;
}

const pendingSchema = z.object({
  messageId: z.number().int(),
  text: z.string().nullable(),
  fileKind: z.string().nullable(),
  fileId: z.string().nullable(),
  mediaGroupId: z.string().nullable(),
  entities: z.array(z.record(z.string(), z.unknown())),
});

/** A user with several open requests, asked which one their message is about. */
export const chooseDialog = defineDialog({
  name: "relay",
  steps: ["choose"],
  schema: z.object({
    tag: z.string().regex(/^[0-9a-f]{8}$/),
    pending: z.array(pendingSchema).max(10),
  }),
});

const CHOICE = /^cv:(\d{1,15}):([0-9a-f]{8})$/;

/** The conversation feature; see the module documentation. */
export function conversationFeature(options: ConversationOptions): Feature {
  const { requests, messages, staffChat } = options;
  const composer = new BotComposer<BotContext>();

  async function relay(
    ctx: BotContext,
    number: number,
    content: Content,
    messageId: number,
    side: "user" | "staff",
  ): Promise<void> {
    await messages.relay(
      {
        requestNumber: number,
        authorId: ctx.from!.id,
        text: content.text,
        fileKind: content.fileKind,
        fileId: content.fileId,
        mediaGroupId: content.mediaGroupId,
        messageId,
      },
      side,
      { entities: content.entities as never },
    );
    options.kickOutbox();
  }

  // ---- the staff chat ----------------------------------------------------------------------

  /** The request a staff chat message is about: its topic, or what it replies to. */
  async function requestOfStaffMessage(message: Message): Promise<number | null> {
    if (message.is_topic_message && message.message_thread_id !== undefined) {
      const byThread = await messages.requestOfThread(message.message_thread_id);
      if (byThread !== null) return byThread;
    }
    const replied = message.reply_to_message;
    return replied ? await messages.requestOfStaffMessage(replied.message_id) : null;
  }

  composer.on("message", async (ctx, next) => {
    if (!staffChat.id || ctx.chat.id !== staffChat.id || ctx.from.is_bot) return await next();
    const text = ctx.message.text ?? ctx.message.caption ?? "";
    // `//` is a note, whatever a client makes of the slashes.
    const command = text.startsWith("//") ? null : commandOf(ctx);
    if (command !== null && command !== "/note") return await next();
    const content = contentOf(ctx.message);
    if (content === null) return await next();
    const number = await requestOfStaffMessage(ctx.message);
    if (number === null) return await next(); // Staff talking among themselves.
    const isNote = command === "/note" || text.startsWith("//");
    if (!isNote) return await relay(ctx, number, content, ctx.message.message_id, "staff");
    await messages.note({
      requestNumber: number,
      authorId: ctx.from.id,
      text: command === "/note" ? text.replace(/^\/note(@\w+)?\s*/, "") : text.slice(2).trim(),
      fileKind: content.fileKind,
      fileId: content.fileId,
      messageId: ctx.message.message_id,
    });
    await ctx.react("✍").catch(() => {});
  });

  // ---- the user's private chat -------------------------------------------------------------

  const privateChat = composer.chatType("private");

  privateChat.callbackQuery(CHOICE, async (ctx) => {
    const position = chooseDialog.current(ctx);
    const number = Number(ctx.match[1]);
    if (position === null || position.data.tag !== ctx.match[2]) {
      return await answerPress(ctx, ctx.t("conversation.relay.stale"));
    }
    const request = await requests.get(number);
    if (request === null || request.userId !== ctx.from.id) {
      return await answerPress(ctx, ctx.t("requests.button.not_yours"));
    }
    chooseDialog.leave(ctx);
    for (const pending of position.data.pending) {
      await relay(ctx, number, pending as unknown as Content, pending.messageId, "user");
    }
    await answerPress(ctx);
    await ctx.editMessageText(ctx.t("conversation.relay.chosen", { number })).catch(() => {});
  });

  // An album's other parts, or more messages, while the user is choosing: they wait too.
  privateChat.filter(chooseDialog.at("choose")).on("message", async (ctx, next) => {
    if (commandOf(ctx) !== null) {
      chooseDialog.leave(ctx);
      return await next();
    }
    const content = contentOf(ctx.message);
    const position = chooseDialog.current(ctx)!;
    if (content === null || position.data.pending.length >= 10) return;
    chooseDialog.update(ctx, {
      pending: [
        ...position.data.pending,
        { ...content, messageId: ctx.message.message_id } as never,
      ],
    });
  });

  privateChat.on("message", async (ctx, next) => {
    if (commandOf(ctx) !== null || ctx.dialog.state !== null) return await next();
    const content = contentOf(ctx.message);
    if (content === null) return await next();
    const userId = ctx.from.id;
    const replied = ctx.message.reply_to_message;
    const open = await requests.openByUser(userId);
    const repliedTo = replied
      ? await messages.requestOfUserMessage(userId, replied.message_id)
      : null;
    const target = open.find((r) => r.number === repliedTo) ?? (open.length === 1 ? open[0] : null);
    if (target) return await relay(ctx, target.number, content, ctx.message.message_id, "user");
    if (open.length === 0) return void await ctx.reply(ctx.t("conversation.relay.none"));
    const tag = crypto.randomUUID().replaceAll("-", "").slice(0, 8);
    chooseDialog.enter(ctx, "choose", {
      tag,
      pending: [{ ...content, messageId: ctx.message.message_id } as never],
    });
    const keyboard = new InlineKeyboard();
    for (const request of open.slice(0, 10)) {
      keyboard.text(
        ctx.t("conversation.queue.button", { number: request.number, category: request.category })
          .slice(0, 40),
        `cv:${request.number}:${tag}`,
      ).row();
    }
    await ctx.reply(ctx.t("conversation.relay.choose", { count: open.length }), {
      reply_markup: keyboard,
      reply_parameters: { message_id: ctx.message.message_id },
    });
  });

  return {
    name: "conversation",
    composer,
    dialogs: [chooseDialog as Dialog<string, unknown>],
    deliveries: relayDeliveries({
      requests,
      users: options.users,
      messages,
      staffChat,
      markBlocked: options.markBlocked,
      locale: options.locale,
      metrics: options.metrics,
    }),
  };
}
