// deno-lint-ignore-file no-console -- a build script reporting to the terminal
/**
 * `deno task compile`: builds the single binary with exactly the `start` task's permissions
 * (its permission set in deno.json, spelled out as flags so that they resolve against the
 * working directory at run time, as the README's sandbox section says), unstable features
 * and V8 flags.
 * Migrations and PGlite's files are imports (text and bytes), so they are embedded with the
 * module graph. `deno compile` downloads its runtime (denort), so this runs on a machine with
 * internet access or in the Dockerfile's build stage.
 */
import { PROJECT_ROOT, readStartCommand } from "./start_command.ts";

/** Folder names inside npm packages that hold tests and examples, never code the bot runs. */
const NOT_SHIPPED = ["test", "tests", "__tests__", "example", "examples"];

/**
 * The packages' test and example folders under `node_modules/.deno`, to leave out of the
 * binary: nothing runs them, and test data can be large or odd (Deno 2.9.6's `deno compile`
 * once overflowed its stack on a dependency's test data).
 */
export function unshippedFolders(root: string): string[] {
  const found: string[] = [];
  const dirs = (path: string) => {
    try {
      return [...Deno.readDirSync(`${root}/${path}`)].filter((e) => e.isDirectory).map((e) =>
        e.name
      );
    } catch {
      return [];
    }
  };
  for (const versioned of dirs("node_modules/.deno")) {
    const base = `node_modules/.deno/${versioned}/node_modules`;
    const packages = dirs(base).flatMap((name) =>
      name.startsWith("@") ? dirs(`${base}/${name}`).map((inner) => `${name}/${inner}`) : [name]
    );
    for (const pkg of packages) {
      for (const dir of dirs(`${base}/${pkg}`)) {
        if (NOT_SHIPPED.includes(dir)) found.push(`${base}/${pkg}/${dir}`);
      }
    }
  }
  return found.sort();
}

/**
 * The `deno compile` arguments for the given start flags (the start command's `runFlags`)
 * and output path.
 */
export function compileArgs(
  flags: string[],
  entry: string,
  output: string,
  target?: string,
  exclude: string[] = [],
): string[] {
  // --watch and similar run-only flags would make deno compile fail. The V8 flags (memory
  // and WebAssembly settings) are embedded in the binary like the permissions.
  const runtimeFlags = flags.filter((flag) =>
    /^--(allow|deny|ignore|unstable)-|^--v8-flags=/.test(flag) || flag === "--no-prompt"
  );
  return [
    "compile",
    "--frozen",
    ...runtimeFlags,
    ...exclude.flatMap((path) => ["--exclude", path]),
    ...(target ? ["--target", target] : []),
    "--output",
    output,
    entry,
  ];
}

if (import.meta.main) {
  const { runFlags: flags, entry, env } = readStartCommand();
  const target = Deno.args.find((arg) => arg.startsWith("--target="))?.slice("--target=".length);
  const exclude = unshippedFolders(PROJECT_ROOT);
  const args = compileArgs(flags, entry, "dist/service-desk-bot", target, exclude);
  console.log(`deno ${args.join(" ")}`);
  const { code } = await new Deno.Command("deno", { args, cwd: PROJECT_ROOT }).spawn().status;
  if (code === 0 && Object.keys(env).length > 0) {
    // A binary carries no environment: what the start task sets must come from its runner.
    const settings = Object.entries(env).map(([name, value]) => `${name}=${value}`).join(" ");
    console.log(`run it with ${settings} (deploy/bot.service and the Dockerfile set it)`);
  }
  Deno.exit(code);
}
