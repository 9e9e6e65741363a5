/**
 * What a feature is, in one value: its composer, the commands it adds to the menu for each
 * role, the dialogs it defines, the update types it needs, and optionally its health checks,
 * background jobs and outbox deliveries. The program builds the command menus, the dialog
 * list, `allowed_updates`, `/health` and the job runner from the features, so adding a
 * feature is adding one value to the list in `features/index.ts`.
 */
import type { Api, Composer } from "grammy";
import { type Locale, SUPPORTED_LOCALES } from "../config.ts";
import type { Check } from "../health.ts";
import type { Job } from "../jobs/job.ts";
import type { OutboxHandler } from "../jobs/outbox.ts";
import type { BotContext } from "./context.ts";
import type { Dialog } from "./dialog/dialog.ts";
import { CATALOGUES, type MessageKey } from "./i18n.ts";

/** Who sees a command in their menu. */
export type Role = "user" | "staff" | "admin";

/**
 * A menu entry: a command name (described by `command.<name>` in the catalogues), or an object
 * with its own description and a `rank` placing it among other features' commands (lower
 * first; entries without one come after the ranked ones, in feature order).
 */
export type MenuEntry = string | { command: string; description?: string; rank?: number };

/** Update types a feature may ask Telegram for. */
export type UpdateType =
  | "message"
  | "edited_message"
  | "callback_query"
  | "my_chat_member"
  | "chat_member"
  | "message_reaction";

/** One feature; see the module documentation. */
export interface Feature {
  /** A short name for logs and tests, e.g. `requests`. */
  name: string;
  /** The feature's handlers. */
  composer: Composer<BotContext>;
  /** Commands for the menu, by the role that sees them (admins see all, staff see user's and staff's). */
  commands?: Partial<Record<Role, readonly MenuEntry[]>>;
  /** Dialogs the feature defines (the dialogs stage checks stored state against them). */
  dialogs?: readonly Dialog<string, unknown>[];
  /** Update types the feature handles besides messages and button presses. */
  updates?: readonly UpdateType[];
  /** Health checks by name (`component:measurement`). */
  checks?: Readonly<Record<string, Check>>;
  /** Background jobs the feature owns. */
  jobs?: readonly Job[];
  /** Outbox deliveries the feature performs, by outbox kind. */
  deliveries?: Readonly<Record<string, OutboxHandler>>;
}

/** What every bot asks for, whatever its features. */
const BASE_UPDATES: readonly UpdateType[] = ["message", "callback_query"];

/** `allowed_updates` for Telegram: the base types plus what the features need, in a stable order. */
export function allowedUpdates(features: readonly Feature[]): UpdateType[] {
  const wanted = new Set<UpdateType>(BASE_UPDATES);
  for (const feature of features) for (const type of feature.updates ?? []) wanted.add(type);
  return [...wanted].sort();
}

/** Every dialog the features define. */
export function dialogsOf(features: readonly Feature[]): Dialog<string, unknown>[] {
  return features.flatMap((feature) => [...(feature.dialogs ?? [])]);
}

/** The menu of `role`: the commands of that role and of every role below it, in feature order. */
export function menuOf(features: readonly Feature[], role: Role): MenuEntry[] {
  const roles: Role[] = role === "admin"
    ? ["user", "staff", "admin"]
    : role === "staff"
    ? ["user", "staff"]
    : ["user"];
  const seen = new Set<string>();
  const menu: MenuEntry[] = [];
  for (const r of roles) {
    for (const feature of features) {
      for (const entry of feature.commands?.[r] ?? []) {
        const name = typeof entry === "string" ? entry : entry.command;
        if (seen.has(name)) continue;
        seen.add(name);
        menu.push(entry);
      }
    }
  }
  const rank = (entry: MenuEntry) => typeof entry === "string" ? Infinity : entry.rank ?? Infinity;
  // Array.prototype.sort is stable: equal ranks keep feature order.
  return menu.sort((a, b) => rank(a) === rank(b) ? 0 : rank(a) - rank(b));
}

/** The menu as `setMyCommands` takes it, in `locale`. */
export function menuCommands(
  menu: readonly MenuEntry[],
  locale: Locale,
): { command: string; description: string }[] {
  return menu.map((entry) => {
    const command = typeof entry === "string" ? entry : entry.command;
    if (typeof entry !== "string" && entry.description !== undefined) {
      return { command, description: entry.description };
    }
    const key = `command.${command}` as MessageKey;
    const description = CATALOGUES[locale][key] ?? CATALOGUES.en[key];
    if (description === undefined) throw new Error(`no menu text command.${command}`);
    return { command, description };
  });
}

/** Where the menus go. */
export interface PublishMenusOptions {
  /** Language for users whose Telegram language the bot does not speak. */
  defaultLocale: Locale;
  /** Admins: their private chats get the admin menu. */
  adminIds: readonly number[];
  /** The staff chat: it gets the staff menu. */
  staffChatId: number | null;
  signal?: AbortSignal;
}

/**
 * Publishes the command menus Telegram shows next to the input field: the users' menu in
 * every language the bot speaks (others see `defaultLocale`'s), the staff menu in the staff
 * chat and the admin menu in each admin's private chat.
 */
export async function publishMenus(
  api: Api,
  features: readonly Feature[],
  options: PublishMenusOptions,
): Promise<void> {
  const { defaultLocale, adminIds, staffChatId, signal } = options;
  const users = menuOf(features, "user");
  await api.setMyCommands(menuCommands(users, defaultLocale), {}, signal as never);
  for (const locale of SUPPORTED_LOCALES) {
    await api.setMyCommands(
      menuCommands(users, locale),
      { language_code: locale },
      signal as never,
    );
  }
  const staff = menuOf(features, "staff");
  if (staffChatId !== null && staff.length > users.length) {
    const commands = menuCommands(staff.filter((e) => !users.includes(e)), defaultLocale);
    await api.setMyCommands(
      commands,
      { scope: { type: "chat", chat_id: staffChatId } },
      signal as never,
    );
  }
  const admin = menuOf(features, "admin");
  for (const id of adminIds) {
    await api.setMyCommands(
      menuCommands(admin, defaultLocale),
      { scope: { type: "chat", chat_id: id } },
      signal as never,
    );
  }
}
