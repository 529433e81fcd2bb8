/**
 * `mabeam tune`: run a hyperparameter study from the command line.
 *
 *     mabeam tune                                   # the built-in example: an MLP on iris, TPE + ASHA
 *     mabeam tune --model logreg --trials 30
 *     mabeam tune --data wine.csv --target quality   # your CSV, the built-in models
 *     mabeam tune --trainable ./train.ts --space space.json --metric loss --mode min
 *     mabeam tune --resume <study>                   # continue a study after a crash or kill -9
 *
 * Every study is stored in SQLite (`--storage`, default mabeam-tune.db): `--resume` runs the trials
 * that remain, continues the interrupted ones from their last checkpoint, and never re-runs a
 * finished one. Bad input (a missing or malformed CSV, an unknown target column, a bad space, a
 * trainable without `train`, bad `--param`s, a model that cannot learn the data's task, a report
 * path that cannot be written, a study option given with `--resume`) is reported before any work
 * starts and before anything is stored, with exit status 2.
 *
 * stdout gets the results (a summary, or JSON with --json); stderr gets progress: a live status
 * line on a terminal, plain lines otherwise (one per finished trial, which scripts and tests read).
 */
import { constants, existsSync } from 'node:fs';
import { access, readFile, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Command, InvalidArgumentError as CommanderArgumentError } from 'commander';
import { MabeamError } from '../kernel/index.js';
import { trainingData } from '../tune/data.js';
import { checkExecutorOptions, checkTrainable, MIN_MEMORY_LIMIT_MB } from '../tune/executor.js';
import { SAMPLER_NAMES, SCHEDULER_NAMES } from '../tune/registry.js';
import { renderStudyReport } from '../tune/report.js';
import { checkSpace } from '../tune/space.js';
import { StudyStorage } from '../tune/storage.js';
import {
  checkStudyOptions,
  type Objective,
  Study,
  type StudyOptions,
  type StudySpec,
} from '../tune/study.js';
import { builtinTrainables } from '../tune/trainables/index.js';
import { runStudy, type TuneEvent, type TuneResult } from '../tune/tune.js';
import type { TrainableRef } from '../tune/types.js';

/** Where the command writes (the same shape as main.ts's CliIo). */
export interface TuneIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** True when stderr is a terminal (live status line instead of plain lines). */
  readonly tty?: boolean;
}

export interface TuneOpts {
  model?: string;
  data?: string;
  target?: string;
  trainable?: string;
  space?: string;
  metric?: string;
  mode?: string;
  sampler?: string;
  scheduler?: string;
  trials?: number;
  concurrency?: number;
  seed?: number;
  maxSteps?: number;
  storage?: string;
  study?: string;
  resume?: string;
  json?: boolean;
  report?: string;
  trialTimeout?: number;
  memoryLimit?: number;
  param?: Record<string, unknown>;
  allocation?: string;
}

/** The exit statuses (as main.ts's). */
const OK = 0;
const FAILED = 1;
const BAD_INPUT = 2;

/** The heap limit of a trial's thread in MB when `--memory-limit` is not given. */
const DEFAULT_MEMORY_LIMIT_MB = 512;

/** Built-in models that classify only (a regression target is bad input for them). */
const CLASSIFIERS: ReadonlySet<string> = new Set(['logreg']);

/**
 * Options that shape a study: `--resume` reads them from the storage, so giving one with it is
 * refused rather than silently ignored. (Run-time options such as --report stay allowed.)
 */
const STUDY_OPTIONS: readonly (readonly [keyof TuneOpts, string])[] = [
  ['study', '--study'],
  ['model', '--model'],
  ['data', '--data'],
  ['target', '--target'],
  ['trainable', '--trainable'],
  ['space', '--space'],
  ['metric', '--metric'],
  ['mode', '--mode'],
  ['sampler', '--sampler'],
  ['scheduler', '--scheduler'],
  ['trials', '--trials'],
  ['concurrency', '--concurrency'],
  ['seed', '--seed'],
  ['maxSteps', '--max-steps'],
  ['allocation', '--allocation'],
  ['param', '--param'],
];

function wholeNumber(name: string, min = 1) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\s*-?\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < min) {
      throw new CommanderArgumentError(
        `${name} must be a whole number >= ${min}, got ${JSON.stringify(text)}`,
      );
    }
    return n;
  };
}

function collectParam(text: string, params: Record<string, unknown>): Record<string, unknown> {
  const at = text.indexOf('=');
  if (at <= 0) throw new CommanderArgumentError(`--param must be key=value, got ${JSON.stringify(text)}`);
  const raw = text.slice(at + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // Not JSON: the text itself.
  }
  return { ...params, [text.slice(0, at)]: value };
}

/** Add `mabeam tune` to the program; `done` receives the exit status. */
export function registerTuneCommand(program: Command, io: TuneIo, done: (code: number) => void): void {
  program
    .command('tune')
    .description('tune hyperparameters with a population of agents (default: an MLP on iris, TPE + ASHA)')
    .option('--model <name>', `a built-in model: ${Object.keys(builtinTrainables).join(', ')} (default mlp)`)
    .option('--data <file.csv>', 'train the built-in model on this CSV (with --target)')
    .option('--target <column>', 'the CSV column to predict')
    .option('--trainable <module>', 'your own trainable: a .js/.mjs/.ts module exporting train(config, ctx)')
    .option(
      '--space <file.json>',
      "the search space as JSON (default: the model's, or the trainable's `space` export)",
    )
    .option(
      '--metric <name>',
      'the metric to optimize (default for built-ins: loss, the held-out cross-entropy)',
    )
    .option('--mode <min|max>', 'minimize or maximize the metric (default max for accuracy, else min)')
    .option('--sampler <name>', `${SAMPLER_NAMES.join(', ')} (default tpe)`)
    .option('--scheduler <name>', `${SCHEDULER_NAMES.join(', ')} (default asha)`)
    .option('--trials <n>', 'trials in all (default 100)', wholeNumber('--trials'))
    .option(
      '--concurrency <n>',
      'trials at once, one worker thread each (default: the cores)',
      wholeNumber('--concurrency'),
    )
    .option(
      '--seed <n>',
      'seed of the sampler, the scheduler and the data split (default 0)',
      wholeNumber('--seed', 0),
    )
    .option('--max-steps <n>', 'training steps (epochs) per trial (default 30)', wholeNumber('--max-steps'))
    .option(
      '--allocation <fifo|auction>',
      'how trials get worker slots: fifo, or auction (trials bid for leases of steps) (default fifo)',
    )
    .option('--storage <file.db>', 'the SQLite file holding studies (default mabeam-tune.db)')
    .option('--study <name>', 'name of the new study (default: study-<time>)')
    .option(
      '--resume <name>',
      'continue this stored study (its spec is read from the storage: no study options with it)',
    )
    .option('--json', 'print the result as JSON')
    .option('--report <out.html>', 'write a self-contained HTML report with plots')
    .option('--trial-timeout <ms>', 'fail a trial that runs longer than this', wholeNumber('--trial-timeout'))
    .option(
      '--memory-limit <mb>',
      `heap limit of a trial's thread in MB, at least ${MIN_MEMORY_LIMIT_MB} (default ${DEFAULT_MEMORY_LIMIT_MB})`,
      wholeNumber('--memory-limit', MIN_MEMORY_LIMIT_MB),
    )
    .option(
      '--param <key=value>',
      'a fixed argument for the trainable (ctx.params.key; the value is read as JSON when it parses), repeatable',
      collectParam,
      {},
    )
    .addHelpText(
      'after',
      '\nExit status: 0 the study ran; 1 every trial failed, or the report could not be written;' +
        ' 2 bad input (nothing ran, nothing stored).',
    )
    .action(async (opts: TuneOpts) => {
      done(await tuneCommand(opts, io));
    });
}

/** Bad input found before any work: reported with exit status 2. */
class BadInput extends Error {}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new BadInput(`cannot read ${what} ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new BadInput(`${what} ${path} is not valid JSON: ${(error as Error).message}`);
  }
}

/** Build the study options a command line asks for, validating everything before any work. */
async function studyFromOptions(opts: TuneOpts): Promise<StudyOptions & { trainable: TrainableRef }> {
  const seed = opts.seed ?? 0;
  const maxSteps = opts.maxSteps ?? 30;
  let trainable: TrainableRef;
  let space: unknown;
  let objective: Objective;
  if (opts.trainable !== undefined) {
    if (opts.model !== undefined || opts.data !== undefined) {
      throw new BadInput('--trainable runs your own module: do not combine it with --model or --data');
    }
    const path = resolvePath(opts.trainable);
    if (!existsSync(path))
      throw new BadInput(`trainable ${opts.trainable} does not exist (looked at ${path})`);
    trainable = { module: pathToFileURL(path).href, params: { seed, maxSteps, ...opts.param } };
    const exported = await checkTrainable(trainable);
    space = opts.space !== undefined ? await readJson(opts.space, 'space file') : exported.space;
    if (space === undefined) {
      throw new BadInput(
        `no search space: pass --space file.json or export \`space\` from ${opts.trainable}`,
      );
    }
    const metric = opts.metric ?? exported.objective?.metric;
    if (metric === undefined)
      throw new BadInput(
        `no metric: pass --metric (and --mode), or export \`objective\` from ${opts.trainable}`,
      );
    objective = { metric, mode: (opts.mode ?? exported.objective?.mode ?? 'min') as 'min' | 'max' };
  } else {
    const model = opts.model ?? 'mlp';
    const builtin = builtinTrainables[model];
    if (builtin === undefined) {
      throw new BadInput(
        `unknown model ${JSON.stringify(model)} (built-in models: ${Object.keys(builtinTrainables).join(', ')})`,
      );
    }
    if ((opts.data === undefined) !== (opts.target === undefined)) {
      throw new BadInput('--data and --target go together: the CSV file and the column to predict');
    }
    let params: Record<string, unknown> = { dataset: 'iris', seed, maxSteps, ...opts.param };
    if (opts.data !== undefined && opts.target !== undefined) {
      params = { csv: resolvePath(opts.data), target: opts.target, seed, maxSteps, ...opts.param };
    }
    // The data every trial will train on, loaded and split here once with the very params the
    // trials get (--param delimiter=, task=, testFraction=...), so that a bad file or a bad param
    // is reported before any trial starts.
    const { data } = trainingData(params, maxSteps);
    if (CLASSIFIERS.has(model) && data.task !== 'classification') {
      throw new BadInput(
        `--model ${model} classifies, but target ${JSON.stringify(data.target)} of ${data.name} is a ` +
          'regression target (numeric with many values): use --model mlp, or --param task=classification ' +
          'if its values are class labels',
      );
    }
    trainable = { module: builtin.module, params };
    space = opts.space !== undefined ? await readJson(opts.space, 'space file') : builtin.space;
    // The held-out loss by default: on a small test split many configurations tie at accuracy 1,
    // and a sampler learns nothing from ties; the loss still ranks them (accuracy is reported too).
    const metric = opts.metric ?? 'loss';
    objective = { metric, mode: (opts.mode ?? (metric === 'accuracy' ? 'max' : 'min')) as 'min' | 'max' };
  }
  if (objective.mode !== 'min' && objective.mode !== 'max')
    throw new BadInput(`--mode must be min or max, got ${JSON.stringify(opts.mode)}`);
  const checked = checkSpace(space);
  const scheduler = opts.scheduler ?? 'asha';
  let schedulerOptions: Record<string, unknown> = {};
  if (scheduler === 'asha') schedulerOptions = { maxSteps };
  if (scheduler === 'pbt') {
    // PBT explores the float dimensions only: a network's shape (layers, units) cannot change
    // under weights copied from a donor. All dimensions when the space has no float.
    const floats = Object.keys(checked).filter((k) => checked[k]?.type === 'float');
    schedulerOptions = {
      perturbationInterval: Math.max(1, Math.floor(maxSteps / 6)),
      maxSteps,
      ...(floats.length > 0 ? { dimensions: floats } : {}),
    };
  }
  return {
    space: checked,
    objective,
    sampler: { name: opts.sampler ?? 'tpe' },
    scheduler: { name: scheduler, options: schedulerOptions },
    trials: opts.trials ?? 100,
    concurrency: opts.concurrency ?? Math.max(1, availableParallelism()),
    seed,
    trainable,
    ...(opts.allocation === undefined ? {} : { allocation: opts.allocation as 'fifo' | 'auction' }),
  };
}

function fmt(value: number | null): string {
  if (value === null) return '-';
  return Math.abs(value) >= 1000 || value === Math.trunc(value) ? String(value) : value.toPrecision(4);
}

function configText(config: Readonly<Record<string, unknown>>): string {
  return Object.entries(config)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? fmt(v) : String(v)}`)
    .join(' ');
}

/** Progress output: one plain line per finished trial, or a live status line on a terminal. */
function progress(io: TuneIo, spec: StudySpec): (event: TuneEvent) => void {
  const { metric } = spec.objective;
  let best: number | null = null;
  return (event) => {
    if (event.type === 'best') best = event.best.value;
    if (event.type !== 'trial-end') return;
    const s = event.summary;
    const done = s.completed + s.pruned + s.failed;
    const line =
      `trial ${event.trialId} ${event.state}` +
      (event.state === 'failed' ? ` (${event.error})` : ` ${metric}=${fmt(event.best)}`) +
      ` | ${done}/${spec.trials} done, ${s.pruned} pruned, ${s.failed} failed, best ${metric}=${fmt(best)}`;
    io.stderr(io.tty === true ? `\r\x1b[K${line}` : `${line}\n`);
  };
}

function summaryText(result: TuneResult, study: string, storage: string): string {
  const s = result.summary;
  const { metric } = result.spec.objective;
  const lines = [
    `study ${study} (${storage})${result.aborted ? ': stopped before the end' : ''}`,
    `trials: ${s.trials} run, ${s.completed} completed, ${s.pruned} pruned, ${s.failed} failed`,
    `wall time: ${(result.wallMs / 1000).toFixed(1)} s`,
  ];
  if (result.best !== null) {
    const best = result.best;
    lines.push(`best ${metric}: ${fmt(best.value)} (trial ${best.trialId})`);
    // The report that reached it, with the other metrics reported alongside (accuracy...).
    const report = result.trials[best.trialId]?.reports.find((r) => r[metric] === best.value);
    if (report !== undefined) {
      lines.push(`best report: ${configText(report as Readonly<Record<string, unknown>>)}`);
    }
    lines.push(`best config: ${configText(best.config)}`);
  } else lines.push(`best ${metric}: none (no trial reported)`);
  return `${lines.join('\n')}\n`;
}

interface Prepared {
  readonly study: Study;
  readonly name: string;
  readonly trainable: TrainableRef;
}

/** Refuse study-shaping options given with --resume (the stored spec decides them). */
function refuseStudyOptions(opts: TuneOpts): void {
  const given = STUDY_OPTIONS.filter(([key]) => {
    const value = opts[key];
    return key === 'param'
      ? value !== undefined && Object.keys(value as object).length > 0
      : value !== undefined;
  }).map(([, flag]) => flag);
  if (given.length > 0) {
    throw new BadInput(
      `--resume continues study ${JSON.stringify(opts.resume)} as it was stored: ${given.join(', ')} ` +
        `cannot change it (drop ${given.length === 1 ? 'that option' : 'those options'}, or start a new study)`,
    );
  }
}

/**
 * Check that the report can be written where --report says: its folder exists and is writable,
 * and it is not a folder itself. Nothing is created.
 */
async function checkReportPath(report: string | undefined): Promise<void> {
  if (report === undefined) return;
  const path = resolvePath(report);
  const folder = dirname(path);
  const folderStat = await stat(folder).catch(() => null);
  if (folderStat === null || !folderStat.isDirectory()) {
    throw new BadInput(`cannot write the report ${report}: the folder ${folder} does not exist`);
  }
  const fileStat = await stat(path).catch(() => null);
  if (fileStat?.isDirectory() === true) {
    throw new BadInput(`cannot write the report ${report}: it is a folder`);
  }
  try {
    await access(fileStat === null ? folder : path, constants.W_OK);
  } catch {
    throw new BadInput(
      `cannot write the report ${report}: ${fileStat === null ? `the folder ${folder}` : 'the file'} is not writable`,
    );
  }
}

/**
 * Check every option, then open the storage and create (or load, with --resume) the study:
 * nothing is stored until everything that can be checked has been. Every throw here is bad input.
 */
async function prepare(
  opts: TuneOpts,
  storagePath: string,
  limits: { readonly trialTimeoutMs?: number; readonly memoryLimitMb: number },
  opened: (storage: StudyStorage) => void,
): Promise<Prepared> {
  if (opts.resume !== undefined) {
    const name = opts.resume;
    refuseStudyOptions(opts);
    await checkReportPath(opts.report);
    checkExecutorOptions({ threads: 1, ...limits });
    const storage = StudyStorage.open(storagePath);
    opened(storage);
    const stored = storage.loadStudy(name);
    const trainable = stored.spec.trainable;
    if (trainable === undefined) {
      throw new BadInput(`study ${name} has no stored trainable: resume it from code (runStudy)`);
    }
    checkExecutorOptions({ threads: stored.spec.concurrency, ...limits });
    await checkTrainable(trainable);
    return {
      study: Study.resume(stored.spec, stored.trials, { store: storage, name }, stored.reportOrder),
      name,
      trainable,
    };
  }
  await checkReportPath(opts.report);
  const options = await studyFromOptions(opts);
  checkStudyOptions(options);
  checkExecutorOptions({ threads: options.concurrency, ...limits });
  const name = opts.study ?? `study-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const storage = StudyStorage.open(storagePath);
  opened(storage);
  const study = Study.create(options, { store: storage, name });
  storage.createStudy(name, study.spec);
  return { study, name, trainable: options.trainable };
}

async function writeReport(path: string, name: string, result: TuneResult): Promise<void> {
  await writeFile(
    path,
    renderStudyReport({
      name,
      objective: result.spec.objective,
      sampler: result.spec.sampler.name,
      scheduler: result.spec.scheduler.name,
      space: result.spec.space,
      trials: result.trials,
      wallMs: result.wallMs,
      startedAt: result.startedAt,
    }),
  );
}

/** Run `mabeam tune` with parsed options; resolves to the exit status. */
export async function tuneCommand(opts: TuneOpts, io: TuneIo): Promise<number> {
  const storagePath = resolvePath(opts.storage ?? 'mabeam-tune.db');
  const limits = {
    ...(opts.trialTimeout === undefined ? {} : { trialTimeoutMs: opts.trialTimeout }),
    memoryLimitMb: opts.memoryLimit ?? DEFAULT_MEMORY_LIMIT_MB,
  };
  let storage: StudyStorage | null = null;
  try {
    let prepared: Prepared;
    try {
      prepared = await prepare(opts, storagePath, limits, (opened) => {
        storage = opened;
      });
    } catch (error) {
      if (error instanceof BadInput || error instanceof MabeamError) {
        io.stderr(`mabeam tune: ${error.message}\n`);
        return BAD_INPUT;
      }
      throw error;
    }
    const { study, name, trainable } = prepared;
    io.stderr(
      `mabeam tune: study ${name}: ${study.spec.trials} trials, ${study.spec.concurrency} at a time, ` +
        `sampler ${study.spec.sampler.name}, scheduler ${study.spec.scheduler.name}, ` +
        `${study.spec.objective.mode} ${study.spec.objective.metric}\n`,
    );
    const result = await runStudy(study, { trainable, ...limits, onEvent: progress(io, study.spec) });
    if (io.tty === true) io.stderr('\n');
    // A report that cannot be written (its folder removed while the study ran...) does not lose
    // the results: they are printed all the same, and the exit status says something failed.
    let reportError: string | null = null;
    if (opts.report !== undefined) {
      try {
        await writeReport(opts.report, name, result);
        io.stderr(`mabeam tune: report written to ${opts.report}\n`);
      } catch (error) {
        reportError = error instanceof Error ? error.message : String(error);
      }
    }
    if (opts.json === true) {
      const { best, summary, wallMs, trials } = result;
      io.stdout(`${JSON.stringify({ study: name, storage: storagePath, best, summary, wallMs, trials })}\n`);
    } else io.stdout(summaryText(result, name, storagePath));
    if (reportError !== null) {
      io.stderr(`mabeam tune: cannot write the report ${opts.report}: ${reportError}\n`);
      return FAILED;
    }
    return result.summary.completed + result.summary.pruned > 0 ? OK : FAILED;
  } finally {
    (storage as StudyStorage | null)?.close();
  }
}
