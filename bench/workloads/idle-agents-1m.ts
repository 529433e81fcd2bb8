/**
 * idle_agents_1m: start 1,000,000 idle agents with spawnSync and keep them alive; report the live
 * heap per agent (after forced GC) and the seconds it took to start them all; then shut down,
 * reporting how long that took as the extra field `shutdown_seconds`.
 *
 * No refs are kept: the runtime itself must keep idle agents alive, and holding a million refs
 * here would add their array to the figure.
 */
import { behaviour, Runtime } from '../../src/index.js';
import { type Fields, liveHeap, now, nsSince, type Workload } from '../harness.js';

const AGENTS = 1_000_000;
const WARMUP_AGENTS = 100_000;

const IdleAgent = behaviour<void, null, never, never, 'wake'>({
  init: () => null,
  handleCast: (_msg, state) => state,
});

/**
 * Start `n` idle agents in a fresh runtime, then shut it down. Returns the heap bytes per agent,
 * the seconds to start them all and (an extra field) the seconds `shutdown` took.
 */
async function measure(n: number): Promise<Fields> {
  const rt = new Runtime();
  let fields: Fields;
  try {
    const before = liveHeap();
    const start = now();
    for (let i = 0; i < n; i++) rt.spawnSync(IdleAgent, undefined);
    const seconds = nsSince(start) / 1e9;
    const bytes = liveHeap() - before;
    if (rt.count !== n) throw new Error(`idle_agents_1m: ${rt.count} agents alive after spawning ${n}`);
    fields = { bytes_per_agent: bytes / n, seconds };
  } catch (error) {
    await rt.shutdown();
    throw error;
  }
  const stopping = now();
  await rt.shutdown();
  fields.shutdown_seconds = nsSince(stopping) / 1e9;
  if (rt.count !== 0) throw new Error(`idle_agents_1m: ${rt.count} agents alive after shutdown`);
  return fields;
}

async function run(): Promise<Fields> {
  await measure(WARMUP_AGENTS);
  return measure(AGENTS);
}

export const idleAgents1m: Workload = {
  name: 'idle_agents_1m',
  description: 'start 1,000,000 idle agents and keep them alive',
  needsGc: true,
  run,
};
