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
import { DatabaseError, errorMessage } from "../errors.ts";
import type { StoreEntry, StoreKey } from "../store/store.ts";

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

/** What {@link readBackup} yields, in file order; header and end lines are checked instead. */
export type BackupItem =
  | { kind: "table"; table: string; columns: string[] }
  /** Rows of the open table as JSON text; one table's rows may come in several items. */
  | { kind: "rows"; table: string; rows: string[] }
  | { kind: "keys"; entries: StoreEntry[] }
  /** Comes last, once the whole file has been read and checked. */
  | { kind: "manifest"; manifest: Manifest };

/**
 * Reads the backup at `path` as a stream, checking each section against its end line and
 * the manifest as it goes. Throws a {@link DatabaseError} for an incomplete, damaged or
 * foreign file; whatever was yielded before must then be discarded.
 */
export async function* readBackup(path: string): AsyncGenerator<BackupItem, void> {
  const parser = new Parser(path);
  for await (const lines of readLines(path)) {
    for (const line of lines) parser.line(line);
    yield* parser.take();
  }
  yield { kind: "manifest", manifest: parser.finish() };
}

function incomplete(path: string, reason: string, cause?: unknown): DatabaseError {
  return new DatabaseError(`${path} is not a complete backup file: ${reason}`, { cause });
}

/** The decompressed lines of `path`, a chunk at a time. */
async function* readLines(path: string): AsyncGenerator<string[]> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (error) {
    throw new DatabaseError(`cannot read backup ${path}: ${errorText(error)}`, { cause: error });
  }
  // Checked up front so that a wrong file gets a plain answer rather than a zlib message.
  const magic = new Uint8Array(2);
  const read = await file.read(magic);
  if (read !== 2 || magic[0] !== 0x1f || magic[1] !== 0x8b) {
    file.close();
    throw incomplete(path, read === null ? "it is empty" : "it is not gzip-compressed");
  }
  await file.seek(0, Deno.SeekMode.Start);
  const reader = file.readable
    .pipeThrough(new DecompressionStream("gzip"))
    .pipeThrough(new TextDecoderStream("utf-8", { fatal: true }))
    .getReader();
  let rest = "";
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await reader.read();
      } catch (error) {
        // A cut or damaged file fails the gzip checksum; damage may also break UTF-8.
        throw incomplete(
          path,
          `the compressed data is cut short or damaged (${errorText(error)})`,
          error,
        );
      }
      if (chunk.done) break;
      const lines = (rest + chunk.value).split("\n");
      rest = lines.pop()!;
      if (lines.length > 0) yield lines;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  if (rest !== "") throw incomplete(path, "it ends in the middle of a line");
}

type Section =
  | { at: "table"; table: string; hash: Hash; rows: number }
  | { at: "keys"; hash: Hash; rows: number };
type Phase = { at: "header" | "between" } | Section | { at: "done"; manifest: Manifest };

/** The line-by-line state machine behind {@link readBackup}. */
class Parser {
  readonly #path: string;
  #lineNumber = 0;
  #phase: Phase = { at: "header" };
  #out: BackupItem[] = [];
  readonly #tables: Record<string, SectionSummary> = {};
  #keys: SectionSummary | null = null;

  constructor(path: string) {
    this.#path = path;
  }

  /** Items completed since the last call. */
  take(): BackupItem[] {
    const out = this.#out;
    this.#out = [];
    return out;
  }

  /** The manifest, once every line has been read. */
  finish(): Manifest {
    if (this.#phase.at !== "done") {
      throw incomplete(this.#path, "it ends before its manifest (the file was cut short)");
    }
    return this.#phase.manifest;
  }

  line(line: string): void {
    this.#lineNumber++;
    const phase = this.#phase;
    if (phase.at === "table" || phase.at === "keys") {
      if (line.startsWith('{"end":') && this.#endSection(line, phase)) return;
      phase.hash.update(line + "\n");
      phase.rows++;
      const last = this.#out.at(-1);
      if (phase.at === "table") {
        if (last?.kind === "rows") last.rows.push(line);
        else this.#out.push({ kind: "rows", table: phase.table, rows: [line] });
      } else {
        const entry = this.#entry(line);
        if (last?.kind === "keys") last.entries.push(entry);
        else this.#out.push({ kind: "keys", entries: [entry] });
      }
    } else if (phase.at === "header") {
      this.#header(line);
      this.#phase = { at: "between" };
    } else if (phase.at === "between") {
      this.#between(this.#json(line));
    } else {
      throw incomplete(this.#path, `line ${this.#lineNumber} follows the manifest`);
    }
  }

  #header(line: string): void {
    const header = parseJson(line);
    if (!isRecord(header) || header.format !== FORMAT_NAME) {
      throw new DatabaseError(`${this.#path} is not a backup of this program (no backup header)`);
    }
    if (header.formatVersion !== FORMAT_VERSION) {
      throw new DatabaseError(
        `${this.#path} has backup format version ${JSON.stringify(header.formatVersion)}, ` +
          `but this program reads only version ${FORMAT_VERSION}: restore it with the ` +
          `program that made it`,
      );
    }
  }

  #between(value: Record<string, unknown>): void {
    const { table, columns } = value;
    if (typeof table === "string" && Array.isArray(columns)) {
      if (table in this.#tables || this.#keys) this.#fail(`table ${table} is out of place`);
      this.#out.push({ kind: "table", table, columns: columns.map(String) });
      this.#phase = { at: "table", table, hash: createHash("sha256"), rows: 0 };
    } else if (value.store === "keys" && this.#keys === null) {
      this.#phase = { at: "keys", hash: createHash("sha256"), rows: 0 };
    } else if (isRecord(value.manifest) && this.#keys !== null) {
      this.#phase = { at: "done", manifest: this.#manifest(value.manifest, this.#keys) };
    } else {
      this.#fail("it is neither a section nor the manifest");
    }
  }

  /** Whether `line` is the end line of the open section; checks the section against it. */
  #endSection(line: string, phase: Section): boolean {
    const name = phase.at === "table" ? phase.table : "keys";
    const end = parseJson(line);
    // A row could in theory start with {"end": too; only an exact end line ends the section.
    if (!isRecord(end) || end.end !== name || Object.keys(end).length !== 3) return false;
    if (typeof end.rows !== "number" || typeof end.sha256 !== "string") return false;
    const summary = { rows: phase.rows, sha256: phase.hash.digest("hex") };
    if (summary.rows !== end.rows || summary.sha256 !== end.sha256) {
      const what = phase.at === "table" ? `the rows of table ${name}` : "the store keys";
      throw new DatabaseError(
        `${this.#path} is damaged: ${what} do not match their checksum (${summary.rows} rows ` +
          `read, ${end.rows} written); the file was changed or corrupted after it was made`,
      );
    }
    if (phase.at === "table") this.#tables[name] = summary;
    else this.#keys = summary;
    this.#phase = { at: "between" };
    return true;
  }

  #manifest(value: Record<string, unknown>, keys: SectionSummary): Manifest {
    const manifest = value as unknown as Manifest;
    const sameSections = isRecord(manifest.tables) &&
      JSON.stringify(manifest.keys) === JSON.stringify(keys) &&
      JSON.stringify(Object.entries(manifest.tables)) ===
        JSON.stringify(Object.entries(this.#tables));
    if (!Number.isInteger(manifest.schemaVersion) || manifest.schemaVersion < 0 || !sameSections) {
      this.#fail("the manifest does not match the sections before it");
    }
    return manifest;
  }

  #entry(line: string): StoreEntry {
    const { key, value, ttlMs } = this.#json(line);
    const keyOk = Array.isArray(key) && key.length >= 2 &&
      key.every((part) => typeof part === "string" || typeof part === "number");
    if (!keyOk || !(ttlMs === null || typeof ttlMs === "number") || value === undefined) {
      this.#fail("it is not a store key entry");
    }
    return { key: key as unknown as StoreKey, value: value as StoreEntry["value"], ttlMs };
  }

  #json(line: string): Record<string, unknown> {
    const value = parseJson(line);
    if (!isRecord(value)) this.#fail("it is not a JSON object");
    return value;
  }

  #fail(problem: string): never {
    throw incomplete(this.#path, `line ${this.#lineNumber} is malformed: ${problem}`);
  }
}

function parseJson(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function errorText(error: unknown): string {
  return errorMessage(error);
}
