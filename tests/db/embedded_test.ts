import assert from "node:assert/strict";
import { openDatabase } from "../../src/db/database.ts";
import { EMBEDDED_SETTINGS, embeddedPaths } from "../../src/db/embedded.ts";
import { unpackTemplate } from "../../src/db/pglite_template.ts";
import { PROJECT_ROOT } from "../../scripts/start_command.ts";
import { testDatabaseConfig } from "../support/databases.ts";

const config = testDatabaseConfig(null);

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
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
