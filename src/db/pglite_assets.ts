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

/** Compiles the WebAssembly modules once per process. */
export function pgliteAssets(): Promise<PgliteAssets> {
  compiled ??= (async () => ({
    fsBundle: new Blob([pgliteData]),
    pgliteWasmModule: await WebAssembly.compile(pgliteWasm),
    initdbWasmModule: await WebAssembly.compile(initdbWasm),
  }))();
  return compiled;
}
