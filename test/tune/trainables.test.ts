import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrialExecutor, type TrialRunOutcome } from '../../src/tune/executor.js';
import { Rng } from '../../src/tune/random.js';
import { checkSpace } from '../../src/tune/space.js';
import { builtinTrainables } from '../../src/tune/trainables/index.js';
import { train as logreg } from '../../src/tune/trainables/iris-logreg.js';
import { type MlpCheckpoint, train as mlp } from '../../src/tune/trainables/mlp.js';
import type { Config, TrainContext, TrialMetrics } from '../../src/tune/types.js';

/** A TrainContext on this thread that records what the trainable reports and checkpoints. */
function fakeContext(
  params: Record<string, unknown>,
  options: { restore?: unknown; stopAfter?: number } = {},
) {
  const reports: TrialMetrics[] = [];
  const checkpoints: unknown[] = [];
  let stop = false;
  const ctx: TrainContext = {
    trialId: 0,
    params,
    async report(metrics) {
      if (stop) throw new Error('reported after a stop');
      reports.push(metrics);
      if (options.stopAfter !== undefined && reports.length >= options.stopAfter) stop = true;
    },
    async checkpoint(state) {
      checkpoints.push(state);
    },
    restore: () => options.restore,
    get shouldStop() {
      return stop;
    },
  };
  return { ctx, reports, checkpoints };
}

const dir = mkdtempSync(join(tmpdir(), 'mabeam-trainables-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('builtinTrainables', () => {
  it('name modules that exist, with valid default search spaces', () => {
    expect(Object.keys(builtinTrainables).sort()).toEqual(['logreg', 'mlp']);
    for (const builtin of Object.values(builtinTrainables)) {
      expect(existsSync(fileURLToPath(builtin.module))).toBe(true);
      expect(checkSpace(builtin.space)).toEqual(builtin.space);
      expect(builtin.objective).toEqual({ metric: 'accuracy', mode: 'max' });
    }
  });
});

describe('logreg', () => {
  it('reaches held-out accuracy >= 0.9 on iris, reporting accuracy and loss each step', async () => {
    const { ctx, reports, checkpoints } = fakeContext({ dataset: 'iris', maxSteps: 8, seed: 1 });
    const final = await logreg({ learningRate: 0.01, stepsPerReport: 20 }, ctx);
    expect(reports.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(final).toEqual(reports[7]);
    expect(final?.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(reports.every((m) => m.accuracy !== undefined && m.accuracy >= 0 && m.accuracy <= 1)).toBe(true);
    // More training lowers the held-out loss.
    expect(reports[7]?.loss).toBeLessThan(reports[0]?.loss as number);
    expect(checkpoints).toHaveLength(8);
  });

  it('a run resumed from a checkpoint reports what the uninterrupted run did', async () => {
    const params = { dataset: 'iris', maxSteps: 5, seed: 2 };
    const config = { learningRate: 0.02, stepsPerReport: 10 };
    const whole = fakeContext(params);
    await logreg(config, whole.ctx);
    const resumed = fakeContext(params, { restore: whole.checkpoints[2] });
    await logreg(config, resumed.ctx);
    expect(resumed.reports.map((m) => m.step)).toEqual([4, 5]);
    expect(resumed.reports).toEqual(whole.reports.slice(3));
  });

  it('stops when told to, and refuses a regression target', async () => {
    const { ctx, reports } = fakeContext({ dataset: 'iris', maxSteps: 10 }, { stopAfter: 2 });
    await logreg({ learningRate: 0.01, stepsPerReport: 5 }, ctx);
    expect(reports).toHaveLength(2);
    const rows = Array.from({ length: 40 }, (_, i) => `${i},${i * 0.37}`).join('\n');
    const path = join(dir, 'regression.csv');
    writeFileSync(path, `x,price\n${rows}\n`);
    await expect(logreg({}, fakeContext({ csv: path, target: 'price' }).ctx)).rejects.toThrow(
      /regression.*use the mlp/,
    );
    await expect(logreg({ learningRate: -1 }, fakeContext({}).ctx)).rejects.toThrow(/"learningRate"/);
  });
});

describe('mlp', () => {
  const config: Config = {
    learningRate: 0.02,
    hiddenUnits: 12,
    layers: 2,
    activation: 'tanh',
    batchSize: 16,
    dropout: 0.1,
  };

  it('trains on iris, one epoch per step, and disposes every tensor', async () => {
    const before = tf.memory().numTensors;
    const { ctx, reports } = fakeContext({ dataset: 'iris', maxSteps: 15, seed: 3 });
    const final = await mlp(config, ctx);
    expect(reports.map((m) => m.step)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(final?.accuracy).toBeGreaterThanOrEqual(0.8);
    expect(reports[14]?.loss).toBeLessThan(reports[0]?.loss as number);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is reproducible, and a run restored from a checkpoint goes on as the uninterrupted one', async () => {
    const params = { dataset: 'iris', maxSteps: 5, seed: 4 };
    const whole = fakeContext(params);
    await mlp(config, whole.ctx);
    const again = fakeContext(params);
    await mlp(config, again.ctx);
    expect(again.reports).toEqual(whole.reports);

    const saved = whole.checkpoints[1] as MlpCheckpoint;
    expect(saved.step).toBe(2);
    expect(saved.weights.every((w) => w instanceof Float32Array)).toBe(true);
    expect(saved.optimizer.moments).toHaveLength(2 * saved.weights.length);
    const before = tf.memory().numTensors;
    const resumed = fakeContext(params, { restore: structuredClone(saved) });
    await mlp(config, resumed.ctx);
    expect(resumed.reports.map((m) => m.step)).toEqual([3, 4, 5]);
    for (let i = 0; i < 3; i++) {
      expect(resumed.reports[i]?.accuracy).toBe(whole.reports[i + 2]?.accuracy);
      expect(resumed.reports[i]?.loss).toBeCloseTo(whole.reports[i + 2]?.loss as number, 5);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses a checkpoint of another architecture, naming the shapes', async () => {
    const { ctx, checkpoints } = fakeContext({ dataset: 'iris', maxSteps: 1 });
    await mlp({ hiddenUnits: 8 }, ctx);
    const other = fakeContext({ dataset: 'iris', maxSteps: 2 }, { restore: checkpoints[0] });
    await expect(mlp({ hiddenUnits: 9 }, other.ctx)).rejects.toThrow(
      /shapes \[\[4,8\],\[8\],\[8,3\],\[3\]\].*hiddenUnits/,
    );
  });

  it('fits a regression target from a CSV (reports rmse and r2)', async () => {
    const rng = new Rng(5);
    const rows = Array.from({ length: 120 }, () => {
      const a = rng.uniform(-2, 2);
      const b = rng.uniform(-2, 2);
      return `${a},${b},${100 + 30 * a - 20 * b + rng.normal()}`;
    });
    const path = join(dir, 'linear.csv');
    writeFileSync(path, `a,b,y\n${rows.join('\n')}\n`);
    const { ctx, reports } = fakeContext({ csv: path, target: 'y', maxSteps: 25 });
    const final = await mlp({ learningRate: 0.03, hiddenUnits: 16, activation: 'relu', batchSize: 16 }, ctx);
    expect(final?.r2).toBeGreaterThan(0.9);
    expect(final?.rmse).toBeLessThan(reports[0]?.rmse as number);
    expect(final?.accuracy).toBeUndefined();
  });
});

describe('built-ins on worker threads', () => {
  let executor: TrialExecutor;
  beforeAll(async () => {
    executor = await TrialExecutor.start({ threads: 2 });
  });
  afterAll(async () => {
    await executor.close({ force: true });
  });

  function hooks() {
    const reports: TrialMetrics[] = [];
    const checkpoints: unknown[] = [];
    return {
      reports,
      checkpoints,
      hooks: {
        onReport: (m: TrialMetrics) => {
          reports.push(m);
          return 'continue' as const;
        },
        onCheckpoint: (state: unknown) => {
          checkpoints.push(state);
        },
      },
    };
  }

  it('logreg and mlp train on threads; mlp restores from its checkpoint there', async () => {
    const params = { dataset: 'iris', maxSteps: 4, seed: 6 };
    const lr = hooks();
    const mp = hooks();
    const [a, b] = await Promise.all([
      executor.run(
        {
          trialId: 0,
          config: { learningRate: 0.01, stepsPerReport: 30 },
          trainable: { module: builtinTrainables.logreg?.module as string, params },
        },
        lr.hooks,
      ),
      executor.run(
        {
          trialId: 1,
          config: { hiddenUnits: 8 },
          trainable: { module: builtinTrainables.mlp?.module as string, params },
        },
        mp.hooks,
      ),
    ]);
    expect(a.status).toBe('completed');
    expect((a as Extract<TrialRunOutcome, { status: 'completed' }>).metrics?.accuracy).toBeGreaterThanOrEqual(
      0.9,
    );
    expect(b.status).toBe('completed');
    expect(mp.reports.map((m) => m.step)).toEqual([1, 2, 3, 4]);
    expect(mp.reports.every((m) => typeof m.accuracy === 'number')).toBe(true);

    const resumed = hooks();
    const c = await executor.run(
      {
        trialId: 1,
        config: { hiddenUnits: 8 },
        trainable: { module: builtinTrainables.mlp?.module as string, params: { ...params, maxSteps: 6 } },
        checkpoint: mp.checkpoints[3],
      },
      resumed.hooks,
    );
    expect(c.status).toBe('completed');
    expect(resumed.reports.map((m) => m.step)).toEqual([5, 6]);
  });

  it('a bad CSV fails the trial with the data error', async () => {
    const path = join(dir, 'bad.csv');
    writeFileSync(path, 'a,b,y\n1,2,x\n3,oops,y\n');
    const outcome = await executor.run(
      {
        trialId: 2,
        config: {},
        trainable: { module: builtinTrainables.mlp?.module as string, params: { csv: path, target: 'y' } },
      },
      hooks().hooks,
    );
    expect(outcome).toMatchObject({ status: 'failed', code: 'E_TRAINABLE_FAILED' });
    expect((outcome as { reason: string }).reason).toMatch(/bad\.csv, line 3: column "b" holds "oops"/);
  });
});
