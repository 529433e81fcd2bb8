/**
 * Study.resume and the study's bookkeeping under failures (review regressions): a resumed grid
 * never re-runs a point, the scheduler replay never binds an interrupted trial (ASHA, median
 * stopping, PBT; in the stored arrival order and in the guessed one), with the arrival order the
 * rebuilt ASHA rungs are the first run's, best() counts an interrupted trial's kept reports, the
 * store is written before memory changes, and under PBT the sampler learns only what a trial's
 * own configuration reached.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { InvalidArgumentError } from '../../src/kernel/index.js';
import { TpeSampler } from '../../src/tune/samplers/tpe.js';
import type { AshaScheduler } from '../../src/tune/schedulers/asha.js';
import { StudyStorage } from '../../src/tune/storage.js';
import { Study, type StudyOptions } from '../../src/tune/study.js';

let dir: string;
let storage: StudyStorage;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'study-resume-'));
  storage = StudyStorage.open(path.join(dir, 'study.db'));
});
afterEach(() => {
  vi.restoreAllMocks();
  storage.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A new persisted study. */
function start(options: StudyOptions, name = 's'): Study {
  storage.createStudy(name, Study.create(options).spec);
  return Study.create(options, { store: storage, name });
}
/**
 * The study rebuilt from the store, as after a crash: replaying the reports in the order they
 * arrived (as `mabeam tune --resume` does), or, with `guess`, without it (the guessed order).
 */
function reload(name = 's', guess = false): Study {
  const stored = storage.loadStudy(name);
  return Study.resume(
    stored.spec,
    stored.trials,
    { store: storage, name },
    guess ? undefined : stored.reportOrder,
  );
}
const reloadAs = reload;
function asked(study: Study) {
  const t = study.ask();
  if (t === null) throw new Error('no trial');
  return t;
}

describe('Study.resume: the grid sampler', () => {
  const options: StudyOptions = {
    space: { act: { type: 'choice', values: ['relu', 'tanh', 'gelu'] }, bn: { type: 'bool' } },
    objective: { metric: 'loss', mode: 'min' },
    sampler: { name: 'grid' },
    trials: 40,
    seed: 3,
  };

  it('hands out every grid point once over both runs, the interrupted one continued', () => {
    const first = start(options);
    for (let i = 0; i < 2; i++)
      first.tell(asked(first).id, { state: 'completed', metrics: { step: 1, loss: i } });
    const interrupted = asked(first);
    const resumed = reload();
    const again = asked(resumed);
    expect(again.id).toBe(interrupted.id);
    resumed.tell(again.id, { state: 'completed', metrics: { step: 1, loss: 5 } });
    for (let t = resumed.ask(); t !== null; t = resumed.ask()) {
      resumed.tell(t.id, { state: 'completed', metrics: { step: 1, loss: 1 } });
    }
    const keys = resumed.trials().map((t) => JSON.stringify(t.initialConfig));
    expect(keys.length).toBe(6);
    expect(new Set(keys).size).toBe(6);
    expect(resumed.done).toBe(true);
  });

  it('an exhausted grid stays exhausted', () => {
    const first = start(options);
    for (let t = first.ask(); t !== null; t = first.ask()) {
      first.tell(t.id, { state: 'completed', metrics: { step: 1, loss: 1 } });
    }
    expect(first.trials().length).toBe(6);
    const resumed = reload();
    expect(resumed.done).toBe(true);
    expect(resumed.ask()).toBeNull();
    expect(resumed.trials().length).toBe(6);
  });
});

describe('Study.resume: the sampler is told every finished trial', () => {
  it('tells TPE each completed and pruned trial with its best loss, never a failed one', () => {
    const first = start({
      space: { x: { type: 'float', min: 0, max: 1 } },
      objective: { metric: 'score', mode: 'max' },
      sampler: { name: 'tpe' },
      trials: 10,
      seed: 1,
    });
    const a = asked(first);
    first.report(a.id, { step: 1, score: 0.2 });
    first.report(a.id, { step: 2, score: 0.7 });
    first.tell(a.id, { state: 'completed' });
    const b = asked(first);
    first.report(b.id, { step: 1, score: 0.1 });
    first.tell(b.id, { state: 'pruned' });
    const c = asked(first);
    first.report(c.id, { step: 1, score: 0.9 });
    first.tell(c.id, { state: 'failed', error: 'boom' });
    const tell = vi.spyOn(TpeSampler.prototype, 'tell');
    reload();
    // Losses: the negated score (max mode), the best over the reports.
    expect(tell.mock.calls.map(([config, loss, state]) => [config.x, loss, state])).toEqual([
      [a.config.x, -0.7, 'completed'],
      [b.config.x, -0.1, 'pruned'],
    ]);
  });
});

describe('Study.resume: best()', () => {
  it("counts an interrupted trial's kept (checkpointed) reports, before and after it continues", () => {
    const first = start({
      space: { x: { type: 'float', min: -10, max: 10 } },
      objective: { metric: 'loss', mode: 'min' },
      sampler: { name: 'random' },
      trials: 4,
      seed: 2,
    });
    const done = asked(first);
    first.tell(done.id, { state: 'completed', metrics: { step: 1, loss: 5 } });
    const live = asked(first);
    first.report(live.id, { step: 1, loss: 0.5 });
    first.checkpoint(live.id, 1, { step: 1 });
    first.report(live.id, { step: 2, loss: 0.1 }); // after the checkpoint: dropped on resume
    const resumed = reload();
    expect(resumed.trials()[live.id]?.best).toBe(0.5);
    expect(resumed.best()).toEqual({ trialId: live.id, config: live.config, value: 0.5 });
    expect(asked(resumed).id).toBe(live.id);
    resumed.tell(live.id, { state: 'failed', error: 'boom' });
    expect(resumed.best()?.value).toBe(0.5);
  });
});

describe.each([
  { order: 'the arrival order', guess: false },
  { order: 'a guessed order', guess: true },
])('Study.resume: the scheduler replay does not bind interrupted trials ($order)', ({ guess }) => {
  const reload = (name = 's') => reloadAs(name, guess);

  it('ASHA: a trial promoted before the crash is not pruned on its next report', () => {
    const first = start({
      space: { x: { type: 'float', min: 0, max: 1 } },
      objective: { metric: 'loss', mode: 'min' },
      sampler: { name: 'random' },
      scheduler: { name: 'asha', options: { gracePeriod: 1, reductionFactor: 2, maxSteps: 16 } },
      trials: 3,
      seed: 1,
    });
    const a = asked(first);
    const b = asked(first);
    // b reaches rung 1 first (promoted: nothing to compare with), then a (better) does.
    expect(first.report(b.id, { step: 1, loss: 5 }).action).toBe('continue');
    first.checkpoint(b.id, 1, { w: 1 });
    expect(first.report(a.id, { step: 1, loss: 1 }).action).toBe('continue');
    first.tell(a.id, { state: 'completed' });
    const resumed = reload();
    expect(asked(resumed).id).toBe(b.id);
    // b is the first arrival at rung 2: it goes on, as it would have without the crash.
    expect(resumed.report(b.id, { step: 2, loss: 0.5 }).action).toBe('continue');
    // The finished trial's reports were replayed: a new trial worse than a at rung 1 is pruned.
    const c = asked(resumed);
    expect(resumed.report(c.id, { step: 1, loss: 9 }).action).toBe('stop');
  });

  it('median stopping: a trial let go on before the crash is not pruned on its next report', () => {
    const first = start({
      space: { x: { type: 'float', min: 0, max: 1 } },
      objective: { metric: 'loss', mode: 'min' },
      sampler: { name: 'random' },
      scheduler: { name: 'median', options: { minSamples: 2 } },
      trials: 3,
      seed: 1,
    });
    const a = asked(first);
    const b = asked(first);
    const c = asked(first);
    // c trains fastest: steps 1 and 2 before the others report (nothing to compare with).
    expect(first.report(c.id, { step: 1, loss: 5 }).action).toBe('continue');
    expect(first.report(c.id, { step: 2, loss: 5 }).action).toBe('continue');
    first.checkpoint(c.id, 2, { w: 2 });
    for (const t of [a, b]) {
      first.report(t.id, { step: 1, loss: 1 });
      first.report(t.id, { step: 2, loss: 1 });
      first.tell(t.id, { state: 'completed' });
    }
    const resumed = reload();
    expect(asked(resumed).id).toBe(c.id);
    expect(resumed.report(c.id, { step: 3, loss: 0.5 }).action).toBe('continue');
  });

  it("PBT: an exploit after a resume copies the donor's recorded configuration; ended trials are not live", () => {
    const first = start({
      space: { x: { type: 'float', min: 0, max: 10 } },
      objective: { metric: 'loss', mode: 'min' },
      sampler: { name: 'random' },
      scheduler: {
        name: 'pbt',
        options: {
          perturbationInterval: 1,
          quantileFraction: 0.5,
          resampleProbability: 0,
          perturbFactors: [1],
        },
      },
      trials: 4,
      seed: 2,
    });
    const t0 = asked(first);
    const t1 = asked(first);
    const t2 = asked(first);
    // t0 finishes first and best; then t1 and t2 report step 1 (t2 better): nobody exploits.
    expect(first.report(t0.id, { step: 1, loss: 1 }).action).toBe('continue');
    first.tell(t0.id, { state: 'completed' });
    expect(first.report(t1.id, { step: 1, loss: 5 }).action).toBe('continue');
    first.checkpoint(t1.id, 1, { w: 1 });
    expect(first.report(t2.id, { step: 1, loss: 3 }).action).toBe('continue');
    first.checkpoint(t2.id, 1, { w: 2 });
    const resumed = reload();
    // The replay drew no exploit: the records are as they were.
    expect(resumed.trials().map((t) => t.lineage)).toEqual([[], [], []]);
    expect(asked(resumed).id).toBe(t1.id);
    expect(asked(resumed).id).toBe(t2.id);
    const t3 = asked(resumed);
    resumed.report(t2.id, { step: 2, loss: 3 });
    const d = resumed.report(t3.id, { step: 1, loss: 9 });
    expect(d.action).toBe('exploit');
    if (d.action !== 'exploit') return;
    // The donor is live (t0 ended: not a donor) and its configuration is the recorded one.
    expect(d.donor).toBe(t2.id);
    expect(d.config).toEqual(resumed.trials()[t2.id]?.config);
  });

  it('PBT: a trial that exploited before the crash continues with its current configuration', () => {
    const first = start({
      space: { x: { type: 'float', min: 0, max: 10 } },
      objective: { metric: 'loss', mode: 'min' },
      sampler: { name: 'random' },
      scheduler: {
        name: 'pbt',
        options: {
          perturbationInterval: 1,
          quantileFraction: 0.5,
          resampleProbability: 0,
          perturbFactors: [2],
        },
      },
      trials: 3,
      seed: 4,
    });
    const good = asked(first);
    const bad = asked(first);
    first.report(good.id, { step: 1, loss: 1 });
    first.checkpoint(good.id, 1, { w: 'good' });
    const d = first.report(bad.id, { step: 1, loss: 9 });
    expect(d.action).toBe('exploit');
    first.report(bad.id, { step: 2, loss: 2 });
    first.checkpoint(bad.id, 2, { w: 'bad-after-exploit' });
    const current = first.trials()[bad.id]?.config;
    const resumed = reload();
    resumed.ask();
    const again = asked(resumed);
    expect(again.id).toBe(bad.id);
    expect(again.config).toEqual(current);
    // A third trial, worse than both, copies one of them with factor 2: the config it gets is
    // twice its donor's CURRENT x (for bad: after its exploit), clamped to the space.
    const third = asked(resumed);
    resumed.report(good.id, { step: 2, loss: 1 });
    resumed.report(bad.id, { step: 3, loss: 2 });
    const e = resumed.report(third.id, { step: 1, loss: 50 });
    expect(e.action).toBe('exploit');
    if (e.action !== 'exploit') return;
    const donorX = resumed.trials()[e.donor]?.config.x as number;
    expect(e.config.x).toBeCloseTo(Math.min(10, donorX * 2));
  });
});

describe('Study.resume: the replay follows the order the reports arrived in', () => {
  const asha: StudyOptions = {
    space: { x: { type: 'float', min: 0, max: 1 } },
    objective: { metric: 'loss', mode: 'min' },
    sampler: { name: 'random' },
    scheduler: { name: 'asha', options: { gracePeriod: 1, reductionFactor: 2, maxSteps: 16 } },
    trials: 3,
    seed: 1,
  };
  const rungsOf = (study: Study) => (study.scheduler() as AshaScheduler).rungs();
  const rung = (study: Study, step: number) =>
    rungsOf(study)
      .find((r) => r.step === step)
      ?.entries.map((e) => [e.trialId, e.promoted]);

  /**
   * Rungs at steps 1, 2, 4, 8. Trial a (0) reports every step and reaches rung 2 first with a
   * poor loss (promoted: nothing to compare with), then rung 4. Trial c (1) reports every other
   * step, so its FIRST report reaches rung 2, with a better loss, after a's. The guess replays by
   * report index (c's step 2 in the same round as a's step 1), so c gets to rung 2 first, a is
   * then stopped there and its rung-4 arrival is lost.
   */
  function firstRun(): Study {
    const first = start(asha);
    const a = asked(first);
    const c = asked(first);
    for (const [step, loss] of [
      [1, 3],
      [2, 3],
      [3, 3],
      [4, 2],
    ] as const) {
      expect(first.report(a.id, { step, loss }).action).toBe('continue');
    }
    expect(first.report(c.id, { step: 2, loss: 1 }).action).toBe('continue');
    expect(first.report(c.id, { step: 4, loss: 1 }).action).toBe('continue');
    first.tell(a.id, { state: 'completed' });
    first.tell(c.id, { state: 'completed' });
    return first;
  }

  it("ASHA: rebuilt in the arrival order, the rungs are the first run's, and so is the next decision", () => {
    const first = firstRun();
    const expected = rungsOf(first);
    expect(rung(first, 4)).toEqual([
      [0, true],
      [1, true],
    ]);
    const resumed = reload();
    expect(rungsOf(resumed)).toEqual(expected);
    // A new trial reaching rung 4 with loss 1.5 meets a's 2 and c's 1 there (cutoff 1.5): it goes on.
    const d = asked(resumed);
    expect(resumed.report(d.id, { step: 1, loss: 1.5 }).action).toBe('continue');
    expect(resumed.report(d.id, { step: 2, loss: 1.5 }).action).toBe('continue');
    expect(resumed.report(d.id, { step: 4, loss: 1.5 }).action).toBe('continue');
  });

  it('ASHA: the guessed order differs here (a is stopped at rung 2), which the arrival order fixes', () => {
    const first = firstRun();
    const guessed = reload('s', true);
    expect(rung(first, 2)).toEqual([
      [0, true],
      [1, true],
    ]);
    expect(rung(guessed, 2)).toEqual([
      [1, true],
      [0, false],
    ]);
    expect(rung(guessed, 4)).toEqual([[1, true]]);
    // So the guess stops the new trial that the first run's rungs let go on.
    const d = asked(guessed);
    guessed.report(d.id, { step: 1, loss: 1.5 });
    guessed.report(d.id, { step: 2, loss: 1.5 });
    expect(guessed.report(d.id, { step: 4, loss: 1.5 }).action).toBe('stop');
  });

  it('ASHA: an interrupted trial is replayed among the others in arrival order and not stopped', () => {
    const first = start(asha);
    const a = asked(first);
    const c = asked(first);
    first.report(a.id, { step: 1, loss: 3 });
    first.report(a.id, { step: 2, loss: 3 });
    first.report(c.id, { step: 2, loss: 1 });
    first.checkpoint(a.id, 2, { w: 2 });
    first.tell(c.id, { state: 'completed' });
    const resumed = reload();
    expect(rungsOf(resumed)).toEqual(rungsOf(first));
    expect(asked(resumed).id).toBe(a.id);
    // a is the first at rung 4, as it would have been without the crash.
    expect(resumed.report(a.id, { step: 4, loss: 2.5 }).action).toBe('continue');
  });

  it("refuses an order that does not list every stored report once, in each trial's order", () => {
    firstRun();
    const stored = storage.loadStudy('s');
    const order = stored.reportOrder ?? [];
    expect(order).toHaveLength(6);
    const resume = (o: readonly { trial: number; index: number }[]) => () =>
      Study.resume(stored.spec, stored.trials, { store: storage, name: 's' }, o);
    const swapped = [order[1], order[0], ...order.slice(2)] as typeof order;
    expect(resume(swapped)).toThrow(InvalidArgumentError);
    expect(resume(swapped)).toThrow(/report order entry 0.*report 1 of trial 0 where its report 0 was due/);
    expect(resume(order.slice(1))).toThrow(/report order entry 0/);
    expect(resume(order.slice(0, -1))).toThrow(/lists 1 of the 2 reports of trial 1/);
    expect(resume([...order, { trial: 0, index: 4 }])).toThrow(/report 4 of trial 0, which has 4 reports/);
    expect(resume([{ trial: 7, index: 0 }, ...order])).toThrow(
      /trial 7, which is not among the stored trials/,
    );
    expect(resume([{ trial: 0, index: 0.5 }])).toThrow(/report order entry 0/);
    // Nothing was rewound or changed in the store by a refused resume.
    expect(storage.loadStudy('s').reportOrder).toEqual(order);
  });
});

describe('Study: the store is written before memory changes', () => {
  it('a failed report write leaves the record as the store has it, and a retry stores it once', () => {
    const study = start({
      space: { x: { type: 'float', min: -10, max: 10 } },
      objective: { metric: 'loss', mode: 'min' },
      sampler: { name: 'random' },
      trials: 2,
    });
    const t = asked(study);
    const spy = vi.spyOn(storage, 'report').mockImplementationOnce(() => {
      throw new Error('SQLITE_BUSY: database is locked');
    });
    expect(() => study.report(t.id, { step: 1, loss: 1 })).toThrow(/SQLITE_BUSY/);
    expect(study.trials()[t.id]?.reports).toEqual([]);
    expect(study.best()).toBeNull();
    spy.mockRestore();
    study.report(t.id, { step: 1, loss: 1 });
    expect(storage.loadStudy('s').trials[t.id]?.reports).toEqual([{ step: 1, loss: 1 }]);
    expect(study.trials()[t.id]?.reports).toEqual([{ step: 1, loss: 1 }]);
  });

  it('a failed start or end write changes nothing; the same trial is handed out or ended on retry', () => {
    const study = start({
      space: { x: { type: 'float', min: -10, max: 10 } },
      objective: { metric: 'loss', mode: 'min' },
      sampler: { name: 'random' },
      trials: 2,
    });
    const busy = () => {
      throw new Error('SQLITE_BUSY: database is locked');
    };
    const started = vi.spyOn(storage, 'trialStarted').mockImplementationOnce(busy);
    expect(() => study.ask()).toThrow(/SQLITE_BUSY/);
    expect(study.trials()).toEqual([]);
    started.mockRestore();
    const a = asked(study);
    expect(a.id).toBe(0);
    study.report(a.id, { step: 1, loss: 3 });
    const ended = vi.spyOn(storage, 'trialEnded').mockImplementationOnce(busy);
    expect(() => study.tell(a.id, { state: 'completed' })).toThrow(/SQLITE_BUSY/);
    expect(study.trials()[a.id]?.state).toBe('running');
    ended.mockRestore();
    study.tell(a.id, { state: 'completed' });
    expect(storage.loadStudy('s').trials[a.id]?.state).toBe('completed');
  });
});

describe('Study under PBT: what the sampler learns', () => {
  it("tells the sampler the trial's best before its first exploit, not what it reached on a donor's weights", () => {
    const tell = vi.spyOn(TpeSampler.prototype, 'tell');
    const study = Study.create({
      space: { lr: { type: 'float', min: 0.001, max: 1, log: true } },
      objective: { metric: 'loss', mode: 'min' },
      sampler: { name: 'tpe' },
      scheduler: { name: 'pbt', options: { perturbationInterval: 1, quantileFraction: 0.5 } },
      trials: 2,
      seed: 0,
    });
    const good = asked(study);
    const bad = asked(study);
    expect(study.report(good.id, { step: 1, loss: 0.1 }).action).toBe('continue');
    expect(study.report(bad.id, { step: 1, loss: 5 }).action).toBe('exploit');
    study.report(bad.id, { step: 2, loss: 0.05 });
    study.tell(bad.id, { state: 'completed' });
    const told = tell.mock.calls.filter(([config]) => config === bad.config);
    expect(told.map(([, loss, state]) => [loss, state])).toEqual([[5, 'completed']]);
    // The trial's own best is still 0.05 (its record and best() count every report).
    expect(study.trials()[bad.id]?.best).toBe(0.05);
  });
});
