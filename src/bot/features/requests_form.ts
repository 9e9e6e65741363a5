/**
 * `/new`: the request form on the persistent dialog. Category (inline buttons) → description
 * → phone (a reply keyboard that shares the user's number, or typed) → summary with Confirm /
 * Edit / Cancel. `/cancel` or the Cancel button leave it at any step.
 *
 * Every form has a draft id (a random UUID made at `/new`, kept in the dialog data); its
 * buttons carry the first 8 hex digits, so a button of an earlier form, a second press or a
 * forged `callback_data` is answered politely and changes nothing. Confirm files the request
 * with `createOnce`, so a draft becomes one request however often it is confirmed.
 */
import { Composer, GrammyError } from "grammy";
import { BotComposer } from "../composer.ts";
import { z } from "zod";
import type { RequestRepository } from "../../db/requests.ts";
import type { BotContext } from "../context.ts";
import { defineDialog } from "../dialog/dialog.ts";
import {
  checkDescription,
  contactPhone,
  DESCRIPTION_MAX,
  DESCRIPTION_MIN,
  formTag,
  normalizePhone,
  type RequestAction,
} from "./requests_input.ts";
import {
  categoryKeyboard,
  contactKeyboard,
  summaryKeyboard,
  summaryText,
} from "./requests_view.ts";
import { escapeHtml } from "../html.ts";
import {
  addAttachment,
  attachmentOf,
  attachmentSchema,
  continuesAlbum,
  type FormAttachment,
  MAX_ATTACHMENTS,
} from "./requests_attachments.ts";
import { answerPress } from "../reply.ts";
import { errorMessage } from "../../errors.ts";

/** The `/new` dialog: its steps and what it collects. */
export const requestDialog = defineDialog({
  name: "request",
  steps: ["category", "description", "contact", "summary"],
  schema: z.object({
    draftId: z.uuid(),
    category: z.string().min(1).optional(),
    description: z.string().min(1).optional(),
    contact: z.string().min(1).optional(),
    attachments: z.array(attachmentSchema).max(MAX_ATTACHMENTS).optional(),
  }),
});

/** What the form needs. */
export interface RequestFormOptions {
  /** The categories users choose from (`REQUEST_CATEGORIES`). */
  categories: readonly string[];
  requests: RequestRepository;
  /** Called when a request was filed (its staff post is owed in the outbox). */
  onFiled: () => void;
}

const HTML = { parse_mode: "HTML" } as const;
const REMOVE_KEYBOARD = { reply_markup: { remove_keyboard: true } } as const;

/** The form's handlers: commands, button presses (via {@link RequestForm.press}) and answers. */
export interface RequestForm {
  /** `/new`, `/cancel` and the answers to each step, for private chats. */
  composer: Composer<BotContext>;
  /** Handles a press of one of the form's buttons. */
  press(ctx: BotContext, action: RequestAction): Promise<void>;
}

/** Builds the form; see the module documentation. */
export function requestForm(options: RequestFormOptions): RequestForm {
  const { categories, requests, onFiled } = options;
  const composer = new BotComposer<BotContext>();

  async function askCategory(ctx: BotContext, draftId: string): Promise<void> {
    await ctx.reply(ctx.t("requests.step.category"), {
      ...HTML,
      reply_markup: categoryKeyboard(ctx.t, categories, formTag(draftId)),
    });
  }

  async function askDescription(
    ctx: BotContext,
    key: "requests.step.description" | "requests.step.edit",
  ) {
    await ctx.reply(ctx.t(key, { min: DESCRIPTION_MIN, max: DESCRIPTION_MAX }), HTML);
  }

  composer.command("new", async (ctx) => {
    const draftId = crypto.randomUUID();
    requestDialog.enter(ctx, "category", { draftId });
    await askCategory(ctx, draftId);
  });

  composer.command("cancel", async (ctx, next) => {
    if (requestDialog.current(ctx) !== null) {
      requestDialog.leave(ctx);
      await ctx.reply(ctx.t("requests.cancelled"), { ...HTML, ...REMOVE_KEYBOARD });
    } else if (ctx.dialog.state === null) {
      await ctx.reply(ctx.t("requests.cancel.nothing"), { ...HTML, ...REMOVE_KEYBOARD });
    } else {
      // Another feature's dialog: its own /cancel leaves it.
      await next();
    }
  });

  composer.filter(requestDialog.at("category")).on("message", async (ctx) => {
    await ctx.reply(ctx.t("requests.hint.category"), HTML);
    await askCategory(ctx, requestDialog.current(ctx)!.data.draftId);
  });

  // The rest of an album whose first part already moved the form on: kept with the form.
  composer.filter(requestDialog.at("contact", "summary")).on("message", async (ctx, next) => {
    const file = attachmentOf(ctx.message);
    const data = requestDialog.current(ctx)!.data;
    if (file === null || !continuesAlbum(data.attachments ?? [], file)) return await next();
    requestDialog.update(ctx, { attachments: addAttachment(data.attachments ?? [], file).list });
  });

  composer.filter(requestDialog.at("description")).on("message", async (ctx) => {
    const file = attachmentOf(ctx.message);
    if (file !== null) {
      const added = addAttachment(requestDialog.current(ctx)!.data.attachments ?? [], file);
      requestDialog.update(ctx, { attachments: added.list });
      if (added.dropped && added.firstOfGroup) {
        await ctx.reply(ctx.t("conversation.attach.too_many", { max: MAX_ATTACHMENTS }), HTML);
      }
      // A caption that describes the problem is the description; else the user is asked once
      // per album (each part arrives as a message of its own).
      const caption = file.caption === null ? null : checkDescription(file.caption);
      if (caption?.ok) return await described(ctx, caption.value);
      if (added.firstOfGroup) {
        await ctx.reply(
          ctx.t("conversation.attach.got", { min: DESCRIPTION_MIN, max: DESCRIPTION_MAX }),
          HTML,
        );
      }
      return;
    }
    const text = ctx.message.text;
    if (text === undefined) {
      await ctx.reply(ctx.t("requests.description.not_text"), HTML);
      return;
    }
    const checked = checkDescription(text);
    if (!checked.ok) {
      const key = `requests.description.${checked.problem}` as const;
      await ctx.reply(
        ctx.t(key, { length: checked.length, min: DESCRIPTION_MIN, max: DESCRIPTION_MAX }),
        HTML,
      );
      return;
    }
    await described(ctx, checked.value);
  });

  async function described(ctx: BotContext, description: string): Promise<void> {
    requestDialog.update(ctx, { description });
    requestDialog.go(ctx, "contact");
    await ctx.reply(ctx.t("requests.step.contact"), {
      ...HTML,
      reply_markup: contactKeyboard(ctx.t),
    });
  }

  composer.filter(requestDialog.at("contact")).on("message", async (ctx) => {
    const shared = ctx.message.contact;
    let phone: string | null = null;
    if (shared !== undefined) {
      // A contact card forwarded from someone else is not the user's own number.
      if (shared.user_id !== ctx.from.id) {
        await ctx.reply(ctx.t("requests.contact.not_own"), HTML);
        return;
      }
      phone = contactPhone(shared.phone_number);
    } else if (ctx.message.text !== undefined) {
      phone = normalizePhone(ctx.message.text);
    }
    if (phone === null) {
      await ctx.reply(ctx.t("requests.contact.invalid"), HTML);
      return;
    }
    requestDialog.update(ctx, { contact: phone });
    requestDialog.go(ctx, "summary");
    const data = requestDialog.current(ctx)!.data;
    await ctx.reply(ctx.t("requests.contact.saved", { phone: escapeHtml(phone) }), {
      ...HTML,
      ...REMOVE_KEYBOARD,
    });
    await sendSummary(ctx, data);
  });

  composer.filter(requestDialog.at("summary")).on("message", async (ctx) => {
    await ctx.reply(ctx.t("requests.hint.summary"), HTML);
  });

  async function sendSummary(
    ctx: BotContext,
    data: {
      draftId: string;
      category?: string;
      description?: string;
      contact?: string;
      attachments?: FormAttachment[];
    },
  ): Promise<void> {
    const files = data.attachments?.length ?? 0;
    const text = summaryText(ctx.t, {
      category: data.category ?? "",
      description: data.description ?? "",
      contact: data.contact ?? "",
    });
    await ctx.reply(
      files === 0 ? text : `${text}\n${ctx.t("conversation.attach.line", { count: files })}`,
      { ...HTML, reply_markup: summaryKeyboard(ctx.t, formTag(data.draftId)) },
    );
  }

  async function press(ctx: BotContext, action: RequestAction): Promise<void> {
    const position = requestDialog.current(ctx);
    if (!("tag" in action) || position === null || formTag(position.data.draftId) !== action.tag) {
      await answerPress(ctx, ctx.t("requests.button.stale"));
      return;
    }
    const { step, data } = position;
    if (action.kind === "cancel") {
      requestDialog.leave(ctx);
      await answerPress(ctx);
      await removeButtons(ctx);
      await ctx.reply(ctx.t("requests.cancelled"), { ...HTML, ...REMOVE_KEYBOARD });
      return;
    }
    if (action.kind === "category" && step === "category") {
      const category = categories[action.index];
      if (category === undefined) {
        await answerPress(ctx, ctx.t("requests.button.invalid"));
        return;
      }
      requestDialog.update(ctx, { category });
      requestDialog.go(ctx, "description");
      await answerPress(ctx);
      await editOrSend(
        ctx,
        ctx.t("requests.step.category_chosen", { category: escapeHtml(category) }),
      );
      await askDescription(ctx, "requests.step.description");
      return;
    }
    if (action.kind === "edit" && step === "summary") {
      requestDialog.go(ctx, "description");
      await answerPress(ctx);
      await removeButtons(ctx);
      await askDescription(ctx, "requests.step.edit");
      return;
    }
    if (action.kind === "confirm" && step === "summary") {
      const { category, description, contact } = data;
      if (category === undefined || description === undefined || contact === undefined) {
        // Cannot happen through the steps; a form missing a part starts again.
        requestDialog.go(ctx, "category");
        await answerPress(ctx, ctx.t("requests.button.stale"));
        await askCategory(ctx, data.draftId);
        return;
      }
      const { request, created } = await requests.createOnce({
        draftId: data.draftId,
        userId: ctx.from!.id,
        category,
        description,
        contact,
        attachments: data.attachments ?? [],
      });
      requestDialog.leave(ctx);
      await answerPress(ctx);
      await removeButtons(ctx);
      await ctx.reply(ctx.t("requests.created", { number: request.number }), HTML);
      // The staff post was owed with the request, in the same statement; this only hurries it.
      if (created) onFiled();
      return;
    }
    // A button of this form, but of a step the user has already left.
    await answerPress(ctx, ctx.t("requests.button.stale"));
  }

  return { composer, press };
}

/** Takes the inline keyboard off the message whose button was pressed. */
async function removeButtons(ctx: BotContext): Promise<void> {
  try {
    await ctx.editMessageReplyMarkup({ reply_markup: { inline_keyboard: [] } });
  } catch (error) {
    // Already gone (a double press) or too old to edit: the answer matters, not the buttons.
    ctx.log.debug("could not remove the buttons: {error}", { error: errorMessage(error) });
  }
}

/** Replaces the pressed message's text (and its buttons); sends `text` when it can't. */
async function editOrSend(ctx: BotContext, text: string): Promise<void> {
  try {
    await ctx.editMessageText(text, HTML);
  } catch (error) {
    if (!(error instanceof GrammyError)) throw error;
    ctx.log.debug("could not edit the message: {error}", { error: errorMessage(error) });
    await ctx.reply(text, HTML);
  }
}
