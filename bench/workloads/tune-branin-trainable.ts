/**
 * The trainable of tune_parallel_branin: Branin at (x1, x2), after waiting `waitMs` (default 5 ms,
 * BENCH_SPEC.md) as a stand-in for a model's training time. Runs on the study's worker threads.
 */
import { setTimeout as wait } from 'node:timers/promises';

const A = 1;
const B = 5.1 / (4 * Math.PI ** 2);
const C = 5 / Math.PI;
const R = 6;
const S = 10;
const T = 1 / (8 * Math.PI);

/** Branin-Hoo (global minimum 0.397887 at three points). */
export function braninValue(x1: number, x2: number): number {
  return A * (x2 - B * x1 * x1 + C * x1 - R) ** 2 + S * (1 - T) * Math.cos(x1) + S;
}

export async function train(
  config: { x1: number; x2: number },
  ctx: { params: Readonly<Record<string, unknown>> },
): Promise<{ step: number; value: number }> {
  const waitMs = typeof ctx.params.waitMs === 'number' ? ctx.params.waitMs : 5;
  await wait(waitMs);
  return { step: 1, value: braninValue(config.x1, config.x2) };
}
