import assert from "node:assert/strict";
import { openDatabase } from "../../src/db/database.ts";
import { MIGRATION_FILES } from "../../src/db/migration_files.ts";
import { FakeBotApi } from "../fake_bot_api.ts";
import { testDatabaseConfig } from "../support/databases.ts";
import { startPostgres } from "../support/postgres_server.ts";
import { holdMigrationLock } from "../support/migration_lock.ts";
import { startRedis } from "../support/redis_server.ts";
import { BotProcess, freePort, metricSample } from "./program.ts";

/** The migrations the program ships, in order, and the schema version they reach. */
const MIGRATIONS = Object.keys(MIGRATION_FILES).sort();
const LATEST = MIGRATIONS.length;

interface HealthBody {
  status: string;
  checks: Record<string, Array<{ status: string; output?: string }>>;
}

async function health(bot: BotProcess): Promise<{ code: number; body: HealthBody }> {
  const { status, body } = await bot.get("/health");
  return { code: status, body: JSON.parse(body) };
}

/** Polls `/health` until `check` has `status`. */
async function waitForCheck(bot: BotProcess, check: string, status: string): Promise<HealthBody> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { body } = await health(bot);
    if (body.checks[check]?.[0]?.status === status) return body;
    if (Date.now() > deadline) {
      throw new Error(`${check} never became ${status}: ${JSON.stringify(body.checks)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

Deno.test("embedded storage: users and the event log survive a restart; one instance per DATA_DIR", async () => {
  await using api = await FakeBotApi.start();
  const cwd = await Deno.makeTempDir({ prefix: "bot-e2e-storage-" });
  {
    await using bot = await BotProcess.start({ api, cwd });
    await bot.waitReady();
    const ready = bot.logs(/^ready as /)[0]!;
    assert.match(String(ready.storage), /^database pglite \.\/data\/pglite, store deno-kv/);
    const { code, body } = await health(bot);
    assert.equal(code, 200);
    // Passing checks carry no output (application/health+json); the schema is current.
    assert.deepEqual(
      { ...body.checks["database:responseTime"]?.[0], observedValue: 0, time: "" },
      {
        componentType: "datastore",
        status: "pass",
        observedValue: 0,
        observedUnit: "ms",
        time: "",
      },
    );
    assert.equal(body.checks["store:responseTime"]?.[0]?.status, "pass");

    api.pushMessage({ chatId: 501, text: "/start", firstName: "Alice" });
    await api.waitFor(() => api.sentMessages(501).length === 1, 15_000, "a greeting");

    // A second instance on the same DATA_DIR would corrupt the embedded database.
    const second = await BotProcess.run({ api, cwd, env: { HTTP_PORT: String(freePort()) } });
    assert.equal(second.code, 77, "a start-up that restarting cannot fix");
    assert.match(second.stdout, /in use by another running instance/);

    assert.equal((await bot.stop()).code, 0);
  }
  {
    // The stop flushed the event log; the data is on disk.
    const db = await openDatabase({ config: testDatabaseConfig(null), dataDir: `${cwd}/data` });
    try {
      const users = await db.sql`select id, first_name from users`;
      assert.deepEqual([...users], [{ id: 501, first_name: "Alice" }]);
      const events = await db.sql`select user_id, command, outcome from events`;
      assert.deepEqual([...events], [{ user_id: 501, command: "/start", outcome: "handled" }]);
    } finally {
      await db.close();
    }
  }
  {
    await using bot = await BotProcess.start({ api, cwd });
    await bot.waitReady();
    api.pushMessage({ chatId: 501, text: "/help", firstName: "Alice" });
    await api.waitFor(() => api.sentMessages(501).length === 2, 15_000, "help");
    // The profile cached before the restart is still there: no database round trip.
    const metrics = (await bot.get("/metrics")).body;
    assert.equal(metricSample(metrics, 'bot_user_cache_total{result="hit"}'), 1);
    assert.equal(metricSample(metrics, 'bot_user_cache_total{result="miss"}'), 0);
    assert.equal((await bot.stop()).code, 0);
  }
  await Deno.remove(cwd, { recursive: true });
});

Deno.test("Postgres and Redis: cache hits for returning users; outages of either are survived and reported", async () => {
  await using api = await FakeBotApi.start();
  await using pg = await startPostgres();
  await using redis = await startRedis();
  const databaseUrl = await pg.createDatabase("desk");
  await using bot = await BotProcess.start({
    api,
    env: { DATABASE_URL: databaseUrl, REDIS_URL: redis.url, REDIS_KEY_PREFIX: "e2e:" },
  });
  await bot.waitReady();
  assert.match(
    String(bot.logs(/^ready as /)[0]!.storage),
    new RegExp(`^database postgres 127\\.0\\.0\\.1:${pg.port}/desk, store redis 127\\.0\\.0\\.1`),
  );

  let replies = 0;
  const say = async (text: string, chatId = 601) => {
    api.pushMessage({ chatId, text, firstName: "Olga" });
    replies++;
    await api.waitFor(() => api.sentMessages().length === replies, 15_000, `a reply to ${text}`);
  };
  await say("/start");
  for (let i = 0; i < 5; i++) await say("/help");
  let metrics = (await bot.get("/metrics")).body;
  assert.equal(metricSample(metrics, 'bot_user_cache_total{result="miss"}'), 1);
  assert.equal(metricSample(metrics, 'bot_user_cache_total{result="hit"}'), 5);

  // Redis goes away: profiles come from Postgres, the bot keeps answering, /health says so.
  await redis.stop();
  const down = await waitForCheck(bot, "store:responseTime", "fail");
  assert.equal(down.status, "fail");
  assert.equal((await bot.get("/health")).status, 503);
  await say("/help");
  metrics = (await bot.get("/metrics")).body;
  assert.ok(metricSample(metrics, 'bot_user_cache_total{result="error"}') >= 1);
  // The gate dedups and limits in memory meanwhile.
  assert.ok(metricSample(metrics, 'bot_gate_total{outcome="store_down"}') >= 1);
  await redis.start();
  await waitForCheck(bot, "store:responseTime", "pass");
  await say("/help");

  // Postgres goes away: returning users are served from the cache, events wait in the queue.
  await pg.stop();
  await waitForCheck(bot, "database:responseTime", "fail");
  await say("/help");
  await say("/start", 602); // a new user: no profile, but still an answer
  await pg.start();
  const up = await waitForCheck(bot, "database:responseTime", "pass");
  assert.equal(up.status, "pass");
  await say("/help", 602);

  assert.equal((await bot.stop()).code, 0);
  assert.equal(bot.logs(/unhandled/).length, 0);
  // Every handled update reached the event log, outage or not.
  const { default: postgres } = await import("postgres");
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`select count(*)::int as n from events`;
    assert.equal(row!.n, replies);
    const users = await sql`select id from users order by id`;
    assert.deepEqual(users.map((u) => u.id), ["601", "602"]);
  } finally {
    await sql.end();
  }
});

Deno.test("a hung Postgres (SIGSTOP: connections open, no answers) fails queries instead of hanging updates", async () => {
  await using api = await FakeBotApi.start();
  await using pg = await startPostgres();
  await using redis = await startRedis();
  const databaseUrl = await pg.createDatabase("desk");
  await using bot = await BotProcess.start({
    api,
    // A query sent gets 1 + 1 s to be answered.
    env: {
      DATABASE_URL: databaseUrl,
      REDIS_URL: redis.url,
      DB_STATEMENT_TIMEOUT: "1",
      DB_CONNECT_TIMEOUT: "1",
    },
  });
  await bot.waitReady();
  let replies = 0;
  const say = async (text: string, chatId: number) => {
    api.pushMessage({ chatId, text, firstName: "Nina" });
    replies++;
    await api.waitFor(() => api.sentMessages().length === replies, 15_000, `a reply to ${text}`);
    return api.sentMessages().at(-1)!.text;
  };
  const welcome = await say("/start", 701);
  await bot.waitForLog(/^update handled$/);

  await pg.signal("SIGSTOP");
  // A new user's registration queries the hung server: it is answered all the same, as when
  // Postgres is down, once the query has had its time.
  const started = Date.now();
  assert.equal(await say("/start", 702), welcome);
  assert.ok(Date.now() - started < 10_000, `answered after ${Date.now() - started} ms`);
  await waitForCheck(bot, "database:responseTime", "fail");
  assert.ok(bot.logs(/^database connection lost/).length >= 1);
  assert.match(
    String(bot.logs(/^database connection lost/)[0]!.error),
    /did not answer within 2000 ms/,
  );
  // A returning user is served from the cache meanwhile.
  assert.match(await say("/help", 701), /^Here is what I can do:/);

  await pg.signal("SIGCONT");
  await waitForCheck(bot, "database:responseTime", "pass");
  assert.match(await say("/help", 702), /^Here is what I can do:/);
  assert.equal((await bot.stop()).code, 0);
  assert.equal(bot.logs(/unhandled/).length, 0);
});

Deno.test("migrate: status, apply, and MIGRATE_ON_START=false refusing an outdated schema", async () => {
  await using api = await FakeBotApi.start();
  const cwd = await Deno.makeTempDir({ prefix: "bot-e2e-migrate-" });
  const run = (args: string[], env: Record<string, string> = {}) =>
    BotProcess.run({ api, cwd, args, env });

  let result = await run(["migrate", "status"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^0001 {2}0001_init\.sql +pending/m);
  assert.match(result.stdout, new RegExp(`schema version 0 of ${LATEST}`));

  result = await BotProcess.run({ api, cwd, env: { MIGRATE_ON_START: "false" } });
  assert.equal(result.code, 77, "an outdated schema is no reason to restart");
  assert.match(
    result.stdout,
    new RegExp(`schema is at version 0 but this program needs ${LATEST}.*migrate`),
  );

  result = await run(["migrate"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^applied 0001_init\.sql$/m);

  {
    await using bot = await BotProcess.start({ api, cwd, env: { MIGRATE_ON_START: "false" } });
    await bot.waitReady();
    // While the bot runs, commands reach its embedded database through its socket.
    result = await run(["migrate", "status"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /served by the running instance/);
    assert.match(result.stdout, /^0001 {2}0001_init\.sql +applied/m);
    assert.equal((await bot.stop()).code, 0);
  }

  result = await run(["migrate", "down", String(LATEST)]);
  assert.equal(result.code, 0, result.stderr);
  for (const name of MIGRATIONS) assert.match(result.stdout, new RegExp(`^reverted ${name}$`, "m"));
  for (const args of [["migrate", "down"], ["migrate", "down", "x"], ["migrate", "sideways"]]) {
    result = await run(args);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stdout}`);
    assert.match(result.stderr, /migrate down N|usage: migrate/);
  }
  await Deno.remove(cwd, { recursive: true });
});

Deno.test("migrate behind an operator's lock says who holds it up, then applies everything once it is released", async () => {
  await using api = await FakeBotApi.start();
  await using pg = await startPostgres();
  const url = await pg.createDatabase("migrate_locked");
  await using lock = await holdMigrationLock(url);
  // Released after the first notice (10 s), while the command waits.
  const release = setTimeout(() => lock.release().catch(() => {}), 13_000);
  try {
    const result = await BotProcess.run({ api, args: ["migrate"], env: { DATABASE_URL: url } });
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^waiting: creating schema_migrations has waited 1\d s for a lock held by a session of psql \(pid \d+, idle in transaction for \d+ s\)/m,
    );
    for (const name of MIGRATIONS) {
      assert.match(result.stdout, new RegExp(`^applied ${name}$`, "m"));
    }
  } finally {
    clearTimeout(release);
  }
});

Deno.test("backup while running, restore into a new home, refusals for non-empty and damaged files", async () => {
  await using api = await FakeBotApi.start();
  const home = await Deno.makeTempDir({ prefix: "bot-e2e-backup-" });
  const elsewhere = await Deno.makeTempDir({ prefix: "bot-e2e-restore-" });
  let file: string;
  {
    await using bot = await BotProcess.start({ api, cwd: home });
    await bot.waitReady();
    api.pushMessage({ chatId: 701, text: "/start", firstName: "Ира" });
    api.pushMessage({ chatId: 702, text: "/start", firstName: "Tom <b>&" });
    await api.waitFor(() => api.sentMessages().length === 2, 15_000, "two greetings");
    const result = await BotProcess.run({ api, cwd: home, args: ["backup"] });
    assert.equal(result.code, 0, result.stderr);
    const written = /^backup written: (\S+)$/m.exec(result.stdout);
    assert.ok(written, result.stdout);
    assert.match(written[1]!, /^\.\/backups\/service-desk-bot-\d{8}T\d{6}Z\.backup\.gz$/);
    assert.match(result.stdout, /users 2/);
    file = written[1]!.replace("./backups/", "");
    assert.equal((await bot.stop()).code, 0);
  }
  await Deno.mkdir(`${elsewhere}/backups`);
  await Deno.copyFile(`${home}/backups/${file}`, `${elsewhere}/backups/${file}`);
  const restore = (args: string[] = []) =>
    BotProcess.run({ api, cwd: elsewhere, args: ["restore", `backups/${file}`, ...args] });

  let result = await restore();
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /restored in \d+ ms: .*users 2/);

  result = await restore();
  assert.equal(result.code, 1);
  assert.match(result.stderr, /--force/);
  result = await restore(["--force"]);
  assert.equal(result.code, 0, result.stderr);

  // A damaged copy is refused before anything is touched.
  const bytes = await Deno.readFile(`${elsewhere}/backups/${file}`);
  await Deno.writeFile(`${elsewhere}/backups/${file}`, bytes.slice(0, bytes.length >> 1));
  result = await restore(["--force"]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /not a complete backup file|truncated|manifest/);

  // Files outside the sandbox cannot even be read; the message says where to put them.
  result = await BotProcess.run({ api, cwd: elsewhere, args: ["restore", "/etc/hostname"] });
  assert.equal(result.code, 1);
  assert.match(result.stderr, /put the file into BACKUP_DIR/);

  const db = await openDatabase({ config: testDatabaseConfig(null), dataDir: `${elsewhere}/data` });
  try {
    const users = await db.sql`select id, first_name from users order by id`;
    assert.deepEqual([...users], [{ id: 701, first_name: "Ира" }, {
      id: 702,
      first_name: "Tom <b>&",
    }]);
  } finally {
    await db.close();
  }
  await Deno.remove(home, { recursive: true });
  await Deno.remove(elsewhere, { recursive: true });
});

Deno.test("instances starting at once against one Postgres apply each migration exactly once", async () => {
  await using api = await FakeBotApi.start();
  await using pg = await startPostgres();
  await using redis = await startRedis();
  const databaseUrl = await pg.createDatabase("shared");
  const env = { DATABASE_URL: databaseUrl, REDIS_URL: redis.url };
  await using first = await BotProcess.start({ api, env });
  await using second = await BotProcess.start({ api, env });
  await Promise.all([first.waitReady(), second.waitReady()]);
  const applied = [...first.logs(/^applied migration/), ...second.logs(/^applied migration/)];
  // Each exactly once, whichever instance applied it (they may take turns).
  assert.deepEqual(applied.map((line) => String(line.name)).sort(), MIGRATIONS);
  await Promise.all([first.stop(), second.stop()]);
  const { default: postgres } = await import("postgres");
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`select version from schema_migrations`;
    assert.deepEqual(rows.map((r) => r.version), MIGRATIONS.map((_, i) => i + 1));
  } finally {
    await sql.end();
  }
});
