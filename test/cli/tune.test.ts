/**
 * `mabeam tune` from the command line: bad input reported before any work starts (exit 2, nothing
 * stored), a small real study on iris with the built-in logistic regression, JSON output, the HTML
 * report, and a study on a user's CSV.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'mabeam-tune-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, {
    stdout: (t) => {
      out += t;
    },
    stderr: (t) => {
      err += t;
    },
  });
  return { code, out, err };
}

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/study/${name}`, import.meta.url));

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
});
