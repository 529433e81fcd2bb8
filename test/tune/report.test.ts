import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/tune/random.js';
import { escapeHtml, renderStudyReport, type StudyReportInput } from '../../src/tune/report.js';
import type {
  Config,
  LineageEntry,
  SearchSpace,
  TrialMetrics,
  TrialRecord,
  TrialState,
} from '../../src/tune/types.js';
import { CHROMIUM_INSTALL, dumpDom, findChromium } from '../helpers/chromium.js';

// ---- fixtures ------------------------------------------------------------------------------------

const EVIL = `<script>document.title='pwned'</script><img src=x onerror="document.title='pwned'">`;

const SPACE: SearchSpace = {
  lr: { type: 'float', min: 1e-5, max: 1, log: true },
  layers: { type: 'int', min: 1, max: 8 },
  act: { type: 'choice', values: ['relu', 'tanh', EVIL] },
  bn: { type: 'bool' },
};

function trial(
  id: number,
  state: TrialState,
  config: Config,
  losses: readonly number[],
  extra: { lineage?: LineageEntry[]; error?: string; best?: number | null } = {},
): TrialRecord {
  const reports: TrialMetrics[] = losses.map((loss, i) => ({ step: i + 1, loss, acc: 1 - loss }));
  const finite = losses.filter(Number.isFinite);
  const lineage = extra.lineage ?? [];
  return {
    id,
    state,
    initialConfig: config,
    config: lineage.length > 0 ? (lineage[lineage.length - 1] as LineageEntry).config : config,
    reports,
    best: extra.best !== undefined ? extra.best : finite.length > 0 ? Math.min(...finite) : null,
    error: extra.error ?? null,
    lineage,
    startedAt: 1_000 + id,
    endedAt: 2_000 + id * 10,
  };
}

const cfg = (lr: number, layers: number, act: string, bn: boolean): Config => ({ lr, layers, act, bn });

/** A small study with every case: pruned, failed, NaN reports, a trial with only NaN, PBT exploits. */
const TRIALS: TrialRecord[] = [
  trial(0, 'completed', cfg(0.01, 2, 'relu', true), [0.9, 0.5, 0.3, 0.25]),
  trial(1, 'pruned', cfg(0.5, 8, 'tanh', false), [1.2, 1.1]),
  trial(2, 'completed', cfg(1e-4, 4, EVIL, true), [0.8, Number.NaN, 0.4, 0.2], {
    lineage: [{ step: 2, donor: 0, config: cfg(0.012, 2, 'relu', true) }],
  }),
  trial(3, 'failed', cfg(0.3, 1, 'relu', false), [], { error: `Error: ${EVIL}` }),
  trial(4, 'completed', cfg(0.002, 3, 'tanh', true), [Number.NaN, Number.NaN], { best: null }),
  trial(5, 'pruned', cfg(3e-5, 6, 'relu', false), [1.5]),
  trial(6, 'completed', cfg(0.05, 5, 'tanh', true), [0.7, 0.45, 0.35, 0.3], {
    lineage: [
      { step: 2, donor: 1, config: cfg(0.6, 8, 'tanh', false) },
      { step: 3, donor: 0, config: cfg(0.011, 2, 'relu', true) },
    ],
  }),
];

/** Trials with a finite value (a finite best, or a finite report). */
const VALUED = TRIALS.filter(
  (t) => t.reports.some((r) => Number.isFinite(r.loss)) || Number.isFinite(t.best ?? Number.NaN),
);
const CURVES = VALUED.length;
const PRUNED_CURVES = VALUED.filter((t) => t.state === 'pruned').length;
const EXPLOITS = TRIALS.reduce((n, t) => n + t.lineage.length, 0);
const INVOLVED = new Set(
  TRIALS.flatMap((t) => (t.lineage.length > 0 ? [t.id, ...t.lineage.map((e) => e.donor)] : [])),
);

function input(overrides: Partial<StudyReportInput> = {}): StudyReportInput {
  return {
    name: `study ${EVIL}`,
    objective: { metric: 'loss', mode: 'min' },
    sampler: { name: 'tpe', options: { startup: 10, note: EVIL } },
    scheduler: 'pbt',
    space: SPACE,
    trials: TRIALS,
    wallMs: 125_000,
    startedAt: Date.UTC(2025, 0, 2, 3, 4, 5),
    generatedAt: '2025-01-02T04:00:00.000Z',
    ...overrides,
  };
}

// ---- reading serialized HTML ---------------------------------------------------------------------

/** The `<svg>` (outer HTML) of one chart, or undefined. */
function chart(html: string, name: string): string | undefined {
  return new RegExp(`<svg\\b[^>]*\\bdata-chart="${name}"[^>]*>[\\s\\S]*?</svg>`).exec(html)?.[0];
}

function count(html: string, re: RegExp): number {
  return (html.match(re) ?? []).length;
}

/** Opening tags of `tag` elements with class `cls` (among others) in `svg`. */
function tags(svg: string, tag: string, cls?: string): string[] {
  const all = svg.match(new RegExp(`<${tag}\\b[^>]*>`, 'g')) ?? [];
  return cls === undefined ? all : all.filter((t) => (attr(t, 'class') ?? '').split(' ').includes(cls));
}

function attr(tag: string, name: string): string | undefined {
  return new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];
}

function points(tag: string): [number, number][] {
  return (attr(tag, 'points') ?? '')
    .split(' ')
    .filter((p) => p !== '')
    .map((p) => p.split(',').map(Number) as [number, number]);
}

/** Check every chart of the full fixture report (in `html`, a string or Chromium's DOM). */
function expectCharts(html: string): void {
  const history = chart(html, 'history') as string;
  const circles = tags(history, 'circle', 'trial');
  expect(circles.map((c) => Number(attr(c, 'data-trial')))).toEqual(VALUED.map((t) => t.id));
  expect(circles.map((c) => attr(c, 'data-state'))).toEqual(VALUED.map((t) => t.state));
  const bestLine = tags(history, 'polyline', 'best-so-far');
  expect(bestLine).toHaveLength(1);
  // Minimizing: the best so far only goes down, which is down the page (y grows).
  const ys = points(bestLine[0] as string).map(([, y]) => y);
  for (let i = 1; i < ys.length; i++) expect(ys[i]).toBeGreaterThanOrEqual(ys[i - 1] as number);

  const pc = chart(html, 'parallel-coordinates') as string;
  const axes = tags(pc, 'g', 'axis');
  expect(axes.map((a) => [attr(a, 'data-axis'), attr(a, 'data-scale')])).toEqual([
    ['lr', 'log'],
    ['layers', 'linear'],
    ['act', 'categorical'],
    ['bn', 'categorical'],
    ['loss', 'linear'],
  ]);
  const lines = tags(pc, 'polyline', 'trial');
  expect(lines.map((l) => Number(attr(l, 'data-trial'))).sort((a, b) => a - b)).toEqual(
    VALUED.map((t) => t.id),
  );
  for (const l of lines) expect(points(l)).toHaveLength(5);
  // The best trial (2: loss 0.2) is drawn last (on top), in the darkest colour.
  expect(attr(lines[lines.length - 1] as string, 'data-trial')).toBe('2');
  expect(attr(lines[lines.length - 1] as string, 'stroke')).toBe('#08306b');

  const curves = chart(html, 'learning-curves') as string;
  const polylines = tags(curves, 'polyline', 'curve');
  expect(polylines).toHaveLength(CURVES);
  expect(tags(curves, 'polyline', 'pruned')).toHaveLength(PRUNED_CURVES);
  expect(tags(curves, 'circle', 'pruned-end')).toHaveLength(PRUNED_CURVES);
  for (const p of tags(curves, 'polyline', 'pruned')) expect(attr(p, 'stroke-dasharray')).toBe('4 3');
  const t2 = polylines.find((p) => attr(p, 'data-trial') === '2') as string;
  expect(attr(t2, 'class')).toBe('curve best');
  expect(points(t2)).toHaveLength(3); // its NaN report is skipped

  const lineage = chart(html, 'lineage') as string;
  expect(tags(lineage, 'line', 'row').map((r) => Number(attr(r, 'data-trial')))).toEqual(
    [...INVOLVED].sort((a, b) => a - b),
  );
  const edges = tags(lineage, 'line', 'exploit');
  expect(edges).toHaveLength(EXPLOITS);
  expect(edges.map((e) => [attr(e, 'data-trial'), attr(e, 'data-donor'), attr(e, 'data-step')])).toEqual([
    ['2', '0', '2'],
    ['6', '1', '2'],
    ['6', '0', '3'],
  ]);

  const table = /<table\b[^>]*data-table="trials"[\s\S]*?<\/table>/.exec(html)?.[0] as string;
  expect(count(table, /<tr data-trial=/g)).toBe(TRIALS.length);
}

// ---- the HTML string -----------------------------------------------------------------------------

describe('renderStudyReport (string)', () => {
  const html = renderStudyReport(input());

  it('draws every chart with one element per trial, axis and exploit', () => {
    expectCharts(html);
  });

  it('summarizes the best trial, the counts and the wall time', () => {
    const field = (name: string) => new RegExp(`<dd data-field="${name}">([^<]*)</dd>`).exec(html)?.[1];
    expect(field('best')).toBe('loss = 0.2 (trial 2, completed)');
    expect(field('best config')).toBe('lr=0.012, layers=2, act=relu, bn=true');
    expect(field('trials')).toBe('7 run: 4 completed, 2 pruned, 1 failed');
    expect(field('wall time')).toBe('2 min 5 s');
    expect(field('started')).toBe('2025-01-02T03:04:05.000Z');
    expect(field('objective')).toBe('minimize loss');
    expect(html).toContain('2 trial(s) without a finite loss (failed, or NaN) are not plotted');
  });

  it('escapes every caller string: names, choices, configs, errors, sampler options', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    const evilMetric = renderStudyReport(
      input({
        objective: { metric: EVIL, mode: 'max' },
        space: { [EVIL]: { type: 'choice', values: [EVIL] } },
        trials: [trial(0, 'completed', { [EVIL]: EVIL }, [])].map((t) => ({
          ...t,
          reports: [{ step: 1, [EVIL]: 0.5 } as TrialMetrics],
          best: 0.5,
        })),
      }),
    );
    for (const page of [html, evilMetric]) {
      expect(count(page, /<script\b/gi)).toBe(1);
      expect(count(page, /<img\b/gi)).toBe(0);
      expect(page).not.toContain(EVIL);
      expect(page).toContain(escapeHtml(EVIL));
    }
    expect(html).toContain(`<title>mabeam tune: study ${escapeHtml(EVIL)}</title>`);
    expect(html).toContain(`Error: ${escapeHtml(EVIL)}`);
    expect(tags(chart(evilMetric, 'parallel-coordinates') as string, 'g', 'axis')).toHaveLength(2);
  });

  it('is self-contained: no external resource, and a CSP that forbids the network', () => {
    expect(html).not.toMatch(/<[a-z][\w-]*(?:\s+[\w:-]+(?:="[^"]*")?)*\s+(?:src|href)=/i);
    expect(html).not.toMatch(/@import|url\(/i);
    const urls = html.match(/https?:\/\/[^\s"'<>]+/g) ?? [];
    expect(new Set(urls)).toEqual(new Set(['http://www.w3.org/2000/svg']));
    expect(html).toMatch(/<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;;/);
    expect(html).toMatch(/script-src &#39;sha256-[A-Za-z0-9+/=]+&#39;/);
  });

  it('reports zero trials: empty charts that say so, no lineage, no rows', () => {
    const empty = renderStudyReport(input({ trials: [], wallMs: 0 }));
    for (const name of ['history', 'learning-curves']) {
      expect(attr(chart(empty, name) as string, 'data-empty')).toBe('true');
      expect(chart(empty, name)).toContain('no trial reported a finite loss');
    }
    const pc = chart(empty, 'parallel-coordinates') as string;
    expect(tags(pc, 'g', 'axis')).toHaveLength(5);
    expect(tags(pc, 'polyline')).toHaveLength(0);
    expect(chart(empty, 'lineage')).toBeUndefined();
    expect(empty).toContain('data-note="no-exploits"');
    expect(empty).toContain('data-note="no-trials"');
    expect(empty).toContain('<dd data-field="best">none (no trial reported a finite value)</dd>');
    expect(count(empty, /<tr data-trial=/g)).toBe(0);
  });

  it('reports a study where every trial failed', () => {
    const failed = [0, 1, 2].map((id) =>
      trial(id, 'failed', cfg(0.1, 1, 'relu', true), [], { error: 'boom' }),
    );
    const page = renderStudyReport(input({ trials: failed }));
    expect(attr(chart(page, 'history') as string, 'data-empty')).toBe('true');
    expect(tags(chart(page, 'parallel-coordinates') as string, 'polyline')).toHaveLength(0);
    expect(attr(chart(page, 'learning-curves') as string, 'data-empty')).toBe('true');
    expect(page).toContain('<dd data-field="trials">3 run: 0 completed, 0 pruned, 3 failed</dd>');
    expect(count(page, /<tr data-trial="\d+" data-state="failed"/g)).toBe(3);
  });

  it('reports one trial, and a study maximizing its metric', () => {
    const one = renderStudyReport(
      input({
        objective: { metric: 'acc', mode: 'max' },
        trials: [trial(0, 'completed', cfg(0.1, 2, 'tanh', false), [0.6, 0.3], { best: null })],
      }),
    );
    expect(tags(chart(one, 'history') as string, 'circle', 'trial')).toHaveLength(1);
    expect(tags(chart(one, 'parallel-coordinates') as string, 'polyline', 'trial')).toHaveLength(1);
    expect(
      points(tags(chart(one, 'learning-curves') as string, 'polyline', 'curve')[0] as string),
    ).toHaveLength(2);
    // No stored best: the best acc of its reports (1 - 0.3), the max.
    expect(one).toContain('<dd data-field="best">acc = 0.7 (trial 0, completed)</dd>');
    const maxed = renderStudyReport(
      input({
        objective: { metric: 'acc', mode: 'max' },
        trials: [0.2, 0.9, 0.5].map((acc, id) => ({
          ...trial(id, 'completed', cfg(0.1, 2, 'tanh', false), []),
          best: acc,
        })),
      }),
    );
    expect(maxed).toContain('<dd data-field="best">acc = 0.9 (trial 1, completed)</dd>');
    // Maximizing: the best so far only goes up, which is up the page (y shrinks).
    const ys = points(tags(chart(maxed, 'history') as string, 'polyline', 'best-so-far')[0] as string).map(
      ([, y]) => y,
    );
    expect(ys.length).toBeGreaterThan(1);
    for (let i = 1; i < ys.length; i++) expect(ys[i]).toBeLessThanOrEqual(ys[i - 1] as number);
  });

  it('uses log axes for a log float and for objective values spanning decades', () => {
    const wide = [1e-6, 1e-3, 5].map((v, id) =>
      trial(id, 'completed', cfg(10 ** -(id + 1), 2, 'relu', true), [v]),
    );
    const page = renderStudyReport(input({ trials: wide }));
    expect(attr(chart(page, 'history') as string, 'data-scale')).toBe('log');
    expect(attr(chart(page, 'learning-curves') as string, 'data-scale')).toBe('log');
    const axes = tags(chart(page, 'parallel-coordinates') as string, 'g', 'axis');
    expect(axes.map((a) => attr(a, 'data-scale'))).toEqual([
      'log',
      'linear',
      'categorical',
      'categorical',
      'log',
    ]);
    // lr 0.1, 0.01, 0.001 on a log axis from 1e-5 to 1: evenly spaced.
    const lines = tags(chart(page, 'parallel-coordinates') as string, 'polyline', 'trial');
    const lrY = Object.fromEntries(
      lines.map((l) => [attr(l, 'data-trial'), (points(l)[0] as [number, number])[1]]),
    );
    expect((lrY['1'] as number) - (lrY['0'] as number)).toBeCloseTo(
      (lrY['2'] as number) - (lrY['1'] as number),
      0,
    );
  });

  it('renders metrics and bounds near the largest doubles, whose differences overflow', () => {
    // -1e308 to 1e308: max - min is Infinity. The axis used to fall back to a step of 1 and loop
    // forever; it now ticks every 5e307.
    const half = Number.MAX_VALUE / 2;
    const extreme = [-1e308, 1e308, 0].map((v, id) => ({
      ...trial(id, 'completed', { x: v / 2 }, [v, v / 2]),
      best: v,
    }));
    const page = renderStudyReport(
      input({ space: { x: { type: 'float', min: -half, max: half } }, trials: extreme }),
    );
    const history = chart(page, 'history') as string;
    const circles = tags(history, 'circle', 'trial');
    expect(circles).toHaveLength(3);
    const cy = (id: number) => Number(attr(circles[id] as string, 'cy'));
    for (const id of [0, 1, 2]) expect(Number.isFinite(cy(id))).toBe(true);
    // The lowest value at the bottom, the highest at the top, 0 halfway.
    expect(cy(0)).toBeGreaterThan(cy(2));
    expect(cy(2)).toBeGreaterThan(cy(1));
    expect(cy(2)).toBeCloseTo((cy(0) + cy(1)) / 2, 0);
    const labels = [...history.matchAll(/<text[^>]*text-anchor="end"[^>]*>([^<]*)<\/text>/g)].map(
      (m) => m[1],
    );
    expect(labels).toEqual(['-1e308', '-5e307', '0', '5e307', '1e308']);
    for (const name of ['parallel-coordinates', 'learning-curves']) {
      const svg = chart(page, name) as string;
      expect(svg).toBeDefined();
      expect(svg).not.toMatch(/NaN|Infinity/);
    }
    // All values equal and at the very top of the doubles: the padded axis stays finite.
    const top = [0, 1].map((id) => trial(id, 'completed', { x: half }, [Number.MAX_VALUE]));
    const flat = renderStudyReport(
      input({ space: { x: { type: 'float', min: -half, max: half } }, trials: top }),
    );
    expect(chart(flat, 'history')).not.toMatch(/NaN|Infinity/);
  });

  it('keeps hundreds of long trials to a reasonable size by thinning the curves', () => {
    const rng = new Rng(3);
    const many: TrialRecord[] = [];
    for (let id = 0; id < 400; id++) {
      const losses = Array.from({ length: 300 }, (_, s) => 1 / (s + 1) + rng.next() * 0.1);
      many.push(
        trial(
          id,
          id % 3 === 0 ? 'pruned' : 'completed',
          cfg(10 ** rng.uniform(-5, 0), rng.int(1, 8), 'relu', true),
          losses,
        ),
      );
    }
    const page = renderStudyReport(input({ trials: many }));
    expect(page.length).toBeLessThan(1_500_000);
    const curves = tags(chart(page, 'learning-curves') as string, 'polyline', 'curve');
    expect(curves).toHaveLength(400);
    const drawn = curves.reduce((n, c) => n + points(c).length, 0);
    expect(drawn).toBeLessThanOrEqual(24_000);
    for (const c of curves) expect(attr(c, 'data-points')).toBe('300');
    expect(tags(chart(page, 'history') as string, 'circle', 'trial')).toHaveLength(400);
    expect(count(page, /<tr data-trial=/g)).toBe(400);
  });
});

// ---- in headless Chromium ------------------------------------------------------------------------

const INSTALL = CHROMIUM_INSTALL;

const chromium = findChromium();
if (chromium === null && process.env.CI === undefined) {
  console.warn(
    `study report: Chromium is not on PATH, the headless-browser tests are skipped (install: ${INSTALL})`,
  );
}

describe.skipIf(chromium === null && process.env.CI === undefined)(
  'the study report in headless Chromium',
  () => {
    let dir: string | undefined;
    let loaded: { dom: string } | { error: Error };
    const domOf = (): string => {
      if ('error' in loaded) throw loaded.error;
      return loaded.dom;
    };

    beforeAll(async () => {
      if (chromium === null) {
        loaded = { error: new Error(`Chromium is not installed (CI must install it): ${INSTALL}`) };
        return;
      }
      dir = await mkdtemp(join(tmpdir(), 'mabeam-tune-report-'));
      const file = join(dir, 'report.html');
      await writeFile(file, renderStudyReport(input()));
      try {
        loaded = { dom: await dumpDom(chromium, file, join(dir, 'profile')) };
      } catch (error) {
        loaded = { error: error as Error };
      }
    }, 20_000);

    afterAll(async () => {
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    });

    it('ran the page script, which counted every chart element in the browser', () => {
      const dom = domOf();
      expect(dom).toMatch(/<html\b[^>]*data-ready="true"/);
      // circles: history points + pruned ends + exploit ends; polylines: best-so-far, parallel
      // coordinates, learning curves.
      const circles = VALUED.length + PRUNED_CURVES + EXPLOITS;
      const polylines = 1 + VALUED.length + CURVES;
      expect(dom).toContain(
        `<span id="rendered">4 charts, ${circles} points, ${polylines} polylines, ${EXPLOITS} exploits, ${TRIALS.length} rows</span>`,
      );
    });

    it('has each chart with its axes, points, lines and exploits', () => {
      expectCharts(domOf());
    });

    it('escaped the caller strings: nothing was injected', () => {
      const dom = domOf();
      expect(count(dom, /<script\b/gi)).toBe(1);
      expect(count(dom, /<img\b/gi)).toBe(0);
      expect(dom).not.toContain('pwned</title>');
      expect(dom).toContain('<title>mabeam tune: study &lt;script&gt;document.title=');
    });
  },
);
