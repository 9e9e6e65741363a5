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
import enConversation from "../../locales/en/conversation.json" with { type: "json" };
import enBackground from "../../locales/en/background.json" with { type: "json" };
import ruConversation from "../../locales/ru/conversation.json" with { type: "json" };
import ruBackground from "../../locales/ru/background.json" with { type: "json" };
import ukConversation from "../../locales/uk/conversation.json" with { type: "json" };
import ukBackground from "../../locales/uk/background.json" with { type: "json" };
import { type Locale, SUPPORTED_LOCALES } from "../config.ts";

/**
 * English, the reference catalogue every language must match. Each language's messages are
 * split by area (`locales/<locale>/<area>.json`: core, account, requests, staff, admin,
 * conversation, background) and
 * imported as modules, so the binary embeds them.
 */
const en = {
  ...enCore,
  ...enAccount,
  ...enRequests,
  ...enStaff,
  ...enAdmin,
  ...enConversation,
  ...enBackground,
};

/** A message key. */
export type MessageKey = keyof typeof en;

/** Every language's catalogue, by locale. */
export const CATALOGUES: Record<Locale, Record<MessageKey, string>> = {
  en,
  ru: {
    ...ruCore,
    ...ruAccount,
    ...ruRequests,
    ...ruStaff,
    ...ruAdmin,
    ...ruConversation,
    ...ruBackground,
  },
  uk: {
    ...ukCore,
    ...ukAccount,
    ...ukRequests,
    ...ukStaff,
    ...ukAdmin,
    ...ukConversation,
    ...ukBackground,
  },
};

/** The locale to answer in: the user's Telegram language when spoken, else the fallback. */
export function pickLocale(languageCode: string | undefined, fallback: Locale): Locale {
  const base = languageCode?.toLowerCase().split(/[-_]/)[0];
  return SUPPORTED_LOCALES.find((locale) => locale === base) ?? fallback;
}

/**
 * The message `key` in `locale` with `{name}` placeholders filled from `params`. A plural
 * block `{count, plural, one {# file} few {# files} many {# files} other {# files}}` picks
 * the form Intl.PluralRules gives for the language (`=0`-style exact forms first), with `#`
 * standing for the number; the forms may hold placeholders themselves.
 */
export function translate(
  locale: Locale,
  key: MessageKey,
  params: Record<string, string | number> = {},
): string {
  const template = CATALOGUES[locale][key] ?? CATALOGUES.en[key];
  return fill(expandPlurals(template, locale, params), params);
}

function fill(template: string, params: Record<string, string | number>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => String(params[name] ?? whole));
}

const pluralRules = new Map<Locale, Intl.PluralRules>();

/** The plural category of `count` in `locale` (`one`, `few`, `many`, `other`…). */
export function pluralCategory(locale: Locale, count: number): Intl.LDMLPluralRule {
  let rules = pluralRules.get(locale);
  if (!rules) pluralRules.set(locale, rules = new Intl.PluralRules(locale));
  return rules.select(count);
}

const PLURAL_START = /\{(\w+), plural,/g;

/** Replaces every plural block of `template` by the form that fits its number. */
function expandPlurals(
  template: string,
  locale: Locale,
  params: Record<string, string | number>,
): string {
  if (!template.includes(", plural,")) return template;
  let out = "";
  let at = 0;
  for (const match of template.matchAll(PLURAL_START)) {
    if (match.index < at) continue;
    const block = parsePluralBlock(template, match.index + match[0].length);
    if (block === null) continue;
    const value = Number(params[match[1]!]);
    const forms = block.forms;
    const chosen = forms.get(`=${value}`) ?? forms.get(pluralCategory(locale, value)) ??
      forms.get("other") ?? "";
    out += template.slice(at, match.index) + chosen.replaceAll("#", String(params[match[1]!]));
    at = block.end;
  }
  return out + template.slice(at);
}

/** The forms of a plural block whose selectors start at `from`, and where the block ends. */
function parsePluralBlock(
  text: string,
  from: number,
): { forms: Map<string, string>; end: number } | null {
  const forms = new Map<string, string>();
  let i = from;
  for (;;) {
    while (text[i] === " ") i++;
    if (text[i] === "}") return { forms, end: i + 1 };
    const selector = /^(=\d+|\w+) ?\{/.exec(text.slice(i));
    if (!selector) return null;
    i += selector[0].length;
    let depth = 1;
    const start = i;
    while (i < text.length && depth > 0) {
      if (text[i] === "{") depth++;
      else if (text[i] === "}") depth--;
      i++;
    }
    if (depth !== 0) return null;
    forms.set(selector[1]!, text.slice(start, i - 1));
  }
}
