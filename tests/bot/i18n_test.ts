import assert from "node:assert/strict";
import { type Locale, SUPPORTED_LOCALES } from "../../src/config.ts";
import { CATALOGUES, pickLocale, translate } from "../../src/bot/i18n.ts";

const placeholders = (text: string) => [...new Set(text.match(/\{\w+\}/g) ?? [])].sort();

Deno.test("CATALOGUES has one catalogue per supported locale", () => {
  assert.deepEqual(Object.keys(CATALOGUES).sort(), [...SUPPORTED_LOCALES].sort());
});

Deno.test("CATALOGUES have the same keys in every language", async (t) => {
  const all = new Set(SUPPORTED_LOCALES.flatMap((locale) => Object.keys(CATALOGUES[locale])));
  assert.ok(all.size > 0);
  for (const locale of SUPPORTED_LOCALES) {
    await t.step(locale, () => {
      const keys = new Set(Object.keys(CATALOGUES[locale]));
      const missing = [...all].filter((key) => !keys.has(key));
      assert.deepEqual(missing, [], `${locale} lacks ${missing.join(", ")}`);
      const extra = [...keys].filter((key) => !(key in CATALOGUES.en));
      assert.deepEqual(extra, [], `${locale} has keys English lacks: ${extra.join(", ")}`);
      for (const [key, text] of Object.entries(CATALOGUES[locale])) {
        assert.ok(typeof text === "string" && text.trim() !== "", `${locale}.${key} is empty`);
      }
    });
  }
});

Deno.test("CATALOGUES use the same placeholders in every language", async (t) => {
  for (const [key, english] of Object.entries(CATALOGUES.en)) {
    await t.step(key, () => {
      for (const locale of SUPPORTED_LOCALES) {
        const text = (CATALOGUES[locale] as Record<string, string>)[key] ?? "";
        assert.deepEqual(placeholders(text), placeholders(english), `${locale}.${key}`);
      }
    });
  }
});

Deno.test("pickLocale() picks the user's language when spoken, else the fallback", async (t) => {
  const cases: Array<{ code: string | undefined; fallback: Locale; locale: Locale }> = [
    { code: "ru", fallback: "en", locale: "ru" },
    { code: "ru-RU", fallback: "en", locale: "ru" },
    { code: "RU", fallback: "en", locale: "ru" },
    { code: "ru_RU", fallback: "en", locale: "ru" },
    { code: "en", fallback: "ru", locale: "en" },
    { code: "en-GB", fallback: "ru", locale: "en" },
    { code: "de", fallback: "en", locale: "en" },
    { code: "de", fallback: "ru", locale: "ru" },
    { code: "", fallback: "ru", locale: "ru" },
    { code: undefined, fallback: "en", locale: "en" },
    { code: undefined, fallback: "ru", locale: "ru" },
  ];
  for (const { code, fallback, locale } of cases) {
    await t.step(`${JSON.stringify(code)} with fallback ${fallback} → ${locale}`, () => {
      assert.equal(pickLocale(code, fallback), locale);
    });
  }
});

Deno.test("translate() fills placeholders and keeps unknown ones", () => {
  const greeting = translate("ru", "start.greeting", { name: "Анна" });
  assert.ok(greeting.startsWith("Здравствуйте, Анна!"), greeting);
  assert.ok(!greeting.includes("{name}"));
  assert.match(translate("en", "unknown.command", { command: "/foo" }), /\/foo/);
  assert.match(translate("en", "unknown.command"), /\{command\}/);
});
