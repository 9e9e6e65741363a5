/**
 * The Prometheus client: counters, gauges and histograms with labels, kept on a registry
 * that renders the text exposition format (version 0.0.4) for `/metrics`.
 *
 * Its own, not prom-client: prom-client (with tdigest and bintrees, CommonJS) took about 55 ms
 * of every start to load. The interface is the part of prom-client's the program used, with
 * the same output: label values in the order first given, a histogram's `le` before its
 * labels, `+Inf`, `-Inf` and `Nan` for values that are not finite.
 */

/** Label values by label name. */
export type LabelValues<L extends string> = Partial<Record<L, string | number>>;

/** One sample of a metric, as {@link Metric.get} returns it. */
export interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  /** The sample's own name where it differs from the metric's (a histogram's `_bucket`…). */
  metricName?: string;
}

/** A metric's samples with its name, help and type. */
export interface MetricObject {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  values: MetricValue[];
}

/** What a registry needs of a metric. */
export interface RegisteredMetric {
  readonly name: string;
  /** The samples, brought up to date. */
  get(): Promise<MetricObject>;
}

/** What a metric is made from. */
export interface MetricConfiguration<L extends string, M> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /** The registries it is rendered on. */
  registers?: readonly Registry[];
  /** Called before each reading (a scrape), to bring the values up to date. */
  collect?: (this: M) => void | Promise<void>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Metrics by name, rendered in the order they were registered. */
export class Registry {
  /** The content type of {@link metrics}' text. */
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  readonly #metrics = new Map<string, RegisteredMetric>();

  /** Adds `metric`; another metric of the same name is an error. */
  registerMetric(metric: RegisteredMetric): void {
    const known = this.#metrics.get(metric.name);
    if (known !== undefined && known !== metric) {
      throw new Error(`A metric with the name ${metric.name} has already been registered.`);
    }
    this.#metrics.set(metric.name, metric);
  }

  /** The metric called `name`. */
  getSingleMetric(name: string): RegisteredMetric | undefined {
    return this.#metrics.get(name);
  }

  /** The text of the metric called `name` (its help, type and samples). */
  async getSingleMetricAsString(name: string): Promise<string> {
    const metric = this.#metrics.get(name);
    if (metric === undefined) throw new Error(`no metric called ${name}`);
    return render(await metric.get());
  }

  /** Every metric's samples, read after its `collect`. */
  getMetricsAsJSON(): Promise<MetricObject[]> {
    return Promise.all([...this.#metrics.values()].map((metric) => metric.get()));
  }

  /** The text exposition of every metric. */
  async metrics(): Promise<string> {
    return `${(await this.getMetricsAsJSON()).map(render).join("\n\n")}\n`;
  }
}

/** What counters, gauges and histograms share: a name, help, label names and a registry. */
export abstract class Metric<L extends string, S = { value: number }> implements RegisteredMetric {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  abstract readonly type: MetricObject["type"];
  /** Series by label key; a series holds its labels as first given. */
  protected series = new Map<string, S & { labels: LabelValues<L> }>();
  readonly #collect: (() => void | Promise<void>) | null;

  constructor(config: MetricConfiguration<L, never>) {
    if (!NAME.test(config.name)) throw new Error(`Invalid metric name ${config.name}`);
    if (!config.help) throw new Error(`Missing help for ${config.name}`);
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames ?? [];
    if (!this.labelNames.every((label) => LABEL_NAME.test(label) && label !== "le")) {
      throw new Error(`Invalid label name in ${this.labelNames.join(", ")}`);
    }
    const collect = config.collect as ((this: unknown) => void | Promise<void>) | undefined;
    this.#collect = collect === undefined ? null : () => collect.call(this);
    for (const registry of config.registers ?? []) registry.registerMetric(this);
  }

  /** Forgets every series; a metric without labels starts again from zero. */
  reset(): void {
    this.series.clear();
    if (this.labelNames.length === 0) this.series.set("", this.fresh({}));
  }

  /** The samples, after `collect`. */
  async get(): Promise<MetricObject> {
    if (this.#collect !== null) await this.#collect();
    const values: MetricValue[] = [];
    for (const series of this.series.values()) this.samples(series, values);
    return { name: this.name, help: this.help, type: this.type, values };
  }

  /** A new series with `labels` and nothing counted. */
  protected abstract fresh(labels: LabelValues<L>): S & { labels: LabelValues<L> };

  /** Appends the samples of one series. */
  protected abstract samples(series: S & { labels: LabelValues<L> }, into: MetricValue[]): void;

  /**
   * The series of `labels`, made on first use. Its key is the label values in `labelNames`'
   * order, joined by NUL (a missing value is empty, as in Prometheus); a single string label is
   * its own key, so the usual `inc({ outcome })` allocates nothing.
   */
  protected seriesOf(labels: LabelValues<L> | undefined): S & { labels: LabelValues<L> } {
    const names = this.labelNames;
    let key = "";
    if (labels !== undefined) {
      for (const name in labels) {
        if (!names.includes(name as L)) {
          throw new Error(`Added label "${name}" is not included in ${names.join(", ")}`);
        }
      }
      for (let i = 0; i < names.length; i++) {
        const value = labels[names[i]!];
        const text = value === undefined ? "" : typeof value === "string" ? value : `${value}`;
        key = i === 0 ? text : `${key}\0${text}`;
      }
    }
    let series = this.series.get(key);
    if (series === undefined) {
      series = this.fresh({ ...labels });
      this.series.set(key, series);
    }
    return series;
  }
}

/** A value that only goes up (and starts again when the process does). */
export class Counter<L extends string = string> extends Metric<L> {
  readonly type = "counter";

  constructor(config: MetricConfiguration<L, Counter<L>>) {
    super(config as MetricConfiguration<L, never>);
    this.reset();
  }

  /** Adds `value` (1 when left out) to the series of `labels`. */
  inc(value?: number): void;
  inc(labels: LabelValues<L>, value?: number): void;
  inc(labels?: LabelValues<L> | number, value?: number): void {
    const by = typeof labels === "number" ? labels : value ?? 1;
    if (!Number.isFinite(by)) throw new TypeError(`Value is not a valid number: ${by}`);
    if (by < 0) throw new Error("It is not possible to decrease a counter");
    this.seriesOf(typeof labels === "object" ? labels : undefined).value += by;
  }

  protected fresh(labels: LabelValues<L>) {
    return valueSeries(labels);
  }

  protected samples(series: { labels: LabelValues<L>; value: number }, into: MetricValue[]) {
    into.push(valueSample(series));
  }
}

/** A value that goes up and down. */
export class Gauge<L extends string = string> extends Metric<L> {
  readonly type = "gauge";

  constructor(config: MetricConfiguration<L, Gauge<L>>) {
    super(config as MetricConfiguration<L, never>);
    this.reset();
  }

  /** Sets the series of `labels` to `value`. */
  set(value: number): void;
  set(labels: LabelValues<L>, value: number): void;
  set(labels: LabelValues<L> | number, value?: number): void {
    const to = typeof labels === "number" ? labels : value;
    if (typeof to !== "number") throw new TypeError(`Value is not a valid number: ${to}`);
    this.seriesOf(typeof labels === "object" ? labels : undefined).value = to;
  }

  /** Adds `value` (1 when left out). */
  inc(value?: number): void;
  inc(labels: LabelValues<L>, value?: number): void;
  inc(labels?: LabelValues<L> | number, value?: number): void {
    const by = typeof labels === "number" ? labels : value ?? 1;
    this.seriesOf(typeof labels === "object" ? labels : undefined).value += by;
  }

  /** Subtracts `value` (1 when left out). */
  dec(value?: number): void;
  dec(labels: LabelValues<L>, value?: number): void;
  dec(labels?: LabelValues<L> | number, value?: number): void {
    const by = typeof labels === "number" ? labels : value ?? 1;
    this.seriesOf(typeof labels === "object" ? labels : undefined).value -= by;
  }

  protected fresh(labels: LabelValues<L>) {
    return valueSeries(labels);
  }

  protected samples(series: { labels: LabelValues<L>; value: number }, into: MetricValue[]) {
    into.push(valueSample(series));
  }
}

/** A new series of a counter or a gauge. */
function valueSeries<L extends string>(labels: LabelValues<L>) {
  return { labels, value: 0 };
}

/** The one sample of a counter's or a gauge's series. */
function valueSample(series: { labels: object; value: number }): MetricValue {
  return { value: series.value, labels: series.labels as MetricValue["labels"] };
}

/** One histogram series: counts per bucket (not cumulative), their sum and count. */
interface Buckets {
  counts: Float64Array;
  sum: number;
  count: number;
}

/** Observations counted in buckets by upper bound, with their sum and count. */
export class Histogram<L extends string = string> extends Metric<L, Buckets> {
  readonly type = "histogram";
  /** The buckets' upper bounds, ascending; `+Inf` is implied. */
  readonly upperBounds: readonly number[];

  constructor(config: MetricConfiguration<L, Histogram<L>> & { buckets?: readonly number[] }) {
    super(config as MetricConfiguration<L, never>);
    this.upperBounds = [
      ...config.buckets ?? [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    ].sort((a, b) => a - b);
    this.reset();
  }

  /** Counts `value` in the series of `labels`. */
  observe(value: number): void;
  observe(labels: LabelValues<L>, value: number): void;
  observe(labels: LabelValues<L> | number, value?: number): void {
    const observed = typeof labels === "number" ? labels : value!;
    if (!Number.isFinite(observed)) throw new TypeError(`Value is not a valid number: ${observed}`);
    const series = this.seriesOf(typeof labels === "object" ? labels : undefined);
    const bounds = this.upperBounds;
    let bucket = 0;
    while (bucket < bounds.length && observed > bounds[bucket]!) bucket++;
    if (bucket < bounds.length) series.counts[bucket]!++;
    series.sum += observed;
    series.count++;
  }

  protected fresh(labels: LabelValues<L>) {
    return { labels, counts: new Float64Array(this.upperBounds.length), sum: 0, count: 0 };
  }

  protected samples(series: Buckets & { labels: LabelValues<L> }, into: MetricValue[]) {
    const labels = series.labels as MetricValue["labels"];
    const bucket = `${this.name}_bucket`;
    let cumulative = 0;
    this.upperBounds.forEach((le, i) => {
      cumulative += series.counts[i]!;
      into.push({ value: cumulative, labels: { le, ...labels }, metricName: bucket });
    });
    into.push(
      { value: series.count, labels: { le: "+Inf", ...labels }, metricName: bucket },
      { value: series.sum, labels: { ...labels }, metricName: `${this.name}_sum` },
      { value: series.count, labels: { ...labels }, metricName: `${this.name}_count` },
    );
  }
}

/** A metric in the text exposition format. */
function render(metric: MetricObject): string {
  const lines = [
    `# HELP ${metric.name} ${escape(metric.help)}`,
    `# TYPE ${metric.name} ${metric.type}`,
  ];
  for (const { metricName = metric.name, labels, value } of metric.values) {
    const pairs = Object.entries(labels).map(([name, v]) =>
      `${name}="${typeof v === "string" ? escape(v).replaceAll('"', '\\"') : v}"`
    );
    lines.push(`${metricName}${pairs.length ? `{${pairs.join(",")}}` : ""} ${number(value)}`);
  }
  return lines.join("\n");
}

function escape(text: string): string {
  return text.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function number(value: number): string {
  if (Number.isNaN(value)) return "Nan";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return `${value}`;
}
