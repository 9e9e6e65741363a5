const encoder = new TextEncoder();

/**
 * Compares two secrets in time that does not depend on where they differ. Both sides are
 * hashed first, so neither the position of a mismatch nor the secret's length leaks.
 */
export async function secureEquals(given: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(given)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
  return diff === 0;
}
