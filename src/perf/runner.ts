/**
 * Run benchmark workloads through the bench suite's own command line and read its results.
 *
 * The workloads live in bench/ (outside the package: src/ may not import it), and the suite already
 * runs each one in a fresh node process and prints one JSON line per workload
 * (shared/BENCH_SPEC.md). So the runner does not re-implement it: it starts
 * `node --expose-gc <script> --json --only a,b [--runs n]`, forwards the suite's progress (stderr),
 * and parses the JSON lines. A workload that printed no line failed (the suite exits 1 and names
 * it on stderr); a command line the suite rejects (exit 2: an unknown workload) is an error. A
 * workload may print several lines (one per sampler, say), told apart by their string fields, its
 * labels: each is a result of its own. runBenchRuns runs the suite several times (one invocation
 * per run, so each run is a fresh process) and medianResults combines the runs line by line.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, MabeamError } from '../kernel/index.js';
import { labelKey } from './slo.js';

/** Error codes of the bench runner (unique across the project, never reused). */
export const BenchRunnerErrorCodes = {
  /** The bench script was not found (not built, or a wrong --bench-script). */
  SCRIPT_NOT_FOUND: 'E_BENCH_RUNNER_SCRIPT_NOT_FOUND',
  /** The bench script rejected its command line (exit status 2), e.g. an unknown workload. */
  REJECTED: 'E_BENCH_RUNNER_REJECTED',
  /** The bench script could not be started. */
  SPAWN: 'E_BENCH_RUNNER_SPAWN',
} as const;

export class BenchScriptNotFoundError extends MabeamError {
  readonly tried: readonly string[];
  constructor(tried: readonly string[]) {
    super(
      BenchRunnerErrorCodes.SCRIPT_NOT_FOUND,
      `bench script not found (tried ${tried.join(', ')}); build it with \`npx tsc -p tsconfig.run.json\` ` +
        'or name it with --bench-script',
    );
    this.tried = tried;
  }
}

export class BenchRejectedError extends MabeamError {
  readonly script: string;
  readonly stderr: string;
  constructor(script: string, stderr: string) {
    // The first line says why (the suite's usage text follows); the whole stderr is in `stderr`.
    const why = stderr.split('\n').find((l) => l.trim() !== '') ?? '(no message)';
    super(BenchRunnerErrorCodes.REJECTED, `bench script ${script} rejected its command line: ${why.trim()}`);
    this.script = script;
    this.stderr = stderr;
  }
}

export class BenchSpawnError extends MabeamError {
  constructor(script: string, cause: unknown) {
    super(
      BenchRunnerErrorCodes.SPAWN,
      `cannot start bench script ${script}: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
}

/**
 * One line of a workload's outcome: its fields (the median of each over the runs), or why there are
 * none. Most workloads report one line; one like tune_overhead reports several (one per sampler),
 * each a WorkloadResult with the same `workload` and its own `labels`.
 */
export interface WorkloadResult {
  workload: string;
  /**
   * The line's labels (the string fields of its JSON line, e.g. `{ sampler: 'tpe' }`); absent for
   * a line without any, and for a workload that failed.
   */
  labels?: Readonly<Record<string, string>>;
  runs: number;
  fields: Record<string, number> | null;
  error: string | null;
}

export interface RunBenchOptions {
  /** The bench suite's compiled main (build/bench/main.js), or any script with its command line. */
  script: string;
  /** Workloads to run, in order; null runs the suite's whole list. */
  workloads: readonly string[] | null;
  /** Runs per workload; the suite reports the median of each field (default 1). */
  runs?: number;
  /** Node flags for the suite (default `--expose-gc`, which its memory workloads need). */
  nodeArgs?: readonly string[];
  /** Receives the suite's stderr (its progress and failures) as it arrives. Default: discarded. */
  onStderr?: (text: string) => void;
  /** Receives each result as soon as its JSON line arrives. */
  onResult?: (result: WorkloadResult) => void;
  /** Kill the suite (its whole process group) after this long; unreported workloads then fail. */
  timeoutMs?: number;
}

/**
 * Parse one JSON line of the suite (`{"workload":"x","p99_us":12}`): the workload, its labels (the
 * string fields: `{"workload":"tune_overhead","sampler":"tpe",...}` has `{ sampler: 'tpe' }`) and
 * its numeric fields; null for a line that is not a result (blank, not JSON, no workload name).
 * Other values (booleans, objects, null) are ignored.
 */
export function parseResultLine(
  line: string,
): { workload: string; labels: Record<string, string>; fields: Record<string, number> } | null {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{')) return null;
  let obj: unknown;
  try {
    obj = JSON.parse(trimmed);
  } catch {
    return null;
  }
  if (typeof obj !== 'object' || obj === null) return null;
  const { workload, ...rest } = obj as Record<string, unknown>;
  if (typeof workload !== 'string') return null;
  const fields: Record<string, number> = {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(rest)) {
    if (typeof v === 'number') fields[k] = v;
    else if (typeof v === 'string') labels[k] = v;
  }
  return { workload, labels, fields };
}

/** A result line as a WorkloadResult: `labels` only when it has any. */
function resultOf(
  workload: string,
  labels: Readonly<Record<string, string>>,
  runs: number,
  fields: Record<string, number>,
): WorkloadResult {
  return Object.keys(labels).length === 0
    ? { workload, runs, fields, error: null }
    : { workload, labels, runs, fields, error: null };
}

/**
 * Run workloads through the suite and return, per workload asked for (in that order; with
 * `workloads: null`, in the order the suite printed them), its lines: one result per line it
 * reported (several for a workload like tune_overhead, in the order printed; a line printed again
 * with the same labels replaces the earlier one), or one failed result. Throws
 * BenchScriptNotFoundError when the script does not exist, BenchRejectedError when the suite
 * rejects the command line and BenchSpawnError when it cannot start; a workload that fails or
 * times out is a result with `fields: null`.
 */
export function runBenchScript(options: RunBenchOptions): Promise<WorkloadResult[]> {
  const runs = options.runs ?? 1;
  if (!Number.isSafeInteger(runs) || runs < 1)
    throw new InvalidArgumentError('runs', 'must be a whole number >= 1', runs);
  if (options.workloads !== null && options.workloads.length === 0) return Promise.resolve([]);
  if (!existsSync(options.script)) throw new BenchScriptNotFoundError([options.script]);
  const args = [...(options.nodeArgs ?? ['--expose-gc']), options.script, '--json'];
  if (options.workloads !== null) args.push('--only', options.workloads.join(','));
  if (runs > 1) args.push('--runs', String(runs));

  return new Promise((resolve, reject) => {
    // Its own process group, so a timeout can stop the suite and the workload process it started.
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    // Per workload, its lines by label key, in the order first printed.
    const reported = new Map<string, Map<string, WorkloadResult>>();
    let stdoutBuf = '';
    let stderrAll = '';
    let timedOut = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            try {
              if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
            } catch {
              child.kill('SIGKILL');
            }
          }, options.timeoutMs);
    const takeLine = (line: string) => {
      const parsed = parseResultLine(line);
      if (parsed === null) return;
      const result = resultOf(parsed.workload, parsed.labels, runs, parsed.fields);
      let lines = reported.get(parsed.workload);
      if (lines === undefined) {
        lines = new Map();
        reported.set(parsed.workload, lines);
      }
      lines.set(labelKey(parsed.labels), result);
      options.onResult?.(result);
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdoutBuf += chunk;
      let nl = stdoutBuf.indexOf('\n');
      while (nl >= 0) {
        takeLine(stdoutBuf.slice(0, nl));
        stdoutBuf = stdoutBuf.slice(nl + 1);
        nl = stdoutBuf.indexOf('\n');
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderrAll += chunk;
      options.onStderr?.(chunk);
    });
    child.on('error', (error) => {
      if (timer !== undefined) clearTimeout(timer);
      reject(new BenchSpawnError(options.script, error));
    });
    child.on('close', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer);
      takeLine(stdoutBuf);
      if (code === 2 && !timedOut) {
        reject(new BenchRejectedError(options.script, stderrAll));
        return;
      }
      const why = timedOut
        ? `timed out after ${options.timeoutMs} ms`
        : code === 0
          ? 'the bench script reported no result for it'
          : `failed (bench script exited with ${signal === null ? `code ${code}` : `signal ${signal}`}; see its output above)`;
      const names = options.workloads ?? [...reported.keys()];
      resolve(
        names.flatMap((workload) => {
          const lines = reported.get(workload);
          return lines === undefined ? [{ workload, runs, fields: null, error: why }] : [...lines.values()];
        }),
      );
    });
  });
}

/**
 * Where the compiled bench suite is, relative to a module of this package: build/bench/main.js
 * next to build/src/ (tsconfig.run.json's layout), or the repository's build/ seen from src/ or
 * dist/. Returns the first that exists; throws BenchScriptNotFoundError otherwise.
 */
export function findBenchScript(fromModuleUrl: string | URL = import.meta.url): string {
  const tried = ['../../bench/main.js', '../../build/bench/main.js'].map((rel) =>
    fileURLToPath(new URL(rel, fromModuleUrl)),
  );
  const found = tried.find((p) => existsSync(p));
  if (found === undefined) throw new BenchScriptNotFoundError(tried);
  return found;
}

/** Per run, every line of every workload (what runBenchRuns returns). */
export interface BenchRuns {
  /** Each run's results, as runBenchScript returns them (one run: one invocation of the suite). */
  readonly runs: readonly (readonly WorkloadResult[])[];
  /** The lines combined over the runs (medianResults). */
  readonly medians: WorkloadResult[];
}

/**
 * Run the suite `runs` times, one invocation each (so every run of every workload is a fresh node
 * process, which is what lets a baseline comparison see the noise between processes), and return
 * each run's results and their medians. Options as runBenchScript's (`runs` is the number of
 * invocations; `timeoutMs` applies to each); `onRun` is told when each run starts.
 */
export async function runBenchRuns(
  options: RunBenchOptions & { onRun?: (run: number, of: number) => void },
): Promise<BenchRuns> {
  const count = options.runs ?? 1;
  if (!Number.isSafeInteger(count) || count < 1)
    throw new InvalidArgumentError('runs', 'must be a whole number >= 1', count);
  const runs: WorkloadResult[][] = [];
  for (let i = 1; i <= count; i++) {
    options.onRun?.(i, count);
    runs.push(await runBenchScript({ ...options, runs: 1 }));
  }
  return { runs, medians: medianResults(runs) };
}

/**
 * Combine several runs' results line by line: a line is its workload and labels; each of its
 * fields is the median over the runs that reported it, and `runs` counts those runs. A workload
 * that failed in any run fails (`fields: null`, the first run's error, naming the run), like a
 * workload of the suite whose `--runs` fails in one run. Lines in order of first appearance.
 */
export function medianResults(runs: readonly (readonly WorkloadResult[])[]): WorkloadResult[] {
  const failed = new Map<string, WorkloadResult>();
  const lines = new Map<string, { first: WorkloadResult; fields: Record<string, number>[] }>();
  const order: string[] = [];
  runs.forEach((run, i) => {
    for (const r of run) {
      if (r.fields === null) {
        if (!failed.has(r.workload)) {
          failed.set(r.workload, {
            workload: r.workload,
            runs: runs.length,
            fields: null,
            error: runs.length > 1 ? `run ${i + 1} of ${runs.length}: ${r.error ?? 'failed'}` : r.error,
          });
        }
        if (!order.includes(r.workload)) order.push(r.workload);
        continue;
      }
      const key = `${r.workload}\u0000${labelKey(r.labels ?? {})}`;
      const entry = lines.get(key);
      if (entry === undefined) lines.set(key, { first: r, fields: [r.fields] });
      else entry.fields.push(r.fields);
      if (!order.includes(r.workload)) order.push(r.workload);
    }
  });
  return order.flatMap((workload) => {
    const f = failed.get(workload);
    if (f !== undefined) return [f];
    return [...lines.entries()]
      .filter(([key]) => key.startsWith(`${workload}\u0000`))
      .map(([, { first, fields }]) => {
        const names = [...new Set(fields.flatMap((x) => Object.keys(x)))];
        const combined: Record<string, number> = {};
        for (const name of names) {
          combined[name] = median(fields.map((x) => x[name]).filter((v): v is number => v !== undefined));
        }
        return first.labels === undefined
          ? { workload, runs: fields.length, fields: combined, error: null }
          : { workload, labels: first.labels, runs: fields.length, fields: combined, error: null };
      });
  });
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
