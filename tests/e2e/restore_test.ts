/**
 * `restore` as an operator uses it: a backup's bare name from BACKUP_DIR, a refusal while the
 * bot runs against the same database (embedded or Postgres) unless `--force`, usage errors,
 * and a damaged file's cause said once.
 */
import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { startPostgres } from "../support/postgres_server.ts";
import { BotProcess } from "./program.ts";

/** Migrates the database of `cwd` with `env`, makes a backup and returns its file name. */
async function backupIn(
  api: FakeBotApi,
  cwd: string,
  env: Record<string, string> = {},
): Promise<string> {
  // A backup of the current schema, so that it fits the database the bot migrates.
  const migrated = await BotProcess.run({ api, cwd, env, args: ["migrate"] });
  assert.equal(migrated.code, 0, migrated.stderr);
  const result = await BotProcess.run({ api, cwd, env, args: ["backup"] });
  assert.equal(result.code, 0, result.stderr);
  const written = /^backup written: \S+\/(service-desk-bot-\S+\.backup\.gz)$/m.exec(result.stdout);
  assert.ok(written, result.stdout);
  return written[1]!;
}

Deno.test("restore: a bare name from BACKUP_DIR; refused while the embedded bot runs unless --force", async (t) => {
  await using api = await FakeBotApi.start();
  const cwd = await Deno.makeTempDir({ prefix: "bot-e2e-restore-" });
  const restore = (args: string[]) => BotProcess.run({ api, cwd, args: ["restore", ...args] });
  try {
    let name = "";
    await t.step("a bare name is looked up in BACKUP_DIR", async () => {
      name = await backupIn(api, cwd);
      const result = await restore([name, "--force"]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        result.stdout,
        new RegExp(`^restoring backups/${name.replaceAll(".", "\\.")} `, "m"),
      );
      assert.match(result.stdout, /^restored in \d+ ms: /m);
    });

    await t.step("a name that is not in BACKUP_DIR says where it looked", async () => {
      const result = await restore(["service-desk-bot-19990101T000000Z.backup.gz"]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /cannot read backup backups\/service-desk-bot-19990101T000000Z/);
    });

    await t.step("no file is a usage error (exit 2)", async () => {
      for (const args of [[], ["--force"], ["a", "b"]]) {
        const result = await restore(args);
        assert.equal(result.code, 2, `restore ${args.join(" ")}: ${result.stderr}`);
        assert.match(result.stderr, /usage: restore FILE \[--force\]/);
      }
    });

    await t.step(
      "while the bot runs: refused, saying what was found; --force warns and restores",
      async () => {
        await using bot = await BotProcess.start({ api, cwd });
        await bot.waitReady();
        let result = await restore([name]);
        assert.equal(result.code, 1);
        assert.match(
          result.stderr,
          /the bot is running against this database \(a running instance serves the embedded database on \.\/data\/pglite\.sock\)/,
        );
        assert.match(result.stderr, /stop it first/);
        assert.doesNotMatch(result.stdout, /^restored/m);

        result = await restore([name, "--force"]);
        assert.equal(result.code, 0, result.stderr);
        assert.match(
          result.stderr,
          /^warning: the bot is running against this database .*--force/m,
        );
        assert.match(result.stdout, /^restored in \d+ ms/m);
        assert.equal((await bot.stop()).code, 0);
      },
    );

    await t.step("a damaged file: refused, its cause said once", async () => {
      const path = `${cwd}/backups/${name}`;
      const bytes = await Deno.readFile(path);
      await Deno.writeFile(path, bytes.slice(0, bytes.length >> 1));
      const result = await restore([name, "--force"]);
      assert.equal(result.code, 1);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
      const cause = /damaged \(([^)]+)\)/.exec(result.stderr)?.[1] ??
        /complete backup file: (.+)$/m.exec(result.stderr)?.[1];
      assert.ok(cause, result.stderr);
      assert.equal(result.stderr.split(cause).length - 1, 1, `said twice: ${result.stderr}`);
    });
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("restore: refused while a bot is connected to the same Postgres database", async () => {
  await using api = await FakeBotApi.start();
  await using pg = await startPostgres();
  const env = { DATABASE_URL: await pg.createDatabase("desk") };
  const cwd = await Deno.makeTempDir({ prefix: "bot-e2e-restore-pg-" });
  try {
    const name = await backupIn(api, cwd, env);
    const restore = (args: string[]) =>
      BotProcess.run({ api, cwd, env, args: ["restore", name, ...args] });
    {
      await using bot = await BotProcess.start({ api, cwd, env });
      await bot.waitReady();
      const result = await restore([]);
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        new RegExp(
          `the bot is running against this database \\(\\d+ connections? named ` +
            `service-desk-bot from 127\\.0\\.0\\.1 in postgres 127\\.0\\.0\\.1:${pg.port}/desk, ` +
            `the oldest open since \\d{4}-`,
        ),
      );
      const forced = await restore(["--force"]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(forced.stderr, /^warning: the bot is running against this database/m);
      assert.equal((await bot.stop()).code, 0);
    }
    // Stopped (the database is as empty as the backup): restored without a word on stderr.
    const result = await restore([]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, "");
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
