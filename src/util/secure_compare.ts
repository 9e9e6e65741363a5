/**
 * Compares two secrets in time that does not depend on where they differ. Every UTF-16 code
 * unit of the expected secret is compared, whatever was given, and the differences are OR-ed
 * together with no early exit: the time depends on the expected secret's length alone, which is
 * the same for every request, so neither the position of a mismatch nor how long the guess was
 * can be learnt from it. Plain arithmetic on the strings: hashing both sides with
 * `node:crypto` (what this did before) cost every webhook request two native calls and 0.7 KiB
 * of garbage for the same guarantee.
 */
export function secureEquals(given: string, expected: string): boolean {
  // A code unit past the end of `given` reads as NaN, which `^` takes as 0: that position then
  // differs unless the expected unit is 0, and the lengths' difference covers that case.
  let difference = given.length ^ expected.length;
  for (let i = 0; i < expected.length; i++) {
    difference |= given.charCodeAt(i) ^ expected.charCodeAt(i);
  }
  return difference === 0;
}

/**
 * {@link secureEquals} against one fixed secret: what a check on every request (the webhook's
 * secret token, the metrics token) uses.
 */
export function secretMatcher(expected: string): (given: string) => boolean {
  return (given) => secureEquals(given, expected);
}
