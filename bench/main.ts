/**
 * The benchmark suite's command line (see USAGE in args.ts and shared/BENCH_SPEC.md).
 *
 * Each workload runs in a fresh node process by default: what one workload leaves in V8 (type
 * feedback, optimized code tuned to its behaviours) measurably changes the next one's figures
 * (pingpong_all_cores ran at about half speed after call, cast and spawn in one process), and
 * BEAM's figures we compare with were taken per workload too. `--in-process` runs them all in
 * this process instead.
 *
 * A workload may report several lines (tune_overhead: one per sampler), told apart by their string
 * labels; each prints as its own JSON line, `{"workload":"tune_overhead","sampler":"tpe",...}`.
 *
 * stdout carries only results (JSON lines with --json, else a table); progress and errors go to
 * stderr, so `npm run bench --silent -- --json | ...` gets clean JSON lines. Exit status: 0 when
 * every workload ran, 1 when one failed (the others still run), 2 for a bad command line.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseBenchArgs, USAGE, UsageError } from './args.js';
import { type Fields, forceGc, hasGc, linesOf, type Workload } from './harness.js';
import { jsonLine, medianLines, type Result, table } from './report.js';

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

/** Run one workload `runs` times and combine the runs. A thrown error fails only this workload. */
async function runWorkload(w: Workload, runs: number): Promise<Result> {
  const samples: Fields[][] = [];
  try {
    for (let i = 1; i <= runs; i++) {
      log(`bench: ${w.name}${runs > 1 ? ` (run ${i}/${runs})` : ''}...`);
      // Start from a clean heap so garbage left by the previous workload is not collected on
      // this one's clock.
      if (hasGc()) forceGc();
      samples.push(linesOf(w.name, await w.run()));
    }
    return { workload: w.name, runs, lines: medianLines(samples), error: null };
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    log(`bench: ${w.name} FAILED: ${message}`);
    return { workload: w.name, runs, lines: null, error: error instanceof Error ? error.message : message };
  }
}

/** Run one workload in a child node process (same node flags) and read its JSON line(s). */
function runIsolated(w: Workload, runs: number): Promise<Result> {
  const args = [
    ...process.execArgv,
    fileURLToPath(import.meta.url),
    '--in-process',
    '--json',
    '--only',
    w.name,
  ];
  if (runs > 1) args.push('--runs', String(runs));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, [CHILD_ENV]: w.name },
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
    });
    child.on('close', (code) => {
      const lines = out.split('\n').filter((l) => l.startsWith('{'));
      if (code !== 0 || lines.length === 0) {
        resolve({ workload: w.name, runs, lines: null, error: `child process exited with code ${code}` });
        return;
      }
      resolve({
        workload: w.name,
        runs,
        lines: lines.map((line) => {
          const { workload: _name, ...fields } = JSON.parse(line) as Fields & { workload: string };
          return fields as Fields;
        }),
        error: null,
      });
    });
  });
}

/**
 * Set in a workload's child process to its name: the child loads that workload's module alone
 * (`workloads/<name with dashes>.ts`), not the whole suite, so no other workload's code sits in
 * its heap while it measures (loading every module made spawn about 1.5x slower).
 */
const CHILD_ENV = 'MABEAM_BENCH_WORKLOAD';

async function loadOne(name: string): Promise<Workload> {
  const mod = (await import(`./workloads/${name.replaceAll('_', '-')}.js`)) as Record<string, unknown>;
  const w = Object.values(mod).find((v) => (v as Workload | null)?.name === name) as Workload | undefined;
  if (w === undefined) throw new Error(`bench: no workload named ${name} in its module`);
  return w;
}

async function main(argv: readonly string[]): Promise<number> {
  const only = process.env[CHILD_ENV];
  const workloads: readonly Workload[] =
    only !== undefined ? [await loadOne(only)] : (await import('./workloads/index.js')).workloads;
  const names = workloads.map((w) => w.name);
  let opts: ReturnType<typeof parseBenchArgs>;
  try {
    opts = parseBenchArgs(argv, names);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    log(`bench: ${error.message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    const list = workloads.map((w) => `  ${w.name.padEnd(20)} ${w.description}`).join('\n');
    process.stdout.write(`${USAGE}\nworkloads:\n${list}\n`);
    return 0;
  }
  const selected =
    opts.only === null ? workloads : opts.only.map((n) => workloads.find((w) => w.name === n) as Workload);
  const needGc = selected.filter((w) => w.needsGc).map((w) => w.name);
  if (needGc.length > 0 && !hasGc()) {
    const verb = needGc.length > 1 ? 'measure the heap and need' : 'measures the heap and needs';
    log(`bench: ${needGc.join(', ')} ${verb} forced GC: start node with --expose-gc (npm run bench does)`);
    return 2;
  }
  const results: Result[] = [];
  for (const w of selected) {
    const result = opts.inProcess ? await runWorkload(w, opts.runs) : await runIsolated(w, opts.runs);
    results.push(result);
    // JSON lines go out as soon as each workload ends, so a later crash loses nothing.
    if (opts.json && result.lines !== null) {
      for (const line of result.lines) process.stdout.write(`${jsonLine(w.name, line)}\n`);
    }
  }
  if (!opts.json) process.stdout.write(`${table(results)}\n`);
  return results.every((r) => r.lines !== null) ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
