/**
 * tune_overhead: what a sampler costs per trial. One float in [-10, 10], objective x * x, 1,000
 * trials run one at a time (ask, evaluate, tell), each timed whole with a monotonic clock.
 * Reports the mean over all trials and over the last 100 (TPE's cost would grow with the trials
 * behind it if its model were not bounded). A first, unmeasured study of the same size warms the
 * JIT up, as the other workloads do with their warm-up rounds.
 */

import { randomSampler, tpeSampler } from '../../src/tune/samplers/index.js';
import type { SamplerFactory, SearchSpace } from '../../src/tune/types.js';
import type { Workload } from '../harness.js';

const TRIALS = 1_000;
const LAST = 100;
const SPACE: SearchSpace = { x: { type: 'float', min: -10, max: 10 } };

function study(factory: SamplerFactory, seed: number, times: Float64Array | null): number {
  const sampler = factory(SPACE, seed);
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < TRIALS; i++) {
    const start = process.hrtime.bigint();
    const config = sampler.ask();
    if (config === null) throw new Error(`tune_overhead: ${sampler.name} ran dry after ${i} trials`);
    const x = config.x as number;
    const loss = x * x;
    sampler.tell(config, loss, 'completed');
    if (times !== null) times[i] = Number(process.hrtime.bigint() - start) / 1000;
    if (loss < best) best = loss;
  }
  return best;
}

/**
 * Microseconds per trial (ask + evaluate + tell) of a 1,000-trial study with the named sampler
 * at its defaults: the mean over all trials and over the last 100.
 */
export async function measureTuneOverhead(
  sampler: 'random' | 'tpe',
): Promise<{ us_per_trial: number; us_per_trial_last100: number }> {
  const factory = sampler === 'tpe' ? tpeSampler() : randomSampler();
  study(factory, 1, null);
  const times = new Float64Array(TRIALS);
  const best = study(factory, 0, times);
  // A sampler that proposed nothing near 0 is broken, whatever its speed.
  if (!(best < 1)) throw new Error(`tune_overhead: ${sampler} found no x*x below 1 (best ${best})`);
  let all = 0;
  let last = 0;
  for (let i = 0; i < TRIALS; i++) {
    all += times[i] as number;
    if (i >= TRIALS - LAST) last += times[i] as number;
  }
  return { us_per_trial: all / TRIALS, us_per_trial_last100: last / LAST };
}

export const tuneOverhead: Workload = {
  name: 'tune_overhead',
  description: 'x*x, 1,000 trials one at a time: us of optimizer overhead per trial (random, TPE)',
  needsGc: false,
  run: async () => [
    { sampler: 'random', ...(await measureTuneOverhead('random')) },
    { sampler: 'tpe', ...(await measureTuneOverhead('tpe')) },
  ],
};
