/**
 * The study's ask/tell core: trials handed out and ended, reports validated, the objective's mode,
 * the scheduler's decisions recorded (PBT lineage), and a resume from stored trials that never
 * re-runs a finished trial and continues interrupted ones from their checkpoint.
 */
import { describe, expect, it } from 'vitest';
import { Study, StudyErrorCodes, type StudySpec, type TrialRecord } from '../../src/tune/index.js';
import { MemoryStore } from './memory-store.js';

const space = { x: { type: 'float', min: -10, max: 10 } } as const;

describe('Study ask/tell', () => {
  it('hands out `trials` trials, then null, and reports the best by the objective', () => {
    const study = Study.create({
      space,
      objective: { metric: 'loss', mode: 'min' },
      sampler: { name: 'random' },
      trials: 20,
      seed: 3,
    });
    let asked = 0;
    for (let t = study.ask(); t !== null; t = study.ask()) {
      asked++;
      const x = t.config.x as number;
      study.tell(t.id, { state: 'completed', metrics: { step: 1, loss: (x - 2) ** 2 } });
    }
    expect(asked).toBe(20);
    expect(study.done).toBe(true);
    const best = study.best();
    expect(best).not.toBeNull();
    const losses = study.trials().map((t) => t.best as number);
    expect(best?.value).toBe(Math.min(...losses));
    expect(best?.value).toBe(((best?.config.x as number) - 2) ** 2);
    expect(study.summary()).toMatchObject({ trials: 20, completed: 20, pruned: 0, failed: 0, running: 0 });
  });

  it('maximizes when the mode is max', () => {
    const study = Study.create({
      space,
      objective: { metric: 'acc', mode: 'max' },
      sampler: { name: 'random' },
      trials: 10,
    });
    for (let t = study.ask(); t !== null; t = study.ask()) {
      study.tell(t.id, { state: 'completed', metrics: { step: 1, acc: t.config.x as number } });
    }
    const xs = study.trials().map((t) => t.config.x as number);
    expect(study.best()?.value).toBe(Math.max(...xs));
  });

  it('rejects reports without the objective metric, with non-finite values or bad steps, naming the problem', () => {
    const study = Study.create({ space, objective: { metric: 'loss', mode: 'min' }, trials: 2 });
    const t = study.ask();
    if (t === null) throw new Error('no trial');
    expect(() => study.report(t.id, { step: 1, acc: 0.5 })).toThrow(/no metric "loss" \(it has: step, acc\)/);
    expect(() => study.report(t.id, { step: 1, loss: Number.NaN })).toThrow(/"loss" must be a finite number/);
    expect(() => study.report(t.id, { step: 0, loss: 1 })).toThrow(/"step" must be a whole number >= 1/);
    try {
      study.report(t.id, { step: 1, acc: 1 });
    } catch (error) {
      expect((error as { code: string }).code).toBe(StudyErrorCodes.BAD_REPORT);
    }
  });

  it('refuses unknown trials and trials that already ended', () => {
    const study = Study.create({ space, objective: { metric: 'loss', mode: 'min' }, trials: 2 });
    const t = study.ask();
    if (t === null) throw new Error('no trial');
    expect(() => study.report(7, { step: 1, loss: 1 })).toThrow(
      expect.objectContaining({ code: StudyErrorCodes.UNKNOWN_TRIAL }),
    );
    study.tell(t.id, { state: 'failed', error: 'boom' });
    expect(() => study.report(t.id, { step: 1, loss: 1 })).toThrow(
      expect.objectContaining({ code: StudyErrorCodes.TRIAL_NOT_RUNNING }),
    );
    expect(study.trials()[t.id]).toMatchObject({ state: 'failed', error: 'boom' });
  });

  it('fails a trial that completes without ever reporting the objective', () => {
    const study = Study.create({ space, objective: { metric: 'loss', mode: 'min' }, trials: 1 });
    const t = study.ask();
    if (t === null) throw new Error('no trial');
    study.tell(t.id, { state: 'completed' });
    expect(study.trials()[0]).toMatchObject({
      state: 'failed',
      error: expect.stringContaining('without reporting "loss"'),
    });
  });

  it('rejects bad options before any work: unknown sampler, bad objective, bad trial count', () => {
    const base = { space, objective: { metric: 'loss', mode: 'min' as const } };
    expect(() => Study.create({ ...base, sampler: { name: 'annealing' } })).toThrow(
      /unknown sampler "annealing" \(known: random, grid, tpe\)/,
    );
    expect(() => Study.create({ ...base, scheduler: { name: 'hyperband' } })).toThrow(
      /unknown scheduler "hyperband"/,
    );
    expect(() => Study.create({ ...base, objective: { metric: 'loss', mode: 'up' as 'min' } })).toThrow(
      /objective "mode"/,
    );
    expect(() => Study.create({ ...base, trials: 0 })).toThrow(/"trials"/);
    expect(() => Study.create({ ...base, space: {} })).toThrow();
  });

  it('records a PBT exploit as lineage and switches the trial to the new config', () => {
    const study = Study.create({
      space: { lr: { type: 'float', min: 0.01, max: 1, log: true } },
      objective: { metric: 'loss', mode: 'min' },
      sampler: { name: 'random' },
      scheduler: { name: 'pbt', options: { perturbationInterval: 2 } },
      trials: 4,
      concurrency: 4,
      seed: 1,
    });
    const trials = [0, 1, 2, 3].map(() => study.ask());
    let exploits = 0;
    for (let step = 1; step <= 6; step++) {
      for (const t of trials) {
        if (t === null) throw new Error('no trial');
        const decision = study.report(t.id, { step, loss: t.id + 1 / step });
        if (decision.action === 'exploit') {
          exploits++;
          const record = study.trials()[t.id] as TrialRecord;
          expect(record.lineage.at(-1)).toEqual({ step, donor: decision.donor, config: decision.config });
          expect(record.config).toBe(decision.config);
          const lr = decision.config.lr as number;
          expect(lr).toBeGreaterThanOrEqual(0.01);
          expect(lr).toBeLessThanOrEqual(1);
        }
      }
    }
    expect(exploits).toBeGreaterThan(0);
  });
});

describe('Study.resume', () => {
  it('never re-runs a finished trial, continues interrupted ones from their checkpoint, then asks new ones', () => {
    const store = new MemoryStore();
    const spec = {
      space,
      objective: { metric: 'loss', mode: 'min' as const },
      sampler: { name: 'tpe' },
      trials: 8,
      seed: 5,
    };
    const first = Study.create(spec, { store, name: 's' });
    // Three trials finish, two are mid-run (one checkpointed at step 2) when the process "dies".
    for (let i = 0; i < 3; i++) {
      const t = first.ask();
      if (t === null) throw new Error('no trial');
      first.tell(t.id, { state: 'completed', metrics: { step: 1, loss: (t.config.x as number) ** 2 } });
    }
    const a = first.ask();
    const b = first.ask();
    if (a === null || b === null) throw new Error('no trial');
    first.report(a.id, { step: 1, loss: 50 });
    first.checkpoint(a.id, 1, { w: 1 });
    first.report(a.id, { step: 2, loss: 40 });
    first.checkpoint(a.id, 2, { w: 2 });
    first.report(a.id, { step: 3, loss: 30 });
    const stored = store.snapshot();

    const resumed = Study.resume(first.spec as StudySpec, stored, { store, name: 's' });
    expect(resumed.summary()).toMatchObject({ trials: 5, completed: 3 });
    expect(resumed.best()?.value).toBe(Math.min(...stored.slice(0, 3).map((t) => t.best as number)));
    const again1 = resumed.ask();
    const again2 = resumed.ask();
    expect([again1?.id, again2?.id]).toEqual([a.id, b.id]);
    expect(again1?.checkpoint).toEqual({ w: 2 });
    expect(again2?.checkpoint).toBeUndefined();
    expect(again1?.config).toEqual(a.config);
    const fresh: number[] = [];
    for (let t = resumed.ask(); t !== null; t = resumed.ask()) fresh.push(t.id);
    expect(fresh).toEqual([5, 6, 7]);
    // The resumed sampler does not replay the first run's configurations.
    const firstConfigs = stored.map((t) => t.config.x);
    for (const id of fresh) expect(firstConfigs).not.toContain(resumed.trials()[id]?.config.x);
  });
});
