/**
 * The one source of truth for how the program runs: the `start` task in deno.json. The
 * compile script and the end-to-end tests both derive their command from it, so what is
 * tested is what gets compiled.
 */

/** The parts of the `start` task: `deno run <flags> <entry>`. */
export interface StartCommand {
  /** Every flag between `deno run` and the entry point, permission flags included. */
  flags: string[];
  /** The entry point, relative to the project root. */
  entry: string;
}

/** Splits the `start` task of a deno.json text into its flags and entry point. */
export function parseStartTask(denoJson: string): StartCommand {
  const config = JSON.parse(denoJson) as { tasks?: Record<string, string> };
  const task = config.tasks?.start;
  if (!task) throw new Error("deno.json has no start task");
  const words = task.trim().split(/\s+/);
  if (words[0] !== "deno" || words[1] !== "run") {
    throw new Error(`the start task must be "deno run <flags> <entry>", got: ${task}`);
  }
  const entry = words.at(-1)!;
  const flags = words.slice(2, -1);
  if (flags.some((flag) => !flag.startsWith("--"))) {
    throw new Error(`the start task may hold only --flags before the entry point: ${task}`);
  }
  if (flags.some((flag) => /^--allow-all$|^-A$/.test(flag))) {
    throw new Error("the start task must not grant every permission");
  }
  return { flags, entry };
}

/** The project root (the folder holding deno.json). */
export const PROJECT_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Reads and parses the project's own `start` task. */
export function readStartCommand(): StartCommand {
  return parseStartTask(Deno.readTextFileSync(`${PROJECT_ROOT}/deno.json`));
}
