import { dirname, resolve } from "node:path";
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

/** The folders the permission flags grant, resolved against the working directory. */
const SANDBOX_ROOTS = ["data", "backups", "logs"];

/**
 * Symbolic links that would lead reads and writes out of the sandbox: Deno checks the path a
 * program names, not where a link inside it points. `DATA_DIR`, `BACKUP_DIR` and the folder of
 * `LOG_FILE` must neither be such a link nor hold one at their top level.
 */
export function symlinkIssues(config: Config): ConfigIssue[] {
  const roots = SANDBOX_ROOTS.map((root) => resolve(root));
  const inside = (path: string) =>
    roots.some((root) => path === root || path.startsWith(`${root}/`));
  const issues: ConfigIssue[] = [];
  const folders: Array<[string, string | null]> = [
    ["DATA_DIR", config.dataDir],
    ["BACKUP_DIR", config.backupDir],
    ["LOG_FILE", config.log.file === null ? null : dirname(config.log.file)],
  ];
  const escapes = (link: string): string | null => {
    const target = resolve(dirname(link), Deno.readLinkSync(link));
    return inside(target) ? null : target;
  };
  for (const [variable, folder] of folders) {
    if (folder === null) continue;
    const path = resolve(folder);
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(path);
    } catch {
      continue; // Not there yet: the program creates it.
    }
    const report = (link: string, target: string) =>
      issues.push({
        variable,
        message: `"${link}" is a symbolic link to ${target}, outside data/, backups/ and ` +
          `logs/: the sandbox cannot hold it; replace it with a real folder or file`,
      });
    if (info.isSymlink) {
      const target = escapes(path);
      if (target !== null) report(path, target);
      continue;
    }
    if (!info.isDirectory) continue;
    for (const entry of Deno.readDirSync(path)) {
      if (!entry.isSymlink) continue;
      const link = `${path}/${entry.name}`;
      const target = escapes(link);
      if (target !== null) report(link, target);
    }
  }
  return issues;
}
