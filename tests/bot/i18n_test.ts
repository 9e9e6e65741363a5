import assert from "node:assert/strict";
import { type Locale, SUPPORTED_LOCALES } from "../../src/config.ts";
import { CATALOGUES, pickLocale, translate } from "../../src/bot/i18n.ts";

/** The parameters a message uses: `{name}` placeholders and the numbers of plural blocks. */
const placeholders = (text: string) =>
  [...new Set([...text.matchAll(/\{(\w+)(?=\}|, plural,)/g)].map((m) => m[1]!))].sort();

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

Deno.test("translate() picks each language's plural form with Intl.PluralRules", async (t) => {
  const cases: Array<[Locale, number, string]> = [
    ["ru", 1, "1 заявка"],
    ["ru", 2, "2 заявки"],
    ["ru", 5, "5 заявок"],
    ["ru", 21, "21 заявка"],
    ["ru", 0, "нет заявок"],
    ["uk", 3, "3 заявки"],
    ["uk", 11, "11 заявок"],
    ["en", 1, "1 request"],
    ["en", 7, "7 requests"],
  ];
  const catalogue = CATALOGUES as unknown as Record<Locale, Record<string, string>>;
  const saved = SUPPORTED_LOCALES.map((l) => catalogue[l]["test.plural"]);
  catalogue.en["test.plural"] = "{n, plural, one {# request} other {# requests}}";
  catalogue.ru["test.plural"] =
    "{n, plural, =0 {нет заявок} one {# заявка} few {# заявки} many {# заявок} other {# заявки}}";
  catalogue.uk["test.plural"] =
    "{n, plural, one {# заявка} few {# заявки} many {# заявок} other {# заявки}}";
  try {
    for (const [locale, n, expected] of cases) {
      await t.step(`${locale} ${n}`, () => {
        assert.equal(translate(locale, "test.plural" as never, { n }), expected);
      });
    }
  } finally {
    for (const [i, locale] of SUPPORTED_LOCALES.entries()) {
      if (saved[i] === undefined) delete catalogue[locale]["test.plural"];
    }
  }
});
