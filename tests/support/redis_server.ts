/**
 * A throwaway `redis-server` for tests: its own free port on 127.0.0.1, its own temp dir,
 * no persistence unless asked for. It never touches a shared Redis on 6379.
 */

import { join } from "node:path";
import { freePort } from "./ports.ts";

/** A running (or stopped) test Redis; `await using` stops it and removes its dir. */
export interface RedisServer extends AsyncDisposable {
  /** The TCP port, the same across {@link RedisServer.stop} and {@link RedisServer.start}. */
  readonly port: number;
  /** `redis://127.0.0.1:PORT`. */
  readonly url: string;
  /**
   * Starts the server again on the same port and waits until it answers PING: empty, or with
   * the data it had when stopped if it was started with {@link RedisOptions.persist}.
   */
  start(): Promise<void>;
  /** Stops the server and waits until the process has exited. Idempotent. */
  stop(): Promise<void>;
  /** Sends `signal` to the running server (`SIGSTOP` hangs it with its connections open). */
  signal(signal: Deno.Signal): void;
}

/** Options of {@link startRedis}. */
export interface RedisOptions {
  /**
   * Keep the data across {@link RedisServer.stop} and {@link RedisServer.start}: an append-only
   * file in the temp dir, synced on every write, so that even the last write survives a stop.
   * @default false
   */
  persist?: boolean;
  /** Require this password (`requirepass`); the URL then carries it. */
  password?: string;
  /**
   * Also listen with TLS on `port`, with this certificate and key (PEM files); clients are not
   * asked for certificates. The plain port stays open (for the readiness check).
   */
  tls?: { port: number; certFile: string; keyFile: string };
}

/** Runs `redis-cli` against `server` (e.g. `CONFIG SET`) and returns its output; throws when it fails. */
export async function redisCli(server: RedisServer, ...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command("redis-cli", {
    args: ["-h", "127.0.0.1", "-p", String(server.port), ...args],
  }).output();
  const decoder = new TextDecoder();
  if (code !== 0) throw new Error(`redis-cli ${args.join(" ")}: ${decoder.decode(stderr)}`);
  return decoder.decode(stdout);
}

/** Starts a fresh Redis on a free port and waits until it answers PING. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const persistence = options.persist
    ? ["--appendonly", "yes", "--appendfsync", "always"]
    : ["--appendonly", "no"];
  const port = freePort();
  const dir = await Deno.makeTempDir({ prefix: "redis-test-" });
  let child: Deno.ChildProcess | null = null;

  const start = async () => {
    if (child) throw new Error(`redis-server on port ${port} is already running`);
    const process = new Deno.Command("redis-server", {
      args: [
        ...["--port", String(port), "--bind", "127.0.0.1", "--dir", dir],
        ...["--save", "", ...persistence, "--daemonize", "no"],
        ...["--logfile", join(dir, "redis.log")],
        ...(options.password === undefined ? [] : ["--requirepass", options.password]),
        ...(options.tls === undefined ? [] : [
          ...["--tls-port", String(options.tls.port), "--tls-auth-clients", "no"],
          ...["--tls-cert-file", options.tls.certFile, "--tls-key-file", options.tls.keyFile],
        ]),
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child = process;
    try {
      await waitForPong(port, process);
    } catch (error) {
      await stop();
      throw error;
    }
  };

  const stop = async () => {
    const running = child;
    if (!running) return;
    child = null;
    // With `--save ""` SIGTERM exits at once without writing a dump (an append-only file is
    // already on disk: it is synced on every write).
    running.kill("SIGTERM");
    const timer = setTimeout(() => running.kill("SIGKILL"), 5_000);
    try {
      await running.status;
    } finally {
      clearTimeout(timer);
    }
  };

  try {
    await start();
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  return {
    port,
    url: options.password === undefined
      ? `redis://127.0.0.1:${port}`
      : `redis://:${encodeURIComponent(options.password)}@127.0.0.1:${port}`,
    start,
    stop,
    signal(signal) {
      if (!child) throw new Error(`redis-server on port ${port} is not running`);
      child.kill(signal);
    },
    async [Symbol.asyncDispose]() {
      // A stopped (SIGSTOP) server would not act on SIGTERM.
      child?.kill("SIGCONT");
      await stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function waitForPong(port: number, process: Deno.ChildProcess): Promise<void> {
  let exited = false;
  process.status.then(() => exited = true, () => exited = true);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`redis-server on port ${port} exited during start-up`);
    if (await answersPing(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`redis-server on port ${port} did not answer PING within 10 s`);
}

async function answersPing(port: number): Promise<boolean> {
  let conn: Deno.TcpConn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return false;
  }
  try {
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buffer = new Uint8Array(64);
    const read = await conn.read(buffer);
    const answer = read === null ? "" : new TextDecoder().decode(buffer.subarray(0, read));
    // A server with a password answers, but refuses PING until authenticated.
    return answer.startsWith("+PONG") || answer.startsWith("-NOAUTH");
  } catch {
    return false;
  } finally {
    conn.close();
  }
}
