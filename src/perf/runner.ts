/**
 * Run benchmark workloads through the bench suite's own command line and read its results.
 *
 * The workloads live in bench/ (outside the package: src/ may not import it), and the suite already
 * runs each one in a fresh node process and prints one JSON line per workload
 * (shared/BENCH_SPEC.md). So the runner does not re-implement it: it starts
 * `node --expose-gc <script> --json --only a,b [--runs n]`, forwards the suite's progress (stderr),
 * and parses the JSON lines. A workload that printed no line failed (the suite exits 1 and names
 * it on stderr); a command line the suite rejects (exit 2: an unknown workload) is an error.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, MabeamError } from '../kernel/index.js';

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

/** One workload's outcome: its fields (the median of each over the runs), or why there are none. */
export interface WorkloadResult {
  workload: string;
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
 * Parse one JSON line of the suite (`{"workload":"x","p99_us":12}`): the workload and its numeric
 * fields, or null for a line that is not a result (blank, not JSON, no workload name).
 */
export function parseResultLine(line: string): { workload: string; fields: Record<string, number> } | null {
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
  for (const [k, v] of Object.entries(rest)) if (typeof v === 'number') fields[k] = v;
  return { workload, fields };
}

/**
 * Run workloads through the suite and return one result per workload asked for (in that order),
 * or, with `workloads: null`, per line the suite printed. Throws BenchScriptNotFoundError when the
 * script does not exist, BenchRejectedError when the suite rejects the command line and
 * BenchSpawnError when it cannot start; a workload that fails or times out is a result with
 * `fields: null`.
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
    const reported = new Map<string, WorkloadResult>();
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
      const result: WorkloadResult = { workload: parsed.workload, runs, fields: parsed.fields, error: null };
      reported.set(parsed.workload, result);
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
        names.map((workload) => reported.get(workload) ?? { workload, runs, fields: null, error: why }),
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
