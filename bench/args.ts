/** Command-line options of the benchmark suite. */
import { parseArgs } from 'node:util';

export interface BenchOptions {
  /** One JSON object per line per workload on stdout, and nothing else. */
  json: boolean;
  /** Workload names to run, in the order given; null runs them all. */
  only: string[] | null;
  /** How many times each workload runs; each field reports the median. */
  runs: number;
  /** Run every workload in this process rather than one fresh node process each. */
  inProcess: boolean;
  help: boolean;
}

/** A command line the suite cannot run: main prints the message and exits with status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export const USAGE = `usage: node --expose-gc build/bench/main.js [--json] [--only a,b] [--runs N]
  --json      print one JSON object per line on stdout, one per workload (or per line of a
              workload that reports several, e.g. one per sampler); progress goes to stderr
  --only a,b  run only the named workloads (comma-separated)
  --runs N    run each workload N times and report the median of each field (default 1)
  --in-process  run every workload in this process (default: a fresh node process each)`;

/**
 * Parse `argv` (without node and the script). Throws UsageError for unknown flags, a bad
 * `--runs`, or an `--only` name that is not in `validNames`.
 */
export function parseBenchArgs(argv: readonly string[], validNames: readonly string[]): BenchOptions {
  let values: { json?: boolean; only?: string; runs?: string; help?: boolean; 'in-process'?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        json: { type: 'boolean' },
        only: { type: 'string' },
        runs: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        'in-process': { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  return {
    json: values.json === true,
    only: values.only === undefined ? null : parseOnly(values.only, validNames),
    runs: values.runs === undefined ? 1 : parseRuns(values.runs),
    inProcess: values['in-process'] === true,
    help: values.help === true,
  };
}

function parseOnly(list: string, validNames: readonly string[]): string[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new UsageError('--only needs at least one workload name');
  const unknown = names.filter((n) => !validNames.includes(n));
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown workload${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}\n` +
        `valid workloads: ${validNames.join(', ')}`,
    );
  }
  // A name given twice runs once: repeats are what --runs is for.
  return [...new Set(names)];
}

function parseRuns(text: string): number {
  const runs = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(runs) || runs < 1) {
    throw new UsageError(`--runs must be a whole number >= 1, got ${JSON.stringify(text)}`);
  }
  return runs;
}
