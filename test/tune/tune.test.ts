/**
 * tune(): a study run by agents, with trainables on worker threads. Real threads, real
 * schedulers; trainables are the fixtures in test/fixtures/study/.
 */
import { describe, expect, it } from 'vitest';
import { Runtime } from '../../src/kernel/index.js';
import {
  runStudy,
  Study,
  StudyCrashedError,
  TuneErrorCodes,
  type TuneEvent,
  tune,
} from '../../src/tune/index.js';
import { MemoryStore } from './memory-store.js';

const fixture = (name: string) => new URL(`../fixtures/study/${name}`, import.meta.url).href;
const quadraticSpace = {
  x: { type: 'float', min: -10, max: 10 },
  y: { type: 'choice', values: [0, 1, 2] },
} as const;

describe('tune()', () => {
  it('runs every trial on worker threads, two at a time, and finds a good configuration', async () => {
    const events: TuneEvent[] = [];
    const result = await tune({
      space: quadraticSpace,
      objective: { metric: 'loss', mode: 'min' },
      trainable: { module: fixture('quadratic.mjs'), params: { maxSteps: 3 } },
      sampler: { name: 'tpe' },
      trials: 24,
      concurrency: 2,
      seed: 1,
      onEvent: (e) => events.push(e),
    });
    expect(result.summary).toMatchObject({ trials: 24, completed: 24, failed: 0, running: 0 });
    expect(result.aborted).toBe(false);
    // Every trial reported its three steps, in order.
    for (const t of result.trials) expect(t.reports.map((r) => r.step)).toEqual([1, 2, 3]);
    // The best is the minimum over all reports, and it is a real evaluation of its config.
    const best = result.best;
    if (best === null) throw new Error('no best');
    const allLosses = result.trials.flatMap((t) => t.reports.map((r) => r.loss as number));
    expect(best.value).toBe(Math.min(...allLosses));
    expect(best.value).toBeCloseTo(
      ((best.config.x as number) - 3) ** 2 + (best.config.y as number) + 10 / 3,
      10,
    );
    // Never more than two trials at once.
    let running = 0;
    let most = 0;
    for (const e of events) {
      if (e.type === 'trial-start') most = Math.max(most, ++running);
      if (e.type === 'trial-end') running--;
    }
    expect(most).toBe(2);
    // Trial agents held a replica of the best-so-far variables: a gap is reported once a best exists.
    const gaps = events.filter((e) => e.type === 'trial-end' && e.gapToBest !== null);
    expect(gaps.length).toBeGreaterThan(0);
  });

  it('lets ASHA stop weak trials early', async () => {
    const result = await tune({
      space: quadraticSpace,
      objective: { metric: 'loss', mode: 'min' },
      trainable: { module: fixture('quadratic.mjs'), params: { maxSteps: 9 } },
      sampler: { name: 'random' },
      scheduler: { name: 'asha', options: { maxSteps: 9, gracePeriod: 1, reductionFactor: 3 } },
      trials: 18,
      concurrency: 2,
      seed: 2,
    });
    expect(result.summary.pruned).toBeGreaterThan(0);
    expect(result.summary.pruned + result.summary.completed).toBe(18);
    for (const t of result.trials) {
      if (t.state === 'pruned') expect(t.reports.length).toBeLessThan(9);
      if (t.state === 'completed') expect(t.reports.length).toBe(9);
    }
  });

  it('marks a failing trial failed with its reason and goes on with the others', async () => {
    const result = await tune({
      space: { x: { type: 'float', min: -1, max: 1 } },
      objective: { metric: 'loss', mode: 'min' },
      trainable: { module: fixture('failing.mjs') },
      sampler: { name: 'random' },
      trials: 12,
      concurrency: 2,
      seed: 4,
    });
    const failed = result.trials.filter((t) => t.state === 'failed');
    const completed = result.trials.filter((t) => t.state === 'completed');
    expect(failed.length).toBeGreaterThan(0);
    expect(completed.length).toBeGreaterThan(0);
    for (const t of failed) {
      expect(t.config.x as number).toBeGreaterThan(0);
      expect(t.error).toContain(`diverged at x=${t.config.x}`);
    }
    for (const t of completed) expect(t.config.x as number).toBeLessThanOrEqual(0);
  });

  it('runs PBT: weak trials continue from a strong trial checkpoint with perturbed hyperparameters', async () => {
    const space = { lr: { type: 'float', min: 0.001, max: 0.5, log: true } } as const;
    const events: TuneEvent[] = [];
    const result = await tune({
      space,
      objective: { metric: 'loss', mode: 'min' },
      trainable: {
        module: fixture('pbt.mjs'),
        // The four trials (ids 0-3) train side by side, step for step (the fixture's lockstep).
        params: { maxSteps: 12, lockstep: new SharedArrayBuffer(4 * 4) },
      },
      sampler: { name: 'random' },
      scheduler: { name: 'pbt', options: { perturbationInterval: 3 } },
      trials: 4,
      concurrency: 4,
      seed: 7,
      onEvent: (e) => events.push(e),
    });
    expect(result.summary.completed).toBe(4);
    const exploited = result.trials.filter((t) => t.lineage.length > 0);
    expect(exploited.length).toBeGreaterThan(0);
    for (const t of exploited) {
      for (const entry of t.lineage) {
        expect(entry.donor).not.toBe(t.id);
        const lr = entry.config.lr as number;
        expect(lr).toBeGreaterThanOrEqual(0.001);
        expect(lr).toBeLessThanOrEqual(0.5);
      }
      expect(t.config).toEqual(t.lineage.at(-1)?.config);
    }
    // The run after an exploit starts from the donor's latest checkpoint: its first step follows a
    // step the donor reported, and its loss is below the donor's loss at that step (the loss only
    // falls with training from the donor's weights).
    const reports = events.filter((e) => e.type === 'report');
    const exploitsSeen = new Map<number, number>();
    let checked = 0;
    reports.forEach((e, i) => {
      if (e.decision !== 'exploit') return;
      const n = exploitsSeen.get(e.trialId) ?? 0;
      exploitsSeen.set(e.trialId, n + 1);
      const donor = result.trials[e.trialId]?.lineage[n]?.donor;
      const j = reports.findIndex((r, k) => k > i && r.trialId === e.trialId);
      const next = reports[j];
      if (next === undefined) return;
      const donorAtCheckpoint = reports
        .slice(0, j)
        .find((r) => r.trialId === donor && r.metrics.step === next.metrics.step - 1);
      expect(donorAtCheckpoint, `trial ${e.trialId} resumed at step ${next.metrics.step}`).toBeDefined();
      expect(next.metrics.loss as number).toBeLessThan(donorAtCheckpoint?.metrics.loss as number);
      checked++;
    });
    expect(checked).toBeGreaterThan(0);
  });

  it('stops on an abort signal and leaves the unfinished trials running in its records', async () => {
    const controller = new AbortController();
    const runtime = new Runtime();
    try {
      const result = await tune({
        space: quadraticSpace,
        objective: { metric: 'loss', mode: 'min' },
        // One report, then a step that never ends: the trials are mid-run when the abort comes.
        trainable: { module: fixture('hang-after-report.mjs') },
        sampler: { name: 'random' },
        trials: 4,
        concurrency: 2,
        runtime,
        onEvent: (e) => {
          if (e.type === 'report') controller.abort();
        },
        signal: controller.signal,
      });
      expect(result.aborted).toBe(true);
      expect(result.summary.running).toBeGreaterThan(0);
      expect(result.summary.completed).toBe(0);
    } finally {
      await runtime.shutdown();
    }
  });
});

describe('tune(): failures and stops (review regressions)', () => {
  const options = {
    space: quadraticSpace,
    objective: { metric: 'loss', mode: 'min' as const },
    trainable: { module: fixture('quadratic.mjs'), params: { maxSteps: 3 } },
    sampler: { name: 'random' },
    trials: 4,
    concurrency: 2,
    seed: 1,
  };

  it('aborted before it starts: starts no trial, leaves the store untouched and nothing running', async () => {
    const runtime = new Runtime();
    const store = new MemoryStore();
    const controller = new AbortController();
    controller.abort();
    try {
      const before = runtime.processes().length;
      const events: TuneEvent[] = [];
      const result = await runStudy(Study.create(options, { store, name: 's' }), {
        trainable: options.trainable,
        runtime,
        signal: controller.signal,
        onEvent: (e) => events.push(e),
      });
      expect(result.aborted).toBe(true);
      expect(result.summary.trials).toBe(0);
      // No agent of the study is left to write anything later.
      expect(runtime.processes().length).toBe(before);
      expect(store.writes).toEqual([]);
      expect(events).toEqual([]);
    } finally {
      await runtime.shutdown();
    }
  });

  it('an abort terminates a running trial at once, without waiting for its next report', async () => {
    const controller = new AbortController();
    const runtime = new Runtime();
    try {
      const before = runtime.processes().length;
      // The trainable never reaches a second report: tune() only returns if its run is terminated.
      const result = await tune({
        space: { x: { type: 'float', min: -1, max: 1 } },
        objective: { metric: 'loss', mode: 'min' },
        trainable: { module: fixture('hang-after-report.mjs') },
        sampler: { name: 'random' },
        trials: 2,
        concurrency: 1,
        runtime,
        signal: controller.signal,
        onEvent: (e) => {
          if (e.type === 'report') controller.abort();
        },
      });
      expect(result.aborted).toBe(true);
      expect(result.trials.map((t) => t.state)).toEqual(['running']);
      expect(runtime.processes().length).toBe(before);
    } finally {
      await runtime.shutdown();
    }
  });

  it('fails a trial whose final metrics lack the objective, with the report problem, and goes on', async () => {
    const result = await tune({
      space: { x: { type: 'float', min: -1, max: 1 } },
      objective: { metric: 'loss', mode: 'min' },
      trainable: { module: fixture('returns-other-metric.mjs') },
      sampler: { name: 'random' },
      trials: 8,
      concurrency: 2,
      seed: 4,
    });
    expect(result.summary.trials).toBe(8);
    for (const t of result.trials) {
      if ((t.initialConfig.x as number) > 0) {
        expect(t.state).toBe('failed');
        expect(t.error).toMatch(/no metric "loss" \(it has: step, accuracy\)/);
      } else {
        expect(t.state).toBe('completed');
      }
    }
    expect(result.trials.some((t) => t.state === 'failed')).toBe(true);
    expect(result.trials.some((t) => t.state === 'completed')).toBe(true);
  });

  it('a store that fails to write a report crashes the study; the trial stays running and a resume continues it', async () => {
    const store = new MemoryStore();
    const study = Study.create({ ...options, concurrency: 1 }, { store, name: 's' });
    store.failNextReport = true;
    const error = await runStudy(study, { trainable: options.trainable }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StudyCrashedError);
    expect((error as StudyCrashedError).code).toBe(TuneErrorCodes.STUDY_CRASHED);
    expect(String((error as StudyCrashedError).message)).toMatch(/SQLITE_BUSY/);
    // Nothing after the failed write: trial 0 started and was never ended or failed.
    expect(store.writes).toEqual(['started 0']);
    const stored = store.snapshot();
    expect(stored.map((t) => t.state)).toEqual(['running']);
    // The study's memory holds what the store holds.
    expect(study.trials()[0]?.reports).toEqual([]);
    const resumed = Study.resume(study.spec, stored, { store, name: 's' });
    const result = await runStudy(resumed, { trainable: options.trainable });
    expect(result.summary).toMatchObject({ trials: 4, completed: 4, failed: 0 });
    expect(result.trials[0]?.reports.map((m) => m.step)).toEqual([1, 2, 3]);
  });

  it('publishes the best under best.config.<dim>, so dimensions named "trial" or "value" are fine', async () => {
    const runtime = new Runtime();
    const seen = new Map<string, unknown>();
    try {
      const result = await tune({
        space: {
          ...quadraticSpace,
          trial: { type: 'int', min: 0, max: 3 },
          value: { type: 'choice', values: ['a', 'b'] },
        },
        objective: { metric: 'loss', mode: 'min' },
        trainable: { module: fixture('quadratic.mjs'), params: { maxSteps: 2 } },
        sampler: { name: 'random' },
        trials: 3,
        concurrency: 1,
        seed: 1,
        runtime,
        onEvent: (e) => {
          if (e.type === 'trial-end') seen.set(`gap ${e.trialId}`, e.gapToBest);
        },
      });
      expect(result.summary.completed).toBe(3);
      expect(result.best).not.toBeNull();
      // gapToBest is the absolute difference between the trial's best and the study's best.
      for (const t of result.trials) {
        const gap = seen.get(`gap ${t.id}`);
        if (typeof gap === 'number') expect(gap).toBeGreaterThanOrEqual(0);
      }
    } finally {
      await runtime.shutdown();
    }
  });
});
