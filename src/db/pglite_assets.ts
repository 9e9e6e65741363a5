/**
 * PGlite's runtime files, imported as bytes so that they are part of the module graph:
 * `deno compile` embeds them in the binary, and the program needs no read permission for
 * the npm cache (PGlite would otherwise read them from its package folder).
 */
import pgliteData from "../../node_modules/@electric-sql/pglite/dist/pglite.data" with {
  type: "bytes",
};
import pgliteWasm from "../../node_modules/@electric-sql/pglite/dist/pglite.wasm" with {
  type: "bytes",
};
import initdbWasm from "../../node_modules/@electric-sql/pglite/dist/initdb.wasm" with {
  type: "bytes",
};

/** The options PGlite takes instead of reading its files itself. */
export interface PgliteAssets {
  fsBundle: Blob;
  pgliteWasmModule: WebAssembly.Module;
  initdbWasmModule: WebAssembly.Module;
}

let compiled: Promise<PgliteAssets> | null = null;

/**
 * The file bundle as PGlite reads it: it only calls `arrayBuffer()`, and its in-memory file
 * system then keeps slices of that buffer as the files (read-only program files, which
 * nothing writes to). Handing over the imported bytes themselves instead of a `Blob` spares
 * two copies of 6 MB (the Blob's and the one `arrayBuffer()` makes of it).
 */
function bundle(bytes: Uint8Array<ArrayBuffer>): Blob {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  const buffer = whole ? bytes.buffer : bytes.slice().buffer;
  return { arrayBuffer: () => Promise.resolve(buffer) } as Blob;
}

/**
 * Compiles `bytes` and then lets go of them: the module keeps a copy of its own, and the
 * import would hold the original (9 MB for Postgres) for the life of the process.
 */
async function compileOnce(bytes: Uint8Array<ArrayBuffer>): Promise<WebAssembly.Module> {
  const module = await WebAssembly.compile(bytes);
  try {
    bytes.buffer.transfer(0);
  } catch {
    // Not detachable (a runtime may hand out bytes it does not own): they stay, harmlessly.
  }
  return module;
}

/** Compiles the WebAssembly modules once per process, both at once. */
export function pgliteAssets(): Promise<PgliteAssets> {
  compiled ??= Promise.all([compileOnce(pgliteWasm), compileOnce(initdbWasm)]).then((
    [pgliteWasmModule, initdbWasmModule],
  ) => ({ fsBundle: bundle(pgliteData), pgliteWasmModule, initdbWasmModule }));
  return compiled;
}
