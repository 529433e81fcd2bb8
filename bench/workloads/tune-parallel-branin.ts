/**
 * tune_parallel_branin: 200 TPE trials of Branin whose objective waits 5 ms, 2 at a time, through
 * the whole `tune()` machinery (study agent, trial agents, worker threads). Reports the wall time
 * and the regret reached (best value minus Branin's minimum 0.397887). Optuna with n_jobs=2 takes
 * 1.27 s here; the waiting alone is 0.5 s.
 */
import { tune } from '../../src/tune/index.js';
import type { Fields, Workload } from '../harness.js';
import { BRANIN_MIN } from './tune-quality-branin.js';

const TRIALS = 200;
const TRAINABLE = new URL('./tune-branin-trainable.js', import.meta.url).href;

async function run(): Promise<Fields> {
  const result = await tune({
    space: {
      x1: { type: 'float', min: -5, max: 10 },
      x2: { type: 'float', min: 0, max: 15 },
    },
    objective: { metric: 'value', mode: 'min' },
    trainable: { module: TRAINABLE, params: { waitMs: 5 } },
    sampler: { name: 'tpe' },
    trials: TRIALS,
    concurrency: 2,
    seed: 0,
  });
  if (result.summary.completed !== TRIALS || result.best === null) {
    throw new Error(`tune_parallel_branin: ${result.summary.completed} of ${TRIALS} trials completed`);
  }
  return { wall_s: result.wallMs / 1000, regret: result.best.value - BRANIN_MIN };
}

export const tuneParallelBranin: Workload = {
  name: 'tune_parallel_branin',
  description: '200 TPE trials of Branin waiting 5 ms each, 2 at a time, through tune()',
  needsGc: false,
  run,
};
