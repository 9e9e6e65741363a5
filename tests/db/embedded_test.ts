import assert from "node:assert/strict";
import { openDatabase } from "../../src/db/database.ts";
import {
  EMBEDDED_SETTINGS,
  embeddedPaths,
  NEW_DATABASE_MIB,
  openFailure,
} from "../../src/db/embedded.ts";
import { causeChain } from "../../src/errors.ts";
import { unpackTemplate } from "../../src/db/pglite_template.ts";
import { PROJECT_ROOT } from "../../scripts/start_command.ts";
import { testDatabaseConfig } from "../support/databases.ts";

const config = testDatabaseConfig(null);

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** What the files under `dir` take on disk, in MiB (as `du -sm` counts: allocated blocks). */
async function diskUseMib(dir: string): Promise<number> {
  let bytes = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) bytes += (await diskUseMib(path)) * 1024 * 1024;
    else bytes += ((await Deno.lstat(path)).blocks ?? 0) * 512;
  }
  return bytes / 1024 / 1024;
}

Deno.test("the first start copies the shipped database; the data persists; the settings apply", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "pglite-embedded-" });
  const { dir } = embeddedPaths(dataDir);
  try {
    // A folder left behind by a start cut off while unpacking is cleared, not used.
    await Deno.mkdir(`${dir}.unpacking/base`, { recursive: true });
    const db = await openDatabase({ config, dataDir });
    try {
      assert.ok(await exists(`${dir}/PG_VERSION`));
      assert.ok(!await exists(`${dir}.unpacking`));
      for (const [name, value] of Object.entries(EMBEDDED_SETTINGS)) {
        const [row] = await db.sql.unsafe(`show ${name}`);
        assert.equal(Object.values(row ?? {})[0], value, name);
      }
      await db.sql`create table kept (note text)`;
      await db.sql`insert into kept values ('still here')`;
    } finally {
      await db.close();
    }
    // What a full disk's error says a new database needs covers what it takes.
    const used = await diskUseMib(dir);
    assert.ok(used <= NEW_DATABASE_MIB, `a new database takes ${used.toFixed(1)} MiB`);
    const again = await openDatabase({ config, dataDir });
    try {
      assert.deepEqual([...await again.sql`select note from kept`], [{ note: "still here" }]);
    } finally {
      await again.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("an empty database folder gets the template too", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "pglite-embedded-" });
  const { dir } = embeddedPaths(dataDir);
  try {
    await Deno.mkdir(dir);
    const db = await openDatabase({ config, dataDir });
    try {
      const [row] = await db.sql`select current_setting('server_version_num')::int >= 180000 as ok`;
      assert.equal(row?.ok, true);
    } finally {
      await db.close();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("unpackTemplate() refuses a damaged archive and leaves nothing behind", async () => {
  const root = await Deno.makeTempDir({ prefix: "pglite-template-" });
  try {
    const template = await Deno.readFile(
      new URL("../../src/db/pglite_template.tar.gz", import.meta.url),
    );
    await assert.rejects(
      unpackTemplate(`${root}/pglite`, template.slice(0, template.length / 2)),
    );
    assert.deepEqual([...Deno.readDirSync(root)], []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a process that uses Postgres and Redis loads neither PGlite nor its files", async () => {
  // The static import graph of the entry point: what every process loads whatever its backends.
  const { code, stdout, stderr } = await new Deno.Command("deno", {
    args: ["info", "--json", "main.ts"],
    cwd: PROJECT_ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const graph = JSON.parse(new TextDecoder().decode(stdout)) as {
    roots: string[];
    modules: Array<{
      specifier: string;
      dependencies?: Array<{ isDynamic?: boolean; code?: { specifier: string } }>;
    }>;
  };
  const bySpecifier = new Map(graph.modules.map((module) => [module.specifier, module]));
  const loaded = new Set<string>();
  const pending = [...graph.roots];
  while (pending.length > 0) {
    const specifier = pending.pop()!;
    if (loaded.has(specifier)) continue;
    loaded.add(specifier);
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dependency.code && !dependency.isDynamic) pending.push(dependency.code.specifier);
    }
  }
  const heavy = [...loaded].filter((specifier) =>
    /pglite|\.wasm$|\.data$|\.tar\.gz$|redis_store\.ts$|resp(_\w+)?\.ts$/.test(specifier)
  );
  assert.deepEqual(heavy, []);
});

Deno.test("a full disk at start says how much room the embedded database needs", () => {
  const full = new Error("No space left on device (os error 28)");
  assert.equal(
    causeChain(openFailure("./data/pglite", true, full)),
    `could not open the embedded database in ./data/pglite (a new database needs about ` +
      `${NEW_DATABASE_MIB} MiB free under DATA_DIR): No space left on device (os error 28)`,
  );
  assert.match(
    causeChain(openFailure("./data/pglite", false, new Error("write failed", { cause: full }))),
    /^could not open the embedded database in \.\/data\/pglite \(the disk under DATA_DIR is full: .*\): write failed: No space left/,
  );
  assert.equal(
    causeChain(openFailure("./data/pglite", true, new Error("permission denied"))),
    "could not open the embedded database in ./data/pglite: permission denied",
  );
});
