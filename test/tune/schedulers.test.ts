import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/kernel/index.js';
import {
  ashaScheduler,
  fifoScheduler,
  isCompletion,
  medianStoppingScheduler,
  pbtScheduler,
} from '../../src/tune/schedulers/index.js';
import type { Scheduler, SchedulerFactory, SearchSpace } from '../../src/tune/types.js';

const space: SearchSpace = { lr: { type: 'float', min: 1e-4, max: 1, log: true } };

/** Adds trials 0..n-1. */
function withTrials(factory: SchedulerFactory, n: number): Scheduler {
  const s = factory(space, 1);
  for (let id = 0; id < n; id++) s.onTrialAdd(id, { lr: 0.01 });
  return s;
}

/** Reports `losses[i]` at step i + 1 and returns the actions. */
function reportAll(s: Scheduler, trialId: number, losses: readonly number[], from = 1): string[] {
  return losses.map((loss, i) => s.onReport(trialId, from + i, loss).action);
}

describe('fifoScheduler', () => {
  it('never stops a trial, however bad', () => {
    const s = withTrials(fifoScheduler(), 4);
    expect(s.name).toBe('fifo');
    for (let step = 1; step <= 50; step++) {
      for (let id = 0; id < 4; id++) {
        expect(s.onReport(id, step, id === 3 ? 1e9 : 0.1 * id).action).toBe('continue');
      }
    }
    s.onTrialEnd(3, 'completed', 1e9);
  });
});

describe('medianStoppingScheduler', () => {
  it('stops a clearly bad trial and keeps a good one', () => {
    const s = withTrials(medianStoppingScheduler(), 5);
    expect(s.name).toBe('median');
    reportAll(s, 0, [1.0, 0.9, 0.8]);
    reportAll(s, 1, [1.1, 1.0, 0.9]);
    reportAll(s, 2, [0.9, 0.8, 0.7]);
    // Median of the running averages at step 1: 1.0.
    expect(s.onReport(3, 1, 5).action).toBe('stop');
    expect(s.onReport(4, 1, 0.5).action).toBe('continue');
    // At step 3 the others' running averages are 0.9, 1.0, 0.8 (median 0.9).
    expect(reportAll(s, 4, [0.95, 0.9], 2)).toEqual(['continue', 'continue']);
  });

  it('does not stop before minSamples other trials have reached the step', () => {
    const s = withTrials(medianStoppingScheduler({ minSamples: 3 }), 5);
    reportAll(s, 0, [1, 1, 1]);
    reportAll(s, 1, [1, 1, 1]);
    // Two others at step 1: too few.
    expect(s.onReport(2, 1, 100).action).toBe('continue');
    // Only trials that reached the step count: at step 4 nobody else has.
    reportAll(s, 3, [1, 1, 1]);
    expect(reportAll(s, 2, [100, 100], 2)).toEqual(['stop', 'stop']);
    const late = withTrials(medianStoppingScheduler({ minSamples: 3 }), 4);
    reportAll(late, 0, [1, 1]);
    reportAll(late, 1, [1, 1]);
    reportAll(late, 2, [1, 1]);
    expect(reportAll(late, 3, [1, 1, 100])).toEqual(['continue', 'continue', 'continue']);
  });

  it('judges the best loss so far against the running averages, not its latest', () => {
    const s = withTrials(medianStoppingScheduler(), 5);
    for (let id = 0; id < 3; id++) reportAll(s, id, [6, 2, 1]);
    // Averages: step 1: 6, step 2: 4, step 3: 3. Its latest loss at step 3 (3.5) is worse than
    // that, but its best so far (2.5) is not.
    expect(reportAll(s, 3, [5, 2.5, 3.5])).toEqual(['continue', 'continue', 'continue']);
    // Best so far 5, 3.9, 3.1: worse than the median (3) at step 3.
    expect(reportAll(s, 4, [5, 3.9, 3.1])).toEqual(['continue', 'continue', 'stop']);
  });

  it('takes the mean of the two middle averages, and a tie goes on', () => {
    const s = withTrials(medianStoppingScheduler(), 6);
    [1, 2, 3, 4].forEach((loss, id) => {
      s.onReport(id, 1, loss);
    });
    expect(s.onReport(4, 1, 2.5).action).toBe('continue');
    expect(s.onReport(5, 1, 2.6).action).toBe('stop');
  });

  it('never stops before the grace period', () => {
    const s = withTrials(medianStoppingScheduler({ gracePeriod: 3 }), 4);
    for (let id = 0; id < 3; id++) reportAll(s, id, [1, 1, 1]);
    expect(reportAll(s, 3, [9, 9, 9])).toEqual(['continue', 'continue', 'stop']);
  });

  it('keeps saying stop once it has stopped a trial', () => {
    const s = withTrials(medianStoppingScheduler(), 4);
    for (let id = 0; id < 3; id++) reportAll(s, id, [1, 1, 1]);
    expect(s.onReport(3, 1, 9).action).toBe('stop');
    expect(s.onReport(3, 2, 0).action).toBe('stop');
  });

  it('counts finished trials but drops failed ones', () => {
    const s = withTrials(medianStoppingScheduler(), 5);
    for (let id = 0; id < 3; id++) reportAll(s, id, [1, 1]);
    s.onTrialEnd(2, 'failed', 1);
    // Only trials 0 and 1 count: too few.
    expect(s.onReport(3, 1, 9).action).toBe('continue');
    s.onTrialEnd(0, 'completed', 1);
    s.onTrialEnd(1, 'pruned', 1);
    // Trials 0, 1 (ended) and 3 count: median 1.
    expect(s.onReport(4, 1, 9).action).toBe('stop');
  });

  it('forgets the reports past a checkpoint the trial went back to', () => {
    const s = withTrials(medianStoppingScheduler(), 4);
    reportAll(s, 0, [1, 1, 100, 100]); // averages 1, 1, 34, 50.5
    reportAll(s, 0, [1, 1], 3); // back to step 2: averages 1, 1, 1, 1
    reportAll(s, 1, [1, 1, 1, 1]);
    reportAll(s, 2, [100, 100, 100, 100]);
    // The median at step 4 is trial 0's average: 1 (it would be 50.5 with the old path).
    expect(s.onReport(3, 4, 2).action).toBe('stop');
  });

  it('treats a NaN loss as the worst', () => {
    const s = withTrials(medianStoppingScheduler(), 4);
    for (let id = 0; id < 3; id++) reportAll(s, id, [1]);
    expect(s.onReport(3, 1, Number.NaN).action).toBe('stop');
  });
});

describe('scheduler options', () => {
  const cases: [string, () => unknown, string][] = [
    ['asha maxSteps missing', () => ashaScheduler({} as never), 'asha option "maxSteps"'],
    [
      'asha reductionFactor 1',
      () => ashaScheduler({ maxSteps: 9, reductionFactor: 1 }),
      'asha option "reductionFactor"',
    ],
    [
      'asha reductionFactor 2.5',
      () => ashaScheduler({ maxSteps: 9, reductionFactor: 2.5 }),
      'asha option "reductionFactor"',
    ],
    ['asha gracePeriod 0', () => ashaScheduler({ maxSteps: 9, gracePeriod: 0 }), 'asha option "gracePeriod"'],
    [
      'asha gracePeriod > maxSteps',
      () => ashaScheduler({ maxSteps: 9, gracePeriod: 10 }),
      'asha option "gracePeriod"',
    ],
    [
      'asha unknown option',
      () => ashaScheduler({ maxSteps: 9, grace_period: 2 } as never),
      'asha option "grace_period"',
    ],
    ['asha options not an object', () => ashaScheduler(3 as never), 'asha options'],
    ['fifo given an option', () => fifoScheduler({ grace: 1 } as never), 'fifo option "grace"'],
    ['median minSamples 0', () => medianStoppingScheduler({ minSamples: 0 }), 'median option "minSamples"'],
    [
      'median gracePeriod "2"',
      () => medianStoppingScheduler({ gracePeriod: '2' as never }),
      'median option "gracePeriod"',
    ],
    ['pbt interval missing', () => pbtScheduler({} as never), 'pbt option "perturbationInterval"'],
    [
      'pbt quantile 0',
      () => pbtScheduler({ perturbationInterval: 2, quantileFraction: 0 }),
      'pbt option "quantileFraction"',
    ],
    [
      'pbt quantile 0.6',
      () => pbtScheduler({ perturbationInterval: 2, quantileFraction: 0.6 }),
      'pbt option "quantileFraction"',
    ],
    [
      'pbt resample 1.5',
      () => pbtScheduler({ perturbationInterval: 2, resampleProbability: 1.5 }),
      'pbt option "resampleProbability"',
    ],
    [
      'pbt factors []',
      () => pbtScheduler({ perturbationInterval: 2, perturbFactors: [] }),
      'pbt option "perturbFactors"',
    ],
    [
      'pbt factors negative',
      () => pbtScheduler({ perturbationInterval: 2, perturbFactors: [-1] }),
      'pbt option "perturbFactors"',
    ],
    [
      'pbt burnIn -1',
      () => pbtScheduler({ perturbationInterval: 2, burnInPeriod: -1 }),
      'pbt option "burnInPeriod"',
    ],
    [
      'pbt dimension not in the space',
      () => pbtScheduler({ perturbationInterval: 2, dimensions: ['momentum'] })(space, 0),
      'pbt option "dimensions"',
    ],
  ];
  for (const [name, make, argument] of cases) {
    it(`rejects ${name}, naming the option`, () => {
      let error: unknown;
      try {
        make();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).argument).toBe(argument);
      expect((error as InvalidArgumentError).message).toContain(argument);
    });
  }

  it('accepts the defaults', () => {
    expect(medianStoppingScheduler()(space, 0).name).toBe('median');
    expect(ashaScheduler({ maxSteps: 10 })(space, 0).name).toBe('asha');
    expect(pbtScheduler({ perturbationInterval: 5 })(space, 0).name).toBe('pbt');
  });
});

describe('scheduler lifecycle', () => {
  const factories: [string, SchedulerFactory][] = [
    ['fifo', fifoScheduler()],
    ['median', medianStoppingScheduler()],
    ['asha', ashaScheduler({ maxSteps: 10 })],
    ['pbt', pbtScheduler({ perturbationInterval: 2 })],
  ];
  for (const [name, factory] of factories) {
    it(`${name}: rejects a report for a trial never added or already ended, and bad arguments`, () => {
      const s = factory(space, 0);
      expect(() => s.onReport(0, 1, 1)).toThrow(InvalidArgumentError);
      s.onTrialAdd(0, { lr: 0.1 });
      expect(() => s.onTrialAdd(0, { lr: 0.1 })).toThrow(/already added/);
      expect(() => s.onReport(0, 0, 1)).toThrow(/invalid step/);
      expect(() => s.onReport(0, 1.5, 1)).toThrow(/invalid step/);
      expect(() => s.onReport(0, 1, 'x' as never)).toThrow(/invalid loss/);
      expect(() => s.onReport(-1, 1, 1)).toThrow(/invalid trialId/);
      expect(() => s.onTrialEnd(0, 'done' as never, 1)).toThrow(/invalid outcome/);
      expect(s.onReport(0, 1, 1).action).toBe('continue');
      s.onTrialEnd(0, 'completed', 1);
      expect(() => s.onReport(0, 2, 1)).toThrow(/already ended/);
      expect(() => s.onTrialEnd(0, 'completed', 1)).toThrow(/already ended/);
      expect(() => s.onTrialEnd(7, 'failed', null)).toThrow(/never added/);
    });
  }

  it('marks the stop at the end of the budget as a completion', () => {
    const s = withTrials(ashaScheduler({ maxSteps: 2 }), 2);
    const early = s.onReport(0, 1, 1);
    expect(isCompletion(early)).toBe(false);
    const pruned = s.onReport(1, 1, 2);
    expect(pruned.action).toBe('stop');
    expect(isCompletion(pruned)).toBe(false);
    const done = s.onReport(0, 2, 1);
    expect(done.action).toBe('stop');
    expect(isCompletion(done)).toBe(true);
  });
});
