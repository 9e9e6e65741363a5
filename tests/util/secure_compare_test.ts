import assert from "node:assert/strict";
import { secretMatcher, secureEquals } from "../../src/util/secure_compare.ts";

Deno.test("secureEquals() and secretMatcher() are true exactly when the strings are equal", async (t) => {
  const cases: Array<{ given: string; expected: string; equal: boolean }> = [
    { given: "s3cret-token_1", expected: "s3cret-token_1", equal: true },
    { given: "", expected: "", equal: true },
    { given: "ключ🔑", expected: "ключ🔑", equal: true },
    { given: "s3cret-token_2", expected: "s3cret-token_1", equal: false },
    { given: "S3cret-token_1", expected: "s3cret-token_1", equal: false },
    { given: "s3cret-token_1 ", expected: "s3cret-token_1", equal: false },
    { given: "s3cret", expected: "s3cret-token_1", equal: false },
    { given: "", expected: "s3cret-token_1", equal: false },
    { given: "s3cret-token_1", expected: "", equal: false },
    { given: "ключ", expected: "ключ🔑", equal: false },
    { given: "s3cret-token_1x", expected: "s3cret-token_1", equal: false },
    { given: "a", expected: "a\u0000", equal: false },
    { given: "a\u0000", expected: "a", equal: false },
    { given: "\u0000", expected: "", equal: false },
    { given: "b", expected: "a", equal: false },
  ];
  for (const { given, expected, equal } of cases) {
    await t.step(`${JSON.stringify(given)} vs ${JSON.stringify(expected)}`, () => {
      assert.equal(secureEquals(given, expected), equal);
      assert.equal(secretMatcher(expected)(given), equal);
    });
  }
});
