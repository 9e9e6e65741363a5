/**
 * The one source of truth for how the program runs: the `start` task in deno.json, which
 * names a permission set of the same file (`deno run --permission-set=bot main.ts`). The
 * compile script and the end-to-end tests derive their command from it, so what is tested is
 * what gets compiled, and the task stays short enough to read in a terminal.
 */

/** One permission of a set: `true`, a list of what is allowed, or allow/deny/ignore lists. */
export type PermissionValue =
  | boolean
  | string[]
  | { allow?: boolean | string[]; deny?: boolean | string[]; ignore?: boolean | string[] };

/** A permission set of deno.json (`"permissions": { "<name>": { … } }`). */
export type PermissionSet = Partial<Record<PermissionName, PermissionValue>>;

/** The permissions a set may name, as deno.json's schema lists them. */
export const PERMISSION_NAMES = [
  "all",
  "read",
  "write",
  "import",
  "env",
  "net",
  "run",
  "ffi",
  "sys",
] as const;
/** One of {@link PERMISSION_NAMES}. */
export type PermissionName = typeof PERMISSION_NAMES[number];

/** The parts of the `start` task: `[NAME=value…] deno run <flags> <entry>`. */
export interface StartCommand {
  /**
   * What the task puts in the program's environment (`NAME=value` words before `deno`): the
   * C library's memory settings, which must be set before the process starts. The compiled
   * binary cannot carry them: `deploy/bot.service` and the Dockerfile set the same.
   */
  env: Record<string, string>;
  /** The task's own flags between `deno run` and the entry point, as written. */
  flags: string[];
  /** The entry point, relative to the project root. */
  entry: string;
  /** The permission set the task loads with `--permission-set=NAME`, or null. */
  permissions: PermissionSet | null;
  /**
   * The task's flags with the permission set spelled out as `--allow-…`, `--deny-…` and
   * `--ignore-…` flags, and the config's unstable features as `--unstable-…`: the same
   * program with the same permissions, without reading deno.json. Unlike the set's paths,
   * which resolve against deno.json's folder, these resolve against the working directory,
   * as the compiled binary's do.
   */
  runFlags: string[];
}

interface DenoJson {
  tasks?: Record<string, string>;
  permissions?: Record<string, unknown>;
  unstable?: string[];
}

/** Splits the `start` task of a deno.json text into its flags, entry point and permissions. */
export function parseStartTask(denoJson: string): StartCommand {
  const config = JSON.parse(denoJson) as DenoJson;
  const task = config.tasks?.start;
  if (!task) throw new Error("deno.json has no start task");
  const words = task.trim().split(/\s+/);
  const env: Record<string, string> = {};
  while (words.length > 0 && ENV_WORD.test(words[0]!)) {
    const word = words.shift()!;
    env[word.slice(0, word.indexOf("="))] = word.slice(word.indexOf("=") + 1);
  }
  if (words[0] !== "deno" || words[1] !== "run") {
    throw new Error(
      `the start task must be "[NAME=value…] deno run <flags> <entry>", got: ${task}`,
    );
  }
  const entry = words.at(-1)!;
  const flags = words.slice(2, -1);
  if (flags.some((flag) => !flag.startsWith("--"))) {
    throw new Error(`the start task may hold only --flags before the entry point: ${task}`);
  }
  const setFlags = flags.filter((flag) => /^--permission-set(=|$)/.test(flag));
  if (setFlags.length > 1) throw new Error("the start task names more than one permission set");
  let permissions: PermissionSet | null = null;
  const runFlags: string[] = [];
  for (const flag of flags) {
    if (!setFlags.includes(flag)) {
      runFlags.push(flag);
      continue;
    }
    const name = flag.includes("=") ? flag.slice(flag.indexOf("=") + 1) : "default";
    const set = config.permissions?.[name];
    if (set === undefined) throw new Error(`deno.json has no permission set "${name}"`);
    permissions = checkSet(name, set);
    runFlags.push(...permissionFlags(permissions));
  }
  for (const feature of config.unstable ?? []) {
    if (!runFlags.includes(`--unstable-${feature}`)) runFlags.push(`--unstable-${feature}`);
  }
  if (runFlags.some((flag) => /^--allow-all$|^-A$/.test(flag))) {
    throw new Error("the start task must not grant every permission");
  }
  return { env, flags, entry, permissions, runFlags };
}

/** An environment assignment in front of the task's command: `NAME=value`. */
const ENV_WORD = /^[A-Z_][A-Z0-9_]*=\S*$/;

function checkSet(name: string, set: unknown): PermissionSet {
  if (typeof set !== "object" || set === null || Array.isArray(set)) {
    throw new Error(`permission set "${name}" must be an object`);
  }
  for (const [key, value] of Object.entries(set)) {
    if (!(PERMISSION_NAMES as readonly string[]).includes(key)) {
      throw new Error(`permission set "${name}" has an unknown permission "${key}"`);
    }
    if (key === "all" && value !== false) {
      throw new Error("the start task must not grant every permission");
    }
    const lists = typeof value === "object" && value !== null && !Array.isArray(value)
      ? Object.entries(value)
      : [["allow", value] as [string, unknown]];
    for (const [kind, list] of lists) {
      const ok = ["allow", "deny", "ignore"].includes(kind) &&
        (typeof list === "boolean" ||
          Array.isArray(list) && list.every((item) => typeof item === "string" && item !== ""));
      if (!ok) throw new Error(`permission set "${name}": ${key}.${kind} is not understood`);
    }
  }
  return set as PermissionSet;
}

/**
 * A permission set as command-line flags: `read: ["data"]` → `--allow-read=data`,
 * `env: { allow: [...], ignore: true }` → `--allow-env=... --ignore-env`.
 */
export function permissionFlags(set: PermissionSet): string[] {
  const flags: string[] = [];
  for (const name of PERMISSION_NAMES) {
    const value = set[name];
    if (value === undefined) continue;
    const kinds = typeof value === "object" && !Array.isArray(value) ? value : { allow: value };
    for (const kind of ["allow", "deny", "ignore"] as const) {
      const list = kinds[kind];
      if (list === undefined || list === false) continue;
      flags.push(list === true ? `--${kind}-${name}` : `--${kind}-${name}=${list.join(",")}`);
    }
  }
  return flags;
}

/** The project root (the folder holding deno.json). */
export const PROJECT_ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Reads and parses the project's own `start` task. */
export function readStartCommand(): StartCommand {
  return parseStartTask(Deno.readTextFileSync(`${PROJECT_ROOT}/deno.json`));
}
