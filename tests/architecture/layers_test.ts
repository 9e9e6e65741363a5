/**
 * The architecture the code follows (docs/architecture.md), checked on the import graph of
 * `src/`: the storage layers depend on nothing above them, HTTP is a leaf only the entry point
 * uses, there is no import cycle, and no file grows past what one concept needs.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "../..");
const SRC = join(ROOT, "src");

/** Every TypeScript file under `dir`, as paths relative to the project root. */
function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...sourceFiles(path));
    else if (entry.name.endsWith(".ts")) out.push(relative(ROOT, path));
  }
  return out.sort();
}

/** The relative imports of `file` (static and type-only), resolved to project paths. */
function importsOf(file: string): string[] {
  const text = Deno.readTextFileSync(join(ROOT, file));
  const found: string[] = [];
  for (
    const match of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?from\s*["'](\.[^"']+)["']/g)
  ) {
    const target = relative(ROOT, resolve(ROOT, dirname(file), match[1]!));
    if (target.endsWith(".ts")) found.push(target);
  }
  return found;
}

const files = [...sourceFiles(SRC), "main.ts"];
const graph = new Map(files.map((file) => [file, importsOf(file)]));
const under = (file: string, folder: string) => file.startsWith(`${folder}/`) || file === folder;

Deno.test("layers: src/store and src/db import nothing from the bot, the transports, HTTP or the app", () => {
  const upper = ["src/bot", "src/transport", "src/http", "src/app.ts", "src/jobs"];
  const offending = [...graph].flatMap(([file, imports]) =>
    under(file, "src/store") || under(file, "src/db")
      ? imports.filter((target) => upper.some((folder) => under(target, folder)))
        .map((target) => `${file} → ${target}`)
      : []
  );
  assert.deepEqual(offending, []);
});

Deno.test("layers: only the entry point (main.ts) imports src/http", () => {
  const offending = [...graph].flatMap(([file, imports]) =>
    under(file, "src/http") || file === "main.ts"
      ? []
      : imports.filter((target) => under(target, "src/http")).map((target) => `${file} → ${target}`)
  );
  assert.deepEqual(offending, []);
});

Deno.test("layers: a feature never imports another feature", () => {
  const featureOf = (file: string) => {
    const rest = file.slice("src/bot/features/".length);
    return rest.includes("/") ? rest.split("/")[0]! : rest.replace(/(_[a-z]+)*\.ts$/, "");
  };
  const offending = [...graph].flatMap(([file, imports]) =>
    !under(file, "src/bot/features") || file === "src/bot/features/index.ts"
      ? []
      : imports.filter((target) =>
        under(target, "src/bot/features") && featureOf(target) !== featureOf(file) &&
        target !== "src/bot/features/fallback.ts"
      ).map((target) => `${file} → ${target}`)
  );
  assert.deepEqual(offending, []);
});

Deno.test("layers: no import cycle in src/", () => {
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    stack.push(file);
    for (const target of graph.get(file) ?? []) {
      if (state.get(target) === "open") {
        cycles.push([...stack.slice(stack.indexOf(target)), target].join(" → "));
      } else if (!state.has(target)) visit(target);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  assert.deepEqual(cycles, []);
});

Deno.test("layers: src/app.ts is wiring under 200 lines, and no file in src/ passes 350", () => {
  const lines = (file: string) => Deno.readTextFileSync(join(ROOT, file)).split("\n").length;
  assert.ok(lines("src/app.ts") < 200, `src/app.ts has ${lines("src/app.ts")} lines`);
  const long = sourceFiles(SRC).filter((file) => lines(file) > 350)
    .map((file) => `${file}: ${lines(file)} lines`);
  assert.deepEqual(long, []);
});
