/**
 * spawn: start 100,000 agents with trivial state, each ready to receive; report the time per
 * spawn and the live heap each agent adds (after forced GC); then stop them all.
 *
 * The main figure uses `spawnSync` (an agent with a synchronous init is fully started when it
 * returns, like Erlang's spawn). `ns_per_spawn_async` adds the awaited `spawn`, which pays for a
 * promise and a microtask turn per agent.
 */
import { type AnyRef, behaviour, Runtime } from '../../src/kernel/index.js';
import { type Fields, liveHeap, now, nsSince, type Workload } from '../harness.js';

const AGENTS = 100_000;
const WARMUP_AGENTS = 10_000;

const Trivial = behaviour<void, number, never, never, 'poke'>({
  init: () => 0,
  handleCast: (_msg, state) => state,
});

/** Kill every agent in `refs` and check that none is left. */
function killAll(rt: Runtime, refs: readonly (AnyRef | undefined)[]): void {
  for (const ref of refs) if (ref !== undefined) rt.kill(ref);
  if (rt.count !== 0) throw new Error(`spawn: ${rt.count} agents still alive after killing all`);
}

/** Spawn `n` agents with spawnSync; returns ns per spawn and heap bytes per agent. */
async function measureSync(n: number): Promise<{ ns: number; bytes: number }> {
  const rt = new Runtime();
  // Allocated before the baseline so that the heap delta holds only what the runtime keeps.
  const refs = new Array<AnyRef | undefined>(n).fill(undefined);
  try {
    const before = liveHeap();
    const start = now();
    for (let i = 0; i < n; i++) refs[i] = rt.spawnSync(Trivial, undefined);
    const ns = nsSince(start);
    const bytes = liveHeap() - before;
    if (rt.count !== n) throw new Error(`spawn: ${rt.count} agents alive after spawning ${n}`);
    killAll(rt, refs);
    return { ns: ns / n, bytes: bytes / n };
  } finally {
    await rt.shutdown();
  }
}

/** Spawn `n` agents one after another with the awaited `spawn`; returns ns per spawn. */
async function measureAsync(n: number): Promise<number> {
  const rt = new Runtime();
  const refs = new Array<AnyRef | undefined>(n).fill(undefined);
  try {
    const start = now();
    for (let i = 0; i < n; i++) refs[i] = await rt.spawn(Trivial, undefined);
    const ns = nsSince(start);
    if (rt.count !== n) throw new Error(`spawn: ${rt.count} agents alive after spawning ${n}`);
    killAll(rt, refs);
    return ns / n;
  } finally {
    await rt.shutdown();
  }
}

async function run(): Promise<Fields> {
  await measureSync(WARMUP_AGENTS);
  await measureAsync(WARMUP_AGENTS);
  const sync = await measureSync(AGENTS);
  const asyncNs = await measureAsync(AGENTS);
  return { ns_per_spawn: sync.ns, bytes_per_agent: sync.bytes, ns_per_spawn_async: asyncNs };
}

export const spawn: Workload = {
  name: 'spawn',
  description: 'start 100,000 trivial agents (spawnSync; awaited spawn as an extra figure)',
  needsGc: true,
  run,
};
