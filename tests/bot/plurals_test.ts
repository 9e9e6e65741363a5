/**
 * Every count the bot prints agrees with its number in each language: Russian and Ukrainian
 * have three forms (1 раз, 3 раза, 5 раз; 21 is like 1 and 11 like 5), English two.
 */
import assert from "node:assert/strict";
import type { Locale } from "../../src/config.ts";
import { type MessageKey, translate } from "../../src/bot/i18n.ts";

/** The messages that print a number of something, with the parameters they need. */
const COUNTED: Array<{ key: MessageKey; count: string; params?: Record<string, string | number> }> =
  [
    { key: "gate.limited", count: "seconds" },
    { key: "gate.banned", count: "minutes" },
    { key: "dialog.expired", count: "hours" },
    { key: "requests.step.description", count: "max", params: { min: 1 } },
    { key: "requests.step.edit", count: "max", params: { min: 1 } },
    { key: "requests.description.too_short", count: "length", params: { min: 10 } },
    { key: "requests.description.too_short", count: "min", params: { length: 3 } },
    { key: "requests.description.too_long", count: "length", params: { max: 2000 } },
    { key: "alert.repeats", count: "count" },
    { key: "admin.metrics.cache", count: "lookups", params: { rate: "50.0 %", hits: 1 } },
    { key: "admin.stats.median", count: "done", params: { duration: "01:00:00" } },
    { key: "admin.duration.days", count: "days" },
  ];

const NUMBERS = [1, 2, 5, 11, 21] as const;

/** The expected text of a few messages for 1, 2, 5, 11 and 21. */
const EXPECTED: Array<{ locale: Locale; key: MessageKey; count: string; forms: string[] }> = [
  {
    locale: "ru",
    key: "alert.repeats",
    count: "count",
    forms: ["ещё 1 раз.", "ещё 2 раза.", "ещё 5 раз.", "ещё 11 раз.", "ещё 21 раз."],
  },
  {
    locale: "uk",
    key: "alert.repeats",
    count: "count",
    forms: ["ще 1 раз.", "ще 2 рази.", "ще 5 разів.", "ще 11 разів.", "ще 21 раз."],
  },
  {
    locale: "en",
    key: "alert.repeats",
    count: "count",
    forms: ["1 more time", "2 more times", "5 more times", "11 more times", "21 more times"],
  },
  {
    locale: "ru",
    key: "gate.limited",
    count: "seconds",
    forms: [
      "Подождите 1 секунду ",
      "Подождите 2 секунды ",
      "Подождите 5 секунд ",
      "Подождите 11 секунд ",
      "Подождите 21 секунду ",
    ],
  },
  {
    locale: "uk",
    key: "gate.banned",
    count: "minutes",
    forms: ["1 хвилину.", "2 хвилини.", "5 хвилин.", "11 хвилин.", "21 хвилину."],
  },
  {
    locale: "ru",
    key: "dialog.expired",
    count: "hours",
    forms: ["1 час без", "2 часа без", "5 часов без", "11 часов без", "21 час без"],
  },
  {
    locale: "uk",
    key: "admin.duration.days",
    count: "days",
    forms: ["1 день", "2 дні", "5 днів", "11 днів", "21 день"],
  },
  {
    locale: "ru",
    key: "requests.description.too_short",
    count: "length",
    forms: [
      "Слишком коротко (1 символ)",
      "Слишком коротко (2 символа)",
      "Слишком коротко (5 символов)",
      "Слишком коротко (11 символов)",
      "Слишком коротко (21 символ)",
    ],
  },
  {
    locale: "ru",
    key: "admin.stats.median",
    count: "done",
    forms: [
      "(по 1 выполненной заявке)",
      "(по 2 выполненным заявкам)",
      "(по 5 выполненным заявкам)",
      "(по 11 выполненным заявкам)",
      "(по 21 выполненной заявке)",
    ],
  },
];

Deno.test("translate() gives each counted message the form its number needs", async (t) => {
  for (const { locale, key, count, forms } of EXPECTED) {
    await t.step(`${locale} ${key}`, () => {
      const rendered = NUMBERS.map((n) => translate(locale, key, { [count]: n }));
      for (const [i, form] of forms.entries()) {
        assert.ok(rendered[i]!.includes(form), `${NUMBERS[i]}: "${form}" not in "${rendered[i]}"`);
      }
    });
  }
});

Deno.test("translate() leaves no plural block unexpanded in any counted message", async (t) => {
  for (const { key, count, params } of COUNTED) {
    for (const locale of ["en", "ru", "uk"] as const) {
      await t.step(`${locale} ${key} (${count})`, () => {
        for (const n of NUMBERS) {
          const text = translate(locale, key, { ...params, [count]: n });
          assert.doesNotMatch(text, /[{}#]|plural/, `${n}: ${text}`);
          assert.match(text, new RegExp(`(^|\\D)${n}(\\D|$)`), `${n} missing: ${text}`);
        }
      });
    }
  }
});

Deno.test("translate() in English: one of a thing, otherwise things", async (t) => {
  const cases: Array<[MessageKey, Record<string, number>, string]> = [
    ["gate.limited", { seconds: 1 }, "wait 1 second,"],
    ["gate.limited", { seconds: 30 }, "wait 30 seconds,"],
    ["gate.banned", { minutes: 1 }, "for 1 minute."],
    ["dialog.expired", { hours: 24 }, "after 24 hours without"],
    ["admin.duration.days", { days: 1 }, "1 day"],
    ["admin.stats.median", { done: 1 }, "(over 1 done request)"],
  ];
  for (const [key, params, expected] of cases) {
    await t.step(`${key} ${JSON.stringify(params)}`, () => {
      assert.ok(translate("en", key, params).includes(expected), translate("en", key, params));
    });
  }
});
