import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/kernel/index.js';
import {
  type Dataset,
  DatasetError,
  fitStandardizer,
  kFolds,
  loadCsv,
  loadDataset,
  loadIris,
  prepareSplit,
  standardize,
  TuneDataErrorCodes,
  trainingData,
  trainTestSplit,
} from '../../src/tune/data.js';

const dir = mkdtempSync(join(tmpdir(), 'mabeam-data-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
function csv(text: string): string {
  const path = join(dir, `f${files++}.csv`);
  writeFileSync(path, text);
  return path;
}

function dataError(run: () => unknown): DatasetError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(DatasetError);
    return error as DatasetError;
  }
  throw new Error('expected a DatasetError');
}

function counts(y: readonly number[]): Record<number, number> {
  const c: Record<number, number> = {};
  for (const v of y) c[v] = (c[v] ?? 0) + 1;
  return c;
}

describe('loadIris', () => {
  it('has 150 rows of 4 measurements and 3 balanced species', () => {
    const iris = loadIris();
    expect(iris.x).toHaveLength(150);
    expect(iris.x.every((row) => row.length === 4 && row.every((v) => v > 0 && v < 10))).toBe(true);
    expect(iris.classes).toEqual(['setosa', 'versicolor', 'virginica']);
    expect(counts(iris.y)).toEqual({ 0: 50, 1: 50, 2: 50 });
    expect(iris.task).toBe('classification');
    expect(iris.features).toHaveLength(4);
  });
});

describe('loadCsv', () => {
  it('reads numeric features and maps a categorical target to class indices (sorted labels)', () => {
    const path = csv('a,b,label\n1,2,cat\n3, 4 ,dog\n\n5,6e-1,cat\n7,8,bird\n');
    const data = loadCsv(path, { target: 'label' });
    expect(data.features).toEqual(['a', 'b']);
    expect(data.x).toEqual([
      [1, 2],
      [3, 4],
      [5, 0.6],
      [7, 8],
    ]);
    expect(data.classes).toEqual(['bird', 'cat', 'dog']);
    expect(data.y).toEqual([1, 2, 1, 0]);
    expect(data.task).toBe('classification');
  });

  it('the target may sit in any column; quoted fields, other delimiters', () => {
    const path = csv('y;"x 1";x2\n"b";1;2\na;3;4\nb;5;6\na;7;8\n');
    const data = loadCsv(path, { target: 'y', delimiter: ';' });
    expect(data.features).toEqual(['x 1', 'x2']);
    expect(data.x[0]).toEqual([1, 2]);
    expect(data.y).toEqual([1, 0, 1, 0]);
  });

  it('a numeric target: few integers are classes (sorted as numbers), many values are regression', () => {
    const few = loadCsv(csv('x,y\n1,10\n2,2\n3,10\n4,2\n'), { target: 'y' });
    expect(few.task).toBe('classification');
    expect(few.classes).toEqual(['2', '10']);
    expect(few.y).toEqual([1, 0, 1, 0]);
    const rows = Array.from({ length: 30 }, (_, i) => `${i},${i * 1.5}`).join('\n');
    const many = loadCsv(csv(`x,y\n${rows}\n`), { target: 'y' });
    expect(many.task).toBe('regression');
    expect(many.classes).toEqual([]);
    expect(many.y[3]).toBe(4.5);
    const fractions = loadCsv(csv('x,y\n1,0.5\n2,1.5\n3,0.5\n4,2.5\n'), { target: 'y' });
    expect(fractions.task).toBe('regression');
    const forced = loadCsv(csv('x,y\n1,10\n2,2\n3,10\n4,2\n'), { target: 'y', task: 'regression' });
    expect(forced.y).toEqual([10, 2, 10, 2]);
  });

  it('a missing file: E_TUNE_DATA_NOT_FOUND naming the path', () => {
    const e = dataError(() => loadCsv(join(dir, 'nope.csv'), { target: 'y' }));
    expect(e.code).toBe(TuneDataErrorCodes.NOT_FOUND);
    expect(e.message).toContain('nope.csv');
  });

  it('malformed CSV: E_TUNE_DATA_MALFORMED naming the line', () => {
    const e = dataError(() => loadCsv(csv('a,b\n1,2\n3,"4\n5,6\n'), { target: 'b' }));
    expect(e.code).toBe(TuneDataErrorCodes.MALFORMED);
    expect(e.message).toMatch(/, line 3: malformed CSV: a quote opened on this line is never closed/);
    const e2 = dataError(() => loadCsv(csv('a,b\n1,2\n3,4"x\n'), { target: 'b' }));
    expect(e2.line).toBe(3);
  });

  it('a ragged row: E_TUNE_DATA_RAGGED naming the line and the counts', () => {
    const e = dataError(() => loadCsv(csv('a,b,c\n1,2,x\n\n3,4\n5,6,y\n'), { target: 'c' }));
    expect(e.code).toBe(TuneDataErrorCodes.RAGGED);
    expect(e.line).toBe(4);
    expect(e.message).toMatch(/, line 4: the row has 2 fields but the header has 3/);
  });

  it('a non-numeric feature: E_TUNE_DATA_NOT_NUMERIC naming the line and the column', () => {
    const e = dataError(() => loadCsv(csv('a,b,c\n1,2,x\n3,four,y\n'), { target: 'c' }));
    expect(e.code).toBe(TuneDataErrorCodes.NOT_NUMERIC);
    expect(e.message).toMatch(/, line 3: column "b" holds "four", not a number/);
    const empty = dataError(() => loadCsv(csv('a,b,c\n1,,x\n'), { target: 'c' }));
    expect(empty.message).toMatch(/, line 2: column "b" holds an empty value/);
    const target = dataError(() => loadCsv(csv('a,c\n1,x\n2,\n'), { target: 'c' }));
    expect(target.message).toMatch(/, line 3: the target "c" is empty/);
  });

  it('an unknown target: E_TUNE_DATA_UNKNOWN_TARGET listing the columns', () => {
    const e = dataError(() => loadCsv(csv('sepal,petal,kind\n1,2,a\n'), { target: 'species' }));
    expect(e.code).toBe(TuneDataErrorCodes.UNKNOWN_TARGET);
    expect(e.message).toContain('no target column "species"; the columns are "sepal", "petal", "kind"');
  });

  it('one class, too few rows, a bad header: errors before any work', () => {
    const one = dataError(() => loadCsv(csv('x,y\n1,a\n2,a\n3,a\n4,a\n'), { target: 'y' }));
    expect(one.code).toBe(TuneDataErrorCodes.TOO_FEW_CLASSES);
    expect(one.message).toContain('has 1 class ("a"); at least 2 are needed');
    const few = dataError(() => loadCsv(csv('x,y\n1,a\n2,b\n'), { target: 'y' }));
    expect(few.code).toBe(TuneDataErrorCodes.TOO_FEW_ROWS);
    expect(few.message).toContain('2 data rows; at least 4');
    const twice = dataError(() => loadCsv(csv('x,x,y\n1,2,a\n'), { target: 'y' }));
    expect(twice.code).toBe(TuneDataErrorCodes.BAD_HEADER);
    expect(twice.message).toContain('names column "x" twice');
    const empty = dataError(() => loadCsv(csv(''), { target: 'y' }));
    expect(empty.code).toBe(TuneDataErrorCodes.BAD_HEADER);
    const alone = dataError(() => loadCsv(csv('y\na\nb\n'), { target: 'y' }));
    expect(alone.message).toContain('no feature column');
    const text = dataError(() =>
      loadCsv(csv('x,y\n1,a\n2,b\n3,a\n4,b\n'), { target: 'y', task: 'regression' }),
    );
    expect(text.message).toContain('a regression target must be numeric');
  });

  it('bad options: E_INVALID_ARGUMENT', () => {
    expect(() => loadCsv('', { target: 'y' })).toThrow(InvalidArgumentError);
    expect(() => loadCsv('x.csv', { target: '' })).toThrow(/"target"/);
    expect(() => loadCsv('x.csv', { target: 'y', delimiter: '"' })).toThrow(/"delimiter"/);
  });
});

describe('loadDataset', () => {
  it('names iris or a CSV; an unknown name lists the built-ins', () => {
    expect(loadDataset({ dataset: 'iris' }).x).toHaveLength(150);
    expect(loadDataset({}).name).toBe('iris');
    const path = csv('a,y\n1,p\n2,q\n3,p\n4,q\n');
    expect(loadDataset({ csv: path, target: 'y' }).classes).toEqual(['p', 'q']);
    const e = dataError(() => loadDataset({ dataset: 'mnist' }));
    expect(e.code).toBe(TuneDataErrorCodes.UNKNOWN_DATASET);
    expect(e.message).toContain('the built-ins are iris');
  });
});

describe('splits', () => {
  const iris = loadIris();

  it('trainTestSplit is stratified, disjoint, complete and seeded', () => {
    const a = trainTestSplit(iris, { testFraction: 0.2, seed: 1 });
    expect(counts(a.test.y)).toEqual({ 0: 10, 1: 10, 2: 10 });
    expect(counts(a.train.y)).toEqual({ 0: 40, 1: 40, 2: 40 });
    const key = (d: Dataset) => d.x.map((r, i) => `${r.join(',')}|${d.y[i]}`);
    const all = [...key(a.train), ...key(a.test)].sort();
    expect(all).toEqual(key(iris).sort());
    expect(trainTestSplit(iris, { testFraction: 0.2, seed: 1 })).toEqual(a);
    expect(key(trainTestSplit(iris, { testFraction: 0.2, seed: 2 }).test)).not.toEqual(key(a.test));
    expect(() => trainTestSplit(iris, { testFraction: 1 })).toThrow(/"testFraction"/);
  });

  it('every class with 2 rows or more lands in both parts', () => {
    const tiny: Dataset = { ...iris, x: [[1], [2], [3], [4], [5]], y: [0, 0, 1, 1, 2], features: ['f'] };
    const { train, test } = trainTestSplit(tiny, { testFraction: 0.1, seed: 3 });
    expect(new Set(test.y)).toEqual(new Set([0, 1]));
    expect(new Set(train.y)).toEqual(new Set([0, 1, 2]));
  });

  it('kFolds holds every row out exactly once, stratified', () => {
    const folds = kFolds(iris, 5, 7);
    expect(folds).toHaveLength(5);
    const heldOut = folds.flatMap((f) => f.test.x.map((r) => r.join(',')));
    expect(heldOut).toHaveLength(150);
    for (const f of folds) {
      expect(counts(f.test.y)).toEqual({ 0: 10, 1: 10, 2: 10 });
      expect(f.train.x).toHaveLength(120);
    }
    expect(() => kFolds(iris, 1)).toThrow(InvalidArgumentError);
  });

  it('standardization is fitted on the training part only', () => {
    const { train, test, standardizer } = prepareSplit(iris, { seed: 4 });
    for (let j = 0; j < 4; j++) {
      const col = train.x.map((r) => r[j] as number);
      const mean = col.reduce((s, v) => s + v, 0) / col.length;
      const sd = Math.sqrt(col.reduce((s, v) => s + (v - mean) ** 2, 0) / col.length);
      expect(mean).toBeCloseTo(0, 10);
      expect(sd).toBeCloseTo(1, 10);
    }
    const raw = trainTestSplit(iris, { seed: 4 });
    expect(test.x).toEqual(standardize(raw.test.x, standardizer));
    expect(standardizer).toEqual(fitStandardizer(raw.train.x));
    expect(
      fitStandardizer([
        [5, 1],
        [5, 3],
      ]),
    ).toEqual({ mean: [5, 2], std: [1, 1] });
  });

  it('trainingData reads seed, testFraction and maxSteps from params, naming bad ones', () => {
    const t = trainingData({ dataset: 'iris', seed: 5, testFraction: 0.3 }, 12);
    expect(t.maxSteps).toBe(12);
    expect(t.test.x).toHaveLength(45);
    expect(trainingData({ maxSteps: 3 }, 12).maxSteps).toBe(3);
    expect(() => trainingData({ maxSteps: 0 }, 12)).toThrow(/"maxSteps"/);
    expect(() => trainingData({ seed: 'x' }, 12)).toThrow(/"seed"/);
    expect(() => trainingData({ testFraction: 2 }, 12)).toThrow(/"testFraction"/);
  });
});
