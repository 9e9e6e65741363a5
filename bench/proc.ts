/**
 * A process's CPU time and memory as Linux reports them in `/proc`, for the benchmarks that run
 * a program as a subprocess and want its own figures (not the load generator's).
 *
 * Deno grants `/proc` only with `--allow-all`, so the files are read by `cat` (and children
 * found by `ps`): the benchmark needs `--allow-run=cat,ps`, not every permission.
 *
 * @module
 */

/**
 * Clock ticks per second of `utime` and `stime` in `/proc/<pid>/stat`: `USER_HZ`, which Linux
 * fixes at 100 on every architecture Deno runs on (`getconf CLK_TCK`).
 */
const USER_HZ = 100;

async function output(command: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(command, { args, stdin: "null" })
    .output();
  const text = new TextDecoder().decode(stdout);
  if (code !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed: ${new TextDecoder().decode(stderr)}`);
  }
  return text;
}

/** CPU time (user + system, in µs) and resident memory (bytes) of a process at one moment. */
export interface ProcessSample {
  cpuMicros: number;
  rssBytes: number;
}

/**
 * Process `pid`'s CPU time so far, user + system over all its threads (`/proc/<pid>/stat`,
 * resolution one tick, 10 ms), and its resident memory now (`VmRSS` of `/proc/<pid>/status`).
 */
export async function sampleProcess(pid: number): Promise<ProcessSample> {
  const text = await output("cat", [`/proc/${pid}/stat`, `/proc/${pid}/status`]);
  const stat = text.slice(0, text.indexOf("\n"));
  // The command name (field 2) is in parentheses and may hold spaces: count from after it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so utime (field 14) and stime (field 15) are at 11 and 12.
  const ticks = Number(fields[11]) + Number(fields[12]);
  const kib = /^VmRSS:\s+(\d+) kB/m.exec(text)?.[1];
  if (!Number.isFinite(ticks) || kib === undefined) {
    throw new Error(`cannot read the CPU time or VmRSS of process ${pid}`);
  }
  return { cpuMicros: (ticks * 1_000_000) / USER_HZ, rssBytes: Number(kib) * 1024 };
}

/** The one child of this process whose command line contains `fragment`. */
export async function childPid(fragment: string): Promise<number> {
  const lines = (await output("ps", ["-ww", "--ppid", String(Deno.pid), "-o", "pid=,args="]))
    .split("\n")
    .filter((line) => line.includes(fragment));
  if (lines.length !== 1) {
    throw new Error(`expected one child running ${fragment}, found ${lines.length}`);
  }
  return Number(lines[0]!.trim().split(/\s+/, 1)[0]);
}
