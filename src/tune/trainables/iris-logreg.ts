/**
 * Built-in trainable "logreg": one-vs-rest logistic regression from ml-logistic-regression, on
 * iris or a CSV (classification). Features are standardized on the training split and get a
 * constant column, which gives the library's models the intercept they lack.
 *
 * Config: `learningRate` (the library's gradient-ascent step; its gradient is summed over the
 * rows, not averaged) and `stepsPerReport` (gradient steps per training step). After each
 * training step it reports `{ step, accuracy, loss }` on the held-out split (loss: cross-entropy
 * of the normalized one-vs-rest probabilities), then checkpoints.
 *
 * ml-logistic-regression cannot train incrementally: its `train` always starts from zero weights.
 * So training step s trains a model from scratch for s * stepsPerReport gradient steps (full-batch
 * gradient descent is deterministic, so this is the model a continued run would have). The
 * checkpoint holds the step, the gradient steps done and the model's weights; a restored run goes
 * on from that step count with its own learning rate. Nothing of the library is reimplemented:
 * the price is training time quadratic in the number of steps, which keeps `stepsPerReport`
 * modest. A PBT exploit therefore takes over the donor's progress (step and gradient steps), not
 * its exact weights when the learning rate changes.
 */
import { createRequire } from 'node:module';
import { Matrix } from 'ml-matrix';
import { InvalidArgumentError } from '../../kernel/index.js';
import { type Dataset, trainingData } from '../data.js';
import type { Config, TrainContext, TrialMetrics } from '../types.js';
import { configNumber } from './index.js';

/** The part of ml-logistic-regression's API used here (it ships no types). */
interface LogisticRegressionModel {
  train(x: Matrix, y: Matrix): void;
  predict(x: Matrix): number[];
  readonly numberClasses: number;
  readonly classifiers: { testScores(x: Matrix): number[]; weights: Matrix }[];
}
interface LogisticRegressionClass {
  new (options: { numSteps: number; learningRate: number }): LogisticRegressionModel;
  load(model: {
    name: 'LogisticRegression';
    numSteps: number;
    learningRate: number;
    numberClasses: number;
    classifiers: { numSteps: number; learningRate: number; weights: number[][] }[];
  }): LogisticRegressionModel;
}

const LogisticRegression = createRequire(import.meta.url)(
  'ml-logistic-regression',
) as LogisticRegressionClass;

/** What "logreg" checkpoints. */
export interface LogregCheckpoint {
  /** Training steps done (the last reported step). */
  readonly step: number;
  /** Gradient steps the model was trained for. */
  readonly gradientSteps: number;
  /** Per class: the one-vs-rest weights (features, then the intercept). */
  readonly weights: readonly Float64Array[];
}

const EPSILON = 1e-7;

/** The rows with a constant 1 appended (the intercept's feature). */
function withIntercept(x: readonly (readonly number[])[]): Matrix {
  return new Matrix(x.map((row) => [...row, 1]));
}

/** Held-out accuracy and cross-entropy of a trained model. */
export function evaluate(
  model: LogisticRegressionModel,
  x: Matrix,
  y: readonly number[],
): { accuracy: number; loss: number } {
  const predicted = model.predict(x);
  // Each classifier scores "not this class" (the library labels its own class 0).
  const scores = model.classifiers.map((c) => c.testScores(x));
  let correct = 0;
  let loss = 0;
  for (let i = 0; i < y.length; i++) {
    const label = y[i] as number;
    if (predicted[i] === label) correct++;
    let total = 0;
    for (const s of scores) total += 1 - (s[i] as number);
    const p = total > 0 ? (1 - (scores[label]?.[i] as number)) / total : 1 / scores.length;
    loss -= Math.log(Math.min(1 - EPSILON, Math.max(EPSILON, p)));
  }
  return { accuracy: correct / y.length, loss: loss / y.length };
}

function restoreModel(state: LogregCheckpoint, learningRate: number): LogisticRegressionModel {
  return LogisticRegression.load({
    name: 'LogisticRegression',
    numSteps: state.gradientSteps,
    learningRate,
    numberClasses: state.weights.length,
    classifiers: state.weights.map((w) => ({
      numSteps: state.gradientSteps,
      learningRate,
      weights: [[...w]],
    })),
  });
}

function checkRestored(state: unknown, classes: number, width: number): LogregCheckpoint | undefined {
  if (state === undefined) return undefined;
  const s = state as Partial<LogregCheckpoint>;
  const ok =
    s !== null &&
    typeof s === 'object' &&
    Number.isInteger(s.step) &&
    Number.isInteger(s.gradientSteps) &&
    Array.isArray(s.weights) &&
    s.weights.length === classes &&
    s.weights.every((w) => w instanceof Float64Array && w.length === width);
  if (!ok) {
    throw new InvalidArgumentError(
      'logreg checkpoint',
      `must be { step, gradientSteps, weights: ${classes} Float64Arrays of ${width} } (from a logreg run on the same data)`,
      state,
    );
  }
  return s as LogregCheckpoint;
}

function requireClassification(data: Dataset): void {
  if (data.task !== 'classification') {
    throw new InvalidArgumentError(
      'logreg dataset',
      `logistic regression classifies; target ${JSON.stringify(data.target)} of ${data.name} is numeric with many values (regression): use the mlp model`,
    );
  }
}

/** Train one-vs-rest logistic regression, reporting held-out accuracy after each training step. */
export async function train(config: Config, ctx: TrainContext): Promise<TrialMetrics | undefined> {
  const learningRate = configNumber(config, 'learningRate', 0.01, { min: 1e-8, max: 100 });
  const stepsPerReport = configNumber(config, 'stepsPerReport', 20, { min: 1, max: 100_000, integer: true });
  const { train: trainSet, test, maxSteps, data } = trainingData(ctx.params, 20);
  requireClassification(data);
  const x = withIntercept(trainSet.x);
  const y = Matrix.columnVector([...trainSet.y]);
  const xTest = withIntercept(test.x);
  const restored = checkRestored(ctx.restore(), data.classes.length, x.columns);
  let step = restored?.step ?? 0;
  let gradientSteps = restored?.gradientSteps ?? 0;
  if (restored !== undefined && step >= maxSteps) {
    return { step, ...evaluate(restoreModel(restored, learningRate), xTest, test.y) };
  }
  let last: TrialMetrics | undefined;
  while (step < maxSteps) {
    step++;
    gradientSteps += stepsPerReport;
    const model = new LogisticRegression({ numSteps: gradientSteps, learningRate });
    model.train(x, y);
    last = { step, ...evaluate(model, xTest, test.y) };
    await ctx.report(last);
    if (ctx.shouldStop) break;
    const state: LogregCheckpoint = {
      step,
      gradientSteps,
      weights: model.classifiers.map((c) => Float64Array.from(c.weights.to1DArray())),
    };
    await ctx.checkpoint(state);
  }
  return last;
}
