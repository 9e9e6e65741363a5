import enAccount from "../../locales/en/account.json" with { type: "json" };
import enAdmin from "../../locales/en/admin.json" with { type: "json" };
import enCore from "../../locales/en/core.json" with { type: "json" };
import enRequests from "../../locales/en/requests.json" with { type: "json" };
import enStaff from "../../locales/en/staff.json" with { type: "json" };
import ruAccount from "../../locales/ru/account.json" with { type: "json" };
import ruAdmin from "../../locales/ru/admin.json" with { type: "json" };
import ruCore from "../../locales/ru/core.json" with { type: "json" };
import ruRequests from "../../locales/ru/requests.json" with { type: "json" };
import ruStaff from "../../locales/ru/staff.json" with { type: "json" };
import ukAccount from "../../locales/uk/account.json" with { type: "json" };
import ukAdmin from "../../locales/uk/admin.json" with { type: "json" };
import ukCore from "../../locales/uk/core.json" with { type: "json" };
import ukRequests from "../../locales/uk/requests.json" with { type: "json" };
import ukStaff from "../../locales/uk/staff.json" with { type: "json" };
import { type Locale, SUPPORTED_LOCALES } from "../config.ts";

/**
 * English, the reference catalogue every language must match. Each language's messages are
 * split by area (`locales/<locale>/<area>.json`: core, account, requests, staff, admin) and
 * imported as modules, so the binary embeds them.
 */
const en = { ...enCore, ...enAccount, ...enRequests, ...enStaff, ...enAdmin };

/** A message key. */
export type MessageKey = keyof typeof en;

/** Every language's catalogue, by locale. */
export const CATALOGUES: Record<Locale, Record<MessageKey, string>> = {
  en,
  ru: { ...ruCore, ...ruAccount, ...ruRequests, ...ruStaff, ...ruAdmin },
  uk: { ...ukCore, ...ukAccount, ...ukRequests, ...ukStaff, ...ukAdmin },
};

/** The locale to answer in: the user's Telegram language when spoken, else the fallback. */
export function pickLocale(languageCode: string | undefined, fallback: Locale): Locale {
  const base = languageCode?.toLowerCase().split(/[-_]/)[0];
  return SUPPORTED_LOCALES.find((locale) => locale === base) ?? fallback;
}

/** The message `key` in `locale` with `{name}` placeholders filled from `params`. */
export function translate(
  locale: Locale,
  key: MessageKey,
  params: Record<string, string | number> = {},
): string {
  const template = CATALOGUES[locale][key] ?? CATALOGUES.en[key];
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => String(params[name] ?? whole));
}
