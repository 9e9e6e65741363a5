/**
 * Connection abuse, as anyone who can reach `HTTP_PORT` can try it (no secret needed): far
 * more idle connections than the process has file descriptors. The program keeps serving
 * `/health` while they are open (idle ones make room for new ones), closes silent ones after a
 * bound, and serves normally once they are gone; it neither dies nor lingers half-dead.
 */
import assert from "node:assert/strict";
import { FakeBotApi } from "../fake_bot_api.ts";
import { BotProcess } from "./program.ts";

Deno.test("connections: 1000 idle connections under a 256-descriptor limit never stop /health, and silent ones are closed", async () => {
  await using api = await FakeBotApi.start();
  await using bot = await BotProcess.start({ api, wrap: ["prlimit", "--nofile=256:256"] });
  await bot.waitReady();
  const idle: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 1000; i++) {
      idle.push(await Deno.connect({ hostname: "127.0.0.1", port: bot.port }));
    }
    // A probe gets through while they are all open: idle connections are evicted for it.
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${bot.url}/health`, { signal: AbortSignal.timeout(10_000) });
      assert.equal(res.status, 200, await res.text());
    }
    // Silent connections are closed after the header timeout (10 s): read sees the end.
    const sample = idle.slice(-20);
    const closed = await Promise.all(sample.map(async (conn) => {
      const buffer = new Uint8Array(64);
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        const read = await Promise.race([
          conn.read(buffer),
          new Promise<"open">((resolve) => timer = setTimeout(() => resolve("open"), 20_000)),
        ]);
        return read !== "open";
      } catch {
        return true; // reset by the server
      } finally {
        clearTimeout(timer);
      }
    }));
    assert.ok(closed.every(Boolean), `${closed.filter((c) => !c).length} of 20 were left open`);
  } finally {
    for (const conn of idle) {
      try {
        conn.close();
      } catch {
        // Already closed by the server.
      }
    }
  }
  const res = await fetch(`${bot.url}/health`);
  assert.equal(res.status, 200);
  await res.body?.cancel();
  const metrics = (await bot.get("/metrics")).body;
  assert.match(metrics, /bot_http_connections_total\{event="evicted"\} [1-9]/);
  assert.deepEqual(bot.logs(/unhandled promise rejection|HTTP server (failed|stopped)/), []);
  assert.equal((await bot.stop()).code, 0);
});
