import { resolve } from "node:path";
import type { Config } from "../config.ts";
import type { ConfigIssue } from "../errors.ts";

/**
 * Checks that every path the configuration names lies where the permission flags let the
 * program write. A path outside them is a configuration error, reported with the others,
 * instead of a crash on first write.
 */
export function pathIssues(config: Config): ConfigIssue[] {
  const paths: Array<[string, string | null]> = [
    ["DATA_DIR", config.dataDir],
    ["BACKUP_DIR", config.backupDir],
    ["LOG_FILE", config.log.file],
  ];
  const issues: ConfigIssue[] = [];
  for (const [variable, path] of paths) {
    if (path === null) continue;
    const absolute = resolve(path);
    const read = Deno.permissions.querySync({ name: "read", path: absolute }).state;
    const write = Deno.permissions.querySync({ name: "write", path: absolute }).state;
    if (read !== "granted" || write !== "granted") {
      issues.push({
        variable,
        message: `"${path}" is outside the directories this program may use ` +
          `(data/, backups/ and logs/ under its working directory)`,
      });
    }
  }
  return issues;
}

/** One line of the sandbox report: a capability and whether the program has it. */
export interface SandboxLine {
  capability: string;
  granted: boolean;
}

/**
 * What the program is allowed to do, as Deno reports it. `doctor` prints it so an operator
 * can see the binary cannot run programs, load native code or read outside its directories.
 */
export function sandboxReport(config: Config): SandboxLine[] {
  const query = (descriptor: Deno.PermissionDescriptor) =>
    Deno.permissions.querySync(descriptor).state === "granted";
  return [
    { capability: "run other programs", granted: query({ name: "run" }) },
    { capability: "load native libraries (ffi)", granted: query({ name: "ffi" }) },
    { capability: "read any file", granted: query({ name: "read" }) },
    { capability: "read /etc/passwd", granted: query({ name: "read", path: "/etc/passwd" }) },
    { capability: "write any file", granted: query({ name: "write" }) },
    { capability: "read all environment variables", granted: query({ name: "env" }) },
    {
      capability: `read and write DATA_DIR (${config.dataDir})`,
      granted: query({ name: "write", path: resolve(config.dataDir) }),
    },
  ];
}
