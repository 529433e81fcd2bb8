import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/tune/random.js';
import {
  type AshaScheduler,
  ashaRungSteps,
  ashaScheduler,
  isCompletion,
  quantile,
} from '../../src/tune/schedulers/index.js';

function asha(options: Parameters<typeof ashaScheduler>[0], trials: number): AshaScheduler {
  const s = ashaScheduler(options)({}, 0);
  for (let id = 0; id < trials; id++) s.onTrialAdd(id, {});
  return s;
}

describe('ASHA rungs', () => {
  it('sits rungs at gracePeriod * eta^k below maxSteps', () => {
    expect(ashaRungSteps(1, 3, 100)).toEqual([1, 3, 9, 27, 81]);
    expect(ashaRungSteps(1, 3, 81)).toEqual([1, 3, 9, 27]);
    expect(ashaRungSteps(2, 2, 20)).toEqual([2, 4, 8, 16]);
    expect(ashaRungSteps(10, 3, 10)).toEqual([]);
    expect(
      asha({ maxSteps: 30, gracePeriod: 1, reductionFactor: 3 }, 0)
        .rungs()
        .map((r) => r.step),
    ).toEqual([1, 3, 9, 27]);
  });

  it('interpolates the quantile as numpy does', () => {
    expect(quantile([5], 1 / 3)).toBe(5);
    expect(quantile([3, 5], 1 / 3)).toBeCloseTo(3 + 2 / 3, 12);
    expect(quantile([1, 3, 5, 8], 1 / 3)).toBe(3);
    expect(quantile([1, 2, 3, Number.POSITIVE_INFINITY], 0.5)).toBe(2.5);
    expect(quantile([1, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY], 0.75)).toBe(
      Number.POSITIVE_INFINITY,
    );
  });
});

describe('ASHA decisions', () => {
  it('of 9 trials arriving in order of decreasing quality, only the first goes on', () => {
    const s = asha({ maxSteps: 100, reductionFactor: 3 }, 9);
    const actions = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((loss, id) => s.onReport(id, 1, loss).action);
    // Each later trial meets better ones already recorded: its loss is above the cutoff.
    expect(actions).toEqual(['continue', ...Array(8).fill('stop')]);
    expect(s.rungs()[0]?.entries.map((e) => [e.trialId, e.loss, e.promoted])).toEqual([
      [0, 1, true],
      [1, 2, false],
      [2, 3, false],
      [3, 4, false],
      [4, 5, false],
      [5, 6, false],
      [6, 7, false],
      [7, 8, false],
      [8, 9, false],
    ]);
  });

  it('of 9 trials arriving in order of increasing quality, all go on (each is the best so far)', () => {
    const s = asha({ maxSteps: 100, reductionFactor: 3 }, 9);
    const actions = [9, 8, 7, 6, 5, 4, 3, 2, 1].map((loss, id) => s.onReport(id, 1, loss).action);
    expect(actions).toEqual(Array(9).fill('continue'));
  });

  it('promotes the arrivals within the top third of what the rung has seen, rung after rung', () => {
    const s = asha({ maxSteps: 100, reductionFactor: 3 }, 9);
    // Cutoffs (1/3-quantile of the earlier arrivals): -, 5, 3.67, 4.33, 3, 3.33, 3.67, 3, 3.33.
    const losses = [5, 3, 8, 1, 4, 9, 2, 7, 6];
    const actions = losses.map((loss, id) => s.onReport(id, 1, loss).action);
    expect(actions).toEqual([
      'continue',
      'continue',
      'stop',
      'continue',
      'stop',
      'stop',
      'continue',
      'stop',
      'stop',
    ]);
    // The four promoted trials train on; steps 2 is no rung, step 3 is the next.
    for (const id of [0, 1, 3, 6]) expect(s.onReport(id, 2, losses[id] as number).action).toBe('continue');
    // At rung 3: trial 6 arrives first (goes on), then 3 (better: goes on), then 0 (4.5 against
    // a cutoff of 0.83: stops) and 1 (2.5 against 1.17: stops).
    const rung3 = [6, 3, 0, 1].map((id) => s.onReport(id, 3, (losses[id] as number) - 0.5).action);
    expect(rung3).toEqual(['continue', 'continue', 'stop', 'stop']);
    const rungs = s.rungs();
    expect(rungs[0]?.entries.filter((e) => e.promoted).map((e) => e.trialId)).toEqual([0, 1, 3, 6]);
    expect(rungs[1]).toEqual({
      step: 3,
      entries: [
        { trialId: 6, loss: 1.5, promoted: true },
        { trialId: 3, loss: 0.5, promoted: true },
        { trialId: 0, loss: 4.5, promoted: false },
        { trialId: 1, loss: 2.5, promoted: false },
      ],
    });
    expect(rungs[2]?.entries).toEqual([]);
  });

  it('cuts at exactly the 1/eta quantile of the earlier arrivals', () => {
    // Arrivals 9, 6, 3, 0 all go on (each is the best so far); then the cutoff is the
    // 1/eta-quantile of [0, 3, 6, 9]: position 3/eta, so 4.5 for eta 2, 3 for eta 3, 2.25 for eta 4.
    for (const [eta, cutoff] of [
      [2, 4.5],
      [3, 3],
      [4, 2.25],
    ] as const) {
      for (const [loss, action] of [
        [cutoff, 'continue'],
        [cutoff + 0.01, 'stop'],
      ] as const) {
        const s = asha({ maxSteps: 100, reductionFactor: eta }, 5);
        expect([9, 6, 3, 0].map((l, id) => s.onReport(id, 1, l).action)).toEqual(Array(4).fill('continue'));
        expect(s.onReport(4, 1, loss).action).toBe(action);
      }
    }
  });

  it('stops every trial at maxSteps, as completed, and keeps saying stop', () => {
    const s = asha({ maxSteps: 5, gracePeriod: 1, reductionFactor: 3 }, 1);
    expect([1, 2, 3, 4].map((step) => s.onReport(0, step, 1).action)).toEqual(Array(4).fill('continue'));
    const last = s.onReport(0, 5, 1);
    expect(last.action).toBe('stop');
    expect(isCompletion(last)).toBe(true);
    expect(s.onReport(0, 6, 1).action).toBe('stop');
  });

  it('keeps saying stop to a pruned trial', () => {
    const s = asha({ maxSteps: 50 }, 2);
    s.onReport(0, 1, 1);
    const pruned = s.onReport(1, 1, 2);
    expect(pruned.action).toBe('stop');
    expect(isCompletion(pruned)).toBe(false);
    expect(s.onReport(1, 2, 0).action).toBe('stop');
    expect(s.rungs()[0]?.entries).toHaveLength(2);
  });

  it('records a trial that skipped steps at the highest rung it passed', () => {
    const s = asha({ maxSteps: 50 }, 2);
    expect(s.onReport(0, 5, 1).action).toBe('continue');
    expect(s.rungs().map((r) => r.entries.map((e) => e.trialId))).toEqual([[], [0], [], []]);
    // Recorded once per rung: a later report between rungs changes nothing.
    expect(s.onReport(0, 7, 100).action).toBe('continue');
    expect(s.rungs()[1]?.entries).toHaveLength(1);
  });

  it('records a NaN loss as the worst', () => {
    const s = asha({ maxSteps: 50 }, 2);
    s.onReport(0, 1, 1);
    expect(s.onReport(1, 1, Number.NaN).action).toBe('stop');
    expect(s.rungs()[0]?.entries[1]?.loss).toBe(Number.POSITIVE_INFINITY);
  });

  it('gives a snapshot that later reports do not change', () => {
    const s = asha({ maxSteps: 50 }, 2);
    s.onReport(0, 1, 1);
    const before = s.rungs();
    s.onReport(1, 1, 2);
    expect(before[0]?.entries).toHaveLength(1);
  });
});

/** Runs trials that report iid random losses, in a random interleaving, until all stopped. */
function simulate(seed: number, trials: number, eta: number, maxSteps: number) {
  const rng = new Rng(seed);
  const s = asha({ maxSteps, reductionFactor: eta }, trials);
  const steps = new Array<number>(trials).fill(0);
  const live = Array.from({ length: trials }, (_, id) => id);
  const decisions = new Map<string, string>(); // "trial@step" -> action, at rung steps
  const rungSteps = new Set(s.rungs().map((r) => r.step));
  const bestAtRung = new Map<number, number>();
  const problems: string[] = [];
  const completed: number[] = [];
  while (live.length > 0) {
    const at = rng.int(0, live.length - 1);
    const id = live[at] as number;
    const step = (steps[id] as number) + 1;
    steps[id] = step;
    const loss = rng.next();
    const decision = s.onReport(id, step, loss);
    const action = decision.action;
    if (rungSteps.has(step)) {
      decisions.set(`${id}@${step}`, action);
      const best = bestAtRung.get(step) ?? Number.POSITIVE_INFINITY;
      if (loss <= best) {
        bestAtRung.set(step, loss);
        if (action !== 'continue') problems.push(`trial ${id}, best so far at rung ${step}, was stopped`);
      }
    } else if (step < maxSteps && action !== 'continue') {
      problems.push(`trial ${id} stopped off a rung, at step ${step}`);
    }
    if (step >= maxSteps && !isCompletion(decision)) problems.push(`trial ${id} not completed at maxSteps`);
    if (step < maxSteps && isCompletion(decision)) problems.push(`trial ${id} completed at step ${step}`);
    if (action === 'stop') {
      live.splice(at, 1);
      if (isCompletion(decision)) completed.push(id);
      s.onTrialEnd(id, isCompletion(decision) ? 'completed' : 'pruned', loss);
    }
  }
  return { s, decisions, problems, completed };
}

describe('ASHA (property)', () => {
  it('promotes about 1/eta of each rung when trials arrive in random order with random losses', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 2000, max: 4000 }),
        fc.integer({ min: 2, max: 4 }),
        (seed, trials, eta) => {
          const maxSteps = eta ** 3 + 1;
          const { s, decisions, problems } = simulate(seed, trials, eta, maxSteps);
          expect(problems).toEqual([]);
          const rungs = s.rungs();
          expect(rungs).toHaveLength(4);
          // Rung 0 sees every trial once; a higher rung sees exactly the trials promoted below.
          expect(rungs[0]?.entries).toHaveLength(trials);
          for (let r = 0; r < rungs.length; r++) {
            const entries = rungs[r]?.entries ?? [];
            const ids = entries.map((e) => e.trialId);
            expect(new Set(ids).size).toBe(ids.length);
            if (r > 0) {
              const promotedBelow = (rungs[r - 1]?.entries ?? [])
                .filter((e) => e.promoted)
                .map((e) => e.trialId);
              expect([...ids].sort((a, b) => a - b)).toEqual(promotedBelow.sort((a, b) => a - b));
            }
            if (entries.length === 0) continue;
            // The first arrival has nothing to compare with: it goes on.
            expect(entries[0]?.promoted).toBe(true);
            const mismatched = entries.filter(
              (e) => decisions.get(`${e.trialId}@${rungs[r]?.step}`) !== (e.promoted ? 'continue' : 'stop'),
            );
            expect(mismatched).toEqual([]);
            // Each arrival is promoted with probability about 1/eta, independently of the others
            // (its rank among the arrivals so far is uniform); early arrivals add a logarithmic
            // excess. Six standard deviations, so the bound fails by chance about never.
            const m = entries.length;
            const p = 1 / eta;
            const fraction = entries.filter((e) => e.promoted).length / m;
            const slack = 6 * Math.sqrt((p * (1 - p)) / m) + (1 + Math.log(m)) / m;
            expect(fraction).toBeGreaterThanOrEqual(p - slack);
            expect(fraction).toBeLessThanOrEqual(p + slack);
          }
        },
      ),
      { numRuns: 15 },
    );
  });

  it('never stops the best trial so far at a rung, and completes trials at maxSteps', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 2, max: 5 }),
        fc.integer({ min: 1, max: 30 }),
        (seed, trials, eta, maxSteps) => {
          const { s, problems, completed } = simulate(seed, trials, eta, maxSteps);
          expect(problems).toEqual([]);
          // Exactly the trials promoted at every rung train to maxSteps and complete there.
          const rungs = s.rungs();
          const last = rungs.at(-1);
          const survivors =
            last === undefined
              ? Array.from({ length: trials }, (_, id) => id)
              : last.entries.filter((e) => e.promoted).map((e) => e.trialId);
          expect(completed.sort((a, b) => a - b)).toEqual(survivors.sort((a, b) => a - b));
          expect(completed.length).toBeGreaterThanOrEqual(1);
        },
      ),
      { numRuns: 100 },
    );
  });
});
