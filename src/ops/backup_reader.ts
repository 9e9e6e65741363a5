/**
 * Reading a backup file (the format is in `backup_format.ts`) as a stream, checking every
 * section against its end line and the manifest as it goes, so that a damaged, cut or
 * foreign file is refused before anything is restored from it.
 */
import { createHash, type Hash } from "node:crypto";
import { DatabaseError, errorMessage } from "../errors.ts";
import type { StoreEntry, StoreKey } from "../store/store.ts";
import {
  FORMAT_NAME,
  FORMAT_VERSION,
  type Manifest,
  type SectionSummary,
} from "./backup_format.ts";

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
