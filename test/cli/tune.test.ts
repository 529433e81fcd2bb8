/**
 * `mabeam tune` from the command line: bad input reported before any work starts (exit 2, nothing
 * stored), a small real study on iris with the built-in logistic regression, JSON output, the HTML
 * report, a study on a user's CSV, a user's TypeScript trainable outside any package, the default
 * heap limit, and --resume refusing study options.
 */
import { existsSync, rmSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { StudyStorage } from '../../src/tune/storage.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mabeam-tune-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return cliWith(() => {}, ...argv);
}

/** `cli`, calling `onStderr` with each piece of stderr as it is written. */
async function cliWith(
  onStderr: (text: string) => void,
  ...argv: string[]
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, {
    stdout: (t) => {
      out += t;
    },
    stderr: (t) => {
      err += t;
      onStderr(t);
    },
  });
  return { code, out, err };
}

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/study/${name}`, import.meta.url));
const tuneFixture = (name: string) => fileURLToPath(new URL(`../fixtures/tune/${name}`, import.meta.url));

/** A small, quick study's options. */
const SMALL = ['--trials', '2', '--concurrency', '1', '--max-steps', '2'];

/** The names of the studies stored in `db` (none when the file does not exist). */
function storedStudies(db: string): string[] {
  if (!existsSync(db)) return [];
  const storage = StudyStorage.open(db);
  try {
    return storage.listStudies().map((s) => s.name);
  } finally {
    storage.close();
  }
}

/** Asserts that no trial ran (a trial line on stderr means one did). */
function expectNoTrial(err: string): void {
  expect(err).not.toMatch(/^trial \d+ /m);
  expect(err).not.toMatch(/mabeam tune: study /);
}

/** A CSV in `dir` with a numeric target of many values (a regression task). */
async function regressionCsv(name: string): Promise<string> {
  const csv = path.join(dir, name);
  const rows = ['a,b,price'];
  for (let i = 0; i < 60; i++) rows.push(`${i % 7},${(i * 3) % 11},${(i * 1.37).toFixed(3)}`);
  await writeFile(csv, `${rows.join('\n')}\n`);
  return csv;
}

describe('mabeam tune: bad input, before any work', () => {
  it('names a missing CSV file', async () => {
    const db = path.join(dir, 'a.db');
    const r = await cli('tune', '--data', path.join(dir, 'nope.csv'), '--target', 'y', '--storage', db);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/nope\.csv/);
  });

  it('names the line of a malformed CSV row', async () => {
    const csv = path.join(dir, 'ragged.csv');
    await writeFile(csv, 'a,b,label\n1,2,x\n3,4,y\n5,z\n');
    const r = await cli('tune', '--data', csv, '--target', 'label', '--storage', path.join(dir, 'b.db'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/line 4/);
  });

  it('lists the columns when the target column is unknown', async () => {
    const csv = path.join(dir, 'ok.csv');
    await writeFile(csv, 'a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n');
    const r = await cli('tune', '--data', csv, '--target', 'class', '--storage', path.join(dir, 'c.db'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/class/);
    expect(r.err).toMatch(/a, b, label|"a", "b", "label"/);
  });

  it('refuses an empty search space, a space with min > max, and an unknown model or sampler', async () => {
    const empty = path.join(dir, 'empty.json');
    await writeFile(empty, '{}');
    const bad = path.join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ lr: { type: 'float', min: 1, max: 0 } }));
    const db = path.join(dir, 'd.db');
    const r1 = await cli('tune', '--model', 'logreg', '--space', empty, '--storage', db);
    expect(r1.code).toBe(2);
    const r2 = await cli('tune', '--model', 'logreg', '--space', bad, '--storage', db);
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/lr/);
    const r3 = await cli('tune', '--model', 'forest', '--storage', db);
    expect(r3.code).toBe(2);
    expect(r3.err).toMatch(/unknown model "forest" \(built-in models: .*logreg/);
    const r4 = await cli('tune', '--model', 'logreg', '--sampler', 'bayes', '--storage', db);
    expect(r4.code).toBe(2);
    expect(r4.err).toMatch(/unknown sampler "bayes"/);
  });

  it('refuses a trainable that does not export train, listing what it exports', async () => {
    const mod = path.join(dir, 'no-train.mjs');
    await writeFile(mod, 'export const fit = () => 1;\nexport const space = {};\n');
    const r = await cli('tune', '--trainable', mod, '--metric', 'loss', '--storage', path.join(dir, 'e.db'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/train/);
    expect(r.err).toMatch(/fit/);
  });

  it('--memory-limit below the executor minimum (8 MB): exit 2, no study stored', async () => {
    const db = path.join(dir, 'mem.db');
    const r = await cli(
      'tune',
      '--model',
      'logreg',
      ...SMALL,
      '--storage',
      db,
      '--study',
      'm',
      '--memory-limit',
      '4',
    );
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--memory-limit must be a whole number >= 8/);
    expect(storedStudies(db)).not.toContain('m');
  });

  it('--report into a folder that does not exist: exit 2 before any trial runs, no study stored', async () => {
    const db = path.join(dir, 'report.db');
    const report = path.join(dir, 'no-such-dir', 'r.html');
    const r = await cli(
      'tune',
      '--model',
      'logreg',
      ...SMALL,
      '--storage',
      db,
      '--study',
      'r',
      '--report',
      report,
    );
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/cannot write the report .*no-such-dir.*does not exist/);
    expectNoTrial(r.err);
    expect(storedStudies(db)).not.toContain('r');
    const folder = await cli('tune', '--model', 'logreg', ...SMALL, '--storage', db, '--report', dir);
    expect(folder.code).toBe(2);
    expect(folder.err).toMatch(/it is a folder/);
  });

  it('checks the CSV with the delimiter given as --param delimiter=;', async () => {
    const csv = path.join(dir, 'semi.csv');
    const rows = ['a;b;label'];
    for (let i = 0; i < 40; i++) rows.push(`${(i * 0.37) % 1};${(i * 0.71) % 1};${i % 2 === 0 ? 'x' : 'y'}`);
    await writeFile(csv, `${rows.join('\n')}\n`);
    const args = ['tune', '--model', 'logreg', '--data', csv, '--target', 'label', ...SMALL];
    const r = await cli(...args, '--param', 'delimiter=;', '--storage', path.join(dir, 'semi.db'));
    expect(r.err).not.toMatch(/no target column/);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/trials: 2 run/);
    // Without it the file has one column "a;b;label": refused up front, naming the columns.
    const plain = await cli(...args, '--storage', path.join(dir, 'semi2.db'));
    expect(plain.code).toBe(2);
    expect(plain.err).toMatch(/a;b;label/);
    expectNoTrial(plain.err);
  }, 60_000);

  it('logreg on a regression target: exit 2 naming the problem, before any trial runs', async () => {
    const csv = await regressionCsv('reg.csv');
    const db = path.join(dir, 'reg.db');
    const r = await cli(
      'tune',
      '--model',
      'logreg',
      '--data',
      csv,
      '--target',
      'price',
      ...SMALL,
      '--storage',
      db,
    );
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/--model logreg classifies, but target "price" .* regression target/);
    expect(r.err).toMatch(/--model mlp/);
    expectNoTrial(r.err);
    expect(storedStudies(db)).toEqual([]);
  });

  it('a bad built-in param (--param testFraction=2, --param dataset=mnist): exit 2 naming it', async () => {
    const db = path.join(dir, 'params.db');
    const r = await cli('tune', '--model', 'logreg', '--param', 'testFraction=2', ...SMALL, '--storage', db);
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/testFraction/);
    expectNoTrial(r.err);
    const d = await cli('tune', '--model', 'logreg', '--param', 'dataset=mnist', ...SMALL, '--storage', db);
    expect(d.code, d.err).toBe(2);
    expect(d.err).toMatch(/mnist/);
    expect(storedStudies(db)).toEqual([]);
  });

  it('names an unknown study on --resume', async () => {
    const db = path.join(dir, 'f.db');
    const r = await cli('tune', '--resume', 'ghost', '--storage', db);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/ghost/);
  });
});

describe('mabeam tune: real studies', () => {
  it('tunes logistic regression on iris, prints the summary as JSON and writes the HTML report', async () => {
    const db = path.join(dir, 'iris.db');
    const report = path.join(dir, 'iris.html');
    const r = await cli(
      'tune',
      '--model',
      'logreg',
      '--trials',
      '6',
      '--concurrency',
      '2',
      '--max-steps',
      '5',
      '--storage',
      db,
      '--study',
      'iris',
      '--json',
      '--report',
      report,
      '--seed',
      '1',
      '--metric',
      'accuracy',
    );
    expect(r.code, r.err).toBe(0);
    const result = JSON.parse(r.out) as {
      study: string;
      best: { value: number; config: Record<string, unknown> };
      summary: { trials: number; completed: number; pruned: number; failed: number };
    };
    expect(result.study).toBe('iris');
    expect(result.summary.trials).toBe(6);
    expect(result.summary.failed).toBe(0);
    // A real model on real data: the best held-out accuracy of six trials is high on iris.
    expect(result.best.value).toBeGreaterThanOrEqual(0.9);
    expect(result.best.value).toBeLessThanOrEqual(1);
    expect(r.err).toMatch(/trial \d+ (completed|pruned)/);
    const html = await readFile(report, 'utf8');
    expect(html).toContain('<svg');
    expect(existsSync(db)).toBe(true);
  }, 120_000);

  it('optimizes the held-out loss by default and shows the accuracy of the best report', async () => {
    const r = await cli(
      'tune',
      '--model',
      'logreg',
      '--trials',
      '2',
      '--max-steps',
      '2',
      '--storage',
      path.join(dir, 'default.db'),
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/best loss: \d/);
    expect(r.out).toMatch(/best report: step=\d+ .*accuracy=/);
  }, 60_000);

  it('tunes a user trainable with its exported space and objective', async () => {
    const r = await cli(
      'tune',
      '--trainable',
      fixture('quadratic.mjs'),
      '--trials',
      '8',
      '--concurrency',
      '2',
      '--max-steps',
      '2',
      '--storage',
      path.join(dir, 'q.db'),
      '--sampler',
      'random',
      '--scheduler',
      'fifo',
    );
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/trials: 8 run, 8 completed/);
    expect(r.out).toMatch(/best loss: /);
  }, 60_000);

  it('tunes a .ts trainable from a folder with no package.json (a CommonJS scope)', async () => {
    const folder = await mkdtemp(path.join(tmpdir(), 'mabeam-tune-ts-'));
    try {
      expect(existsSync(path.join(folder, 'package.json'))).toBe(false);
      const file = path.join(folder, 'train.ts');
      await copyFile(tuneFixture('standalone-trainable.ts'), file);
      const r = await cli(
        'tune',
        '--trainable',
        file,
        ...SMALL,
        '--scheduler',
        'fifo',
        '--sampler',
        'random',
        '--storage',
        path.join(folder, 's.db'),
      );
      expect(r.err).not.toMatch(/failed to load/);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/trials: 2 run, 2 completed/);
      expect(r.out).toMatch(/best loss: /);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  }, 60_000);

  it("runs each trial's thread with a 512 MB heap limit unless --memory-limit says otherwise", async () => {
    const heapMb = async (...extra: string[]) => {
      const r = await cli(
        'tune',
        '--trainable',
        tuneFixture('heap-limit.mjs'),
        '--trials',
        '1',
        '--concurrency',
        '1',
        '--max-steps',
        '1',
        '--scheduler',
        'fifo',
        '--sampler',
        'random',
        '--storage',
        path.join(dir, 'heap.db'),
        '--json',
        ...extra,
      );
      expect(r.code, r.err).toBe(0);
      return (JSON.parse(r.out) as { best: { value: number } }).best.value;
    };
    // V8's heap_size_limit is the old generation's limit plus the young generation's.
    const byDefault = await heapMb();
    expect(byDefault).toBeGreaterThanOrEqual(512);
    expect(byDefault).toBeLessThan(700);
    const small = await heapMb('--memory-limit', '64');
    expect(small).toBeGreaterThanOrEqual(64);
    expect(small).toBeLessThan(byDefault);
  }, 60_000);

  it('a report that cannot be written at the end: the results are printed, the error reported, exit 1', async () => {
    const folder = path.join(dir, 'vanishing');
    await mkdir(folder);
    const report = path.join(folder, 'r.html');
    // The folder is removed once the study starts (after the up-front check passed).
    const r = await cliWith(
      (text) => {
        if (text.startsWith('mabeam tune: study ')) rmSync(folder, { recursive: true, force: true });
      },
      'tune',
      '--model',
      'logreg',
      ...SMALL,
      '--storage',
      path.join(dir, 'vanishing.db'),
      '--report',
      report,
      '--json',
    );
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/cannot write the report .*r\.html/);
    const result = JSON.parse(r.out) as { summary: { trials: number } };
    expect(result.summary.trials).toBe(2);
  }, 60_000);
});

describe('mabeam tune --resume', () => {
  it('refuses study options given with it, naming them; run-time options stay allowed', async () => {
    const db = path.join(dir, 'resume.db');
    const first = await cli('tune', '--model', 'logreg', ...SMALL, '--storage', db, '--study', 's');
    expect(first.code, first.err).toBe(0);
    const trials = await cli('tune', '--resume', 's', '--trials', '4', '--storage', db, '--json');
    expect(trials.code).toBe(2);
    expect(trials.err).toMatch(/--trials/);
    expectNoTrial(trials.err);
    const several = await cli(
      'tune',
      '--resume',
      's',
      '--model',
      'mlp',
      '--sampler',
      'random',
      '--max-steps',
      '9',
      '--param',
      'seed=3',
      '--storage',
      db,
    );
    expect(several.code).toBe(2);
    expect(several.err).toMatch(/--model, --sampler, --max-steps, --param/);
    const report = path.join(dir, 'resume.html');
    const again = await cli(
      'tune',
      '--resume',
      's',
      '--storage',
      db,
      '--json',
      '--report',
      report,
      '--memory-limit',
      '256',
      '--trial-timeout',
      '60000',
    );
    expect(again.code, again.err).toBe(0);
    expect((JSON.parse(again.out) as { summary: { trials: number } }).summary.trials).toBe(2);
    expect(existsSync(report)).toBe(true);
  }, 60_000);
});
