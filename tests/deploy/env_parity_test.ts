import assert from "node:assert/strict";
import { ENV_NAMES } from "../../src/config.ts";

const ROOT = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));

/** What the program reads: taken from the code, so new variables are checked as they come. */
const READ_BY_CONFIG: ReadonlySet<string> = new Set(ENV_NAMES);

/** A variable assignment, set (`VAR=`) or shown with its default (`#VAR=`, no space). */
const ASSIGNMENT = /^(#?)([A-Za-z][A-Za-z0-9_]*)=(.*)$/;
/** Names whose value is a secret, or may hold one (a password inside a URL). */
const SECRET_NAME = /TOKEN|SECRET|PASSWORD|_URL$/;
/** A URL with a password in it, other than a <placeholder>. */
const URL_WITH_PASSWORD = /[a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:(?!<)[^\s/@]+@/i;

interface Assignment {
  name: string;
  value: string;
  commented: boolean;
  line: number;
}

function assignments(text: string): Assignment[] {
  return text.split("\n").flatMap((line, index) => {
    const match = line.match(ASSIGNMENT);
    return match
      ? [{ commented: match[1] === "#", name: match[2]!, value: match[3]!, line: index + 1 }]
      : [];
  });
}

/**
 * The variable names of README's environment table (the one headed `| variable |`): rows like
 * "| `NAME` | default | meaning |".
 */
function readmeTableNames(readme: string): string[] {
  const lines = readme.split("\n");
  const start = lines.findIndex((line) => /^\|\s*variable\s*\|/.test(line));
  assert.ok(start >= 0, "README.md has no environment table");
  const end = lines.findIndex((line, i) => i > start && !line.startsWith("|"));
  const table = lines.slice(start, end < 0 ? undefined : end).join("\n");
  return [...table.matchAll(/^\|\s*`([A-Za-z][A-Za-z0-9_]*)`\s*\|/gm)].map((m) => m[1]!);
}

/** Names `config.ts` reads but `listed` lacks, and names `listed` has that it does not read. */
function difference(listed: string[]) {
  const set = new Set(listed);
  return {
    missing: [...READ_BY_CONFIG].filter((name) => !set.has(name)),
    extra: [...set].filter((name) => !READ_BY_CONFIG.has(name)),
    twice: listed.filter((name, i) => listed.indexOf(name) !== i),
  };
}

Deno.test("deploy/bot.env.example documents exactly the variables config.ts reads", async (t) => {
  const text = await read("deploy/bot.env.example");
  const found = assignments(text);
  const lines = text.split("\n");

  await t.step("every variable once, and no variable the program ignores", () => {
    assert.deepEqual(difference(found.map((a) => a.name)), { missing: [], extra: [], twice: [] });
  });

  await t.step("a comment right above each variable", () => {
    const comment = (line: string) => line.startsWith("# ") && !ASSIGNMENT.test(line);
    const bare = found.filter(({ line }) => !comment(lines[line - 2] ?? ""));
    assert.deepEqual(bare.map((a) => a.name), []);
  });

  await t.step("only BOT_TOKEN is required, so every other line that is set is empty", () => {
    const set = found.filter((a) => !a.commented && a.value.trim() !== "");
    assert.deepEqual(set.map((a) => a.name), []);
    assert.ok(found.some((a) => a.name === "BOT_TOKEN" && !a.commented));
  });

  await t.step("no secret value, not even as an example", () => {
    const secrets = found.filter((a) => SECRET_NAME.test(a.name) && !a.commented);
    assert.ok(secrets.length > 0);
    assert.deepEqual(secrets.filter((a) => a.value !== "").map((a) => a.name), []);
    assert.deepEqual(lines.filter((line) => URL_WITH_PASSWORD.test(line)), []);
  });
});

Deno.test("the compose env examples hold no secret values", async () => {
  for (const file of ["deploy/postgres.env.example", "deploy/redis.env.example"]) {
    const found = assignments(await read(file));
    assert.ok(found.length > 0, file);
    assert.deepEqual(found.filter((a) => a.value !== "").map((a) => a.name), [], file);
  }
});

Deno.test("README's environment table lists exactly the variables config.ts reads", async () => {
  const names = readmeTableNames(await read("README.md"));
  const { missing, extra, twice } = difference(names);
  assert.deepEqual(
    { missing, extra, twice },
    { missing: [], extra: [], twice: [] },
    `README.md's environment table is out of step with ENV_NAMES in src/config.ts: ` +
      `missing ${JSON.stringify(missing)}, not read by the program ${JSON.stringify(extra)}, ` +
      `listed twice ${JSON.stringify(twice)}`,
  );
});
