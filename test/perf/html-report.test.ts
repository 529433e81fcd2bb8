import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Comparison } from '../../src/perf/baseline.js';
import type { OperationOk, OperationResult, SuiteResult } from '../../src/perf/harness.js';
import {
  escapeHtml,
  histogramBins,
  htmlReporter,
  latencyFields,
  renderHtmlReport,
  throughputFields,
  timeSeriesChart,
} from '../../src/perf/html-report.js';
import type { WorkloadResult } from '../../src/perf/runner.js';
import type { SoakInterval, SoakMemory, SoakReport } from '../../src/perf/soak.js';
import { seededRandom, sortedCopy, summarize } from '../../src/perf/stats.js';
import { CHROMIUM_INSTALL, dumpDom, findChromium } from '../helpers/chromium.js';

// ---- fixtures ------------------------------------------------------------------------------------

const EVIL = `<script>document.title='pwned'</script><img src=x onerror="document.title='pwned'">`;

/** Log-normal-ish samples in ns around `median`, with a few slow outliers. */
function samplesAround(median: number, n: number, seed: number): Float64Array {
  const random = seededRandom(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = (random() + random() + random() - 1.5) * 0.6;
    out[i] = median * Math.exp(u) * (random() < 0.005 ? 20 : 1);
  }
  return sortedCopy(out);
}

function okOp(name: string, median: number, n: number, seed: number): OperationOk {
  const samples = samplesAround(median, n, seed);
  const stats = summarize(samples, { sorted: true });
  return {
    state: 'ok',
    name,
    async: false,
    batch: 1,
    samples,
    stats,
    opsPerSecond: 1e9 / stats.mean,
    memory: { iterations: 1000, allocatedBytesPerOp: 72, retainedBytesPerOp: 0.5, collections: 0 },
    rounds: 3,
    stopReason: 'rme',
    durationMs: 1000,
  };
}

const operations: OperationResult[] = [
  okOp('lookup', 180, 3000, 1),
  okOp('register + unregister', 21_000, 800, 2),
  okOp(EVIL, 4_000, 500, 3),
  { state: 'error', name: 'broken', phase: 'run', error: new Error('boom <b>bold</b>') },
];

const result: SuiteResult = {
  suite: 'registry & friends',
  startedAt: '2025-01-01T00:00:00.000Z',
  durationMs: 4200,
  environment: {
    node: 'v20.19.0',
    v8: '11.3',
    platform: 'linux',
    arch: 'x64',
    cpus: 2,
    cpuModel: 'Test CPU',
    gcExposed: true,
  },
  operations,
};

const interval = (ratio: number, low: number, high: number) => ({
  ratio,
  low,
  high,
  confidence: 0.95,
  resamples: 2000,
  seed: 1,
});

const comparison: Comparison = {
  suite: result.suite,
  threshold: 0.05,
  confidence: 0.95,
  resamples: 2000,
  seed: 1,
  operations: [
    {
      status: 'compared',
      name: 'lookup',
      verdict: 'regression',
      interval: interval(1.32, 1.25, 1.4),
      baselineMedian: 136,
      currentMedian: 180,
    },
    {
      status: 'compared',
      name: 'register + unregister',
      verdict: 'improvement',
      interval: interval(0.8, 0.74, 0.86),
      baselineMedian: 26_250,
      currentMedian: 21_000,
    },
    {
      status: 'compared',
      name: EVIL,
      verdict: 'no significant change',
      interval: interval(1.01, 0.97, 1.04),
      baselineMedian: 3960,
      currentMedian: 4000,
    },
    { status: 'not-comparable', name: 'broken', reason: 'failed in the current run (run): boom' },
    { status: 'only-in-baseline', name: 'retired op' },
  ],
  regressions: ['lookup'],
  improvements: ['register + unregister'],
  environmentChanges: ['cpuModel'],
};

const workloads: WorkloadResult[] = [
  {
    workload: 'quick_latency',
    runs: 3,
    fields: { p50_us: 40, p99_us: 120, mean_us: 50, n: 2000 },
    error: null,
  },
  { workload: 'registry_lookup', runs: 3, fields: { ns_per_op: 250 }, error: null },
  { workload: 'consensus_round', runs: 3, fields: { rounds_per_s: 900, decided_share: 1 }, error: null },
  {
    workload: 'cast_throughput',
    runs: 3,
    fields: { msgs_per_s: 1_200_000, p50_ms: 0.5, p999_ms: 2 },
    error: null,
  },
  { workload: `evil${EVIL}`, runs: 1, fields: null, error: `crashed: ${EVIL}` },
];

/** A soak of three intervals, one operation named with markup; an interval where it made no call. */
function soakMemory(atMs: number, k: number): SoakMemory {
  return {
    atMs,
    heapUsedBytes: 40e6 + k * 1e5,
    rssBytes: 90e6 + k * 2e5,
    liveAgents: 230,
    trackedAgents: 25,
    agentBytesMean: 400 + k,
    agentBytesMax: 900 + k,
    agentBytesTotal: 25 * (400 + k),
    serviceBytes: { registry: 9000 },
    runtimeBytes: 27_000,
  };
}

function soakLatency(p50: number, n: number) {
  return n === 0
    ? { n: 0, p50_us: Number.NaN, p99_us: Number.NaN, mean_us: Number.NaN, max_us: Number.NaN, errors: 0 }
    : { n, p50_us: p50, p99_us: p50 * 4, mean_us: p50 * 1.5, max_us: p50 * 9, errors: 0 };
}

const SOAK_OPS = ['service_discovery', `evil${EVIL}`];
const soakIntervals: SoakInterval[] = [1, 2, 3].map((k) => ({
  index: k,
  startMs: (k - 1) * 1000,
  endMs: k * 1000,
  cycles: 100,
  latency: {
    service_discovery: soakLatency(2 + k, 100),
    [`evil${EVIL}`]: soakLatency(50, k === 2 ? 0 : 100),
  },
  overall: soakLatency(10 + k, 200),
  spawned: 10,
  exited: 10,
  memory: soakMemory(k * 1000, k),
}));
const soakReport: SoakReport = {
  startedAt: '2025-01-02T03:04:05.000Z',
  plannedMs: 3000,
  elapsedMs: 3000,
  intervalMs: 1000,
  stopped: 'duration',
  cycles: 300,
  operations: SOAK_OPS,
  churnAgents: 10,
  baseline: soakMemory(0, 0),
  intervals: soakIntervals,
  growth: {
    samples: 4,
    agentBytesPerHourMean: 1200,
    agentBytesPerHourMax: 3600,
    maxAgent: '<mabeam-1.0.7>',
    heapBytesPerHour: 1e8,
    heapBytesPerDay: 2.4e9,
    steadyHeapBytesPerHour: 1e8,
    steadyHeapBytesPerDay: 2.4e9,
    serviceBytesPerHour: { registry: 0 },
    runtimeBytesPerHour: 0,
    structuresBytesPerHour: 0,
  },
  targets: { agentBytesPerHour: 1e6, systemBytesPerDay: 10e6, agentOk: true, systemOk: false },
};

const BINS = 30;
const okOps = operations.filter((o): o is OperationOk => o.state === 'ok');
const expectedBins = okOps.map((o) => histogramBins(o.samples, BINS).length);
const compared = comparison.operations.filter((c) => c.status === 'compared').length;
const workloadLatencyBars = workloads.reduce(
  (n, w) => n + (w.fields ? latencyFields(w.fields).length : 0),
  0,
);
const workloadThroughputBars = workloads.reduce(
  (n, w) => n + (w.fields ? throughputFields(w.fields).length : 0),
  0,
);
/** Every chart of the full report, with its bars. */
const expectedCharts = okOps.length + 4 + 4;
const expectedBars =
  expectedBins.reduce((a, b) => a + b, 0) +
  4 * okOps.length +
  compared +
  workloadLatencyBars +
  workloadThroughputBars;

function fullReport(): string {
  return renderHtmlReport({
    result,
    comparison,
    workloads,
    soak: soakReport,
    bins: BINS,
    title: `bench ${EVIL}`,
    generatedAt: '2025-01-02T03:04:05.000Z',
  });
}

// ---- reading serialized HTML ---------------------------------------------------------------------

/** The `<svg>` elements (outer HTML) of one chart kind, in document order. */
function charts(html: string, chart: string): string[] {
  const re = new RegExp(`<svg\\b[^>]*\\bdata-chart="${chart}"[^>]*>[\\s\\S]*?</svg>`, 'g');
  return html.match(re) ?? [];
}

function count(html: string, re: RegExp): number {
  return (html.match(re) ?? []).length;
}

/** The opening tags of the `<rect>`s in `svg`. */
function rects(svg: string): string[] {
  return svg.match(/<rect\b[^>]*>/g) ?? [];
}

function attr(tag: string, name: string): string | undefined {
  return new RegExp(`\\b${name}="([^"]*)"`).exec(tag)?.[1];
}

// ---- the HTML string -----------------------------------------------------------------------------

describe('histogramBins', () => {
  it('splits min..p99 into equal bins, puts the tail in an overflow bin, and keeps every sample', () => {
    const samples = Array.from({ length: 1000 }, (_, i) => i);
    samples.push(1e6); // one far outlier
    const bins = histogramBins(samples, 10);
    expect(bins.reduce((n, b) => n + b.count, 0)).toBe(1001);
    const regular = bins.filter((b) => !b.overflow);
    expect(regular).toHaveLength(10);
    expect(regular[0]?.from).toBe(0);
    expect(bins.at(-1)).toMatchObject({ overflow: true, to: 1e6 });
    const widths = regular.map((b) => b.to - b.from);
    for (const w of widths) expect(w).toBeCloseTo(widths[0] as number, 9);
  });

  it('uses no more bins than samples, one bin for equal samples, none for no samples', () => {
    expect(histogramBins([5, 6, 7], 40).filter((b) => !b.overflow)).toHaveLength(3);
    expect(histogramBins([4, 4, 4, 4], 40)).toEqual([{ from: 4, to: 4, count: 4, overflow: false }]);
    expect(histogramBins([], 40)).toEqual([]);
    expect(() => histogramBins([1], 0)).toThrow(RangeError);
  });
});

describe('workload figures', () => {
  it('reads latency figures in any unit, ordered by percentile, in ns', () => {
    const f = latencyFields({ p99_us: 120, mean_ms: 0.05, p50_us: 40, p999_us: 300, ns_per_op: 9, n: 5 });
    expect(f.map((x) => [x.field, x.label, x.ns])).toEqual([
      ['p50_us', 'p50', 40_000],
      ['p99_us', 'p99', 120_000],
      ['p999_us', 'p99.9', 300_000],
      ['mean_ms', 'mean', 50_000],
      ['ns_per_op', 'per op', 9],
    ]);
    expect(throughputFields({ ops_per_s: 5, n: 3, rounds_per_s: 2, ns_per_op: 10 })).toEqual([
      { field: 'ops_per_s', value: 5, derived: false },
      { field: 'rounds_per_s', value: 2, derived: false },
    ]);
    // No rate reported: ops/s from the time per op.
    expect(throughputFields({ us_per_op: 4, n: 3 })).toEqual([
      { field: 'us_per_op', value: 250_000, derived: true },
    ]);
    expect(throughputFields({ ns_per_op: 0 })).toEqual([]);
  });

  it('reads any time per thing (us_per_trial, ns_per_spawn) after the time per op', () => {
    const f = latencyFields({ us_per_trial_last100: 9, ns_per_op: 2, us_per_trial: 4, p50_us: 1 });
    expect(f.map((x) => [x.field, x.label, x.ns])).toEqual([
      ['p50_us', 'p50', 1000],
      ['ns_per_op', 'per op', 2],
      ['us_per_trial_last100', 'per trial last100', 9000],
      ['us_per_trial', 'per trial', 4000],
    ]);
  });
});

/** The opening tags of the `<circle>`s (points) of one series in `svg`. */
function points(svg: string, series: string): string[] {
  return (svg.match(/<circle\b[^>]*>/g) ?? []).filter((t) => attr(t, 'data-series') === escapeHtml(series));
}

describe('the soak in the report', () => {
  const html = renderHtmlReport({ soak: soakReport, generatedAt: '2025-01-02T03:04:05.000Z' });

  it('charts latency and memory over time: a point per interval (memory: and at the start)', () => {
    const latency = charts(html, 'soak-latency')[0] as string;
    expect(points(latency, 'p99').map((t) => [attr(t, 'data-at-ms'), attr(t, 'data-value')])).toEqual([
      ['1000', '44'],
      ['2000', '48'],
      ['3000', '52'],
    ]);
    expect(points(latency, 'p50')).toHaveLength(3);
    const memory = charts(html, 'soak-memory')[0] as string;
    expect(points(memory, 'heap used').map((t) => attr(t, 'data-value'))).toEqual([
      '40000000',
      '40100000',
      '40200000',
      '40300000',
    ]);
    expect(points(memory, 'rss')).toHaveLength(4);
    expect(points(charts(html, 'soak-agent-memory')[0] as string, 'largest agent')).toHaveLength(4);
    // Per operation; an interval without a call of an operation has no point for it.
    const perOp = charts(html, 'soak-operation-p99')[0] as string;
    expect(points(perOp, 'service_discovery')).toHaveLength(3);
    expect(points(perOp, `evil${EVIL}`)).toHaveLength(2);
    expect(count(perOp, /<polyline\b/g)).toBe(2);
  });

  it('tabulates the growth rates with their targets, and every interval', () => {
    expect(html).toContain('3.6 kB/h (&lt;mabeam-1.0.7&gt;)');
    expect(html).toContain('target under 10 MB/day: NOT met');
    expect(html).toContain('target under 1 MB/h: met');
    expect(count(html, /<tr data-interval="/g)).toBe(3);
    expect(html).toContain('<title>mabeam bench</title>');
  });

  it('escapes operation names in series, legends and tooltips', () => {
    expect(html).not.toContain(EVIL);
    expect(count(html, /<script\b/g)).toBe(1);
    expect(count(html, /<img\b/g)).toBe(0);
  });

  it('a chart of no points says so; a log scale for values spanning decades', () => {
    const empty = timeSeriesChart('t', 'nothing', [{ name: 'a', color: '#000', points: [] }], String);
    expect(empty).toContain('no figures to chart');
    const wide = timeSeriesChart(
      't',
      'wide',
      [
        {
          name: 'a',
          color: '#000',
          points: [
            { atMs: 0, value: 1 },
            { atMs: 1, value: 1e4 },
          ],
        },
      ],
      String,
    );
    expect(wide).toContain('data-scale="log"');
  });
});

describe('renderHtmlReport (string)', () => {
  const html = fullReport();

  it('escapes every name, message and the title', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    // Exactly one script element (the page's own) and no injected img.
    expect(count(html, /<script\b/gi)).toBe(1);
    expect(count(html, /<img\b/gi)).toBe(0);
    expect(html).not.toContain(EVIL);
    expect(html).toContain(escapeHtml(EVIL));
    expect(html).toContain('boom &lt;b&gt;bold&lt;/b&gt;');
    expect(html).toContain('<h2>Suite registry &amp; friends</h2>');
    expect(html).toContain(`<title>bench ${escapeHtml(EVIL)}</title>`);
  });

  it('is self-contained: no external resource, and a CSP that forbids the network', () => {
    // No src/href attribute on any element (attribute values may hold the escaped text "src=").
    expect(html).not.toMatch(/<[a-z][\w-]*(?:\s+[\w:-]+(?:="[^"]*")?)*\s+(?:src|href)=/i);
    expect(html).not.toMatch(/@import|url\(/i);
    // The only URL is the SVG namespace (an identifier, never fetched).
    const urls = html.match(/https?:\/\/[^\s"'<>]+/g) ?? [];
    expect(new Set(urls)).toEqual(new Set(['http://www.w3.org/2000/svg']));
    expect(html).toMatch(/<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;;/);
    expect(html).toMatch(/script-src &#39;sha256-[A-Za-z0-9+/=]+&#39;/);
  });

  it('has one histogram per measured operation with one rect per bin', () => {
    const hist = charts(html, 'latency-distribution');
    expect(hist.map((s) => rects(s).length)).toEqual(expectedBins);
    hist.forEach((svg, i) => {
      const counts = rects(svg).map((r) => Number(attr(r, 'data-count')));
      expect(counts.reduce((a, b) => a + b, 0)).toBe(okOps[i]?.stats.n);
      expect(svg).toContain('data-marker="median"');
    });
    expect(attr(hist[0] as string, 'data-operation')).toBe('lookup');
  });

  it('has a percentiles chart with p50/p90/p99/p99.9 per operation', () => {
    const [svg, ...more] = charts(html, 'percentiles');
    expect(more).toHaveLength(0);
    const bars = rects(svg as string);
    expect(bars).toHaveLength(4 * okOps.length);
    const lookup = bars.filter((r) => attr(r, 'data-operation') === 'lookup');
    expect(lookup.map((r) => attr(r, 'data-percentile'))).toEqual(['p50', 'p90', 'p99', 'p999']);
    const op = okOps[0] as OperationOk;
    expect(lookup.map((r) => Number(attr(r, 'data-value')))).toEqual([
      op.stats.median,
      op.stats.p90,
      op.stats.p99,
      op.stats.p999,
    ]);
  });

  it('has a baseline comparison: one bar per compared operation, colored by verdict, with its CI', () => {
    const [svg] = charts(html, 'baseline-comparison');
    const bars = rects(svg as string);
    expect(bars.map((r) => attr(r, 'data-verdict'))).toEqual([
      'regression',
      'improvement',
      'no significant change',
    ]);
    expect(bars.map((r) => attr(r, 'fill'))).toEqual(['#c0392b', '#1e8449', '#8a949e']);
    expect(bars.map((r) => [attr(r, 'data-ratio'), attr(r, 'data-low'), attr(r, 'data-high')])).toEqual([
      ['1.32', '1.25', '1.4'],
      ['0.8', '0.74', '0.86'],
      ['1.01', '0.97', '1.04'],
    ]);
    expect(count(svg as string, /class="ci"/g)).toBe(3 * compared);
    expect(html).toContain('1.32x [1.25, 1.40] regression');
    expect(html).toContain('not run');
  });

  it('charts and tabulates the workloads', () => {
    const latency = rects(charts(html, 'workload-latency')[0] as string);
    expect(latency).toHaveLength(workloadLatencyBars);
    expect(
      latency.filter((r) => attr(r, 'data-workload') === 'quick_latency').map((r) => attr(r, 'data-field')),
    ).toEqual(['p50_us', 'p99_us', 'mean_us']);
    const throughput = rects(charts(html, 'workload-throughput')[0] as string);
    expect(
      throughput.map((r) => [attr(r, 'data-field'), attr(r, 'data-value'), attr(r, 'data-derived')]),
    ).toEqual([
      ['ns_per_op', '4000000', 'true'],
      ['rounds_per_s', '900', undefined],
      ['msgs_per_s', '1200000', undefined],
    ]);
    expect(html).toContain('<span class="k">p99_us</span> 120</span>');
    expect(html).toContain('FAILED');
  });

  it('renders any subset: workloads only, nothing, and as the html Reporter', () => {
    const only = renderHtmlReport({ workloads: workloads.slice(0, 1) });
    expect(charts(only, 'latency-distribution')).toHaveLength(0);
    expect(rects(charts(only, 'workload-latency')[0] as string)).toHaveLength(3);
    expect(renderHtmlReport({})).toContain('Nothing to report');
    // A chart with nothing to show is still there, empty, and says so.
    const none = renderHtmlReport({ workloads: [{ workload: 'w', runs: 1, fields: { n: 1 }, error: null }] });
    expect(rects(charts(none, 'workload-throughput')[0] as string)).toHaveLength(0);
    expect(charts(none, 'workload-throughput')[0]).toContain('no figures to chart');
    expect(htmlReporter).toMatchObject({ name: 'html', mediaType: 'text/html' });
    expect(charts(htmlReporter.render({ result }), 'percentiles')).toHaveLength(1);
  });
});

// ---- in headless Chromium ------------------------------------------------------------------------

const INSTALL = CHROMIUM_INSTALL;

describe('the report in headless Chromium', () => {
  let dir: string | undefined;
  /** The DOM Chromium dumped, or why there is none (each test then fails with that message). */
  let loaded: { dom: string } | { error: Error };
  const domOf = (): string => {
    if ('error' in loaded) throw loaded.error;
    return loaded.dom;
  };

  beforeAll(async () => {
    const chromium = findChromium();
    if (chromium === null) {
      loaded = {
        error: new Error(
          'Chromium is not installed: neither `chromium` nor `chromium-browser` is on PATH. ' +
            `The HTML report test needs it (CI installs it); install it with: ${INSTALL}`,
        ),
      };
      return;
    }
    dir = await mkdtemp(join(tmpdir(), 'mabeam-html-report-'));
    const file = join(dir, 'report.html');
    await writeFile(file, fullReport());
    try {
      loaded = { dom: await dumpDom(chromium, file, join(dir, 'profile')) };
    } catch (error) {
      loaded = { error: error as Error };
    }
  }, 20_000);

  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('ran the page script: every chart and bar is in the DOM', () => {
    const dom = domOf();
    expect(dom).toMatch(/<html\b[^>]*data-ready="true"/);
    // Counted by the page script with querySelectorAll in the browser.
    expect(dom).toContain(`<span id="rendered">${expectedCharts} charts, ${expectedBars} bars</span>`);
  });

  it('has each chart with the expected number of bars and their values', () => {
    const dom = domOf();
    expect(charts(dom, 'latency-distribution').map((s) => rects(s).length)).toEqual(expectedBins);
    expect(rects(charts(dom, 'percentiles')[0] as string)).toHaveLength(4 * okOps.length);
    const comparisonBars = rects(charts(dom, 'baseline-comparison')[0] as string);
    expect(comparisonBars.map((r) => attr(r, 'data-verdict'))).toEqual([
      'regression',
      'improvement',
      'no significant change',
    ]);
    expect(rects(charts(dom, 'workload-latency')[0] as string)).toHaveLength(workloadLatencyBars);
    expect(rects(charts(dom, 'workload-throughput')[0] as string)).toHaveLength(workloadThroughputBars);
    // Values as text, formatted.
    expect(dom).toContain('1.32x [1.25, 1.40] regression');
    expect(dom).toContain('1.2 M/s');
    expect(dom).toContain('120 µs');
    // The soak's line charts: their points are circles.
    expect(points(charts(dom, 'soak-memory')[0] as string, 'heap used')).toHaveLength(4);
    expect(points(charts(dom, 'soak-operation-p99')[0] as string, 'service_discovery')).toHaveLength(3);
  });

  it('escaped the user-supplied names: nothing was injected', () => {
    const dom = domOf();
    expect(count(dom, /<script\b/gi)).toBe(1);
    expect(count(dom, /<img\b/gi)).toBe(0);
    expect(dom).not.toContain('pwned</title>');
    expect(dom).toContain(`<title>bench &lt;script&gt;document.title='pwned'&lt;/script&gt;`);
    expect(dom).toContain('&lt;script&gt;document.title=');
  });
});
