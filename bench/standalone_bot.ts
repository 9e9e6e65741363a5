/**
 * Runs one of the benchmarks' own bot programs, `bench/floor/` or `bench/peer/`, as a
 * subprocess: each has its own deno.json and deno.lock, and runs here exactly as its `start`
 * task runs it (same flags, same entry point, its folder as working directory), once its
 * config is found to pin the project's versions of what they share (grammY, postgres.js).
 *
 * @module
 */
import { parseStartTask } from "../scripts/start_command.ts";
import { freePort } from "../tests/e2e/program.ts";
import { assertSamePins } from "./pins.ts";

/** The bench's own programs, by folder name. */
export type StandaloneName = "floor" | "peer";

const BENCH_DIR = new URL(".", import.meta.url).pathname;

/** What deno itself needs to find its cache; the program gets nothing else but `env`. */
function passThrough(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "NO_COLOR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** A running program; `await using` stops it. */
export class StandaloneBot implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #output: Promise<void>;
  #log = "";
  #stopping: Promise<Deno.CommandStatus> | null = null;
  /** Which program. */
  readonly name: StandaloneName;
  /** Its base URL, `http://127.0.0.1:<HTTP_PORT>`. */
  readonly url: string;

  private constructor(name: StandaloneName, child: Deno.ChildProcess, port: number) {
    this.name = name;
    this.#child = child;
    this.url = `http://127.0.0.1:${port}`;
    this.#output = Promise.all([this.#collect(child.stdout), this.#collect(child.stderr)])
      .then(() => {});
  }

  /**
   * Starts program `name` with `env` (BOT_TOKEN, BOT_API_ROOT, WEBHOOK_SECRET, …; HTTP_PORT is
   * chosen here) and waits until it listens.
   */
  static async start(
    name: StandaloneName,
    env: Record<string, string>,
    timeoutMs = 60_000,
  ): Promise<StandaloneBot> {
    const cwd = `${BENCH_DIR}${name}`;
    await assertSamePins(new URL(`${name}/deno.json`, import.meta.url));
    const { flags, entry } = parseStartTask(await Deno.readTextFile(`${cwd}/deno.json`));
    const port = freePort();
    const child = new Deno.Command("deno", {
      args: ["run", ...flags, entry],
      cwd,
      env: { ...passThrough(), ...env, HTTP_PORT: String(port) },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const bot = new StandaloneBot(name, child, port);
    await bot.#waitListening(timeoutMs);
    return bot;
  }

  /** The program's process id, for its figures in `/proc`. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Sends SIGTERM and waits for the exit. Idempotent. */
  stop(): Promise<Deno.CommandStatus> {
    this.#stopping ??= (async () => {
      try {
        this.#child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      const timer = setTimeout(() => this.#kill(), 10_000);
      try {
        const status = await this.#child.status;
        await this.#output;
        return status;
      } finally {
        clearTimeout(timer);
      }
    })();
    return this.#stopping;
  }

  async #waitListening(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    this.#child.status.then(() => exited = true);
    while (!this.#log.includes("listening on ")) {
      if (exited || Date.now() > deadline) {
        this.#kill();
        await this.#child.status;
        throw new Error(
          `bench/${this.name} ${exited ? "exited" : "did not listen"} on start:\n${this.#log}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  #kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }

  async #collect(stream: ReadableStream<Uint8Array>): Promise<void> {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      // Start-up lines and errors only: the programs log nothing per update.
      this.#log = (this.#log + chunk).slice(-20_000);
    }
  }

  /** Stops the program. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
