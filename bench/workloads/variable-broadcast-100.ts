/**
 * variable_broadcast_100: 100 subscriber agents each keep a local copy of `learning_rate`. One
 * round sets it (alternating 0.01 and 0.02, so every round is a real change) through the
 * variables service and waits until all 100 have acknowledged: the owner casts one message to
 * each agent, the agents cast their acks back, and the update resolves when the owner has counted
 * 100. 100 untimed warm-up rounds, then 2,000 timed rounds; each round is timed on its own.
 */
import { VariableSubscriber, Variables } from '../../src/agents/variables.js';
import { Runtime } from '../../src/kernel/index.js';
import { type Fields, now, percentiles, type Workload } from '../harness.js';

const AGENTS = 100;
const WARMUP = 100;
const ROUNDS = 2_000;
const NAME = 'learning_rate';

async function run(): Promise<Fields> {
  const rt = new Runtime();
  try {
    const vars = Variables.start(rt);
    await vars.register({ name: NAME, kind: { type: 'float', min: 1e-6, max: 1, log: true }, default: 0.1 });
    for (let i = 0; i < AGENTS; i++) vars.subscribe(NAME, rt.spawnSync(VariableSubscriber, undefined));
    const round = async (i: number): Promise<void> => {
      const r = await vars.update(NAME, (i & 1) === 0 ? 0.01 : 0.02, 'bench');
      // Checked every round: a round that lost an ack would measure nothing.
      if (r.acked !== AGENTS) throw new Error(`variable_broadcast_100: ${r.acked} of ${AGENTS} acked`);
    };
    for (let i = 0; i < WARMUP; i++) await round(i);
    const samples = new Float64Array(ROUNDS);
    for (let i = 0; i < ROUNDS; i++) {
      const start = now();
      await round(i);
      samples[i] = Number(now() - start) / 1e3;
    }
    const p = percentiles(samples);
    return { p50_us: p.p50, p99_us: p.p99, mean_us: p.mean, n: p.n };
  } finally {
    await rt.shutdown();
  }
}

export const variableBroadcast100: Workload = {
  name: 'variable_broadcast_100',
  description: 'set learning_rate on 100 subscribed agents, wait for all 100 acks; 2,000 rounds',
  needsGc: false,
  run,
};
