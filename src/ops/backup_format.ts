/**
 * The backup file, shared by `backup` and `restore`: gzip-compressed JSON lines.
 *
 * ```
 * {"format":"service-desk-bot-backup","formatVersion":1}
 * {"table":"users","columns":["id",…]}      a section per table, parents before children
 * {"id":1,…}                                 a row per line, as Postgres's row_to_json wrote it
 * {"end":"users","rows":1,"sha256":"…"}      SHA-256 of the row lines, each with its "\n"
 * {"store":"keys"}                           then the durable store keys
 * {"key":["fsm","42","42"],"value":…,"ttlMs":null}
 * {"end":"keys","rows":1,"sha256":"…"}
 * {"manifest":{…}}                           last, so that a truncated file has none
 * ```
 */
import { createHash, type Hash } from "node:crypto";

/** The `format` of the first line. */
export const FORMAT_NAME = "service-desk-bot-backup";
/** The format version this program writes and reads. */
export const FORMAT_VERSION = 1;

/** Row count and checksum of one section. */
export interface SectionSummary {
  rows: number;
  /** SHA-256 (hex) of the section's lines, each followed by `\n`. */
  sha256: string;
}

/** The last line of a backup: what it holds and where it came from. */
export interface Manifest {
  program: string;
  programVersion: string;
  /** The highest applied migration when the backup was made. */
  schemaVersion: number;
  /** ISO time the backup started. */
  createdAt: string;
  database: "postgres" | "pglite";
  store: "redis" | "kv";
  /** Every table section, in file order. */
  tables: Record<string, SectionSummary>;
  keys: SectionSummary;
  /** The configuration of the program that made it, secrets redacted. */
  config: Record<string, unknown>;
}

/** The line that opens a table section. */
export interface TableStart {
  table: string;
  columns: string[];
}

/** The line that opens the store keys section. */
export interface KeysStart {
  store: "keys";
}

/** Writes one backup file section by section; {@link finish} completes it. */
export class BackupWriter {
  readonly #file: Deno.FsFile;
  readonly #input: WritableStreamDefaultWriter<BufferSource>;
  readonly #output: Promise<void>;
  readonly #encoder = new TextEncoder();
  #hash: Hash | null = null;
  #rows = 0;
  #closed = false;

  /** Creates `path` (refusing to overwrite) and writes the format line. */
  static async create(path: string): Promise<BackupWriter> {
    const writer = new BackupWriter(await Deno.open(path, { write: true, createNew: true }));
    try {
      await writer.#line({ format: FORMAT_NAME, formatVersion: FORMAT_VERSION });
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return writer;
  }

  private constructor(file: Deno.FsFile) {
    this.#file = file;
    const gzip = new CompressionStream("gzip");
    // Our own sink rather than file.writable, which would close the file before finish()
    // can fsync it (and with preventClose, Deno 2.9 writes nothing at all).
    const sink = new WritableStream<Uint8Array>({
      async write(chunk) {
        for (let done = 0; done < chunk.length;) done += await file.write(chunk.subarray(done));
      },
    });
    this.#output = gzip.readable.pipeTo(sink);
    this.#output.catch(() => {}); // observed by finish() or abort()
    this.#input = gzip.writable.getWriter();
  }

  /** Opens a section: a table's rows or the store keys. */
  async begin(start: TableStart | KeysStart): Promise<void> {
    if (this.#hash) throw new Error("BackupWriter.begin() inside a section");
    this.#hash = createHash("sha256");
    this.#rows = 0;
    await this.#line(start);
  }

  /** Appends lines (JSON text) to the open section. */
  async rows(lines: readonly string[]): Promise<void> {
    if (!this.#hash) throw new Error("BackupWriter.rows() outside a section");
    if (lines.length === 0) return;
    const bytes = this.#encoder.encode(lines.map(oneLine).join("\n") + "\n");
    this.#hash.update(bytes);
    this.#rows += lines.length;
    await this.#input.write(bytes);
  }

  /** Closes the open section named `name`; returns its row count and checksum. */
  async end(name: string): Promise<SectionSummary> {
    if (!this.#hash) throw new Error("BackupWriter.end() outside a section");
    const summary = { rows: this.#rows, sha256: this.#hash.digest("hex") };
    this.#hash = null;
    await this.#line({ end: name, ...summary });
    return summary;
  }

  /** Writes the manifest, flushes and fsyncs the file, and closes it. */
  async finish(manifest: Manifest): Promise<void> {
    await this.#line({ manifest });
    await this.#input.close();
    await this.#output;
    await this.#file.sync();
    this.#closed = true;
    this.#file.close();
  }

  /** Stops writing and closes the file, leaving it incomplete (no manifest). */
  async abort(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#input.abort().catch(() => {});
    await this.#output.catch(() => {});
    this.#file.close();
  }

  async #line(value: unknown): Promise<void> {
    await this.#input.write(this.#encoder.encode(JSON.stringify(value) + "\n"));
  }
}

/**
 * A line break can reach a row only as whitespace inside a `json` column (row_to_json copies
 * those verbatim; strings escape theirs), where a space means the same.
 */
function oneLine(text: string): string {
  return text.includes("\n") || text.includes("\r") ? text.replace(/[\r\n]/g, " ") : text;
}
