/**
 * The main job for now: a small supervised application.
 *
 *   root (one_for_one)
 *   ├── stats     a counter registered as 'stats'
 *   └── workers   a dynamic supervisor of squarer agents
 *
 * A squarer crashes on a negative number; its caller gets an ExitError at once (never a timeout),
 * the dynamic supervisor restarts it, and the job is retried on the new agent.
 *
 * Run: `npm start` (or `npx tsc -p tsconfig.run.json && node build/examples/supervised-tree.js`).
 */
import { pathToFileURL } from 'node:url';
import {
  type AnyRef,
  behaviour,
  DynamicSupervisor,
  ExitError,
  Runtime,
  reply,
  Supervisor,
} from '../src/index.js';

type StatsCall = 'get';
type StatsCast = { type: 'done' } | { type: 'failed' };
interface Stats {
  done: number;
  failed: number;
}

const StatsAgent = behaviour<void, Stats, StatsCall, Stats, StatsCast>({
  init: () => ({ done: 0, failed: 0 }),
  handleCall: (_msg, _from, stats) => reply({ ...stats }, stats),
  handleCast(msg, stats) {
    if (msg.type === 'done') stats.done++;
    else stats.failed++;
    return stats;
  },
});

const Squarer = behaviour<void, null, { n: number }, number>({
  init: () => null,
  handleCall({ n }, _from, state, ctx) {
    if (n < 0) throw new RangeError(`cannot square a negative job: ${n}`);
    ctx.cast('stats', { type: 'done' });
    return reply(n * n, state);
  },
});

export interface TreeSummary {
  results: number[];
  crashes: number;
  restarts: number;
  stats: Stats;
  agents: number;
}

export async function main(log: (line: string) => void = console.log): Promise<TreeSummary> {
  const runtime = new Runtime();
  let restarts = 0;
  const restarted: ((child: unknown) => void)[] = [];
  runtime.telemetry.attach('example-restarts', ['mabeam', 'supervisor', 'restart'], (_e, _m, meta) => {
    restarts++;
    log(`  supervisor restarted child ${String(meta.child)} after: ${String(meta.reason)}`);
    for (const resolve of restarted.splice(0)) resolve(meta);
  });

  const root = await Supervisor.start(runtime, {
    strategy: 'one_for_one',
    intensity: 5,
    periodMs: 10_000,
    children: [
      Supervisor.childSpec('stats', StatsAgent, undefined, { options: { name: 'stats' } }),
      DynamicSupervisor.childSpec('workers', { maxChildren: 4 }, { options: { name: 'workers' } }),
    ],
  });
  log('started root supervisor with children: stats, workers');

  const workers: AnyRef[] = [];
  for (let i = 0; i < 3; i++) {
    workers.push(
      await DynamicSupervisor.startChild(runtime, 'workers', {
        id: `squarer-${i}`,
        start: { behaviour: Squarer, args: undefined },
      }),
    );
  }
  log(`started ${workers.length} squarers under 'workers'`);

  const jobs = [3, 4, -1, 5, 6];
  const results: number[] = [];
  let crashes = 0;
  for (const [i, n] of jobs.entries()) {
    const w = i % workers.length;
    try {
      results.push(await runtime.call(workers[w] as AnyRef, { n }));
    } catch (error) {
      if (!(error instanceof ExitError)) throw error;
      crashes++;
      runtime.cast('stats', { type: 'failed' });
      log(`  job ${n} crashed ${workers[w]}: ${error.message}`);
    }
  }
  // The crashed squarer was replaced; find the new one among the dynamic supervisor's children.
  const children = await DynamicSupervisor.whichChildren(runtime, 'workers');
  log(`'workers' now has ${children.length} children: ${children.map((c) => String(c.ref)).join(', ')}`);
  for (const child of children) {
    if (child.ref !== undefined) results.push(await runtime.call(child.ref as AnyRef, { n: 7 }));
  }

  const stats = await runtime.call('stats', 'get');
  const agents = runtime.count;
  const tree = await Supervisor.whichChildren(runtime, root);
  log(`root children: ${tree.map((c) => `${c.id}=${c.status}`).join(', ')}`);
  log(`results: ${results.join(' ')}; crashes: ${crashes}; restarts: ${restarts}`);
  log(`stats: ${JSON.stringify(stats)}; live agents: ${agents}`);
  await runtime.shutdown();
  log(`after shutdown: ${runtime.count} agents`);
  return { results, crashes, restarts, stats: stats as Stats, agents };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
