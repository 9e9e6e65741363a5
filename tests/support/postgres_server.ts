/**
 * A throwaway PostgreSQL server for tests and benchmarks: its own cluster in a temp dir, on a
 * free port on loopback, never the machine's shared server. It can be stopped and started
 * again on the same port for fault tests.
 */

/** A running throwaway server. */
export interface PostgresServer extends AsyncDisposable {
  /** TCP port on 127.0.0.1. */
  readonly port: number;
  /** Connection URL of the `postgres` database as superuser `postgres`. */
  readonly url: string;
  /** A URL for another database on this server. */
  urlOf(database: string): string;
  /** Creates an empty database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server (fast shutdown) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /**
   * Sends `signal` to the server and every backend it runs (`SIGSTOP` hangs it with its
   * connections open, as a frozen host or a cut-off network would; `SIGCONT` resumes it).
   */
  signal(signal: "SIGSTOP" | "SIGCONT"): Promise<void>;
}

import postgres from "postgres";
import { freePort } from "./ports.ts";

const isRoot = Deno.uid() === 0;

/**
 * Where a PostgreSQL program lives: on PATH, or in Debian's versioned folder
 * (`/usr/lib/postgresql/15/bin`), which the `postgresql` package does not put on PATH.
 */
function pgProgram(name: string): string {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      Deno.statSync(`${dir}/${name}`);
      return `${dir}/${name}`;
    } catch {
      // Not in this folder.
    }
  }
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")]
      .map((entry) => entry.name)
      .filter((version) => /^\d+$/.test(version))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return `/usr/lib/postgresql/${versions[0]}/bin/${name}`;
  } catch {
    // No Debian packages either.
  }
  throw new Error(`${name} not found: install the postgresql package`);
}

/** Runs a PostgreSQL program, as user `postgres` when the tests run as root (it refuses root). */
function command(program: string, args: string[]): Deno.Command {
  return isRoot
    ? new Deno.Command("runuser", {
      args: ["-u", "postgres", "--", pgProgram(program), ...args],
      stdout: "piped",
      stderr: "piped",
    })
    : new Deno.Command(program, { args, stdout: "piped", stderr: "piped" });
}

async function run(program: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await command(program, args).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  if (code !== 0) throw new Error(`${program} ${args.join(" ")} failed (${code}):\n${text}`);
  return text;
}

/** Whether the server accepts a startup packet (protocol 3.0) and answers with anything. */
async function answers(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const body = new TextEncoder().encode("user\0postgres\0database\0postgres\0\0");
      const packet = new Uint8Array(8 + body.length);
      const view = new DataView(packet.buffer);
      view.setInt32(0, packet.length);
      view.setInt32(4, 196608);
      packet.set(body, 8);
      await conn.write(packet);
      const reply = new Uint8Array(1);
      const n = await conn.read(reply);
      // 'R' is an authentication request: the server is up and taking connections.
      return n === 1 && reply[0] === 0x52;
    } finally {
      conn.close();
    }
  } catch {
    return false;
  }
}

/** The uid and gid of the system user `postgres`, which runs the server when tests run as root. */
async function postgresIds(): Promise<[number, number]> {
  const passwd = await Deno.readTextFile("/etc/passwd");
  const entry = passwd.split("\n").find((line) => line.startsWith("postgres:"));
  if (!entry) throw new Error("user postgres is missing: install the postgresql package");
  const [, , uid, gid] = entry.split(":");
  return [Number(uid), Number(gid)];
}

/** Options of {@link startPostgres}. */
export interface StartPostgresOptions {
  /**
   * A password for user `postgres`, required on TCP connections (scram-sha-256), for tests of
   * refused credentials; without it every connection is trusted.
   */
  password?: string;
}

/** Initialises a cluster in a temp dir and starts it. */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const dir = await Deno.makeTempDir({ prefix: "pg-test-" });
  if (isRoot) await Deno.chown(dir, ...(await postgresIds()));
  const data = `${dir}/data`;
  const auth = ["-A", "trust"];
  if (options.password !== undefined) {
    const pwfile = `${dir}/pwfile`;
    await Deno.writeTextFile(pwfile, `${options.password}\n`);
    if (isRoot) await Deno.chown(pwfile, ...(await postgresIds()));
    auth.push("--auth-host=scram-sha-256", `--pwfile=${pwfile}`);
  }
  await run("initdb", ["-D", data, "-U", "postgres", ...auth, "-E", "UTF8", "--no-sync"]);
  const port = freePort();
  let child: Deno.ChildProcess | null = null;

  const start = async () => {
    child = command("postgres", [
      "-D",
      data,
      "-p",
      String(port),
      "-k",
      dir,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
      "-c",
      "synchronous_commit=off",
      "-c",
      "full_page_writes=off",
      "-c",
      "max_connections=200",
    ]).spawn();
    const exited = child.status.then(() => true);
    const deadline = Date.now() + 30_000;
    while (!(await answers(port))) {
      const done = await Promise.race([exited, new Promise((r) => setTimeout(r, 50, false))]);
      if (done === true) {
        const err = await new Response(child.stderr).text();
        throw new Error(`postgres exited during start:\n${err}`);
      }
      if (Date.now() > deadline) throw new Error("postgres did not start within 30 s");
    }
  };

  const stop = async () => {
    const running = child;
    if (!running) return;
    child = null;
    await run("pg_ctl", ["-D", data, "stop", "-m", "fast", "-w"]).catch(() => {
      running.kill("SIGKILL");
    });
    await running.status;
    await Promise.all([running.stdout.cancel(), running.stderr.cancel()]);
  };

  const credentials = options.password === undefined
    ? "postgres"
    : `postgres:${encodeURIComponent(options.password)}`;
  const urlOf = (database: string) => `postgres://${credentials}@127.0.0.1:${port}/${database}`;

  // The postmaster (from its pid file) and every process it runs: backends, background workers.
  // (Reading /proc for them would need read access to all of /proc.)
  let pids: number[] = [];
  const kill = async (name: "SIGSTOP" | "SIGCONT", targets: number[]) => {
    // `kill` rather than Deno.kill: the server runs as another user under `runuser`.
    const { stderr } = await new Deno.Command("kill", {
      args: [`-${name.slice(3)}`, ...targets.map(String)],
      stderr: "piped",
    }).output();
    // A backend may have ended meanwhile; the others got the signal.
    const text = new TextDecoder().decode(stderr).trim();
    if (text && !/No such process/.test(text)) throw new Error(`kill failed: ${text}`);
  };
  const signal = async (name: "SIGSTOP" | "SIGCONT") => {
    const running = child;
    if (!running) throw new Error(`postgres on port ${port} is not running`);
    if (name === "SIGSTOP") {
      const postmaster = Number((await Deno.readTextFile(`${data}/postmaster.pid`)).split("\n")[0]);
      const sql = postgres(urlOf("postgres"), { max: 1, onnotice: () => {} });
      try {
        const rows = await sql`select pid from pg_stat_activity where pid <> pg_backend_pid()`;
        pids = [postmaster, ...rows.map((row) => Number(row.pid))];
      } finally {
        await sql.end();
      }
      await kill("SIGSTOP", pids);
      return;
    }
    if (pids.length === 0) return;
    await kill("SIGCONT", pids);
    pids = [];
    // `runuser` (when root) stops itself when its child stops, and would not reap the
    // postmaster until it is continued; it may do so just after this, hence twice.
    if (isRoot) {
      await kill("SIGCONT", [running.pid]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await kill("SIGCONT", [running.pid]);
    }
  };

  await start();
  return {
    port,
    url: urlOf("postgres"),
    urlOf,
    async createDatabase(name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`);
      const sql = postgres(urlOf("postgres"), { max: 1, onnotice: () => {} });
      try {
        await sql.unsafe(`create database ${name}`);
      } finally {
        await sql.end();
      }
      return urlOf(name);
    },
    stop,
    start,
    signal,
    async [Symbol.asyncDispose]() {
      // A stopped (SIGSTOP) server would not act on pg_ctl stop.
      if (pids.length > 0) await signal("SIGCONT");
      await stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
