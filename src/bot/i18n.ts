import en from "../../locales/en.json" with { type: "json" };
import ru from "../../locales/ru.json" with { type: "json" };
import { type Locale, SUPPORTED_LOCALES } from "../config.ts";

/** A message key; English is the reference catalogue every language must match. */
export type MessageKey = keyof typeof en;

/** Every language's catalogue, by locale. Imported as modules so the binary embeds them. */
export const CATALOGUES: Record<Locale, Record<MessageKey, string>> = { en, ru };

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
