// deno-lint-ignore-file no-console -- a build script reporting to the terminal
/**
 * `deno task compile`: builds the single binary with exactly the `start` task's permission
 * and unstable-feature flags. Migrations and PGlite's files are imports (text and bytes), so
 * they are embedded with the module graph. `deno compile` downloads its runtime (denort), so
 * this runs on a machine with internet access or in the Dockerfile's build stage.
 */
import { PROJECT_ROOT, readStartCommand } from "./start_command.ts";

/** The `deno compile` arguments for the given start flags and output path. */
export function compileArgs(
  flags: string[],
  entry: string,
  output: string,
  target?: string,
): string[] {
  // --watch and similar run-only flags would make deno compile fail.
  const permissionFlags = flags.filter((flag) =>
    /^--(allow|deny|ignore|unstable)-/.test(flag) || flag === "--no-prompt"
  );
  return [
    "compile",
    "--frozen",
    ...permissionFlags,
    ...(target ? ["--target", target] : []),
    "--output",
    output,
    entry,
  ];
}

if (import.meta.main) {
  const { flags, entry } = readStartCommand();
  const target = Deno.args.find((arg) => arg.startsWith("--target="))?.slice("--target=".length);
  const args = compileArgs(flags, entry, "dist/service-desk-bot", target);
  console.log(`deno ${args.join(" ")}`);
  const { code } = await new Deno.Command("deno", { args, cwd: PROJECT_ROOT }).spawn().status;
  Deno.exit(code);
}
