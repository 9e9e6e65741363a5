import assert from "node:assert/strict";
import { Counter, Gauge, Histogram, Registry } from "../../src/metrics/prometheus.ts";

Deno.test("a scrape shows help, type and each labelled series in the order first seen", async () => {
  const registry = new Registry();
  const updates = new Counter({
    name: "updates_total",
    help: "Updates by type\nand outcome \\ all",
    labelNames: ["type", "outcome"],
    registers: [registry],
  });
  updates.inc({ type: "message", outcome: "handled" });
  updates.inc({ outcome: "handled", type: "message" }, 2);
  updates.inc({ outcome: "error", type: 'say "hi"\\\n' });
  const queue = new Gauge({ name: "queue_size", help: "Queued", registers: [registry] });
  queue.set(5);
  queue.dec(2);
  queue.inc();
  new Gauge({ name: "odd", help: "Odd values", labelNames: ["v"], registers: [registry] })
    .set({ v: "nan" }, NaN);
  assert.equal(
    await registry.metrics(),
    [
      "# HELP updates_total Updates by type\\nand outcome \\\\ all",
      "# TYPE updates_total counter",
      'updates_total{type="message",outcome="handled"} 3',
      'updates_total{outcome="error",type="say \\"hi\\"\\\\\\n"} 1',
      "",
      "# HELP queue_size Queued",
      "# TYPE queue_size gauge",
      "queue_size 4",
      "",
      "# HELP odd Odd values",
      "# TYPE odd gauge",
      'odd{v="nan"} Nan',
      "",
    ].join("\n"),
  );
});

Deno.test("a histogram counts each observation in its bucket, cumulatively, le first", async () => {
  const registry = new Registry();
  const duration = new Histogram({
    name: "duration_seconds",
    help: "Time",
    labelNames: ["type"],
    buckets: [1, 0.1],
    registers: [registry],
  });
  duration.observe({ type: "a" }, 0.1);
  duration.observe({ type: "a" }, 0.5);
  duration.observe({ type: "a" }, 7);
  assert.equal(
    await registry.getSingleMetricAsString("duration_seconds"),
    [
      "# HELP duration_seconds Time",
      "# TYPE duration_seconds histogram",
      'duration_seconds_bucket{le="0.1",type="a"} 1',
      'duration_seconds_bucket{le="1",type="a"} 2',
      'duration_seconds_bucket{le="+Inf",type="a"} 3',
      'duration_seconds_sum{type="a"} 7.6',
      'duration_seconds_count{type="a"} 3',
    ].join("\n"),
  );
  const [json] = await registry.getMetricsAsJSON();
  assert.deepEqual(json!.values[0], {
    value: 1,
    labels: { le: 0.1, type: "a" },
    metricName: "duration_seconds_bucket",
  });
});

Deno.test("metrics without labels start at zero; with labels, at their first use", async () => {
  const registry = new Registry();
  const registers = [registry];
  new Counter({ name: "plain_total", help: "h", registers });
  new Counter({ name: "labelled_total", help: "h", labelNames: ["x"], registers });
  new Histogram({ name: "plain_seconds", help: "h", buckets: [1], registers });
  const text = await registry.metrics();
  assert.match(text, /^plain_total 0$/m);
  assert.doesNotMatch(text, /^labelled_total/m);
  assert.match(text, /^plain_seconds_bucket\{le="\+Inf"\} 0$/m);
});

Deno.test("collect brings values up to date before each reading, also asynchronously", async () => {
  const registry = new Registry();
  let open = 3;
  new Gauge({
    name: "open",
    help: "h",
    registers: [registry],
    async collect() {
      await Promise.resolve();
      this.set(open);
    },
  });
  let total = 10;
  const counter = new Counter({
    name: "kept_total",
    help: "h",
    labelNames: ["kind"],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ kind: "a" }, total);
    },
  });
  assert.match(await registry.metrics(), /^open 3$/m);
  open = 4;
  total = 12;
  const text = await registry.metrics();
  assert.match(text, /^open 4$/m);
  assert.match(text, /^kept_total\{kind="a"\} 12$/m);
  assert.equal((await counter.get()).values.length, 1);
});

Deno.test("a label given as a number is the same series as its text", async () => {
  const registry = new Registry();
  const rejected = new Counter({
    name: "rejected_total",
    help: "h",
    labelNames: ["status"],
    registers: [registry],
  });
  rejected.inc({ status: 400 });
  rejected.inc({ status: "400" });
  rejected.inc({ status: "401" });
  assert.deepEqual(
    (await rejected.get()).values.map(({ labels, value }) => [labels.status, value]),
    [[400, 2], ["401", 1]],
  );
});

Deno.test("misuse is refused: unknown labels, a falling counter, bad values, a name twice", () => {
  const registry = new Registry();
  const counter = new Counter({
    name: "c_total",
    help: "h",
    labelNames: ["known"],
    registers: [registry],
  });
  assert.throws(() => counter.inc({ unknown: "x" } as never), /"unknown" is not included/);
  assert.throws(() => counter.inc({ known: "x" }, -1), /not possible to decrease/);
  assert.throws(() => counter.inc(NaN), /not a valid number/);
  const histogram = new Histogram({ name: "h_seconds", help: "h" });
  assert.throws(() => histogram.observe(Infinity), /not a valid number/);
  assert.throws(
    () => new Counter({ name: "c_total", help: "h", registers: [registry] }),
    /already/,
  );
  assert.throws(() => new Counter({ name: "bad name", help: "h" }), /Invalid metric name/);
  assert.throws(() => new Histogram({ name: "x", help: "h", labelNames: ["le"] }), /label name/);
});
