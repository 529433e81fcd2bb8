/**
 * coordination_pair: two agents coordinating, the roadmap's "agent coordination" (p99 under 10 ms).
 * One line per way of coordinating, told apart by the label `via`:
 *
 * - `via: "call"`: a request/reply chain. The bench calls agent A, A calls agent B from inside its
 *   handler and replies with B's answer (n + 1, checked every round).
 * - `via: "barrier"`: a barrier of the two agents (the coordination layer's Barriers service). One
 *   round creates a barrier for both, tells each agent, each arrives from its own callback, and the
 *   round ends when the barrier trips (checked every round).
 *
 * The agents and services are the comprehensive suite's (src/perf/suite-comprehensive.ts,
 * `agent_coordination` and `agent_barrier`), each on its own runtime. Each round is timed on its
 * own (hrtime), after untimed warm-up rounds; fields p50_us, p99_us, mean_us, n, and ops_per_s
 * (rounds one after another: 1e6 / mean_us).
 */
import { Runtime } from '../../src/kernel/index.js';
import { fixtureSizes, startFixture } from '../../src/perf/suite-comprehensive.js';
import { type Fields, now, percentiles, type Workload } from '../harness.js';

const WAYS = [
  { via: 'call', operation: 'agent_coordination', warmup: 1_000, rounds: 10_000 },
  { via: 'barrier', operation: 'agent_barrier', warmup: 200, rounds: 2_000 },
] as const;

async function measure(way: (typeof WAYS)[number]): Promise<Fields> {
  const rt = new Runtime();
  try {
    const fixture = await startFixture(rt, way.operation, fixtureSizes());
    try {
      // Every round checks its own outcome (the right answer, the barrier tripped) and throws
      // otherwise, which fails the workload.
      for (let i = 0; i < way.warmup; i++) await fixture.run();
      const samples = new Float64Array(way.rounds);
      for (let i = 0; i < way.rounds; i++) {
        const start = now();
        await fixture.run();
        samples[i] = Number(now() - start) / 1e3;
      }
      const p = percentiles(samples);
      return { via: way.via, p50_us: p.p50, p99_us: p.p99, mean_us: p.mean, n: p.n, ops_per_s: 1e6 / p.mean };
    } finally {
      await fixture.stop();
    }
  } finally {
    await rt.shutdown();
  }
}

async function run(): Promise<Fields[]> {
  const lines: Fields[] = [];
  for (const way of WAYS) lines.push(await measure(way));
  return lines;
}

export const coordinationPair: Workload = {
  name: 'coordination_pair',
  description: 'two agents: a call chain (bench -> A -> B -> A) and a 2-agent barrier; one line each (via)',
  needsGc: false,
  run,
};
