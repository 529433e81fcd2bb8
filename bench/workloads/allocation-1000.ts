/**
 * allocation_1000: 1,000 agents, each with its own needs of three resources (cpu, mem, gpu; fixed
 * per agent, drawn from a seeded generator, so that every resource is oversubscribed about 2.5
 * times). One round is one `Allocator.allocate` with the max-min policy: a session agent casts a
 * needs request to all 1,000, each answers from its own state, and the round is timed until the
 * result (max-min computed over the 1,000 answers) resolves. 20 untimed warm-up rounds, then 200
 * timed rounds.
 *
 * `p50_ms_compute` times the pure `computeAllocation` alone on the same 1,000 needs, to show how
 * much of a round is the gathering.
 */
import { Allocator, computeAllocation, type Needs, withNeeds } from '../../src/economics/allocation.js';
import { type AnyRef, behaviour, Runtime } from '../../src/kernel/index.js';
import { type Fields, now, percentiles, settle, type Workload } from '../harness.js';

const AGENTS = 1_000;
const WARMUP = 20;
const ROUNDS = 200;
const COMPUTE_ROUNDS = 200;

/** An agent whose needs are its state. */
export const BenchClaimant = withNeeds<Needs, Needs, never, never, never, never>(
  behaviour<Needs, Needs>({ init: (needs) => needs }),
  (_request, needs) => needs,
);

/** A small seeded generator (mulberry32), so every run asks for the same needs. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function needsOf(next: () => number): Needs {
  return { cpu: 1 + Math.floor(next() * 8), mem: 256 + Math.floor(next() * 4096), gpu: next() < 0.3 ? 1 : 0 };
}

async function run(): Promise<Fields> {
  const rt = new Runtime();
  try {
    const next = random(42);
    const needs: Needs[] = [];
    const agents: AnyRef[] = [];
    for (let i = 0; i < AGENTS; i++) {
      const n = needsOf(next);
      needs.push(n);
      agents.push(rt.spawnSync(BenchClaimant, n));
    }
    // About 2.5 times oversubscribed: water-filling has real work to do on every resource.
    const resources = { cpu: 1_800, mem: 865_000, gpu: 120 };
    const alloc = await Allocator.start(rt);
    const round = async (): Promise<void> => {
      const r = await alloc.allocate(agents, resources, { kind: 'max_min' }, { deadlineMs: 10_000 });
      if (r.allocations.length !== AGENTS) {
        throw new Error(`allocation_1000: ${r.allocations.length} of ${AGENTS} allocated`);
      }
    };
    for (let i = 0; i < WARMUP; i++) {
      await round();
      await settle();
    }
    const samples = new Float64Array(ROUNDS);
    for (let i = 0; i < ROUNDS; i++) {
      const start = now();
      await round();
      samples[i] = Number(now() - start) / 1e6;
      // Untimed: let the event loop turn, so each round starts with a fresh scheduler slice.
      await settle();
    }
    await alloc.stop();

    const claims = needs.map((n, i) => ({ agent: String(i), needs: n }));
    const compute = new Float64Array(COMPUTE_ROUNDS);
    for (let i = 0; i < COMPUTE_ROUNDS; i++) {
      const start = now();
      computeAllocation(claims, resources, { kind: 'max_min' });
      compute[i] = Number(now() - start) / 1e6;
    }
    const p = percentiles(samples);
    const c = percentiles(compute);
    return { p50_ms: p.p50, p99_ms: p.p99, mean_ms: p.mean, n: p.n, p50_ms_compute: c.p50 };
  } finally {
    await rt.shutdown();
  }
}

export const allocation1000: Workload = {
  name: 'allocation_1000',
  description: 'needs gathered from 1,000 agents by cast, max-min over 3 resources (200 rounds)',
  needsGc: false,
  run,
};
