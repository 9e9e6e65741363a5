// deno-lint-ignore-file no-console -- a build script reporting to the terminal
/**
 * Makes `src/db/pglite_template.tar.gz`, the freshly initialised PGlite data directory that
 * a first start copies instead of running initdb (`src/db/pglite_template.ts`). Run it after
 * upgrading PGlite, and commit the file:
 *
 *     deno run --allow-read --allow-write --allow-env scripts/pglite_template.ts
 *
 * PGlite's own initdb makes the directory; this packs it as a gzip-compressed ustar archive
 * (`tar tzvf` lists it) in a fixed order with zero times and owners, in which a file equal to
 * an earlier one is a hard-link entry: the three databases' catalogs are nearly identical,
 * so the archive is a third of a plain one.
 *
 * @module
 */
import { PGlite } from "@electric-sql/pglite";
import { pgliteAssets } from "../src/db/pglite_assets.ts";

/** Where the template goes. */
export const TEMPLATE_PATH = new URL("../src/db/pglite_template.tar.gz", import.meta.url);

/** Left out: they describe the process that made the directory, not the database. */
const NOT_PACKED = ["postmaster.pid", "postmaster.opts"];

/** One entry of the archive. */
export interface TarEntry {
  name: string;
  mode: number;
  /** "0" a file, "1" a hard link to `linkName`, "5" a folder. */
  type: "0" | "1" | "5";
  linkName?: string;
  data?: Uint8Array;
}

/** The 512-byte ustar header of an entry (short names only: the template has no long ones). */
export function tarHeader(entry: TarEntry): Uint8Array {
  const block = new Uint8Array(512);
  const put = (offset: number, length: number, text: string) => {
    const bytes = new TextEncoder().encode(text);
    if (bytes.length > length) throw new RangeError(`tar field too long: ${text}`);
    block.set(bytes, offset);
  };
  const octal = (value: number, length: number) => value.toString(8).padStart(length - 1, "0");
  put(0, 100, entry.name);
  put(100, 8, octal(entry.mode, 8));
  put(108, 8, octal(0, 8));
  put(116, 8, octal(0, 8));
  put(124, 12, octal(entry.data?.length ?? 0, 12));
  put(136, 12, octal(0, 12));
  put(148, 8, "        ");
  put(156, 1, entry.type);
  put(157, 100, entry.linkName ?? "");
  put(257, 8, "ustar\x0000");
  const sum = block.reduce((total, byte) => total + byte, 0);
  put(148, 8, `${octal(sum, 7)}\0`);
  return block;
}

/** The archive of `entries`, gzip-compressed. */
export async function packTar(entries: TarEntry[]): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (const entry of entries) {
    parts.push(tarHeader(entry));
    if (entry.data && entry.data.length > 0) {
      parts.push(entry.data, new Uint8Array((512 - (entry.data.length % 512)) % 512));
    }
  }
  parts.push(new Uint8Array(1024));
  const stream = new Blob(parts as BlobPart[]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The files and folders under `root`, sorted, with equal files as links to the first one. */
export async function entriesOf(root: string): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  const seen = new Map<string, string>();
  const walk = async (relative: string) => {
    const names = [];
    for await (const entry of Deno.readDir(`${root}/${relative}`)) names.push(entry);
    names.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    for (const entry of names) {
      const name = relative ? `${relative}/${entry.name}` : entry.name;
      if (entry.isDirectory) {
        entries.push({ name: `${name}/`, mode: 0o700, type: "5" });
        await walk(name);
      } else if (entry.isFile && !NOT_PACKED.includes(name)) {
        const data = await Deno.readFile(`${root}/${name}`);
        const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
        const key = `${data.length}:${hash.join(",")}`;
        const first = seen.get(key);
        if (first === undefined) {
          seen.set(key, name);
          entries.push({ name, mode: 0o600, type: "0", data });
        } else {
          entries.push({ name, mode: 0o600, type: "1", linkName: first });
        }
      }
    }
  };
  await walk("");
  return entries;
}

if (import.meta.main) {
  const work = await Deno.makeTempDir({ prefix: "pglite-template-" });
  try {
    const db = await PGlite.create(`${work}/pgdata`, {
      ...(await pgliteAssets()),
      startParams: [...PGlite.defaultStartParams, "-c", "wal_recycle=off"],
    });
    const version = (await db.query<{ v: string }>("select version() as v")).rows[0]?.v;
    // initdb's WAL (1.5 MB compressed) is not needed once a checkpoint follows it: start a
    // new segment and checkpoint, so that the old one is removed and the new one is nearly
    // all zeros.
    await db.query("select pg_switch_wal()");
    await db.query("checkpoint");
    await db.close();
    const entries = await entriesOf(`${work}/pgdata`);
    const archive = await packTar(entries);
    await Deno.writeFile(TEMPLATE_PATH, archive);
    const links = entries.filter((entry) => entry.type === "1").length;
    console.log(
      `${TEMPLATE_PATH.pathname}: ${entries.length} entries (${links} links), ` +
        `${(archive.length / 1024 / 1024).toFixed(2)} MiB; ${version}`,
    );
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}
