/**
 * variable_sync_1000: 1,000 subscriber agents each subscribed to 10 variables. One round is one
 * `updateBatch` of 10 changes (every value changes every round), delivered as ONE message per
 * agent, and ends when all 1,000 have acknowledged. 50 untimed warm-up rounds, then 500 timed.
 */
import { type ChangeRequest, VariableSubscriber, Variables } from '../../src/agents/variables.js';
import { Runtime } from '../../src/kernel/index.js';
import { type Fields, now, percentiles, type Workload } from '../harness.js';

const AGENTS = 1_000;
const VARIABLES = 10;
const WARMUP = 50;
const ROUNDS = 500;

async function run(): Promise<Fields> {
  const rt = new Runtime();
  try {
    const vars = Variables.start(rt);
    const names: string[] = [];
    for (let v = 0; v < VARIABLES; v++) {
      const name = `v${v}`;
      names.push(name);
      await vars.register({ name, kind: { type: 'int', min: 0, max: 1_000_000 }, default: 0 });
    }
    for (let i = 0; i < AGENTS; i++) vars.subscribe(names, rt.spawnSync(VariableSubscriber, undefined));
    const round = async (i: number): Promise<void> => {
      const changes: ChangeRequest[] = names.map((name, v) => ({
        name,
        value: i * VARIABLES + v + 1,
        modifier: 'bench',
      }));
      const r = await vars.updateBatch(changes);
      if (r.acked !== AGENTS) throw new Error(`variable_sync_1000: ${r.acked} of ${AGENTS} acked`);
    };
    for (let i = 0; i < WARMUP; i++) await round(i);
    const samples = new Float64Array(ROUNDS);
    for (let i = 0; i < ROUNDS; i++) {
      const start = now();
      await round(WARMUP + i);
      samples[i] = Number(now() - start) / 1e3;
    }
    const p = percentiles(samples);
    return { p50_us: p.p50, p99_us: p.p99, n: p.n };
  } finally {
    await rt.shutdown();
  }
}

export const variableSync1000: Workload = {
  name: 'variable_sync_1000',
  description: 'one batch of 10 changes to 1,000 subscribed agents, wait for all acks; 500 rounds',
  needsGc: false,
  run,
};
