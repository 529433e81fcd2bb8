/**
 * The soak: duration parsing, a short soak whose schedule runs on a fake clock (a fixed number of
 * cycles per interval, whatever the machine's speed), stopping through an AbortSignal (what
 * SIGINT does in the CLI), a short bounded real-clock run, and the SLO glue. No assertion depends
 * on timing: only on counts and on figures being present and consistent.
 */
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/kernel/index.js';
import { BudgetsSchema, checkSlos } from '../../src/perf/slo.js';
import {
  DurationFormatError,
  formatDuration,
  formatSoakReport,
  parseDuration,
  SoakErrorCodes,
  type SoakInterval,
  type SoakOptions,
  type SoakReport,
  soak,
  soakBudgets,
  soakJsonLines,
  soakMemorySeries,
  soakSloResult,
  sustainedGrowthPerHour,
  sustainedStructuresGrowthPerHour,
} from '../../src/perf/soak.js';

/** Small fixtures, few warm-up cycles: each cycle is a fraction of a millisecond of real work. */
const small = {
  sizes: { discoveryAgents: 5, voters: 5, broadcastAgents: 10 },
  warmupCycles: 3,
  churnAgents: 4,
} satisfies Partial<SoakOptions>;

/** A schedule clock that moves 1 ms per reading, and can run a hook at a given reading. */
function steppingClock(at?: { reading: number; run: () => void }): () => number {
  let t = 0;
  return () => {
    t += 1;
    if (at !== undefined && t === at.reading) at.run();
    return t;
  };
}

const OPS = [
  'service_discovery',
  'config_retrieval',
  'event_append_memory',
  'variable_update',
  'consensus_proposal',
  'agent_coordination',
  'agent_barrier',
  'broadcast_100_agents',
  'agent_churn',
];

function expectIntervalFigures(i: SoakInterval): void {
  for (const op of OPS) {
    const l = i.latency[op];
    expect(l, `${op} in interval ${i.index}`).toBeDefined();
    if (l === undefined) continue;
    expect(l.errors, op).toBe(0);
    expect(l.n, op).toBeGreaterThan(0);
    expect(l.p50_us, op).toBeGreaterThan(0);
    expect(l.p50_us).toBeLessThanOrEqual(l.p99_us);
    expect(l.p99_us).toBeLessThanOrEqual(l.max_us);
  }
  expect(i.overall.n).toBe(Object.values(i.latency).reduce((s, l) => s + l.n, 0));
  const m = i.memory;
  expect(m.heapUsedBytes).toBeGreaterThan(0);
  expect(m.rssBytes).toBeGreaterThan(0);
  // 5 discovery + 1 + 5 voters + 2 + 2 + 10 subscribers: the long-lived workload agents.
  expect(m.trackedAgents).toBe(25);
  expect(m.agentBytesMean).toBeGreaterThan(0);
  expect(m.agentBytesMax).toBeGreaterThanOrEqual(m.agentBytesMean);
  expect(m.agentBytesTotal).toBeCloseTo(m.agentBytesMean * m.trackedAgents, 6);
  expect(Object.keys(m.serviceBytes).sort()).toEqual(
    ['agentRegistry', 'config', 'eventStoreMemory', 'variables', 'variablesBroadcast'].sort(),
  );
  for (const bytes of Object.values(m.serviceBytes)) expect(bytes).toBeGreaterThan(0);
  expect(m.runtimeBytes).toBeGreaterThan(0);
}

describe('parseDuration', () => {
  it('reads a number with a unit, and parts that add up', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('2d')).toBe(172_800_000);
    expect(parseDuration(' 1h30m ')).toBe(5_400_000);
    expect(parseDuration('1m30s')).toBe(90_000);
  });

  it.each(['', '10', '5x', '10 m', 'm', '-1s', '0s', '1h30', 'ten minutes', '1e3s'])(
    'rejects %j with a typed error naming the input',
    (text) => {
      let error: unknown;
      try {
        parseDuration(text);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(DurationFormatError);
      expect((error as DurationFormatError).code).toBe(SoakErrorCodes.BAD_DURATION);
      expect((error as DurationFormatError).input).toBe(text);
      expect((error as Error).message).toContain(JSON.stringify(text));
    },
  );

  it('formatDuration writes what parseDuration reads', () => {
    for (const ms of [250, 1000, 30_000, 90_000, 3_600_000, 5_400_000, 90_061_000]) {
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    }
  });
});

describe('soak', () => {
  it('on a fake schedule clock: a fixed number of intervals and cycles, each with memory and latency', async () => {
    const seen: number[] = [];
    const report = await soak({
      ...small,
      durationMs: 40,
      intervalMs: 10,
      clock: steppingClock(),
      onInterval: (i) => seen.push(i.index),
    });
    expect(report.stopped).toBe('duration');
    expect(report.cycles).toBe(40);
    expect(report.elapsedMs).toBe(40);
    expect(report.intervals.map((i) => [i.index, i.startMs, i.endMs, i.cycles])).toEqual([
      [1, 0, 10, 10],
      [2, 10, 20, 10],
      [3, 20, 30, 10],
      [4, 30, 40, 10],
    ]);
    expect(seen).toEqual([1, 2, 3, 4]);
    expect(report.operations).toEqual(OPS);
    for (const i of report.intervals) {
      expectIntervalFigures(i);
      for (const op of OPS) expect(i.latency[op]?.n).toBe(10);
      expect(i.spawned).toBe(40);
      expect(i.exited).toBe(40);
    }
    expect(report.baseline.atMs).toBe(0);
    expect(report.baseline.trackedAgents).toBe(25);
    // Growth: slopes over the baseline and the four intervals, all finite.
    const g = report.growth;
    expect(g.samples).toBe(5);
    for (const x of [
      g.agentBytesPerHourMean,
      g.agentBytesPerHourMax,
      g.heapBytesPerHour,
      g.heapBytesPerDay,
    ]) {
      expect(Number.isFinite(x)).toBe(true);
    }
    expect(g.heapBytesPerDay).toBeCloseTo(g.heapBytesPerHour * 24, 3);
    expect(g.steadyHeapBytesPerDay).toBeCloseTo((g.steadyHeapBytesPerHour as number) * 24, 3);
    expect(report.targets.systemOk).toBe((g.steadyHeapBytesPerDay as number) <= 10e6);
    expect(g.agentBytesPerHourMax).toBeGreaterThanOrEqual(g.agentBytesPerHourMean);
    expect(g.maxAgent).toMatch(/^</);
    expect(Object.keys(g.serviceBytesPerHour)).toHaveLength(5);
    expect(g.structuresBytesPerHour).toBeCloseTo(
      Object.values(g.serviceBytesPerHour).reduce((a, b) => a + b, g.runtimeBytesPerHour),
      6,
    );
    expect(report.targets.agentBytesPerHour).toBe(1e6);
    expect(report.targets.systemBytesPerDay).toBe(10e6);
    expect(report.targets.agentOk).toBe(g.agentBytesPerHourMax <= 1e6);
  });

  it('stops when its signal aborts (as SIGINT does), reporting the partial interval it ran', async () => {
    const controller = new AbortController();
    // Reading 16 is the end of cycle 15: interval 1 closed at 10, interval 2 then holds 5 cycles.
    const report = await soak({
      ...small,
      durationMs: 1000,
      intervalMs: 10,
      signal: controller.signal,
      clock: steppingClock({ reading: 16, run: () => controller.abort() }),
    });
    expect(report.stopped).toBe('aborted');
    expect(report.cycles).toBe(15);
    expect(report.intervals.map((i) => i.cycles)).toEqual([10, 5]);
    expect(report.intervals[1]?.endMs).toBe(15);
    expectIntervalFigures(report.intervals[1] as SoakInterval);
    expect(formatSoakReport(report)).toContain('stopped early');
  });

  it('an already aborted signal: no intervals, still a baseline and a report', async () => {
    const report = await soak({
      ...small,
      durationMs: 1000,
      signal: AbortSignal.abort(),
      clock: steppingClock(),
    });
    expect(report.stopped).toBe('aborted');
    expect(report.cycles).toBe(0);
    expect(report.intervals).toEqual([]);
    expect(report.baseline.heapUsedBytes).toBeGreaterThan(0);
    expect(report.growth.samples).toBe(1);
    expect(report.growth.steadyHeapBytesPerDay).toBeNull();
  });

  it('a short run on the real clock ends on its own with at least one measured interval', async () => {
    const report = await soak({ ...small, durationMs: 300, intervalMs: 100 });
    expect(report.stopped).toBe('duration');
    expect(report.elapsedMs).toBeGreaterThanOrEqual(300);
    expect(report.intervals.length).toBeGreaterThanOrEqual(1);
    expect(report.cycles).toBe(report.intervals.reduce((s, i) => s + i.cycles, 0));
    for (const i of report.intervals) expectIntervalFigures(i);
  });

  it('rejects bad options with typed errors naming them', async () => {
    await expect(soak({ durationMs: 0 })).rejects.toThrow(InvalidArgumentError);
    await expect(soak({ durationMs: 10, intervalMs: -1 })).rejects.toThrow(/intervalMs/);
    await expect(soak({ durationMs: 10, churnAgents: 1.5 })).rejects.toThrow(/churnAgents/);
    await expect(soak({ durationMs: 10, operations: ['nope' as never] })).rejects.toThrow(/operations/);
    await expect(soak({ durationMs: 10, operations: ['event_append_sqlite'] })).rejects.toThrow(/tmpDir/);
  });
});

describe('soak reporting and SLOs', () => {
  let report: SoakReport;
  it('the text report and the JSON lines carry every interval and the growth rates', async () => {
    report = await soak({ ...small, durationMs: 20, intervalMs: 10, clock: steppingClock() });
    const text = formatSoakReport(report);
    expect(text).toMatch(/interval\s+end\s+cycles/);
    expect(text).toContain('per agent:');
    expect(text).toContain('system (heap after GC)');
    expect(text).toContain('broadcast_100_agents');
    const lines = soakJsonLines(report)
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.type)).toEqual(['interval', 'interval', 'summary']);
    expect(lines[2].growth.samples).toBe(3);
    expect(lines[0].memory.trackedAgents).toBe(25);
  });

  it("soakBudgets is valid and checkSlos reads the soak's growth from soakSloResult", async () => {
    const budgets = soakBudgets();
    expect(BudgetsSchema.safeParse(budgets).success).toBe(true);
    const result = soakSloResult(report);
    expect(result.fields?.agent_bytes_per_hour).toBe(report.growth.agentBytesPerHourMax);
    // Two intervals: the steady slope (from the first interval on) is the system figure.
    expect(report.growth.steadyHeapBytesPerDay).not.toBeNull();
    expect(result.fields?.system_bytes_per_day).toBe(report.growth.steadyHeapBytesPerDay);
    expect(result.fields?.system_all_samples_bytes_per_day).toBe(report.growth.heapBytesPerDay);
    const check = checkSlos([result], budgets);
    expect(check.rows.map((r) => [r.metric, r.unit, r.detail])).toEqual([
      ['memoryGrowth', 'MB/h', ''],
      ['memoryGrowth', 'MB/day', ''],
    ]);
    expect(check.rows[0]?.measured).toBeCloseTo(report.growth.agentBytesPerHourMax / 1e6, 9);
  });
});

describe('sustained growth', () => {
  const HOUR = 3_600_000;
  /** Points every 10 minutes. */
  const series = (bytes: readonly number[]) => bytes.map((b, i) => ({ atMs: (i * HOUR) / 6, bytes: b }));

  it('counts growth that goes on through the run', () => {
    // 600 bytes per hour, steadily.
    expect(sustainedGrowthPerHour(series([0, 100, 200, 300, 400, 500, 600]))).toBeCloseTo(600, 9);
  });

  it('does not count a one-time step, in either half, though its slope over the run is large', () => {
    for (const at of [1, 3, 4, 6]) {
      const bytes = [0, 1, 2, 3, 4, 5, 6].map((i) => (i >= at ? 16_384 : 0));
      expect(sustainedGrowthPerHour(series(bytes)), `step at ${at}`).toBe(0);
    }
  });

  it('takes the smaller half: growth in one half only counts as none (what ignoring steps costs)', () => {
    // Flat, then 1,200 bytes per hour from the middle point on: the first half has none.
    expect(sustainedGrowthPerHour(series([0, 0, 0, 0, 200, 400, 600]))).toBeCloseTo(0, 9);
    // Shrinking is negative growth.
    expect(sustainedGrowthPerHour(series([600, 500, 400, 300, 200, 100, 0]))).toBeCloseTo(-600, 9);
  });

  it('needs at least 3 points', () => {
    expect(() => sustainedGrowthPerHour(series([0, 1]))).toThrow(InvalidArgumentError);
  });

  it('over a soak: per structure, so steps of different structures in different halves do not add up', () => {
    const memory = (atMs: number, runtimeBytes: number | null, store: number) =>
      ({
        atMs,
        heapUsedBytes: 1,
        rssBytes: 1,
        liveAgents: 1,
        trackedAgents: 1,
        agentBytesMean: 1,
        agentBytesMax: 1,
        agentBytesTotal: 1,
        serviceBytes: { store },
        runtimeBytes,
      }) satisfies SoakInterval['memory'];
    const step = (i: number, at: number, size: number) => (i >= at ? size : 0);
    const samples = [0, 1, 2, 3, 4, 5, 6].map((i) =>
      memory((i * HOUR) / 6, 27_000 + step(i, 5, 16_000), 24_000 + step(i, 1, 800)),
    );
    const report = {
      baseline: samples[0] as SoakInterval['memory'],
      intervals: samples.slice(1).map((m) => ({ memory: m }) as unknown as SoakInterval),
    };
    expect(sustainedStructuresGrowthPerHour(report)).toBe(0);
    // Their sum, taken as one series, has a step in each half, and would read as growth.
    const summed = soakMemorySeries(report, (m) => (m.runtimeBytes ?? 0) + (m.serviceBytes.store ?? 0));
    expect(sustainedGrowthPerHour(summed)).toBeGreaterThan(0);
    // A structure that could not be walked at one sample is measured on the others.
    const gap = { ...report, baseline: memory(0, null, 24_000) };
    expect(sustainedStructuresGrowthPerHour(gap)).toBe(0);
  });
});
