/**
 * The comprehensive suite on mabeam's real services: with tiny sample counts every operation runs
 * and ends `ok` with consistent statistics, nothing outlives the run, and its default SLOs are a
 * valid budgets object that checkSlos reads. No assertion depends on speed.
 */
import { describe, expect, it } from 'vitest';
import { Runtime } from '../../src/kernel/index.js';
import type { OperationOk, SuiteResult } from '../../src/perf/harness.js';
import { BudgetsSchema, checkSlos, parseBudgets } from '../../src/perf/slo.js';
import {
  COMPREHENSIVE_DESCRIPTIONS,
  COMPREHENSIVE_OPERATIONS,
  comprehensiveBudgets,
  comprehensiveSuite,
  startFixture,
  suiteSloResults,
} from '../../src/perf/suite-comprehensive.js';

/** Tiny sampling: a fixed handful of samples, no time budget to speak of. */
const tiny = {
  warmupMs: 0,
  warmupIterations: 2,
  minSamples: 5,
  maxSamples: 5,
  maxTimeMs: 0,
  sqlite: true,
  discoveryAgents: 10,
  broadcastAgents: 100,
} as const;

let shared: SuiteResult | undefined;
async function runOnce(): Promise<SuiteResult> {
  shared ??= await comprehensiveSuite(tiny).run();
  return shared;
}

describe('comprehensiveSuite', () => {
  it('runs every operation (SQLite included) and each ends ok with consistent statistics', async () => {
    const result = await runOnce();
    expect(result.suite).toBe('comprehensive');
    expect(result.operations.map((o) => o.name)).toEqual([...COMPREHENSIVE_OPERATIONS]);
    for (const o of result.operations) {
      if (o.state !== 'ok') throw new Error(`${o.name} failed in ${o.phase}: ${o.error.message}`);
      const { stats, samples } = o as OperationOk;
      expect(stats.n, o.name).toBe(5);
      expect(samples.length, o.name).toBe(5);
      expect(stats.min, o.name).toBeGreaterThan(0);
      expect(stats.min).toBeLessThanOrEqual(stats.median);
      expect(stats.median).toBeLessThanOrEqual(stats.p99);
      expect(stats.p99).toBeLessThanOrEqual(stats.max);
      expect(stats.mean).toBeGreaterThanOrEqual(stats.min);
      expect(stats.mean).toBeLessThanOrEqual(stats.max);
      expect(o.opsPerSecond).toBeCloseTo(1e9 / stats.mean, 6);
      expect(o.stopReason).toBe('max-samples');
    }
  });

  it('marks the sync reads sync and the agent round trips async', async () => {
    const byName = new Map((await runOnce()).operations.map((o) => [o.name, o as OperationOk]));
    expect(byName.get('service_discovery')?.async).toBe(false);
    expect(byName.get('config_retrieval')?.async).toBe(false);
    for (const name of COMPREHENSIVE_OPERATIONS.filter(
      (n) => n !== 'service_discovery' && n !== 'config_retrieval',
    )) {
      expect(byName.get(name)?.async, name).toBe(true);
    }
  });

  it('leaves SQLite out unless asked, and describes every operation', () => {
    expect(comprehensiveSuite({ maxTimeMs: 0 }).operations).not.toContain('event_append_sqlite');
    expect(comprehensiveSuite({ maxTimeMs: 0, sqlite: true }).operations).toContain('event_append_sqlite');
    for (const name of COMPREHENSIVE_OPERATIONS) expect(COMPREHENSIVE_DESCRIPTIONS[name]).toMatch(/\w/);
  });

  it('rejects bad fixture sizes with a typed error naming the option', () => {
    expect(() => comprehensiveSuite({ voters: 0 })).toThrow(/voters/);
    expect(() => comprehensiveSuite({ broadcastAgents: 1.5 })).toThrow(/broadcastAgents/);
  });

  it('each fixture stops everything it started: its runtime is back to no agents', async () => {
    for (const name of COMPREHENSIVE_OPERATIONS.filter((n) => n !== 'event_append_sqlite')) {
      const rt = new Runtime();
      try {
        const fixture = await startFixture(rt, name, { discoveryAgents: 3, voters: 3, broadcastAgents: 3 });
        await fixture.run();
        await fixture.run();
        await fixture.stop();
        expect(rt.count, name).toBe(0);
      } finally {
        await rt.shutdown();
      }
    }
  });
});

describe('comprehensiveBudgets', () => {
  it("is a valid budgets object in slo.ts's format, with the roadmap's bounds", () => {
    const budgets = comprehensiveBudgets();
    expect(BudgetsSchema.safeParse(budgets).success).toBe(true);
    expect(parseBudgets(budgets)).toEqual(budgets);
    const bound = (workload: string) => budgets.budgets.find((b) => b.workload === workload);
    expect(bound('service_discovery')?.p99).toEqual({ max: 1, unit: 'ms' });
    expect(bound('agent_coordination')?.p99).toEqual({ max: 10, unit: 'ms' });
    expect(bound('consensus_proposal')?.p99).toEqual({ max: 50, unit: 'ms' });
    expect(bound('variable_update')?.p99).toEqual({ max: 5, unit: 'ms' });
    expect(bound('broadcast_100_agents')?.p99).toEqual({ max: 10, unit: 'ms' });
    expect(bound('consensus_proposal')?.throughput).toEqual({ min: 100, unit: 'ops/s' });
    // Every budgeted workload is an operation of the suite.
    for (const b of budgets.budgets) expect(COMPREHENSIVE_OPERATIONS).toContain(b.workload);
  });

  it("checkSlos reads the suite's results: every budgeted figure is measured", async () => {
    const report = checkSlos(suiteSloResults(await runOnce()), comprehensiveBudgets());
    expect(report.rows.length).toBeGreaterThan(0);
    for (const row of report.rows) {
      expect(row.detail, `${row.workload} ${row.metric}`).toBe('');
      expect(row.measured).not.toBeNull();
    }
  });

  it('a failed operation is a result without fields, so its budgets count as not measured', () => {
    const failed: SuiteResult = {
      suite: 'comprehensive',
      startedAt: new Date(0).toISOString(),
      durationMs: 1,
      environment: {
        node: 'v20',
        v8: '11',
        platform: 'linux',
        arch: 'x64',
        cpus: 2,
        cpuModel: 'x',
        gcExposed: false,
      },
      operations: [{ state: 'error', name: 'consensus_proposal', phase: 'setup', error: new Error('boom') }],
    };
    const [r] = suiteSloResults(failed);
    expect(r).toEqual({ workload: 'consensus_proposal', fields: null, error: 'setup: boom' });
    const report = checkSlos(suiteSloResults(failed), comprehensiveBudgets());
    const rows = report.rows.filter((row) => row.workload === 'consensus_proposal');
    expect(rows.every((row) => !row.ok && row.measured === null)).toBe(true);
  });
});
