/**
 * Runs the real program as a subprocess, as the `start` task does (the same permissions,
 * flags and entry point), in a temporary working directory, and reads its JSON log lines.
 */
import { PROJECT_ROOT, readStartCommand, type StartCommand } from "../../scripts/start_command.ts";
import { FAKE_TOKEN, type FakeBotApi } from "../fake_bot_api.ts";
import { freePort } from "../support/ports.ts";

/** One parsed JSON log line. */
export type LogLine = Record<string, unknown> & { level: string; msg: string; logger: string };

/** Options of {@link BotProcess.start}. */
export interface StartOptions {
  /** The fake Telegram the program talks to (sets BOT_TOKEN and BOT_API_ROOT). */
  api?: FakeBotApi;
  /** Extra or overriding environment variables. */
  env?: Record<string, string>;
  /** Working directory; a fresh temporary one when absent. */
  cwd?: string;
  /** Subcommand and arguments. */
  args?: string[];
  /** Entry point instead of main.ts (for sandbox probes), relative to the project root. */
  entry?: string;
  /** A command that runs `deno` for us, e.g. `["prlimit", "--nofile=256:256"]`. */
  wrap?: string[];
}

/** A free TCP port on loopback (the tests' one helper, re-exported for the e2e tests and benches). */
export { freePort };

/** The value of one sample of a `/metrics` text, e.g. `bot_gate_total{outcome="passed"}`; 0 when absent. */
export function metricSample(metrics: string, series: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** The webhook path the end-to-end tests and benchmarks serve. */
export const WEBHOOK_PATH = "/telegram/hook";

/** Environment for webhook mode on `port`, with Telegram posting to loopback. */
export function webhookEnv(port: number, secret: string): Record<string, string> {
  return {
    BOT_MODE: "webhook",
    HTTP_PORT: String(port),
    WEBHOOK_URL: `http://127.0.0.1:${port}${WEBHOOK_PATH}`,
    WEBHOOK_SECRET: secret,
  };
}

/** What deno itself needs to find its cache; the program cannot read these. */
function passThrough(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "NO_COLOR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * The command line of the `start` task (`start`, read from deno.json unless given), for another
 * cwd: its permission set spelled out as flags (a set's paths would resolve against deno.json's
 * folder, these against the cwd, as in the compiled binary) and the entry point made absolute.
 */
export function startArgs(entry?: string, start: StartCommand = readStartCommand()): string[] {
  return [
    "run",
    "--config",
    `${PROJECT_ROOT}/deno.json`,
    ...start.runFlags,
    `${PROJECT_ROOT}/${entry ?? start.entry}`,
  ];
}

/** The running program. */
export class BotProcess implements AsyncDisposable {
  /** Every JSON line on stdout so far. */
  readonly lines: LogLine[] = [];
  /** Everything on stdout that was not JSON, and all of stderr. */
  readonly text: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #readers: Promise<void>[];
  /** The working directory (holds data/). */
  readonly cwd: string;
  /** The HTTP port the program listens on. */
  readonly port: number;
  /** Settles with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  #ownsCwd: boolean;

  private constructor(child: Deno.ChildProcess, cwd: string, port: number, ownsCwd: boolean) {
    this.#child = child;
    this.cwd = cwd;
    this.port = port;
    this.#ownsCwd = ownsCwd;
    this.#readers = [this.#read(child.stdout, true), this.#read(child.stderr, false)];
    this.status = child.status.then(async (status) => {
      await Promise.all(this.#readers);
      return status;
    });
  }

  /** Starts the program. */
  static async start(options: StartOptions = {}): Promise<BotProcess> {
    const cwd = options.cwd ?? await Deno.makeTempDir({ prefix: "bot-e2e-" });
    const port = Number(options.env?.HTTP_PORT ?? freePort());
    const start = readStartCommand();
    const env: Record<string, string> = {
      ...passThrough(),
      // What the start task sets before `deno run` (the C library's memory settings).
      ...start.env,
      BOT_TOKEN: FAKE_TOKEN,
      HTTP_PORT: String(port),
      SHUTDOWN_TIMEOUT: "20",
      ...(options.api ? { BOT_API_ROOT: options.api.apiRoot } : {}),
      ...options.env,
    };
    const [program, ...prefix] = [...(options.wrap ?? []), "deno"];
    const child = new Deno.Command(program!, {
      args: [...prefix, ...startArgs(options.entry, start), ...(options.args ?? [])],
      cwd,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new BotProcess(child, cwd, port, options.cwd === undefined);
  }

  /** Runs a subcommand to its end and returns its exit code and output. */
  static async run(
    options: StartOptions,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    await using program = await BotProcess.start(options);
    const { code } = await program.status;
    return { code, stdout: program.stdoutText(), stderr: program.stderrText };
  }

  /** The base URL of the program's HTTP server. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** All of stderr so far. */
  stderrText = "";

  /** Stdout as text (JSON lines re-serialized, other lines as they were). */
  stdoutText(): string {
    return [...this.lines.map((line) => JSON.stringify(line)), ...this.text].join("\n");
  }

  /** Log lines whose `msg` matches. */
  logs(pattern: RegExp): LogLine[] {
    return this.lines.filter((line) => pattern.test(line.msg));
  }

  /** Waits for a log line matching `pattern`; fails early if the program exits. */
  async waitForLog(pattern: RegExp, timeoutMs = 20_000): Promise<LogLine> {
    return await this.#waitFor(
      () => this.logs(pattern)[0],
      timeoutMs,
      `a log line matching ${pattern}`,
    );
  }

  /** Waits until `probe` returns something; fails early if the program exits. */
  async waitFor<T>(
    probe: () => T | undefined,
    timeoutMs = 20_000,
    what = "a condition",
  ): Promise<T> {
    return await this.#waitFor(probe, timeoutMs, what);
  }

  /** Waits until `GET /health` answers 200. */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    await this.waitForLog(/^ready as /, timeoutMs);
  }

  /** Fetches a path of the program's HTTP server and returns status, headers and body. */
  async get(
    path: string,
    init?: RequestInit,
  ): Promise<{ status: number; headers: Headers; body: string }> {
    const res = await fetch(`${this.url}${path}`, init);
    return { status: res.status, headers: res.headers, body: await res.text() };
  }

  /** Sends a signal. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.#child.kill(signal);
    } catch {
      // Already gone.
    }
  }

  /** Sends SIGTERM and waits for the exit. */
  async stop(): Promise<Deno.CommandStatus> {
    this.kill("SIGTERM");
    return await this.status;
  }

  async #waitFor<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    this.status.then(() => exited = true);
    while (true) {
      const found = probe();
      if (found !== undefined) return found;
      if (exited) throw new Error(`program exited while waiting for ${what}\n${this.#tail()}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${this.#tail()}`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  #tail(): string {
    return [
      ...this.lines.slice(-15).map((line) => JSON.stringify(line)),
      this.stderrText.slice(-2000),
    ].join("\n");
  }

  async #read(stream: ReadableStream<Uint8Array>, stdout: boolean): Promise<void> {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      if (!stdout) {
        this.stderrText += chunk;
        continue;
      }
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop() ?? "";
      for (const part of parts) this.#line(part);
    }
    if (pending) this.#line(pending);
  }

  #line(text: string): void {
    if (text.trim() === "") return;
    try {
      this.lines.push(JSON.parse(text) as LogLine);
    } catch {
      this.text.push(text);
    }
  }

  /** Kills the program if still running and removes its temporary directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.status;
    if (this.#ownsCwd) await Deno.remove(this.cwd, { recursive: true }).catch(() => {});
  }
}

/**
 * A button press in chat `chatId` whose answer Telegram takes `ms` to accept: an update that
 * stays in flight that long, as one waiting out a 429 or uploading a large file would. Resolves
 * once the bot is waiting for that answer. Polling mode only: in webhook mode the answer travels
 * in the webhook's 200, once the update is done.
 */
export async function slowUpdate(api: FakeBotApi, chatId: number, ms: number): Promise<number> {
  api.delay("answerCallbackQuery", ms);
  const answers = api.callsOf("answerCallbackQuery").length;
  const id = api.pushCallbackQuery({ chatId, data: "no:such:button" });
  await api.waitFor(
    () => api.callsOf("answerCallbackQuery").length > answers,
    15_000,
    "the slow update in flight",
  );
  return id;
}
