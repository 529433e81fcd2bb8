/**
 * The built-in trainables of `mabeam tune`: where their modules are (file URLs that work from the
 * TypeScript sources and from the compiled JavaScript alike) and the search space each is tuned
 * over by default. This module imports neither trainable: their libraries (ml-logistic-regression,
 * TensorFlow.js) load only on the worker threads that train.
 */
import { InvalidArgumentError } from '../../kernel/index.js';
import type { Config, SearchSpace } from '../types.js';

/** `.ts` when this runs from source (vitest, tsx), `.js` when compiled. */
const EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

/** A built-in trainable. */
export interface BuiltinTrainable {
  /** The module's file URL (pass as `TrainableRef.module`). */
  readonly module: string;
  /** The search space it is tuned over unless the user gives one. */
  readonly space: SearchSpace;
  /** The metric worth optimizing (the held-out accuracy). */
  readonly objective: { readonly metric: string; readonly mode: 'min' | 'max' };
  /** One line for `--help`. */
  readonly description: string;
}

/** The built-in trainables by name. Their params: `{ dataset: 'iris' }` or `{ csv, target }`, plus `seed`, `testFraction`, `maxSteps`. */
export const builtinTrainables: Readonly<Record<string, BuiltinTrainable>> = {
  logreg: {
    module: new URL(`./iris-logreg${EXT}`, import.meta.url).href,
    space: {
      learningRate: { type: 'float', min: 1e-4, max: 0.5, log: true },
      stepsPerReport: { type: 'int', min: 5, max: 50 },
    },
    objective: { metric: 'accuracy', mode: 'max' },
    description: 'one-vs-rest logistic regression (ml-logistic-regression), full-batch gradient descent',
  },
  mlp: {
    module: new URL(`./mlp${EXT}`, import.meta.url).href,
    space: {
      learningRate: { type: 'float', min: 1e-4, max: 0.1, log: true },
      hiddenUnits: { type: 'int', min: 4, max: 64 },
      layers: { type: 'int', min: 1, max: 3 },
      activation: { type: 'choice', values: ['relu', 'tanh', 'elu', 'sigmoid'] },
      batchSize: { type: 'choice', values: [8, 16, 32, 64] },
      dropout: { type: 'float', min: 0, max: 0.5 },
    },
    objective: { metric: 'accuracy', mode: 'max' },
    description:
      'a multi-layer perceptron (TensorFlow.js, CPU backend) trained with Adam, one epoch per step',
  },
};

/**
 * A numeric hyperparameter of `config`: `fallback` when absent, else a finite number in
 * [min, max] (an integer if asked). Throws InvalidArgumentError naming it otherwise.
 */
export function configNumber(
  config: Config,
  name: string,
  fallback: number,
  range: { readonly min: number; readonly max: number; readonly integer?: boolean },
): number {
  const value = config[name] ?? fallback;
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    value >= range.min &&
    value <= range.max &&
    (range.integer !== true || Number.isInteger(value));
  if (!ok) {
    throw new InvalidArgumentError(
      `hyperparameter ${JSON.stringify(name)}`,
      `must be ${range.integer === true ? 'an integer' : 'a number'} in [${range.min}, ${range.max}]`,
      value,
    );
  }
  return value as number;
}

/** A hyperparameter that must be one of `values` (`fallback` when absent). */
export function configChoice<T>(config: Config, name: string, fallback: T, values: readonly T[]): T {
  const value = config[name] ?? fallback;
  if (!values.includes(value as T)) {
    throw new InvalidArgumentError(
      `hyperparameter ${JSON.stringify(name)}`,
      `must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}`,
      value,
    );
  }
  return value as T;
}
