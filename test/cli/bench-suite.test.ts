/**
 * `mabeam bench --suite comprehensive` and `mabeam bench --soak`, in process through `main`:
 * the harness table or JSON lines, the default SLO gate, a soak stopped by SIGINT printing what it
 * has, and bad input (exit 2). Exit codes of gates are not asserted as passes: that would assert
 * speed on a shared machine.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCodes, main } from '../../src/cli/main.js';
import { loadBaseline } from '../../src/perf/baseline.js';
import { COMPREHENSIVE_OPERATIONS } from '../../src/perf/suite-comprehensive.js';

interface Run {
  code: number;
  out: string;
  err: string;
}

async function cli(args: string[], onErr?: (text: string) => void): Promise<Run> {
  let out = '';
  let err = '';
  const code = await main(['bench', ...args], {
    stdout: (t) => {
      out += t;
    },
    stderr: (t) => {
      err += t;
      onErr?.(t);
    },
  });
  return { code, out, err };
}

describe('mabeam bench --suite comprehensive', () => {
  it('--json prints one JSON line per operation, every one ok', async () => {
    const r = await cli(['--suite', 'comprehensive', '--max-time', '1', '--json']);
    expect(r.code, r.err).toBe(ExitCodes.OK);
    const lines = r.out
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.operation)).toEqual([...COMPREHENSIVE_OPERATIONS]);
    for (const l of lines) {
      expect(l.state, l.operation).toBe('ok');
      expect(l.suite).toBe('comprehensive');
      expect(l.p99_ns).toBeGreaterThan(0);
    }
  });

  it("a bare --gate checks the roadmap's SLOs and prints each with its measured value", async () => {
    const r = await cli(['--suite', 'comprehensive', '--max-time', '1', '--gate']);
    expect([ExitCodes.OK, ExitCodes.VIOLATION]).toContain(r.code);
    expect(r.out).toMatch(/workload\s+operation\s+metric\s+bound\s+measured/);
    for (const w of [
      'service_discovery',
      'consensus_proposal',
      'agent_coordination',
      'broadcast_100_agents',
    ]) {
      expect(r.out).toContain(w);
    }
    expect(r.out).not.toContain('not measured');
    expect(r.out).toMatch(/gate (passed|FAILED)/);
  });

  it('bad input exits 2 with a message', async () => {
    const other = await cli(['--suite', 'other']);
    expect(other.code).toBe(ExitCodes.BAD_INPUT);
    expect(other.err).toContain('--suite must be comprehensive');
    const both = await cli(['--suite', 'comprehensive', '--soak', '1s']);
    expect(both.code).toBe(ExitCodes.BAD_INPUT);
    expect(both.err).toContain('--soak cannot be used with --suite');
    const only = await cli(['--suite', 'comprehensive', '--only', 'x']);
    expect(only.code).toBe(ExitCodes.BAD_INPUT);
    const bareGate = await cli(['--gate']);
    expect(bareGate.code).toBe(ExitCodes.BAD_INPUT);
    expect(bareGate.err).toContain('--gate needs a budget file');
    const soakBaseline = await cli(['--soak', '1s', '--baseline', 'save', join(tmpdir(), 'never.json')]);
    expect(soakBaseline.code).toBe(ExitCodes.BAD_INPUT);
    expect(soakBaseline.err).toContain('--baseline cannot be used with --soak');
  });

  it('--report writes the harness result as an HTML report with its charts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mabeam-suite-report-'));
    const file = join(dir, 'suite.html');
    try {
      const r = await cli(['--suite', 'comprehensive', '--max-time', '1', '--json', '--report', file]);
      expect(r.code, r.err).toBe(ExitCodes.OK);
      const html = await readFile(file, 'utf8');
      expect(html).toContain('data-chart="latency-distribution"');
      expect(html).toContain('data-chart="percentiles"');
      for (const op of COMPREHENSIVE_OPERATIONS) expect(html).toContain(op);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('mabeam bench --suite comprehensive --baseline', () => {
  it('saves the harness result as a baseline, then compares a new run with it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mabeam-suite-baseline-'));
    const file = join(dir, 'suite.json');
    try {
      const saved = await cli(['--suite', 'comprehensive', '--max-time', '1', '--baseline', 'save', file]);
      expect(saved.code, saved.err).toBe(ExitCodes.OK);
      expect(saved.err).toContain(`baseline saved to ${file}:`);
      const b = await loadBaseline(file);
      expect(b.suite).toBe('comprehensive');
      expect(b.operations.map((o) => o.name)).toEqual(expect.arrayContaining(['service_discovery']));
      const compared = await cli([
        '--suite',
        'comprehensive',
        '--max-time',
        '1',
        '--baseline',
        'compare',
        file,
      ]);
      // Not asserted: the verdicts (that would assert speed); only that every operation has one.
      expect(compared.code, compared.err).toBe(ExitCodes.OK);
      expect(compared.out).toContain('vs baseline (ratio of medians, 95% CI)');
      expect(compared.out).toMatch(/^service_discovery\s.*(no significant change|regression|improvement)$/m);
      // A bench-suite baseline is another suite's: bad input, before the suite runs.
      const bench = join(dir, 'bench.json');
      await writeFile(bench, JSON.stringify({ ...b, suite: 'mabeam-bench' }));
      const wrong = await cli(['--suite', 'comprehensive', '--baseline', 'compare', bench]);
      expect(wrong.code).toBe(ExitCodes.BAD_INPUT);
      expect(wrong.err).toContain('is "mabeam-bench", not the "comprehensive" suite');
      expect(wrong.err).not.toContain('bench: service_discovery');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('mabeam bench --soak', () => {
  it('a bad duration exits 2 naming it', async () => {
    const r = await cli(['--soak', '10x']);
    expect(r.code).toBe(ExitCodes.BAD_INPUT);
    expect(r.err).toContain('"10x"');
    const i = await cli(['--soak', '1s', '--interval', '0s']);
    expect(i.code).toBe(ExitCodes.BAD_INPUT);
    expect(i.err).toContain('--interval');
  });

  it('SIGINT stops it and it prints what it has', async () => {
    const sigintListeners = process.listenerCount('SIGINT');
    let sent = false;
    const r = await cli(['--soak', '1h', '--interval', '200ms'], (text) => {
      if (!sent && text.startsWith('interval 1 ')) {
        sent = true;
        process.emit('SIGINT', 'SIGINT');
      }
    });
    expect(r.code, r.err).toBe(ExitCodes.OK);
    expect(sent).toBe(true);
    expect(r.err).toContain('SIGINT: stopping the soak');
    expect(r.out).toContain('(stopped early)');
    expect(r.out).toMatch(/interval\s+end\s+cycles\s+p50\s+p99/);
    expect(r.out).toContain('per agent:');
    // The handler is gone afterwards.
    expect(process.listenerCount('SIGINT')).toBe(sigintListeners);
  });

  it('--report writes memory and latency over time as line charts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mabeam-soak-report-'));
    const file = join(dir, 'soak.html');
    try {
      const r = await cli(['--soak', '400ms', '--interval', '200ms', '--report', file]);
      expect(r.code, r.err).toBe(ExitCodes.OK);
      expect(r.err).toContain(`report written to ${file}`);
      expect(r.out).toContain('per agent:');
      const html = await readFile(file, 'utf8');
      const intervals = (html.match(/<tr data-interval="/g) ?? []).length;
      expect(intervals).toBeGreaterThanOrEqual(1);
      const points = (chart: string, series: string) => {
        const svg =
          new RegExp(`<svg\\b[^>]*data-chart="${chart}"[^>]*>[\\s\\S]*?</svg>`).exec(html)?.[0] ?? '';
        return (svg.match(new RegExp(`<circle\\b[^>]*data-series="${series}"`, 'g')) ?? []).length;
      };
      // Latency: one point per interval; memory: the baseline, then one per interval.
      expect(points('soak-latency', 'p99')).toBe(intervals);
      expect(points('soak-memory', 'heap used')).toBe(intervals + 1);
      expect(points('soak-agent-memory', 'largest agent')).toBe(intervals + 1);
      expect(html).toContain('data-chart="soak-operation-p99"');
      expect(html).toContain('<title>mabeam bench: soak</title>');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('--json: a line per interval, then a summary line', async () => {
    const r = await cli(['--soak', '400ms', '--interval', '200ms', '--json']);
    expect(r.code, r.err).toBe(ExitCodes.OK);
    const lines = r.out
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    const last = lines[lines.length - 1];
    expect(last.type).toBe('summary');
    expect(last.stopped).toBe('duration');
    expect(lines.slice(0, -1).length).toBeGreaterThanOrEqual(1);
    for (const l of lines.slice(0, -1)) {
      expect(l.type).toBe('interval');
      expect(l.memory.heapUsedBytes).toBeGreaterThan(0);
    }
    expect(Number.isFinite(last.growth.agentBytesPerHourMax)).toBe(true);
  });
});
