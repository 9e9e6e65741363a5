/**
 * A freshly initialised PGlite data directory, shipped with the program (and compiled into
 * the binary) so that the first start copies it instead of running initdb: PGlite's initdb
 * runs Postgres in a second WebAssembly instance and copies its whole memory back and forth,
 * which took seconds and left hundreds of MB behind. `scripts/pglite_template.ts` makes the
 * file: a gzip-compressed tar in which a file identical to an earlier one (the three
 * databases' catalogs are) is a hard-link entry, unpacked here as a copy of its own.
 *
 * Loaded (with its 1 MB of bytes) only by a first start.
 *
 * @module
 */
import template from "./pglite_template.tar.gz" with { type: "bytes" };

/** One tar entry's header fields that the template uses. */
interface TarHeader {
  name: string;
  mode: number;
  size: number;
  /** "0" a file, "1" a hard link to `linkName`, "5" a folder. */
  type: "0" | "1" | "5";
  linkName: string;
}

function parseHeader(block: Uint8Array): TarHeader | null {
  if (block.every((byte) => byte === 0)) return null;
  const text = (offset: number, length: number) =>
    new TextDecoder().decode(block.subarray(offset, offset + length)).replace(/\0.*$/s, "");
  const number = (offset: number, length: number) => parseInt(text(offset, length).trim(), 8);
  const stored = number(148, 8);
  const sum = block.reduce(
    (total, byte, i) => total + (i >= 148 && i < 156 ? 32 : byte),
    0,
  );
  const type = text(156, 1) || "0";
  if (stored !== sum || !["0", "1", "5"].includes(type)) {
    throw new Error("the embedded database template is damaged (a tar header does not check)");
  }
  const name = text(0, 100);
  const linkName = text(157, 100);
  for (const path of type === "1" ? [name, linkName] : [name]) {
    if (path === "" || path.startsWith("/") || path.split("/").includes("..")) {
      throw new Error(`the embedded database template holds a path outside its folder: ${path}`);
    }
  }
  return {
    name,
    mode: number(100, 8),
    size: number(124, 12),
    type: type as TarHeader["type"],
    linkName,
  };
}

/** Reads exactly the bytes asked for from a stream of chunks, without joining big ones. */
class ChunkReader {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** Passes the next `length` bytes to `sink` in pieces; false at the end of the stream. */
  async read(length: number, sink: (piece: Uint8Array) => Promise<void> | void) {
    while (length > 0) {
      if (this.#chunk.length === 0) {
        const { value, done } = await this.#reader.read();
        if (done) return false;
        this.#chunk = value;
      }
      const piece = this.#chunk.subarray(0, Math.min(length, this.#chunk.length));
      this.#chunk = this.#chunk.subarray(piece.length);
      length -= piece.length;
      await sink(piece);
    }
    return true;
  }

  /** The next `length` bytes in one array, or null at the end of the stream. */
  async take(length: number): Promise<Uint8Array | null> {
    const out = new Uint8Array(length);
    let at = 0;
    const ok = await this.read(length, (piece) => {
      out.set(piece, at);
      at += piece.length;
    });
    return ok ? out : null;
  }
}

/** Writes the files of `archive` into `target` (which must not exist). */
async function unpackInto(target: string, archive: Uint8Array<ArrayBuffer>): Promise<void> {
  const reader = new ChunkReader(
    new Blob([archive]).stream().pipeThrough(new DecompressionStream("gzip")),
  );
  await Deno.mkdir(target, { mode: 0o700 });
  for (;;) {
    const block = await reader.take(512);
    if (!block) throw new Error("the embedded database template is truncated");
    const header = parseHeader(block);
    if (!header) break;
    const path = `${target}/${header.name.replace(/\/$/, "")}`;
    if (header.type === "5") {
      await Deno.mkdir(path, { mode: header.mode, recursive: true });
    } else if (header.type === "1") {
      await Deno.copyFile(`${target}/${header.linkName}`, path);
    } else {
      using file = await Deno.open(path, { write: true, createNew: true, mode: header.mode });
      const padded = Math.ceil(header.size / 512) * 512;
      let written = 0;
      const complete = await reader.read(padded, async (piece) => {
        const keep = piece.subarray(0, Math.max(0, header.size - written));
        written += piece.length;
        for (let at = 0; at < keep.length;) at += await file.write(keep.subarray(at));
      });
      if (!complete) throw new Error("the embedded database template is truncated");
    }
  }
}

/**
 * Fills `dir`, which is missing or empty, with the template (or another archive in its
 * format). The files are written next to it and renamed into place, so that a start cut off
 * halfway leaves no half database behind.
 */
export async function unpackTemplate(
  dir: string,
  archive: Uint8Array<ArrayBuffer> = template,
): Promise<void> {
  const staging = `${dir}.unpacking`;
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  try {
    await unpackInto(staging, archive);
    await Deno.remove(dir).catch(() => {});
    await Deno.rename(staging, dir);
  } catch (error) {
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    throw error;
  }
}
