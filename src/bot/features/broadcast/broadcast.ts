/**
 * Broadcasts, for `ADMIN_IDS` in their private chat with the bot: `/broadcast` followed by the
 * announcement (the next message, the message it replies to, or text after the command) →
 * a preview of exactly what subscribers will get, with the number of recipients and Send /
 * Cancel buttons. Send starts the broadcast job (`sender.ts`), which shows its progress in
 * that message; `/broadcast_cancel` stops it; the summary follows through the outbox.
 * `/broadcasts` lists the recent ones. Formatting is kept: the preview is a copy of the
 * admin's message (`copyMessage`), and the preview is what gets copied to everyone.
 */
import { type Api, InlineKeyboard } from "grammy";
import { BotComposer } from "../../composer.ts";
import type { Message, MessageEntity } from "grammy/types";
import { z } from "zod";
import { BROADCAST_SUMMARY, type BroadcastRepository } from "../../../db/broadcasts.ts";
import type { BackgroundMetrics } from "../../../metrics/background.ts";
import type { BotContext } from "../../context.ts";
import { defineDialog, type Dialog } from "../../dialog/dialog.ts";
import type { Feature } from "../../feature.ts";
import { answerPress } from "../../reply.ts";
import type { Roles } from "../../roles.ts";
import { broadcastJob } from "./sender.ts";
import { listText, summaryText } from "./texts.ts";

/** What the broadcast feature needs. */
export interface BroadcastOptions {
  broadcasts: BroadcastRepository;
  /** Pages of subscribed users who have not blocked the bot. */
  notifiable: (afterId: number, limit: number) => Promise<number[]>;
  /** Records that a user blocked the bot, keeping the cached profile in step. */
  markBlocked: (userId: number) => Promise<void>;
  roles: Roles;
  /** The bulk API client (its messages leave the replies to users first). */
  bulkApi: Api;
  /** This instance's id (claims recipients). */
  instanceId: string;
  /** `BROADCAST_RATE`. */
  rate: number;
  kickOutbox: () => void;
  metrics: Pick<BackgroundMetrics, "broadcastMessages">;
}

/** The callback data of the preview's buttons: `bc:send:<id>`, `bc:cancel:<id>`. */
const BUTTON_DATA = /^bc:(send|cancel):(\d{1,15})$/;

/** Waiting for the announcement after a bare `/broadcast`. */
const composeDialog = defineDialog({
  name: "broadcast",
  steps: ["compose"],
  schema: z.object({}),
});

/** What may be broadcast: a text, a photo or a document (captions and formatting included). */
function broadcastable(message: Message | undefined): message is Message {
  return message !== undefined &&
    (message.text !== undefined || message.photo !== undefined || message.document !== undefined);
}

/** `/broadcast`, `/broadcast_cancel`, `/broadcasts` and the preview's buttons, for admins. */
export function broadcastFeature(options: BroadcastOptions): Feature {
  const { broadcasts, roles } = options;
  const feature = new BotComposer<BotContext>();
  const admin = feature.chatType("private").filter((ctx) => roles.isAdmin(ctx.from?.id));

  /** Shows `preview` (already in the admin's chat) with the audience and the buttons. */
  async function offer(ctx: BotContext, previewId: number): Promise<void> {
    const count = await broadcasts.audience();
    if (count === 0) return void await ctx.reply(ctx.t("broadcast.nobody"));
    const draft = await broadcasts.create({
      adminId: ctx.from!.id,
      chatId: ctx.chat!.id,
      locale: ctx.locale,
      sourceMessageId: previewId,
    });
    const keyboard = new InlineKeyboard()
      .text(ctx.t("broadcast.button.send"), `bc:send:${draft.id}`)
      .text(ctx.t("broadcast.button.cancel"), `bc:cancel:${draft.id}`);
    await ctx.reply(ctx.t("broadcast.preview", { count }), {
      reply_markup: keyboard,
      reply_parameters: { message_id: previewId, allow_sending_without_reply: true },
    });
  }

  /** Copies the admin's message back as the preview, then offers it. */
  async function prepare(ctx: BotContext, source: Message): Promise<void> {
    const copy = await ctx.api.copyMessage(ctx.chat!.id, ctx.chat!.id, source.message_id);
    await offer(ctx, copy.message_id);
  }

  admin.command("broadcast", async (ctx) => {
    const reply = ctx.msg.reply_to_message;
    if (broadcastable(reply)) return await prepare(ctx, reply);
    const text = ctx.match.trim();
    if (text !== "") {
      // The text after the command, with its formatting moved to where the text now starts.
      const start = ctx.msg.text.indexOf(text);
      const entities = (ctx.msg.entities ?? []).flatMap((e): MessageEntity[] =>
        e.offset >= start ? [{ ...e, offset: e.offset - start }] : []
      );
      const preview = await ctx.reply(text, entities.length > 0 ? { entities } : {});
      return await offer(ctx, preview.message_id);
    }
    composeDialog.enter(ctx, "compose", {});
    await ctx.reply(ctx.t("broadcast.compose"));
  });

  admin.callbackQuery(BUTTON_DATA, async (ctx) => {
    const [, action, rawId] = ctx.match;
    const id = Number(rawId);
    const done = action === "send"
      ? await broadcasts.start(id, ctx.callbackQuery.message?.message_id ?? 0)
      : (await broadcasts.cancel(ctx.from.id, id)).find((row) => row.status === "cancelled");
    if (!done) return void await answerPress(ctx, ctx.t("broadcast.stale"));
    await answerPress(ctx);
    const text = action === "send"
      ? ctx.t("broadcast.starting", { id })
      : ctx.t("broadcast.draft_cancelled");
    // The buttons go: a second press must find nothing to press.
    await ctx.editMessageText(text).catch((error) =>
      ctx.log.warning("could not update the broadcast preview", { error })
    );
  });

  admin.command("broadcast_cancel", async (ctx) => {
    const cancelled = (await broadcasts.cancel(ctx.from.id)).filter((row) => row.startedAt);
    if (cancelled.length === 0) return void await ctx.reply(ctx.t("broadcast.cancel_none"));
    ctx.log.info("admin cancelled broadcasts {ids}", { ids: cancelled.map((row) => row.id) });
    for (const row of cancelled) await ctx.reply(ctx.t("broadcast.cancel_done", { id: row.id }));
  });

  admin.command("broadcasts", async (ctx) => {
    const rows = await broadcasts.list(10);
    await ctx.reply(listText(ctx.locale, rows), { parse_mode: "HTML" });
  });

  // Last: the admin's other commands go to their handlers, not into the announcement.
  admin.filter(composeDialog.at("compose")).on("message", async (ctx) => {
    const message = ctx.msg;
    if (message.text?.startsWith("/")) {
      composeDialog.leave(ctx);
      return void await ctx.reply(ctx.t("broadcast.compose_cancelled"));
    }
    if (!broadcastable(message)) return void await ctx.reply(ctx.t("broadcast.unsupported"));
    composeDialog.leave(ctx);
    await prepare(ctx, message);
  });

  return {
    name: "broadcast",
    composer: feature,
    commands: {
      admin: ["broadcast", "broadcast_cancel", "broadcasts"].map((command) => ({
        command,
        rank: 110,
      })),
    },
    dialogs: [composeDialog as Dialog<string, unknown>],
    jobs: [
      broadcastJob({
        broadcasts,
        notifiable: options.notifiable,
        markBlocked: options.markBlocked,
        api: options.bulkApi,
        instanceId: options.instanceId,
        rate: options.rate,
        kickOutbox: options.kickOutbox,
        metrics: options.metrics,
      }),
    ],
    deliveries: {
      async [BROADCAST_SUMMARY](item, { api }) {
        const row = await broadcasts.get(Number(item.ref));
        if (row === null) return null;
        const counts = await broadcasts.counts(row.id);
        const message = await api.sendMessage(row.chatId, summaryText(row, counts));
        return { message_id: message.message_id };
      },
    },
  };
}
