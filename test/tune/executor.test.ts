import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TaskPool } from '../../src/foundation/task-pool.js';
import { InvalidArgumentError } from '../../src/kernel/index.js';
import {
  checkExecutorOptions,
  checkTrainable,
  MIN_MEMORY_LIMIT_MB,
  TrainableError,
  TrainableErrorCodes,
  TrialExecutor,
  type TrialHooks,
  type TrialRunOutcome,
  trainableModuleUrl,
} from '../../src/tune/executor.js';
import type { TrainableRef, TrialMetrics } from '../../src/tune/types.js';

const FIXTURES = new URL('../fixtures/tune/', import.meta.url);
const MODULE = new URL('trainables.mjs', FIXTURES).href;
const ref = (exportName: string, params: Record<string, unknown> = {}): TrainableRef => ({
  module: MODULE,
  exportName,
  params,
});

/** Hooks that record every report and checkpoint, stopping after `stopAfter` reports if given. */
function recorder(options: { stopAfter?: number } = {}) {
  const reports: TrialMetrics[] = [];
  const checkpoints: { state: unknown; step: number }[] = [];
  const hooks: TrialHooks = {
    onReport(metrics) {
      reports.push(metrics);
      return options.stopAfter !== undefined && reports.length >= options.stopAfter ? 'stop' : 'continue';
    },
    async onCheckpoint(state, step) {
      checkpoints.push({ state, step });
    },
  };
  return { reports, checkpoints, hooks };
}

function expectFailed(outcome: TrialRunOutcome, code: string): string {
  expect(outcome.status).toBe('failed');
  const f = outcome as Extract<TrialRunOutcome, { status: 'failed' }>;
  expect(f.code).toBe(code);
  return f.reason;
}

/**
 * A copy of the standalone TypeScript trainable as `name` in a fresh temporary folder with no
 * package.json anywhere above it: a CommonJS scope, where tsx's ESM hooks alone fail.
 */
async function outsideAnyPackage(name: string): Promise<string> {
  const folder = await mkdtemp(path.join(tmpdir(), 'mabeam-ts-trainable-'));
  temporary.push(folder);
  for (let up = folder; up !== path.dirname(up); up = path.dirname(up)) {
    expect(existsSync(path.join(up, 'package.json')), `${up}/package.json`).toBe(false);
  }
  const file = path.join(folder, name);
  await copyFile(fileURLToPath(new URL('standalone-trainable.ts', FIXTURES)), file);
  return file;
}

const temporary: string[] = [];
let executor: TrialExecutor;
beforeAll(async () => {
  executor = await TrialExecutor.start({ threads: 2 });
});
afterAll(async () => {
  await executor.close({ force: true });
  for (const folder of temporary) await rm(folder, { recursive: true, force: true });
});

describe('TrialExecutor.run', () => {
  it('runs a trainable on a worker thread: 5 reports, then completed with its metrics', async () => {
    const { reports, hooks } = recorder();
    const outcome = await executor.run(
      { trialId: 0, config: { steps: 5, x: 7 }, trainable: ref('train') },
      hooks,
    );
    expect(outcome).toEqual({ status: 'completed', metrics: { step: 5, loss: 0.2, x: 7 } });
    expect(reports.map((m) => m.step)).toEqual([1, 2, 3, 4, 5]);
    expect(reports[1]).toEqual({ step: 2, loss: 0.5, x: 7 });
  });

  it('passes the trial id, params and config to the trainable', async () => {
    const { reports, hooks } = recorder();
    await executor.run(
      { trialId: 42, config: { learningRate: 0.3 }, trainable: ref('echo', { seed: 9 }) },
      hooks,
    );
    expect(reports).toEqual([{ step: 1, trialId: 42, seed: 9, lr: 0.3 }]);
  });

  it('a trainable that throws fails with its message; the next trial runs fine', async () => {
    const { reports, hooks } = recorder();
    const outcome = await executor.run(
      { trialId: 1, config: { learningRate: 3 }, trainable: ref('throws') },
      hooks,
    );
    expect(expectFailed(outcome, TrainableErrorCodes.FAILED)).toBe('diverged at lr=3');
    expect(reports).toHaveLength(1);
    const next = await executor.run(
      { trialId: 2, config: { steps: 2 }, trainable: ref('train') },
      recorder().hooks,
    );
    expect(next.status).toBe('completed');
  });

  it('stop after step 2: the run ends "stopped" and reports no more', async () => {
    const { reports, hooks } = recorder({ stopAfter: 2 });
    const outcome = await executor.run({ trialId: 3, config: { steps: 10 }, trainable: ref('train') }, hooks);
    expect(outcome).toEqual({ status: 'stopped' });
    expect(reports.map((m) => m.step)).toEqual([1, 2]);
  });

  it('a trainable that ignores the stop is ended at its next report', async () => {
    const { reports, hooks } = recorder({ stopAfter: 2 });
    const outcome = await executor.run(
      { trialId: 4, config: { steps: 10 }, trainable: ref('ignoresStop') },
      hooks,
    );
    expect(outcome).toEqual({ status: 'stopped' });
    expect(reports.map((m) => m.step)).toEqual([1, 2]);
  });

  it('checkpoints are acknowledged once stored; a second run restores the same state', async () => {
    const first = recorder();
    const a = await executor.run(
      { trialId: 5, config: { steps: 3 }, trainable: ref('checkpoints') },
      first.hooks,
    );
    expect(a).toEqual({ status: 'completed', metrics: { step: 3, startedAt: 0 } });
    expect(first.checkpoints.map((c) => c.step)).toEqual([1, 2, 3]);
    const saved = first.checkpoints[2]?.state as { step: number; weights: Float64Array; history: number[] };
    expect(saved.step).toBe(3);
    expect(saved.weights).toBeInstanceOf(Float64Array);
    expect([...saved.weights]).toEqual([6, 12, 18]);

    const second = recorder();
    const b = await executor.run(
      { trialId: 5, config: { steps: 2 }, trainable: ref('checkpoints'), checkpoint: saved },
      second.hooks,
    );
    expect(b).toEqual({ status: 'completed', metrics: { step: 5, startedAt: 3 } });
    expect(second.reports.map((m) => m.step)).toEqual([4, 5]);
    const resumed = second.checkpoints[1]?.state as { weights: Float64Array; history: number[] };
    expect(resumed.history).toEqual([1, 2, 3, 4, 5]);
    expect([...resumed.weights]).toEqual([15, 30, 45]);
  });

  it('relays reports and checkpoints the trainable did not await, before the run ends', async () => {
    const { reports, checkpoints, hooks } = recorder();
    const outcome = await executor.run({ trialId: 6, config: {}, trainable: ref('fireAndForget') }, hooks);
    expect(outcome.status).toBe('completed');
    expect(reports.map((m) => m.step)).toEqual([1, 2]);
    expect(checkpoints).toEqual([
      { state: { at: 1 }, step: 1 },
      { state: { at: 2 }, step: 2 },
    ]);
  });

  it('a state that cannot be cloned fails the run with E_TRAINABLE_BAD_CHECKPOINT', async () => {
    const outcome = await executor.run(
      { trialId: 7, config: {}, trainable: ref('badCheckpoint') },
      recorder().hooks,
    );
    expect(expectFailed(outcome, TrainableErrorCodes.BAD_CHECKPOINT)).toMatch(/cannot be copied/);
  });

  it('bad reports fail the run naming what is wrong', async () => {
    const cases: [unknown[], RegExp][] = [
      [[{ loss: 1 }], /no "step"/],
      [[{ step: 0 }], /"step" must be an integer >= 1, got 0/],
      [[{ step: 1.5 }], /"step" must be an integer >= 1/],
      [[{ step: 1 }, { step: 1 }], /"step" must increase: got 1 after 1/],
      [[{ step: 1, loss: 'low' }], /metric "loss" must be a finite number, got "low"/],
      [[{ step: 1, loss: Number.NaN }], /metric "loss" must be a finite number, got NaN/],
      [[7], /metrics must be an object/],
    ];
    for (const [reports, message] of cases) {
      const rec = recorder();
      const outcome = await executor.run(
        { trialId: 8, config: { reports }, trainable: ref('reportsAsIs') },
        rec.hooks,
      );
      expect(expectFailed(outcome, TrainableErrorCodes.BAD_REPORT), JSON.stringify(reports)).toMatch(message);
      // Only the valid reports before the bad one reached the study.
      expect(rec.reports.length).toBe(reports.length - 1);
    }
  });

  it('a hook that throws ends the run with E_TRIAL_HOOK_FAILED', async () => {
    const hooks: TrialHooks = {
      onReport() {
        throw new Error('study store is full');
      },
      onCheckpoint() {},
    };
    const outcome = await executor.run({ trialId: 9, config: {}, trainable: ref('train') }, hooks);
    expect(expectFailed(outcome, TrainableErrorCodes.HOOK_FAILED)).toMatch(/study store is full/);
  });

  it('runs a TypeScript trainable (importing a TypeScript helper)', async () => {
    const { reports, hooks } = recorder();
    const trainable = { module: new URL('ts-trainable.ts', FIXTURES).href };
    const outcome = await executor.run({ trialId: 10, config: { factor: 2 }, trainable }, hooks);
    expect(outcome).toEqual({ status: 'completed', metrics: { step: 3, value: 6 } });
    expect(reports.map((m) => m.value)).toEqual([2, 4, 6]);
  });

  it('runs a .ts trainable from a folder with no package.json (a CommonJS scope)', async () => {
    const { reports, hooks } = recorder();
    const module = pathToFileURL(await outsideAnyPackage('train.ts')).href;
    const outcome = await executor.run(
      { trialId: 15, config: { x: 3 }, trainable: { module, params: { maxSteps: 2 } } },
      hooks,
    );
    expect(outcome).toEqual({ status: 'completed' });
    expect(reports).toEqual([
      { step: 1, loss: 5 },
      { step: 2, loss: 4.5 },
    ]);
  });

  it('a missing module or export fails the run with the trainable error codes', async () => {
    const missing = await executor.run(
      { trialId: 11, config: {}, trainable: { module: new URL('nope.mjs', FIXTURES).href } },
      recorder().hooks,
    );
    expect(expectFailed(missing, TrainableErrorCodes.NOT_FOUND)).toMatch(/nope\.mjs does not exist/);
    const noTrain = await executor.run(
      { trialId: 12, config: {}, trainable: { module: new URL('no-train.mjs', FIXTURES).href } },
      recorder().hooks,
    );
    expect(expectFailed(noTrain, TrainableErrorCodes.NO_TRAIN)).toMatch(/exports are default, fit, version/);
  });

  it('aborting the signal terminates the thread: failed E_TASK_CANCELLED', async () => {
    const controller = new AbortController();
    const hooks: TrialHooks = {
      onReport() {
        controller.abort('user pressed ctrl-c');
        return 'continue';
      },
      onCheckpoint() {},
    };
    const outcome = await executor.run(
      { trialId: 13, config: { steps: 1_000_000 }, trainable: ref('train') },
      hooks,
      controller.signal,
    );
    expect(expectFailed(outcome, 'E_TASK_CANCELLED')).toMatch(/ctrl-c/);
    const already = await executor.run(
      { trialId: 14, config: {}, trainable: ref('train') },
      hooks,
      controller.signal,
    );
    expect(expectFailed(already, 'E_TASK_CANCELLED')).toMatch(/trial 14 was cancelled/);
  });

  it('rejects malformed requests with E_INVALID_ARGUMENT', async () => {
    const hooks = recorder().hooks;
    const bad = [
      executor.run({ trialId: -1, config: {}, trainable: ref('train') }, hooks),
      executor.run({ trialId: 0, config: {}, trainable: { module: 'https://example.com/t.js' } }, hooks),
      executor.run({ trialId: 0, config: {}, trainable: ref('train'), timeoutMs: 0 }, hooks),
      executor.run({ trialId: 0, config: {}, trainable: ref('train') }, {} as TrialHooks),
    ];
    for (const p of bad) await expect(p).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe('TrialExecutor limits', () => {
  it('checks its options before starting anything: a heap limit below the minimum is refused', async () => {
    expect(MIN_MEMORY_LIMIT_MB).toBe(8);
    expect(() => checkExecutorOptions({ memoryLimitMb: MIN_MEMORY_LIMIT_MB - 1 })).toThrow(
      /memoryLimitMb.*>= 8/,
    );
    expect(() => checkExecutorOptions({ threads: 0 })).toThrow(InvalidArgumentError);
    expect(() => checkExecutorOptions({ trialTimeoutMs: -5 })).toThrow(/trialTimeoutMs/);
    expect(checkExecutorOptions({ threads: 3, memoryLimitMb: 512 })).toEqual({
      threads: 3,
      trialTimeoutMs: undefined,
      memoryLimitMb: 512,
    });
    await expect(TrialExecutor.start({ threads: 1, memoryLimitMb: 4 })).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
  });

  it('a trial that loops forever fails with E_TASK_TIMEOUT; the executor goes on', async () => {
    const ex = await TrialExecutor.start({ threads: 1, trialTimeoutMs: 300 });
    try {
      const outcome = await ex.run({ trialId: 0, config: {}, trainable: ref('spins') }, recorder().hooks);
      expect(expectFailed(outcome, 'E_TASK_TIMEOUT')).toMatch(/trial 0 timed out after 300 ms/);
      const next = await ex.run(
        { trialId: 1, config: { steps: 2 }, trainable: ref('train'), timeoutMs: 60_000 },
        recorder().hooks,
      );
      expect(next.status).toBe('completed');
    } finally {
      await ex.close({ force: true });
    }
  });

  it('a trial that allocates without bound fails out of memory; the executor goes on', async () => {
    const ex = await TrialExecutor.start({ threads: 1, memoryLimitMb: 64 });
    try {
      const outcome = await ex.run({ trialId: 0, config: {}, trainable: ref('hogs') }, recorder().hooks);
      expect(expectFailed(outcome, TrainableErrorCodes.OUT_OF_MEMORY)).toMatch(/ran out of memory .*64 MB/);
      const next = await ex.run(
        { trialId: 1, config: { steps: 2 }, trainable: ref('train') },
        recorder().hooks,
      );
      expect(next.status).toBe('completed');
    } finally {
      await ex.close({ force: true });
    }
  });

  it('runs at most `threads` trials at once; the others wait their turn', async () => {
    const ex = await TrialExecutor.start({ threads: 1 });
    try {
      let active = 0;
      let most = 0;
      const hooks = (): TrialHooks => ({
        async onReport(m) {
          if (m.step === 1) active++;
          most = Math.max(most, active);
          if (m.step === 3) active--;
          return 'continue' as const;
        },
        onCheckpoint() {},
      });
      const outcomes = await Promise.all(
        [0, 1, 2].map((trialId) =>
          ex.run({ trialId, config: { steps: 3 }, trainable: ref('train') }, hooks()),
        ),
      );
      expect(outcomes.map((o) => o.status)).toEqual(['completed', 'completed', 'completed']);
      expect(most).toBe(1);
    } finally {
      await ex.close({ force: true });
    }
  });
});

describe('checkTrainable', () => {
  it('accepts a module with a train export (JavaScript or TypeScript), with its space and objective', async () => {
    const js = await executor.check({ module: MODULE });
    expect(js.exports).toContain('train');
    expect(js.space).toBeUndefined();
    const ts = await executor.check({ module: new URL('ts-trainable.ts', FIXTURES).href });
    expect(ts).toEqual({
      exports: ['objective', 'space', 'train'],
      space: { factor: { type: 'float', min: 0.5, max: 4 } },
      objective: { metric: 'value', mode: 'max' },
    });
    const standalone = await checkTrainable({ module: MODULE, exportName: 'throws' });
    expect(standalone.exports).toContain('throws');
  });

  it('loads .ts, .mts and .cts trainables from a folder with no package.json', async () => {
    const ts = await checkTrainable({ module: await outsideAnyPackage('train.ts') });
    expect(ts.exports).toContain('train');
    expect(ts.space).toEqual({ x: { type: 'float', min: -5, max: 5 } });
    expect(ts.objective).toEqual({ metric: 'loss', mode: 'min' });
    for (const name of ['train.mts', 'train.cts']) {
      const info = await executor.check({ module: await outsideAnyPackage(name) });
      expect(info.exports, name).toContain('train');
      expect(info.objective, name).toEqual({ metric: 'loss', mode: 'min' });
    }
  });

  it('a missing file: E_TRAINABLE_NOT_FOUND', async () => {
    const error = await checkTrainable({ module: '/no/such/train.mjs' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainableError);
    expect((error as TrainableError).code).toBe(TrainableErrorCodes.NOT_FOUND);
    expect((error as Error).message).toContain('/no/such/train.mjs');
  });

  it('no train export: E_TRAINABLE_NO_TRAIN naming the module and listing its exports', async () => {
    const module = new URL('no-train.mjs', FIXTURES).href;
    const error = await checkTrainable({ module }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TrainableError);
    expect((error as TrainableError).code).toBe(TrainableErrorCodes.NO_TRAIN);
    const message = (error as Error).message;
    expect(message).toContain('no-train.mjs');
    expect(message).toContain('has no export "train"');
    expect(message).toContain('its exports are default, fit, version');
    expect(message).toContain('exportName "default"');
    const named = await executor.check({ module, exportName: 'version' }).catch((e: unknown) => e);
    expect((named as Error).message).toContain('exports a number, not a function, as "version"');
  });

  it('a module that throws as it loads: E_TRAINABLE_LOAD_FAILED with its message', async () => {
    const error = await executor
      .check({ module: new URL('load-fails.mjs', FIXTURES).href })
      .catch((e: unknown) => e);
    expect((error as TrainableError).code).toBe(TrainableErrorCodes.LOAD_FAILED);
    expect((error as Error).message).toContain('no GPU here');
  });

  it('resolves paths against the working directory and keeps file URLs', () => {
    expect(trainableModuleUrl('/a/b.mjs')).toBe('file:///a/b.mjs');
    expect(trainableModuleUrl(new URL('file:///x/y.ts'))).toBe('file:///x/y.ts');
    expect(trainableModuleUrl('rel.mjs')).toBe(new URL('rel.mjs', `file://${process.cwd()}/`).href);
    expect(() => trainableModuleUrl('http://x/y.js')).toThrow(InvalidArgumentError);
  });
});

describe('TaskPool options the executor relies on', () => {
  it('starts threads with execArgv and env, and moves transferList objects with a task', async () => {
    const preload = `data:text/javascript,${encodeURIComponent('globalThis.mabeamPreloaded = "yes";')}`;
    const pool = await TaskPool.start<{ buffer: ArrayBuffer }, unknown>({
      filename: new URL('pool-probe.mjs', FIXTURES),
      maxThreads: 1,
      execArgv: ['--import', preload],
      env: { MABEAM_PROBE: 'from-env' },
    });
    try {
      const buffer = new ArrayBuffer(64);
      const result = await pool.run({ buffer }, { transferList: [buffer] });
      expect(result).toEqual({ env: 'from-env', preloaded: 'yes', bytes: 64 });
      // Moved, not copied: the sender's buffer is detached.
      expect(buffer.byteLength).toBe(0);
    } finally {
      await pool.close({ force: true });
    }
  });

  it('names bad execArgv, env and transferList', async () => {
    const filename = new URL('pool-probe.mjs', FIXTURES);
    await expect(TaskPool.start({ filename, execArgv: '--import x' as never })).rejects.toThrow(/"execArgv"/);
    await expect(TaskPool.start({ filename, env: { A: 1 } as never })).rejects.toThrow(/"env"/);
    const pool = await TaskPool.start({ filename, minThreads: 0, maxThreads: 1 });
    try {
      await expect(pool.run({}, { transferList: 'x' as never })).rejects.toThrow(/"transferList"/);
    } finally {
      await pool.close({ force: true });
    }
  });
});
