// deno-lint-ignore-file no-console -- a benchmark prints its figures
/**
 * serveHttp() against Deno.serve, same tiny webhook-like handler, same load: keep-alive raw TCP
 * clients each sending small JSON POSTs back to back. Both servers run in this process; the
 * load generator runs in a Worker (its own thread, from a blob URL, so `--allow-net` is
 * enough). Rounds alternate which server goes first; the medians of the rounds are printed.
 *
 *     deno run --allow-net bench/http_server_bench.ts [--seconds=3] [--connections=32] [--rounds=3]
 *
 * @module
 */
import { serveHttp } from "../src/http/server.ts";
import { markdownTable, median, ms, percentile, perSecond } from "./stats.ts";

interface LoadJob {
  port: number;
  connections: number;
  durationMs: number;
  request: Uint8Array;
}

interface LoadResult {
  /** Latency of every completed request, in ms. */
  latencies: Float64Array<ArrayBuffer>;
  durationMs: number;
  /** Responses that were not 200, and connections that failed. */
  errors: number;
}

/**
 * The load generator, run in a Worker from its source text: it must not refer to anything
 * outside itself. Each connection sends one request, reads the whole response (by its
 * Content-Length), and sends the next.
 */
function loadGenerator(): void {
  // This module is type-checked as a main module, where `self` has no worker API.
  const scope = self as unknown as {
    onmessage: (event: MessageEvent<LoadJob>) => void;
    postMessage(message: unknown, transfer: Transferable[]): void;
  };
  const decoder = new TextDecoder();
  const blankLine = (bytes: Uint8Array, end: number) => {
    for (let i = 0; i + 3 < end; i++) {
      if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
        return i;
      }
    }
    return -1;
  };
  scope.onmessage = async (event) => {
    const { port, connections, durationMs, request } = event.data;
    const latencies: number[] = [];
    let errors = 0;
    const started = performance.now();
    const until = started + durationMs;
    const client = async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const buf = new Uint8Array(64 * 1024);
      let length = 0;
      try {
        while (performance.now() < until) {
          const sent = performance.now();
          for (let written = 0; written < request.length;) {
            written += await conn.write(request.subarray(written));
          }
          for (;;) {
            const headEnd = blankLine(buf, length);
            if (headEnd >= 0) {
              const head = decoder.decode(buf.subarray(0, headEnd));
              const contentLength = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
              const total = headEnd + 4 + contentLength;
              if (length >= total) {
                if (!head.startsWith("HTTP/1.1 200")) errors++;
                buf.copyWithin(0, total, length);
                length -= total;
                break;
              }
            }
            const n = await conn.read(buf.subarray(length));
            if (n === null) throw new Error("the server closed the connection");
            length += n;
          }
          latencies.push(performance.now() - sent);
        }
      } finally {
        conn.close();
      }
    };
    await Promise.all(Array.from({ length: connections }, () => client().catch(() => errors++)));
    const result: LoadResult = {
      latencies: Float64Array.from(latencies),
      durationMs: performance.now() - started,
      errors,
    };
    scope.postMessage(result, [result.latencies.buffer]);
  };
}

/** A Telegram-like update of exactly `size` bytes of JSON. */
function updateBody(size: number): string {
  const update = {
    update_id: 100000001,
    message: {
      message_id: 42,
      from: { id: 123456789, is_bot: false, first_name: "Ada", language_code: "en" },
      chat: { id: 123456789, type: "private", first_name: "Ada" },
      date: 1767225600,
      text: "",
    },
  };
  const base = JSON.stringify(update).length;
  update.message.text = "x".repeat(Math.max(0, size - base));
  return JSON.stringify(update);
}

/** The handler both servers run: parse the update, answer a small JSON. */
async function handler(req: Request): Promise<Response> {
  const update = await req.json();
  return Response.json({ ok: true, update_id: update.update_id });
}

function option(name: string, fallback: number): number {
  const arg = Deno.args.find((a) => a.startsWith(`--${name}=`));
  const value = arg === undefined ? fallback : Number(arg.slice(name.length + 3));
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

async function main(): Promise<void> {
  const seconds = option("seconds", 3);
  const connections = option("connections", 32);
  const rounds = option("rounds", 3);
  const body = updateBody(300);
  const request = new TextEncoder().encode(
    "POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
      `Content-Length: ${new TextEncoder().encode(body).length}\r\n\r\n${body}`,
  );

  const denoServe = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    handler,
  );
  const ours = serveHttp({ hostname: "127.0.0.1", port: 0, handler });
  const servers = [
    { name: "Deno.serve", port: denoServe.addr.port, runs: [] as LoadResult[] },
    { name: "serveHttp", port: ours.addr.port, runs: [] as LoadResult[] },
  ];

  const source = `(${loadGenerator.toString()})();`;
  const url = URL.createObjectURL(new Blob([source], { type: "application/javascript" }));
  const worker = new Worker(url, { type: "module" });
  const load = (port: number, durationMs: number) =>
    new Promise<LoadResult>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<LoadResult>) => resolve(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        reject(new Error(event.message));
      };
      worker.postMessage({ port, connections, durationMs, request } satisfies LoadJob);
    });

  try {
    console.log(
      `Deno ${Deno.version.deno}, ${connections} keep-alive connections, ` +
        `${body.length}-byte JSON POSTs, ${seconds} s per run, ${rounds} rounds\n`,
    );
    for (const server of servers) await load(server.port, 1000); // warm-up, not counted
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      for (const server of order) {
        const result = await load(server.port, seconds * 1000);
        server.runs.push(result);
        const rate = result.latencies.length / (result.durationMs / 1000);
        console.log(
          `round ${round + 1} ${server.name.padEnd(10)} ${perSecond(rate)}, ` +
            `p50 ${ms(percentile([...result.latencies], 50))}, errors ${result.errors}`,
        );
      }
    }
    const rows = servers.map(({ name, runs }) => {
      const rates = runs.map((run) => run.latencies.length / (run.durationMs / 1000));
      const at = (p: number) => median(runs.map((run) => percentile([...run.latencies], p)));
      return [
        name,
        perSecond(median(rates)),
        ms(at(50)),
        ms(at(90)),
        ms(at(99)),
        String(runs.reduce((sum, run) => sum + run.errors, 0)),
      ];
    });
    console.log(
      `\n${
        markdownTable(
          ["server", "requests/s", "p50 latency", "p90 latency", "p99 latency", "errors"],
          rows,
        )
      }`,
    );
  } finally {
    worker.terminate();
    URL.revokeObjectURL(url);
    await denoServe.shutdown();
    await ours.shutdown(1000);
  }
}

if (import.meta.main) await main();
