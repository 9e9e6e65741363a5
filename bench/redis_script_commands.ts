/**
 * Counts the commands that Lua scripts run inside a Redis, by name, from its MONITOR stream.
 *
 * `INFO commandstats` counts every command a server ran, including those a script runs with
 * `redis.call` (an EVALSHA that does GET and SET adds one to `evalsha`, `get` and `set`
 * alike), and Redis 7.0 keeps no count per client. MONITOR shows which is which: a script's
 * commands appear as sent by client `lua`. Subtracting these from the `commandstats` delta
 * leaves what clients sent, one round trip each.
 *
 * MONITOR costs Redis a formatted line per command, the same for every client, and this
 * process a read of it.
 *
 * @module
 */

const encoder = new TextEncoder();

/** One RESP command as bytes. */
function resp(...args: string[]): Uint8Array {
  const parts = args.map((arg) => `$${encoder.encode(arg).length}\r\n${arg}\r\n`);
  return encoder.encode(`*${args.length}\r\n${parts.join("")}`);
}

/** A monitor of one Redis; `await using` closes its connections. */
export class ScriptCommandMonitor implements AsyncDisposable {
  readonly #monitor: Deno.TcpConn;
  readonly #control: Deno.TcpConn;
  readonly #reading: Promise<void>;
  /** Script commands seen so far, by lower-case name. */
  readonly #counts = new Map<string, number>();
  #markers = 0;
  #waiting: { marker: string; resolve: (counts: Map<string, number>) => void } | null = null;

  private constructor(monitor: Deno.TcpConn, control: Deno.TcpConn) {
    this.#monitor = monitor;
    this.#control = control;
    this.#reading = this.#read();
  }

  /** Connects to the Redis on `port` of 127.0.0.1 and starts monitoring it. */
  static async open(port: number): Promise<ScriptCommandMonitor> {
    const monitor = await Deno.connect({ hostname: "127.0.0.1", port });
    const control = await Deno.connect({ hostname: "127.0.0.1", port });
    await monitor.write(resp("MONITOR"));
    return new ScriptCommandMonitor(monitor, control);
  }

  /**
   * The script commands counted up to now, by name. It sends an ECHO on a connection of its
   * own and waits until the monitor shows it: everything Redis ran before is counted by then.
   * That ECHO is counted by `commandstats` (as `echo`), so leave it out of deltas.
   */
  async mark(): Promise<Map<string, number>> {
    if (this.#waiting) throw new Error("mark() is already waiting");
    const marker = `bench-mark-${++this.#markers}`;
    const counted = new Promise<Map<string, number>>((resolve) => {
      this.#waiting = { marker: `"echo" "${marker}"`, resolve };
    });
    // MONITOR shows a command's name as the client spelled it: lower case, as matched above.
    await this.#control.write(resp("echo", marker));
    // The reply is `$<n>\r\n<marker>\r\n`: read it so that the socket holds nothing.
    const reply = new Uint8Array(64 + marker.length);
    await this.#control.read(reply);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`MONITOR did not show ${marker}`)), 10_000);
    });
    try {
      return await Promise.race([counted, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #read(): Promise<void> {
    let pending = "";
    try {
      for await (const chunk of this.#monitor.readable.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        const lines = pending.split("\r\n");
        pending = lines.pop() ?? "";
        for (const line of lines) this.#line(line);
      }
    } catch {
      // Closed.
    }
  }

  /** `+1700000000.123456 [0 lua] "get" "key"`: the client is `lua` inside a script. */
  #line(line: string): void {
    const close = line.indexOf('] "');
    if (close < 0) return;
    if (line.startsWith(" lua", close - 4)) {
      const name = line.slice(close + 3, line.indexOf('"', close + 3)).toLowerCase();
      this.#counts.set(name, (this.#counts.get(name) ?? 0) + 1);
    } else if (this.#waiting && line.endsWith(this.#waiting.marker)) {
      this.#waiting.resolve(new Map(this.#counts));
      this.#waiting = null;
    }
  }

  /** Closes both connections. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#monitor.close();
    this.#control.close();
    await this.#reading;
  }
}
