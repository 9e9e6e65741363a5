import assert from "node:assert/strict";
import { entriesOf, packTar, TEMPLATE_PATH } from "../../scripts/pglite_template.ts";
import { unpackTemplate } from "../../src/db/pglite_template.ts";

Deno.test("the template's archive: equal files packed once, unpacked as files of their own", async () => {
  const root = await Deno.makeTempDir({ prefix: "pglite-template-" });
  try {
    const source = `${root}/source`;
    await Deno.mkdir(`${source}/base/1`, { recursive: true });
    await Deno.mkdir(`${source}/base/4`, { recursive: true });
    await Deno.mkdir(`${source}/pg_tblspc`);
    const catalog = new Uint8Array(8192).map((_, i) => i % 251);
    await Deno.writeFile(`${source}/base/1/1259`, catalog);
    await Deno.writeFile(`${source}/base/4/1259`, catalog);
    await Deno.writeTextFile(`${source}/PG_VERSION`, "18\n");
    await Deno.writeTextFile(`${source}/postmaster.pid`, "12345\n");

    const entries = await entriesOf(source);
    assert.deepEqual(entries.map((entry) => [entry.name, entry.type, entry.linkName ?? ""]), [
      ["PG_VERSION", "0", ""],
      ["base/", "5", ""],
      ["base/1/", "5", ""],
      ["base/1/1259", "0", ""],
      ["base/4/", "5", ""],
      ["base/4/1259", "1", "base/1/1259"],
      ["pg_tblspc/", "5", ""],
    ]);
    const archive = await packTar(entries);

    const target = `${root}/pglite`;
    await unpackTemplate(target, archive as Uint8Array<ArrayBuffer>);
    assert.equal(await Deno.readTextFile(`${target}/PG_VERSION`), "18\n");
    assert.deepEqual(await Deno.readFile(`${target}/base/4/1259`), catalog);
    // A copy, not a link: a write to one database's file must not reach another's.
    assert.equal((await Deno.stat(`${target}/base/4/1259`)).nlink, 1);
    assert.ok((await Deno.stat(`${target}/pg_tblspc`)).isDirectory);
    assert.ok(!await Deno.stat(`${target}/postmaster.pid`).then(() => true, () => false));
    assert.ok(!await Deno.stat(`${target}.unpacking`).then(() => true, () => false));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the shipped template is a gzip-compressed tar of a PGlite data directory", async () => {
  const archive = await Deno.readFile(TEMPLATE_PATH);
  assert.deepEqual([...archive.subarray(0, 2)], [0x1f, 0x8b]);
  // Made with initdb's WAL dropped (see the script): a plain archive would be over 2 MB.
  assert.ok(archive.length < 1.5 * 1024 * 1024, `${archive.length} bytes`);
});
