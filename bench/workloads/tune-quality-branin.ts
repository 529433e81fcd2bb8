/**
 * tune_quality_branin: how well TPE at its default settings optimizes the Branin function
 * (x1 in [-5, 10], x2 in [0, 15]; global minimum 0.397887, reached at three points). For seeds 0
 * to 9, one sequential study of 200 trials each; reports the median over the seeds of the best
 * regret (best value found - 0.397887) after 25, 50, 100 and 200 trials. Deterministic: the
 * samplers are seeded, so the figures change only when the sampler does.
 */
import { TpeSampler } from '../../src/tune/samplers/index.js';
import type { SearchSpace } from '../../src/tune/types.js';
import type { Workload } from '../harness.js';
import { braninValue } from './tune-branin-trainable.js';

/** Branin's global minimum. */
export const BRANIN_MIN = 0.397887;

/** The Branin (Branin-Hoo) function: a(x2 - b x1^2 + c x1 - r)^2 + s(1 - t) cos(x1) + s. */
export const branin = braninValue;

const SPACE: SearchSpace = {
  x1: { type: 'float', min: -5, max: 10 },
  x2: { type: 'float', min: 0, max: 15 },
};
const SEEDS = 10;
const CHECKPOINTS = [25, 50, 100, 200] as const;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Median best regret of default TPE on Branin over seeds 0..9, after 25, 50, 100 and 200 trials. */
export function measureBraninQuality(): {
  regret_25: number;
  regret_50: number;
  regret_100: number;
  regret_200: number;
} {
  const regrets: number[][] = CHECKPOINTS.map(() => []);
  const last = CHECKPOINTS[CHECKPOINTS.length - 1] as number;
  for (let seed = 0; seed < SEEDS; seed++) {
    const sampler = new TpeSampler(SPACE, seed);
    let best = Number.POSITIVE_INFINITY;
    for (let trial = 1; trial <= last; trial++) {
      const config = sampler.ask();
      const value = branin(config.x1 as number, config.x2 as number);
      if (value < best) best = value;
      sampler.tell(config, value, 'completed');
      const at = CHECKPOINTS.indexOf(trial as (typeof CHECKPOINTS)[number]);
      if (at >= 0) (regrets[at] as number[]).push(best - BRANIN_MIN);
    }
  }
  const [r25, r50, r100, r200] = regrets.map(median) as [number, number, number, number];
  return { regret_25: r25, regret_50: r50, regret_100: r100, regret_200: r200 };
}

export const tuneQualityBranin: Workload = {
  name: 'tune_quality_branin',
  description: 'TPE (defaults) on Branin, seeds 0-9: median best regret after 25, 50, 100, 200 trials',
  needsGc: false,
  run: async () => ({ sampler: 'tpe', ...measureBraninQuality() }),
};
