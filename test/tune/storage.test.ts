/**
 * Study storage: every write read back after reopening the file, resuming interrupted trials,
 * typed errors for bad files and bad calls, and a real crash: a writer process SIGKILLed in the
 * middle of its writes, whose every acknowledged write must be in the file.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/kernel/index.js';
import { StudyStorage, StudyStorageError, TuneStorageErrorCodes } from '../../src/tune/storage.js';
import type { StudySpec } from '../../src/tune/study.js';
import type { TrialRecord } from '../../src/tune/types.js';

let dir: string;
let open: StudyStorage[];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mabeam-tune-storage-'));
  open = [];
});

afterEach(() => {
  for (const s of open) s.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const file = (name = 'study.db') => path.join(dir, name);

/** Open a storage that afterEach closes. */
function openStorage(p = file(), options: Parameters<typeof StudyStorage.open>[1] = {}): StudyStorage {
  const s = StudyStorage.open(p, options);
  open.push(s);
  return s;
}

/** A clock the test advances by hand: 1000, 1001, ... */
function ticking(start = 1000): () => number {
  let t = start;
  return () => t++;
}

const spec = (overrides: Partial<Record<keyof StudySpec, unknown>> = {}): StudySpec =>
  ({
    space: {
      lr: { type: 'float', min: 1e-5, max: 1, log: true },
      layers: { type: 'int', min: 1, max: 4 },
      act: { type: 'choice', values: ['relu', 'tanh', null, 3, Number.NaN, { deep: [1, 2] }] },
      bn: { type: 'bool' },
    },
    objective: { metric: 'acc', mode: 'max' },
    sampler: { name: 'tpe', options: { startup: 5, gamma: 0.25 } },
    scheduler: { name: 'asha', options: { grace: 1, reduction: 3 } },
    trials: 20,
    concurrency: 2,
    seed: 42,
    trainable: { module: './train.ts', exportName: 'train', params: { data: 'iris.csv', target: 'species' } },
    ...overrides,
  }) as StudySpec;

/** Catch what `fn` throws. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

function expectStorageError(fn: () => unknown, code: string, ...mentions: string[]): StudyStorageError {
  const error = thrown(fn);
  expect(error).toBeInstanceOf(StudyStorageError);
  expect((error as StudyStorageError).code).toBe(code);
  for (const m of mentions) expect((error as Error).message).toContain(m);
  return error as StudyStorageError;
}

describe('round trip', () => {
  it('reads back the spec, every trial, report, lineage entry and checkpoint, after reopening', () => {
    const p = file();
    const s = openStorage(p, { now: ticking() });
    const theSpec = spec();
    s.createStudy('mnist', theSpec);
    const c0 = { lr: 0.01, layers: 2, act: 'relu', bn: true };
    const c1 = { lr: 1e-4, layers: 4, act: Number.NaN, bn: false };
    const c2 = { lr: 0.5, layers: 1, act: { deep: [1, 2] }, bn: true };
    s.trialStarted('mnist', 0, c0); // t=1001
    s.trialStarted('mnist', 1, c1); // 1002
    s.report('mnist', 0, { step: 1, acc: 0.5, loss: 1.2 });
    s.report('mnist', 0, { step: 2, acc: 0.7, loss: Number.NaN });
    s.report('mnist', 1, { step: 1, acc: Number.POSITIVE_INFINITY, loss: Number.NEGATIVE_INFINITY });
    s.checkpoint('mnist', 0, 2, { weights: Float64Array.of(1, 2, 3), meta: new Map([['k', 1]]) });
    s.exploit('mnist', 1, { step: 1, donor: 0, config: { ...c0, lr: 0.02 } });
    s.report('mnist', 1, { step: 2, acc: 0.65 });
    s.trialEnded('mnist', 0, 'completed', 0.7, null); // 1003
    s.trialEnded('mnist', 1, 'pruned', null, null); // 1004
    s.trialStarted('mnist', 2, c2); // 1005
    s.trialEnded('mnist', 2, 'failed', null, 'RangeError: <boom> "quoted"'); // 1006
    s.finishStudy('mnist'); // 1007
    s.close();

    const again = openStorage(p);
    const loaded = again.loadStudy('mnist');
    expect(loaded.spec).toEqual(theSpec);
    expect(Number.isNaN((loaded.spec.space.act as unknown as { values: unknown[] }).values[4])).toBe(true);
    expect(loaded).toMatchObject({ name: 'mnist', status: 'finished', createdAt: 1000, finishedAt: 1007 });
    expect(loaded.interrupted).toEqual([]);
    const expected: TrialRecord[] = [
      {
        id: 0,
        state: 'completed',
        initialConfig: c0,
        config: c0,
        reports: [
          { step: 1, acc: 0.5, loss: 1.2 },
          { step: 2, acc: 0.7, loss: Number.NaN },
        ],
        best: 0.7,
        error: null,
        lineage: [],
        startedAt: 1001,
        endedAt: 1003,
      },
      {
        id: 1,
        state: 'pruned',
        initialConfig: c1,
        config: { ...c0, lr: 0.02 },
        reports: [
          { step: 1, acc: Number.POSITIVE_INFINITY, loss: Number.NEGATIVE_INFINITY },
          { step: 2, acc: 0.65 },
        ],
        best: null,
        error: null,
        lineage: [{ step: 1, donor: 0, config: { ...c0, lr: 0.02 } }],
        startedAt: 1002,
        endedAt: 1004,
      },
      {
        id: 2,
        state: 'failed',
        initialConfig: c2,
        config: c2,
        reports: [],
        best: null,
        error: 'RangeError: <boom> "quoted"',
        lineage: [],
        startedAt: 1005,
        endedAt: 1006,
      },
    ];
    expect(loaded.trials).toEqual(expected);
    const ckpt = again.latestCheckpoint('mnist', 0);
    expect(ckpt?.step).toBe(2);
    expect(ckpt?.state).toEqual({ weights: Float64Array.of(1, 2, 3), meta: new Map([['k', 1]]) });
    expect((ckpt?.state as { weights?: unknown } | undefined)?.weights).toBeInstanceOf(Float64Array);
    expect(again.latestCheckpoint('mnist', 1)).toBeUndefined();
    expect(again.listStudies()).toEqual([
      {
        name: 'mnist',
        status: 'finished',
        createdAt: 1000,
        finishedAt: 1007,
        objective: { metric: 'acc', mode: 'max' },
        trials: 3,
        completed: 1,
        best: 0.7,
      },
    ]);
  });

  it('keeps studies apart, lists them by name, and reopens a finished study when a trial starts', () => {
    const s = openStorage();
    s.createStudy('b', spec({ objective: { metric: 'loss', mode: 'min' } }));
    s.createStudy('a', spec());
    s.trialStarted('a', 0, { x: 1 });
    s.trialStarted('b', 0, { x: 2 });
    s.report('a', 0, { step: 1, acc: 0.9 });
    s.report('b', 0, { step: 1, loss: 0.3 });
    s.report('b', 0, { step: 2, loss: 0.1 });
    s.report('b', 0, { step: 3, loss: 0.2 });
    s.trialEnded('b', 0, 'completed');
    s.finishStudy('b');
    expect(s.listStudies().map((l) => [l.name, l.status, l.trials, l.best])).toEqual([
      ['a', 'running', 1, 0.9],
      ['b', 'finished', 1, 0.1],
    ]);
    expect(s.loadStudy('a').trials.map((t) => t.reports.length)).toEqual([1]);
    s.trialStarted('b', 1, { x: 3 });
    expect(s.loadStudy('b')).toMatchObject({ status: 'running', finishedAt: null, interrupted: [1] });
  });

  it('tracks each trial best from the reports in the study mode; trialEnded may override it', () => {
    const s = openStorage();
    s.createStudy('min', spec({ objective: { metric: 'loss', mode: 'min' } }));
    s.trialStarted('min', 0, {});
    for (const [step, loss] of [
      [1, 0.5],
      [2, Number.NaN],
      [3, 0.2],
      [4, 0.4],
    ] as const)
      s.report('min', 0, { step, loss });
    s.report('min', 0, { step: 5, other: -100 });
    expect(s.loadStudy('min').trials[0]?.best).toBe(0.2);
    s.trialStarted('min', 1, {});
    s.report('min', 1, { step: 1, loss: 3 });
    s.trialEnded('min', 0, 'completed'); // undefined: keep 0.2
    s.trialEnded('min', 1, 'completed', 2.5, null); // explicit
    expect(s.loadStudy('min').trials.map((t) => t.best)).toEqual([0.2, 2.5]);
  });

  it('keeps only the latest checkpoints per trial: the most recent writes, whatever their step', () => {
    const p = file();
    const s = openStorage(p, { keepCheckpoints: 2 });
    s.createStudy('pbt', spec());
    s.trialStarted('pbt', 0, {});
    s.trialStarted('pbt', 1, {});
    for (let step = 1; step <= 5; step++) s.checkpoint('pbt', 0, step, { step });
    s.checkpoint('pbt', 1, 9, 'other trial');
    // PBT: trial 0 restarts from a donor's earlier checkpoint, and its next one has a lower step.
    s.checkpoint('pbt', 0, 3, { step: 3, fromDonor: true });
    expect(s.latestCheckpoint('pbt', 0)).toEqual({ step: 3, state: { step: 3, fromDonor: true } });
    expect(s.latestCheckpoint('pbt', 1)).toEqual({ step: 9, state: 'other trial' });
    const db = new Database(p, { readonly: true });
    const rows = db.prepare('SELECT trial, step FROM checkpoints ORDER BY id').raw().all();
    db.close();
    expect(rows).toEqual([
      [0, 5],
      [1, 9],
      [0, 3],
    ]);
  });

  it('is readable by a second connection while the first writes (WAL)', () => {
    const p = file();
    const writer = openStorage(p);
    writer.createStudy('live', spec());
    const reader = openStorage(p);
    writer.trialStarted('live', 0, { a: 1 });
    writer.report('live', 0, { step: 1, acc: 0.25 });
    expect(reader.loadStudy('live').trials[0]?.reports).toEqual([{ step: 1, acc: 0.25 }]);
    expect(reader.synchronous).toBe('full');
    expect(openStorage(file('n.db'), { synchronous: 'normal' }).synchronous).toBe('normal');
  });
});

describe('resuming interrupted trials', () => {
  it('lists trials left running, continues them with their reports and checkpoint, and rewinds reports', () => {
    const p = file();
    const s = StudyStorage.open(p);
    s.createStudy('r', spec({ objective: { metric: 'loss', mode: 'min' } }));
    s.trialStarted('r', 0, { lr: 1 });
    s.trialStarted('r', 1, { lr: 2 });
    s.trialStarted('r', 2, { lr: 3 });
    s.trialEnded('r', 1, 'completed', 1, null);
    for (let step = 1; step <= 3; step++) s.report('r', 0, { step, loss: 10 - step });
    s.checkpoint('r', 0, 2, { at: 2 });
    // The process "dies" here: no close, no end.
    const again = openStorage(p);
    const loaded = again.loadStudy('r');
    expect(loaded.interrupted).toEqual([0, 2]);
    expect(loaded.trials.map((t) => t.state)).toEqual(['running', 'completed', 'running']);
    expect(again.latestCheckpoint('r', 0)).toEqual({ step: 2, state: { at: 2 } });
    // Continue trial 0 from its checkpoint: reports after step 2 are re-done.
    again.trialStarted('r', 0, { lr: 1 });
    expect(again.rewindTrial('r', 0, 2)).toBe(1);
    expect(again.loadStudy('r').trials[0]?.best).toBe(8);
    again.report('r', 0, { step: 3, loss: 5 });
    again.trialEnded('r', 0, 'completed');
    const t0 = again.loadStudy('r').trials[0];
    expect(t0?.reports.map((m) => [m.step, m.loss])).toEqual([
      [1, 9],
      [2, 8],
      [3, 5],
    ]);
    expect(t0).toMatchObject({ state: 'completed', best: 5, initialConfig: { lr: 1 } });
    expect(again.loadStudy('r').interrupted).toEqual([2]);
    s.close();
  });
});

describe('report order', () => {
  it('gives the reports in the order they were written, across trials, and after a rewind', () => {
    const p = file();
    const s = openStorage(p);
    s.createStudy('o', spec({ objective: { metric: 'loss', mode: 'min' } }));
    s.createStudy('other', spec());
    for (const id of [0, 1, 2]) s.trialStarted('o', id, { lr: id });
    s.trialStarted('other', 0, {});
    s.report('o', 1, { step: 1, loss: 5 });
    s.report('other', 0, { step: 1, acc: 0.5 }); // another study's reports do not count
    s.report('o', 0, { step: 1, loss: 4 });
    s.report('o', 2, { step: 1, loss: 3 });
    s.report('o', 0, { step: 2, loss: 2 });
    s.report('o', 0, { step: 3, loss: 1 });
    s.report('o', 1, { step: 2, loss: 6 });
    s.checkpoint('o', 0, 1, { at: 1 });
    s.trialEnded('o', 2, 'completed');
    const before = s.loadStudy('o');
    expect(before.reportOrder).toEqual([
      { trial: 1, index: 0 },
      { trial: 0, index: 0 },
      { trial: 2, index: 0 },
      { trial: 0, index: 1 },
      { trial: 0, index: 2 },
      { trial: 1, index: 1 },
    ]);
    // Each position names the report it was: the metrics in write order.
    expect(before.reportOrder?.map((o) => before.trials[o.trial]?.reports[o.index]?.loss)).toEqual([
      5, 4, 3, 2, 1, 6,
    ]);
    expect(s.loadStudy('other').reportOrder).toEqual([{ trial: 0, index: 0 }]);

    // Trial 0 goes back to its checkpoint at step 1 (its steps 2 and 3 are dropped), then reports
    // again: its new reports come after everything written before, in the file as reopened.
    s.close();
    const again = openStorage(p);
    expect(again.rewindTrial('o', 0, 1)).toBe(2);
    expect(again.loadStudy('o').reportOrder).toEqual([
      { trial: 1, index: 0 },
      { trial: 0, index: 0 },
      { trial: 2, index: 0 },
      { trial: 1, index: 1 },
    ]);
    again.report('o', 0, { step: 2, loss: 1.5 });
    again.report('o', 1, { step: 3, loss: 7 });
    again.report('o', 0, { step: 3, loss: 0.5 });
    const after = again.loadStudy('o');
    expect(after.reportOrder?.map((o) => after.trials[o.trial]?.reports[o.index]?.loss)).toEqual([
      5, 4, 3, 6, 1.5, 7, 0.5,
    ]);
    expect(after.reportOrder?.slice(4)).toEqual([
      { trial: 0, index: 1 },
      { trial: 1, index: 2 },
      { trial: 0, index: 2 },
    ]);
  });

  it('migrates a schema version 1 file: its old reports have no order (null), new studies do', () => {
    const p = file('v1.db');
    // A file as schema version 1 wrote it: no arrival column.
    const raw = new Database(p);
    raw.pragma('journal_mode = WAL');
    raw.exec(`
      CREATE TABLE studies (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, spec TEXT NOT NULL,
        created_at REAL NOT NULL, status TEXT NOT NULL CHECK (status IN ('running', 'finished')),
        finished_at REAL);
      CREATE TABLE trials (study INTEGER NOT NULL REFERENCES studies (id), id INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'completed', 'pruned', 'failed')),
        initial_config TEXT NOT NULL, config TEXT NOT NULL, best REAL, error TEXT, started_at REAL,
        ended_at REAL, PRIMARY KEY (study, id)) WITHOUT ROWID;
      CREATE TABLE reports (study INTEGER NOT NULL, trial INTEGER NOT NULL, seq INTEGER NOT NULL,
        step REAL NOT NULL, metrics TEXT NOT NULL, PRIMARY KEY (study, trial, seq)) WITHOUT ROWID;
      CREATE TABLE checkpoints (id INTEGER PRIMARY KEY, study INTEGER NOT NULL, trial INTEGER NOT NULL,
        step REAL NOT NULL, state BLOB NOT NULL);
      CREATE INDEX checkpoints_trial ON checkpoints (study, trial, id);
      CREATE TABLE lineage (study INTEGER NOT NULL, trial INTEGER NOT NULL, seq INTEGER NOT NULL,
        step REAL NOT NULL, donor INTEGER NOT NULL, config TEXT NOT NULL,
        PRIMARY KEY (study, trial, seq)) WITHOUT ROWID;
    `);
    raw.pragma(`application_id = ${0x4d425455}`);
    raw.pragma('user_version = 1');
    raw
      .prepare('INSERT INTO studies (id, name, spec, created_at, status) VALUES (1, ?, ?, 1, ?)')
      .run('old', JSON.stringify(spec({ objective: { metric: 'loss', mode: 'min' } })), 'running');
    raw
      .prepare(
        "INSERT INTO trials (study, id, state, initial_config, config, best) VALUES (1, 0, 'running', '{}', '{}', 2)",
      )
      .run();
    raw.prepare('INSERT INTO reports VALUES (1, 0, 0, 1, ?)').run(JSON.stringify({ step: 1, loss: 2 }));
    raw.close();

    const s = openStorage(p);
    const probe = new Database(p, { readonly: true });
    expect(probe.pragma('user_version', { simple: true })).toBe(2);
    probe.close();
    const old = s.loadStudy('old');
    expect(old.trials[0]?.reports).toEqual([{ step: 1, loss: 2 }]);
    expect(old.reportOrder).toBeNull();
    // Still unknown after new reports: the old one's place among them was never recorded.
    s.report('old', 0, { step: 2, loss: 1 });
    expect(s.loadStudy('old').reportOrder).toBeNull();
    // A study written after the migration has its order.
    s.createStudy('new', spec());
    s.trialStarted('new', 0, {});
    s.trialStarted('new', 1, {});
    s.report('new', 1, { step: 1, acc: 1 });
    s.report('new', 0, { step: 1, acc: 2 });
    expect(s.loadStudy('new').reportOrder).toEqual([
      { trial: 1, index: 0 },
      { trial: 0, index: 0 },
    ]);
    // Reopening a migrated file changes nothing more.
    s.close();
    expect(openStorage(p).loadStudy('new').reportOrder).toHaveLength(2);
  });
});

describe('bad files and bad calls', () => {
  it('refuses a duplicate study name, naming it', () => {
    const s = openStorage();
    s.createStudy('dup', spec());
    const e = expectStorageError(() => s.createStudy('dup', spec()), 'E_TUNE_STUDY_EXISTS', '"dup"', file());
    expect(e.study).toBe('dup');
  });

  it('refuses an unknown study, listing the names the file holds', () => {
    const s = openStorage();
    expectStorageError(() => s.loadStudy('nope'), 'E_TUNE_STUDY_UNKNOWN', '"nope"', 'holds no study');
    s.createStudy('alpha', spec());
    s.createStudy('beta', spec());
    const e = expectStorageError(
      () => s.loadStudy('gamma'),
      'E_TUNE_STUDY_UNKNOWN',
      '"gamma"',
      '"alpha", "beta"',
    );
    expect(e.known).toEqual(['alpha', 'beta']);
    expectStorageError(() => s.trialStarted('gamma', 0, {}), 'E_TUNE_STUDY_UNKNOWN', '"alpha", "beta"');
    expectStorageError(() => s.latestCheckpoint('gamma', 0), 'E_TUNE_STUDY_UNKNOWN');
  });

  it('refuses a file that is not SQLite, naming the path, and leaves it untouched', () => {
    const p = file('garbage.db');
    const bytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251));
    fs.writeFileSync(p, bytes);
    expectStorageError(() => StudyStorage.open(p), 'E_TUNE_STORAGE_OPEN', p, 'not a database');
    expect(fs.readFileSync(p).equals(bytes)).toBe(true);
    expectStorageError(() => StudyStorage.open(dir), 'E_TUNE_STORAGE_OPEN', dir);
    expectStorageError(
      () => StudyStorage.open(path.join(dir, 'no', 'such', 'dir.db')),
      'E_TUNE_STORAGE_OPEN',
    );
    const missing = file('missing.db');
    expectStorageError(() => StudyStorage.open(missing, { create: false }), 'E_TUNE_STORAGE_OPEN', missing);
    expect(fs.existsSync(missing)).toBe(false);
  });

  it('refuses SQLite files of another application, a newer schema or unknown tables', () => {
    const foreign = file('foreign.db');
    const db = new Database(foreign);
    db.exec('CREATE TABLE events (seq INTEGER PRIMARY KEY)');
    db.pragma('user_version = 1');
    db.close();
    expectStorageError(
      () => StudyStorage.open(foreign),
      'E_TUNE_STORAGE_SCHEMA',
      foreign,
      'another application',
    );

    const newer = file('newer.db');
    StudyStorage.open(newer).close();
    const raw = new Database(newer);
    raw.pragma('user_version = 3');
    raw.close();
    expectStorageError(() => StudyStorage.open(newer), 'E_TUNE_STORAGE_SCHEMA', newer, 'version is 3');

    const extra = file('extra.db');
    StudyStorage.open(extra).close();
    const raw2 = new Database(extra);
    raw2.exec('CREATE TABLE mystery (x)');
    raw2.close();
    expectStorageError(() => StudyStorage.open(extra), 'E_TUNE_STORAGE_SCHEMA', 'mystery');
  });

  it('refuses writes about unknown or ended trials, and commits nothing of a refused write', () => {
    const s = openStorage();
    s.createStudy('t', spec());
    expectStorageError(() => s.report('t', 0, { step: 1, acc: 1 }), 'E_TUNE_STORED_TRIAL_UNKNOWN', 'trial 0');
    s.trialStarted('t', 0, {});
    s.report('t', 0, { step: 1, acc: 0.5 });
    s.trialEnded('t', 0, 'completed', 0.5, null);
    expectStorageError(
      () => s.report('t', 0, { step: 2, acc: 0.9 }),
      'E_TUNE_STORED_TRIAL_ENDED',
      'completed',
    );
    expectStorageError(() => s.checkpoint('t', 0, 2, {}), 'E_TUNE_STORED_TRIAL_ENDED');
    expectStorageError(
      () => s.exploit('t', 0, { step: 2, donor: 1, config: {} }),
      'E_TUNE_STORED_TRIAL_ENDED',
    );
    expectStorageError(() => s.trialEnded('t', 0, 'failed', null, 'x'), 'E_TUNE_STORED_TRIAL_ENDED');
    expectStorageError(() => s.trialStarted('t', 0, {}), 'E_TUNE_STORED_TRIAL_ENDED');
    const t = s.loadStudy('t').trials[0];
    expect(t).toMatchObject({ state: 'completed', best: 0.5, reports: [{ step: 1, acc: 0.5 }], lineage: [] });
    expect(s.latestCheckpoint('t', 0)).toBeUndefined();
  });

  it('refuses bad arguments with InvalidArgumentError naming them', () => {
    const s = openStorage();
    s.createStudy('t', spec());
    s.trialStarted('t', 0, {});
    const cases: [() => unknown, string][] = [
      [() => s.createStudy('', spec()), 'study name'],
      [() => s.createStudy('x', spec({ objective: { metric: 'acc', mode: 'up' } })), 'objective'],
      [() => s.createStudy('x', spec({ seed: 10n })), 'study spec.seed'],
      [
        () => s.createStudy('x', spec({ trainable: { module: 'm', params: { at: new Date(0) } } })),
        'params.at',
      ],
      [() => s.trialStarted('t', -1, {}), 'trial id'],
      [() => s.trialStarted('t', 1, { f: () => 1 }), 'config of trial 1.f'],
      [() => s.trialStarted('t', 1, { a: [1, undefined] }), 'config of trial 1.a[1]'],
      [() => s.report('t', 0, { acc: 1 } as never), '"step"'],
      [() => s.report('t', 0, { step: 1, acc: '1' } as never), 'metric "acc"'],
      [() => s.checkpoint('t', 0, 1, { f: () => 1 }), 'structured-clonable'],
      [() => s.checkpoint('t', 0, Number.NaN, {}), 'checkpoint step'],
      [() => s.exploit('t', 0, { step: 1, donor: 1.5, config: {} }), 'donor'],
      [() => s.trialEnded('t', 0, 'running', null, null), 'end state'],
      [() => StudyStorage.open(file('k.db'), { keepCheckpoints: 0 }), 'keepCheckpoints'],
      [() => StudyStorage.open(file('k.db'), { synchronous: 'off' as never }), 'synchronous'],
    ];
    for (const [fn, mention] of cases) {
      const error = thrown(fn);
      expect(error, mention).toBeInstanceOf(InvalidArgumentError);
      expect((error as Error).message).toContain(mention);
    }
    expect(s.listStudies().map((l) => l.name)).toEqual(['t']);
    expect(s.loadStudy('t').trials).toHaveLength(1);
  });

  it('refuses everything once closed', () => {
    const s = StudyStorage.open(file());
    s.createStudy('c', spec());
    s.close();
    s.close();
    expect(s.closed).toBe(true);
    expectStorageError(() => s.loadStudy('c'), 'E_TUNE_STORAGE_CLOSED', 'loadStudy');
    expectStorageError(() => s.trialStarted('c', 0, {}), 'E_TUNE_STORAGE_CLOSED');
  });

  it('has unique codes, each used by no other module', () => {
    const codes = Object.values(TuneStorageErrorCodes);
    expect(new Set(codes).size).toBe(codes.length);
    const src = path.resolve(fileURLToPath(import.meta.url), '../../../src');
    const others = (fs.readdirSync(src, { recursive: true }) as string[])
      .filter((f) => f.endsWith('.ts') && path.basename(f) !== 'storage.ts')
      .map((f) => fs.readFileSync(path.join(src, f), 'utf8'));
    for (const code of codes)
      expect(
        others.some((text) => text.includes(`'${code}'`)),
        code,
      ).toBe(false);
  });
});

// ---- a real crash --------------------------------------------------------------------------------

describe('process killed with SIGKILL while writing', () => {
  const fixture = fileURLToPath(new URL('../fixtures/tune-storage-writer.ts', import.meta.url));
  const root = path.resolve(path.dirname(fixture), '../..');

  type Ack =
    | { op: 'start'; trial: number; config: Record<string, number> }
    | { op: 'report'; trial: number; metrics: { step: number; loss: number; accuracy: number } }
    | { op: 'checkpoint'; trial: number; step: number }
    | { op: 'exploit'; trial: number; entry: { step: number; donor: number; config: Record<string, number> } }
    | { op: 'end'; trial: number; state: string; best: number };

  /** Run the writer, SIGKILL it once it has acknowledged `count` writes; every line it printed. */
  function runAndKill(db: string, synchronous: string, count: number): Promise<Ack[]> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', fixture, db, synchronous], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const acks: Ack[] = [];
      let stderr = '';
      let killed = false;
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
      });
      createInterface({ input: child.stdout }).on('line', (line) => {
        const ack = JSON.parse(line) as Ack | { op: 'ready' };
        if (ack.op === 'ready') return;
        acks.push(ack);
        if (acks.length >= count && !killed) {
          killed = true;
          child.kill('SIGKILL');
        }
      });
      child.on('error', reject);
      child.on('close', (code, signal) => {
        if (signal === 'SIGKILL' && killed) resolve(acks);
        else reject(new Error(`writer ended with code ${code}, signal ${signal}: ${stderr}`));
      });
    });
  }

  const weightsOf = (trial: number, step: number) =>
    Float64Array.from({ length: 32 }, (_, i) => trial * 1000 + step + i / 32);

  it.each(['full', 'normal'])(
    'keeps every acknowledged write (synchronous=%s)',
    async (synchronous) => {
      const db = file(`crash-${synchronous}.db`);
      // 400 acknowledgements: about 40 trials, the kill landing wherever the writer is then.
      const acks = await runAndKill(db, synchronous, 400);
      expect(acks.length).toBeGreaterThanOrEqual(400);
      const s = openStorage(db);
      const study = s.loadStudy('crash');
      const byId = new Map(study.trials.map((t) => [t.id, t]));
      const reportsAcked = new Map<number, number>();
      const lineageAcked = new Map<number, number>();
      const lastCheckpoint = new Map<number, number>();
      const ended = new Set<number>();
      for (const ack of acks) {
        const t = byId.get(ack.trial);
        expect(t, `trial ${ack.trial} (${ack.op})`).toBeDefined();
        const trial = t as TrialRecord;
        switch (ack.op) {
          case 'start':
            expect(trial.initialConfig).toEqual(ack.config);
            break;
          case 'report': {
            const seq = reportsAcked.get(ack.trial) ?? 0;
            expect(trial.reports[seq], `report ${seq} of trial ${ack.trial}`).toEqual(ack.metrics);
            reportsAcked.set(ack.trial, seq + 1);
            break;
          }
          case 'checkpoint':
            lastCheckpoint.set(ack.trial, ack.step);
            break;
          case 'exploit': {
            const seq = lineageAcked.get(ack.trial) ?? 0;
            expect(trial.lineage[seq]).toEqual(ack.entry);
            lineageAcked.set(ack.trial, seq + 1);
            break;
          }
          case 'end':
            expect(trial).toMatchObject({ state: ack.state, best: ack.best, error: null });
            ended.add(ack.trial);
            break;
        }
      }
      // The latest checkpoint of each trial is the last acknowledged one, or one written after it
      // (committed, then killed before its acknowledgement): never older, never torn.
      for (const [trial, step] of lastCheckpoint) {
        const latest = s.latestCheckpoint('crash', trial);
        expect(latest?.step).toBeGreaterThanOrEqual(step);
        expect(latest?.state).toEqual({
          trial,
          step: latest?.step,
          weights: weightsOf(trial, latest?.step as number),
        });
      }
      // At most the write in flight is in the file without its acknowledgement.
      const started = acks.filter((a) => a.op === 'start').length;
      expect(study.trials.length - started).toBeLessThanOrEqual(1);
      expect(study.trials.map((t) => t.id)).toEqual(study.trials.map((_, i) => i));
      // Trials whose end was not written are interrupted, to be continued; the others are not.
      const notEnded = study.trials.filter((t) => t.state === 'running').map((t) => t.id);
      expect(study.interrupted).toEqual(notEnded);
      for (const id of ended) expect(study.interrupted).not.toContain(id);
      expect(notEnded.length).toBeLessThanOrEqual(1);
      // The file is usable: the interrupted trial continues from its checkpoint and ends.
      for (const id of study.interrupted) {
        const from = s.latestCheckpoint('crash', id)?.step ?? 0;
        s.trialStarted('crash', id, (byId.get(id) as TrialRecord).config);
        s.rewindTrial('crash', id, from);
        s.report('crash', id, { step: from + 1, loss: 0.001 });
        s.trialEnded('crash', id, 'completed');
      }
      expect(s.loadStudy('crash').interrupted).toEqual([]);
    },
    60_000,
  );
});
