/**
 * The harness on cheap operations. These tests check structure and internal consistency only
 * (order of the percentiles, sample counts, the stopping rule's bookkeeping, failures isolated to
 * their operation), never speed: nothing here depends on how fast this machine is.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InvalidArgumentError } from '../../src/kernel/errors.js';
import { compareWithBaseline, toBaseline } from '../../src/perf/baseline.js';
import {
  BenchErrorCodes,
  ExposeGcRequiredError,
  isOk,
  type OperationOk,
  type OperationResult,
  type SuiteOptions,
  SuiteRunningError,
  suite,
} from '../../src/perf/harness.js';
import { renderJsonLines, renderTable } from '../../src/perf/reporters.js';

/** Small budgets: a few milliseconds per operation. */
const QUICK: SuiteOptions = { warmupMs: 1, warmupIterations: 4, minSamples: 20, maxTimeMs: 20, roundMs: 5 };

/** Work whose duration varies from call to call, so that samples are never all equal. */
let counter = 0;
function work(): number {
  let x = 0;
  const n = 10 + (counter++ % 7) * 10;
  for (let i = 0; i < n; i++) x += Math.sqrt(i);
  return x;
}

function ok(result: OperationResult | undefined): OperationOk {
  if (result === undefined || !isOk(result))
    throw new Error(`expected an ok result, got ${JSON.stringify(result)}`);
  return result;
}

function expectConsistent(r: OperationOk, minSamples: number): void {
  const s = r.stats;
  expect(s.n).toBe(r.samples.length);
  expect(s.n).toBeGreaterThanOrEqual(minSamples);
  for (let i = 1; i < r.samples.length; i++)
    expect(r.samples[i]).toBeGreaterThanOrEqual(r.samples[i - 1] as number);
  expect(s.min).toBe(r.samples[0]);
  expect(s.max).toBe(r.samples[r.samples.length - 1]);
  expect(s.min).toBeGreaterThanOrEqual(0);
  expect(s.min).toBeLessThanOrEqual(s.median);
  expect(s.median).toBeLessThanOrEqual(s.p90);
  expect(s.p90).toBeLessThanOrEqual(s.p99);
  expect(s.p99).toBeLessThanOrEqual(s.p999);
  expect(s.p999).toBeLessThanOrEqual(s.max);
  expect(s.min).toBeLessThanOrEqual(s.mean);
  expect(s.mean).toBeLessThanOrEqual(s.max);
  expect(s.sd).toBeGreaterThanOrEqual(0);
  expect(s.rme).toBeGreaterThanOrEqual(0);
  expect(r.opsPerSecond).toBeCloseTo(1e9 / s.mean, 6);
  expect(r.rounds).toBeGreaterThanOrEqual(1);
  expect(['rme', 'time', 'max-samples']).toContain(r.stopReason);
}

afterEach(() => {
  vi.unstubAllGlobals();
});

describe('a suite run', () => {
  it('measures sync, async and batched operations, and isolates the ones that fail', async () => {
    const calls: string[] = [];
    const seen: string[] = [];
    const result = await suite('cheap', QUICK)
      .add('sync', work)
      .add('async', async () => work())
      .add('returns a promise', () => Promise.resolve(work()))
      .add('batched', work, { batch: 50 })
      .add(
        'throws',
        () => {
          throw new Error('boom');
        },
        { teardown: () => void calls.push('teardown of throws') },
      )
      .add('bad setup', work, {
        setup: () => {
          throw new Error('no fixture');
        },
        teardown: () => void calls.push('teardown of bad setup'),
      })
      .add('bad teardown', work, {
        setup: () => void calls.push('setup of bad teardown'),
        teardown: () => {
          throw new Error('leak');
        },
      })
      .add('after the failures', work, { minSamples: 25 })
      .run({ onResult: (r) => seen.push(`${r.name}:${r.state}`) });

    expect(result.suite).toBe('cheap');
    expect(result.operations.map((o) => `${o.name}:${o.state}`)).toEqual(seen);
    expect(seen).toEqual([
      'sync:ok',
      'async:ok',
      'returns a promise:ok',
      'batched:ok',
      'throws:error',
      'bad setup:error',
      'bad teardown:error',
      'after the failures:ok',
    ]);
    const [sync, asyncOp, promise, batched] = result.operations.map((o) => (isOk(o) ? o : undefined));
    for (const r of [sync, asyncOp, promise, batched]) expectConsistent(ok(r), 20);
    expectConsistent(ok(result.operations[7]), 25);
    expect([ok(sync).async, ok(asyncOp).async, ok(promise).async, ok(batched).async]).toEqual([
      false,
      true,
      true,
      false,
    ]);
    expect(ok(batched).batch).toBe(50);
    expect(ok(sync).memory).toBeNull();

    expect(result.operations[4]).toMatchObject({ state: 'error', phase: 'run', error: { message: 'boom' } });
    expect(result.operations[5]).toMatchObject({
      state: 'error',
      phase: 'setup',
      error: { message: 'no fixture' },
    });
    expect(result.operations[6]).toMatchObject({
      state: 'error',
      phase: 'teardown',
      error: { message: 'leak' },
    });
    // Teardown runs after a failed operation, but not after a failed setup.
    expect(calls).toEqual(['teardown of throws', 'setup of bad teardown']);

    expect(result.environment.node).toBe(process.version);
    expect(result.durationMs).toBeGreaterThanOrEqual(0);

    // The reporters render every operation, failed ones included.
    const table = renderTable({ result });
    for (const o of result.operations) expect(table).toContain(o.name);
    expect(table).toContain('FAILED in setup: no fixture');
    const lines = renderJsonLines({ result })
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(8);
    expect(lines[0]).toMatchObject({ suite: 'cheap', operation: 'sync', state: 'ok', n: ok(sync).stats.n });
    expect(lines[4]).toMatchObject({ operation: 'throws', state: 'error', phase: 'run', error: 'boom' });
    for (const l of lines.filter((x) => x.state === 'ok')) {
      expect(l.min_ns).toBeLessThanOrEqual(l.median_ns);
      expect(l.median_ns).toBeLessThanOrEqual(l.p99_ns);
      expect(l.p99_ns).toBeLessThanOrEqual(l.max_ns);
    }

    // A run compares with a baseline of itself without any flagged change, and the table says so.
    const comparison = compareWithBaseline(toBaseline(result), result);
    expect(comparison.regressions).toEqual([]);
    expect(comparison.improvements).toEqual([]);
    expect(renderTable({ result, comparison })).toContain('1.00x');
    const withBaseline = renderJsonLines({ result, comparison }).split('\n')[0] ?? '';
    const line = JSON.parse(withBaseline);
    expect(line.baseline_status).toBe('compared');
    // Baselines keep samples to 6 significant digits, so the ratio is 1 to that precision.
    expect(line.baseline_ratio).toBeCloseTo(1, 5);
  });

  it('runs only the operations asked for, and refuses unknown ones', async () => {
    const s = suite('subset', QUICK).add('a', work).add('b', work).add('c', work);
    expect(s.operations).toEqual(['a', 'b', 'c']);
    const result = await s.run({ only: ['c', 'a'] });
    expect(result.operations.map((o) => o.name)).toEqual(['a', 'c']);
    await expect(s.run({ only: ['a', 'zzz'] })).rejects.toThrow(/"zzz"/);
  });

  it('refuses a second run while one is going', async () => {
    const s = suite('busy', QUICK).add('a', work);
    const first = s.run();
    await expect(s.run()).rejects.toBeInstanceOf(SuiteRunningError);
    await expect(s.run()).rejects.toMatchObject({ code: BenchErrorCodes.SUITE_RUNNING });
    expect(ok((await first).operations[0]).name).toBe('a');
  });
});

describe('the sampling rule', () => {
  it('stops on the margin of error once it has minSamples, taking exactly minSamples in round 1', async () => {
    const result = await suite('rme', { ...QUICK, minSamples: 12, targetRme: 1e9 })
      .add('op', work)
      .run();
    const r = ok(result.operations[0]);
    expect(r.stopReason).toBe('rme');
    expect(r.rounds).toBe(1);
    expect(r.stats.n).toBe(12);
  });

  it('stops on the time budget, read from the injected clock', async () => {
    let now = 0;
    const clock = () => {
      now += 1_000; // every reading is a second later: the budget is spent after the first round
      return now;
    };
    const result = await suite('time', { ...QUICK, maxTimeMs: 500, targetRme: 1e-12, clock })
      .add('op', work)
      .run();
    const r = ok(result.operations[0]);
    expect(r.stopReason).toBe('time');
    expect(r.rounds).toBe(1);
    expect(r.stats.n).toBe(20);
  });

  it('stops at maxSamples', async () => {
    const result = await suite('max', { ...QUICK, minSamples: 15, maxSamples: 15, targetRme: 1e-12 })
      .add('op', work)
      .run();
    const r = ok(result.operations[0]);
    expect(r.stopReason).toBe('max-samples');
    expect(r.stats.n).toBe(15);
  });

  it('takes per-operation overrides of the suite options', async () => {
    const result = await suite('override', { ...QUICK, targetRme: 1e9 })
      .add('few', work, { minSamples: 5 })
      .add('more', work, { minSamples: 40 })
      .run();
    expect(result.operations.map((o) => ok(o).stats.n)).toEqual([5, 40]);
  });
});

describe('misuse', () => {
  it('throws InvalidArgumentError naming the bad option, the duplicate name or the bad function', () => {
    expect(() => suite('')).toThrow(InvalidArgumentError);
    expect(() => suite('s', { minSamples: 1 })).toThrow(/minSamples/);
    expect(() => suite('s', { maxTimeMs: -1 })).toThrow(/maxTimeMs/);
    expect(() => suite('s', { targetRme: 0 })).toThrow(/targetRme/);
    expect(() => suite('s', { minSamples: 50, maxSamples: 10 })).toThrow(/maxSamples/);
    const s = suite('s', QUICK).add('a', work);
    expect(() => s.add('a', work)).toThrow(/already has it.*"a"/);
    expect(() => s.add('b', 42 as unknown as () => void)).toThrow(InvalidArgumentError);
    expect(() => s.add('c', work, { batch: 0 })).toThrow(/c: batch/);
    expect(() => s.add('d', work, { setup: 'x' as unknown as () => void })).toThrow(/d: setup/);
    expect(s.operations).toEqual(['a']);
  });

  it('asks for --expose-gc, with a typed error, when memory figures are wanted without forced GC', () => {
    vi.stubGlobal('gc', undefined);
    const attempt = () => suite('mem', { memory: true });
    expect(attempt).toThrow(ExposeGcRequiredError);
    expect(attempt).toThrow(/--expose-gc/);
    try {
      attempt();
    } catch (error) {
      expect(error).toMatchObject({ code: BenchErrorCodes.GC_UNAVAILABLE, flag: '--expose-gc' });
    }
  });
});

describe('allocated bytes per operation', () => {
  it('sees what an operation allocates, under forced GC', async () => {
    // The forced-GC function node exposes with --expose-gc, obtained without restarting node.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    let kept: number[] = [];
    const result = await suite('memory', { ...QUICK, memory: true, gc, memoryIterations: 200 })
      .add('allocates 1000 doubles', () => {
        kept = new Array<number>(1000).fill(1.5);
        return kept;
      })
      .add('allocates nothing', work)
      .add('async', async () => work())
      .run();
    const big = ok(result.operations[0]).memory;
    expect(big?.iterations).toBe(200);
    expect(big?.allocatedBytesPerOp).toBeGreaterThan(8000); // 1000 doubles, 8 bytes each
    expect(big?.collections).toBeGreaterThanOrEqual(0);
    // Retained: only the last array survives, spread over 200 calls.
    expect(big?.retainedBytesPerOp).toBeLessThan(big?.allocatedBytesPerOp ?? 0);
    const none = ok(result.operations[1]).memory;
    expect(Number.isFinite(none?.allocatedBytesPerOp)).toBe(true);
    expect(none?.allocatedBytesPerOp).toBeLessThan(big?.allocatedBytesPerOp ?? 0);
    expect(ok(result.operations[2]).memory).not.toBeNull();
    expect(renderTable({ result })).toContain('alloc/op');
    expect(JSON.parse(renderJsonLines({ result }).split('\n')[0] ?? '')).toHaveProperty(
      'allocated_bytes_per_op',
    );
    expect(kept).toHaveLength(1000);
  });
});
