/**
 * Built-in trainable "mlp": a multi-layer perceptron in TensorFlow.js on its pure-JavaScript CPU
 * backend (no tfjs-node, no native code), trained with Adam on iris or a CSV. One step is one
 * epoch over the training split; after each it reports held-out metrics and checkpoints.
 *
 * Config: `learningRate` (Adam), `hiddenUnits` (per hidden layer), `layers` (hidden layers, 1-3),
 * `activation` (relu, tanh, elu, sigmoid), `batchSize`, `dropout` (rate after each hidden layer).
 *
 * Classification reports `{ step, accuracy, loss }` (loss: softmax cross-entropy); a regression
 * target (see data.ts) reports `{ step, loss, rmse, r2 }` (loss: MSE of the standardized target,
 * rmse in the target's units).
 *
 * The network is a list of tf.Variables rather than a tf.layers model, so every random draw
 * (initialization, batch order, dropout masks) comes from the seeded Rng: the same seed and config
 * train the same model, and a run resumed from a checkpoint shuffles its next epoch as the
 * uninterrupted run would have. The checkpoint holds the weights and Adam's state (its step count
 * and moments) as Float32Arrays. Every tensor is disposed before `train` returns, so trials that
 * share a thread do not leak into one another.
 */
import * as tf from '@tensorflow/tfjs';
import { InvalidArgumentError } from '../../kernel/index.js';
import { trainingData } from '../data.js';
import { Rng } from '../random.js';
import type { Config, TrainContext, TrialMetrics } from '../types.js';
import { configChoice, configNumber } from './index.js';

/** The activations `activation` may name. */
export const ACTIVATIONS = ['relu', 'tanh', 'elu', 'sigmoid'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

/** A tensor with a name, as optimizers save and load their state. */
type NamedTensor = { name: string; tensor: tf.Tensor };

/** What "mlp" checkpoints. */
export interface MlpCheckpoint {
  /** Epochs done (the last reported step). */
  readonly step: number;
  /** Each variable's shape: per layer the kernel [in, out], then the bias [out]. */
  readonly shapes: readonly (readonly number[])[];
  readonly weights: readonly Float32Array[];
  /** Adam's state: its update count and its first and second moments, one per variable each. */
  readonly optimizer: { readonly iterations: number; readonly moments: readonly Float32Array[] };
}

let backendReady: Promise<void> | null = null;

/** The CPU backend, in production mode (which also silences the "install tfjs-node" banner). */
function cpuBackend(): Promise<void> {
  backendReady ??= (async () => {
    tf.enableProdMode();
    await tf.setBackend('cpu');
    await tf.ready();
  })();
  return backendReady;
}

function activate(x: tf.Tensor2D, activation: Activation): tf.Tensor2D {
  switch (activation) {
    case 'relu':
      return tf.relu(x);
    case 'tanh':
      return tf.tanh(x);
    case 'elu':
      return tf.elu(x);
    case 'sigmoid':
      return tf.sigmoid(x);
  }
}

/** Glorot-uniform kernels and zero biases, drawn from `rng`. */
function buildNetwork(sizes: readonly number[], rng: Rng): tf.Variable[] {
  const vars: tf.Variable[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const fanIn = sizes[l] as number;
    const fanOut = sizes[l + 1] as number;
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    const kernel = new Float32Array(fanIn * fanOut);
    for (let i = 0; i < kernel.length; i++) kernel[i] = rng.uniform(-limit, limit);
    // A variable shares its initial tensor's data: the tensor itself is disposed right away.
    for (const initial of [tf.tensor2d(kernel, [fanIn, fanOut]), tf.zeros([fanOut])]) {
      vars.push(tf.variable(initial, true));
      initial.dispose();
    }
  }
  return vars;
}

interface Forward {
  readonly activation: Activation;
  /** Dropout while training: the rate and where the masks' draws come from. */
  readonly dropout?: { readonly rate: number; readonly rng: Rng };
}

function forward(vars: readonly tf.Variable[], x: tf.Tensor2D, how: Forward): tf.Tensor2D {
  let h = x;
  const layers = vars.length / 2;
  for (let l = 0; l < layers; l++) {
    h = tf.add(tf.matMul(h, vars[2 * l] as tf.Variable), vars[2 * l + 1] as tf.Variable) as tf.Tensor2D;
    if (l === layers - 1) break;
    h = activate(h, how.activation);
    const drop = how.dropout;
    if (drop !== undefined && drop.rate > 0) {
      const [rows, cols] = h.shape;
      const keep = 1 / (1 - drop.rate);
      const mask = new Float32Array(rows * cols);
      for (let i = 0; i < mask.length; i++) mask[i] = drop.rng.next() < drop.rate ? 0 : keep;
      h = tf.mul(h, tf.tensor2d(mask, [rows, cols]));
    }
  }
  return h;
}

function shuffled(n: number, rng: Rng): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(0, i);
    const t = order[i] as number;
    order[i] = order[j] as number;
    order[j] = t;
  }
  return order;
}

function sameShapes(a: readonly (readonly number[])[], b: readonly (readonly number[])[]): boolean {
  return (
    a.length === b.length &&
    a.every((s, i) => s.length === b[i]?.length && s.every((d, j) => d === b[i]?.[j]))
  );
}

function checkRestored(state: unknown, shapes: readonly (readonly number[])[]): MlpCheckpoint | undefined {
  if (state === undefined) return undefined;
  const s = state as Partial<MlpCheckpoint>;
  const wellFormed =
    s !== null &&
    typeof s === 'object' &&
    Number.isInteger(s.step) &&
    Array.isArray(s.shapes) &&
    Array.isArray(s.weights) &&
    s.weights.every((w) => w instanceof Float32Array) &&
    typeof s.optimizer?.iterations === 'number' &&
    Array.isArray(s.optimizer?.moments);
  if (!wellFormed) {
    throw new InvalidArgumentError(
      'mlp checkpoint',
      'must be { step, shapes, weights, optimizer } from an mlp run',
      state,
    );
  }
  if (!sameShapes(s.shapes as number[][], shapes)) {
    throw new InvalidArgumentError(
      'mlp checkpoint',
      `holds weights of shapes ${JSON.stringify(s.shapes)} but this config's network needs ${JSON.stringify(shapes)}: restore only into the same layers and hiddenUnits (PBT must not perturb them)`,
    );
  }
  return s as MlpCheckpoint;
}

/** Train the MLP, one epoch per step, reporting held-out metrics after each. */
export async function train(config: Config, ctx: TrainContext): Promise<TrialMetrics | undefined> {
  const learningRate = configNumber(config, 'learningRate', 0.01, { min: 1e-8, max: 10 });
  const hiddenUnits = configNumber(config, 'hiddenUnits', 16, { min: 1, max: 4096, integer: true });
  const layers = configNumber(config, 'layers', 1, { min: 1, max: 3, integer: true });
  const activation = configChoice<Activation>(config, 'activation', 'relu', ACTIVATIONS);
  const batchSize = configNumber(config, 'batchSize', 16, { min: 1, max: 1_000_000, integer: true });
  const dropout = configNumber(config, 'dropout', 0, { min: 0, max: 0.95 });
  const { train: trainSet, test, data, seed, maxSteps } = trainingData(ctx.params, 30);
  await cpuBackend();

  const regression = data.task === 'regression';
  const outputs = regression ? 1 : data.classes.length;
  const sizes = [data.features.length, ...new Array<number>(layers).fill(hiddenUnits), outputs];
  const shapes = sizes.slice(1).flatMap((out, l) => [[sizes[l] as number, out], [out]]);
  const restored = checkRestored(ctx.restore(), shapes);
  // Regression trains on the standardized target (fitted on the training split).
  const yMean = regression ? trainSet.y.reduce((a, b) => a + b, 0) / trainSet.y.length : 0;
  const yStd = regression
    ? Math.sqrt(trainSet.y.reduce((a, b) => a + (b - yMean) ** 2, 0) / trainSet.y.length) || 1
    : 1;
  const target = (y: readonly number[]): tf.Tensor2D =>
    regression
      ? tf.tensor2d(
          y.map((v) => (v - yMean) / yStd),
          [y.length, 1],
        )
      : tf.tidy(() => tf.oneHot(tf.tensor1d([...y], 'int32'), outputs).toFloat() as tf.Tensor2D);

  const owned: tf.Tensor[] = [];
  const keep = <T extends tf.Tensor>(t: T): T => {
    owned.push(t);
    return t;
  };
  const vars = buildNetwork(sizes, new Rng(seed));
  const optimizer = tf.train.adam(learningRate);
  try {
    const xTrain = keep(tf.tensor2d(trainSet.x as number[][], [trainSet.x.length, sizes[0] as number]));
    const yTrain = keep(target(trainSet.y));
    const xTest = keep(tf.tensor2d(test.x as number[][], [test.x.length, sizes[0] as number]));
    const yTest = keep(target(test.y));
    const labels = keep(tf.tensor1d([...test.y], 'int32'));
    let step = 0;
    if (restored !== undefined) {
      step = restored.step;
      await restore(vars, optimizer, restored);
    }
    const evaluate = (): TrialMetrics =>
      tf.tidy((): TrialMetrics => {
        const out = forward(vars, xTest, { activation });
        if (regression) {
          const mse = tf.losses.meanSquaredError(yTest, out).dataSync()[0] as number;
          const variance = tf.moments(yTest).variance.dataSync()[0] as number;
          return { step, loss: mse, rmse: Math.sqrt(mse) * yStd, r2: variance > 0 ? 1 - mse / variance : 0 };
        }
        const loss = tf.losses.softmaxCrossEntropy(yTest, out).dataSync()[0] as number;
        const accuracy = tf
          .mean(tf.cast(tf.equal(tf.argMax(out, 1), labels), 'float32'))
          .dataSync()[0] as number;
        return { step, accuracy, loss };
      });
    if (restored !== undefined && step >= maxSteps) return evaluate();

    const n = trainSet.x.length;
    let last: TrialMetrics | undefined;
    while (step < maxSteps) {
      step++;
      // Seeded by the epoch, so a resumed run draws what the uninterrupted one would have.
      const rng = new Rng(seed + 7919 * step);
      const order = shuffled(n, rng);
      for (let start = 0; start < n; start += batchSize) {
        tf.tidy(() => {
          const idx = tf.tensor1d(order.subarray(start, Math.min(n, start + batchSize)), 'int32');
          const xb = tf.gather(xTrain, idx) as tf.Tensor2D;
          const yb = tf.gather(yTrain, idx) as tf.Tensor2D;
          optimizer.minimize(
            () => {
              const out = forward(vars, xb, { activation, dropout: { rate: dropout, rng } });
              return regression
                ? tf.losses.meanSquaredError(yb, out)
                : tf.losses.softmaxCrossEntropy(yb, out);
            },
            false,
            vars,
          );
        });
      }
      last = evaluate();
      await ctx.report(last);
      if (ctx.shouldStop) break;
      await ctx.checkpoint(await snapshot(vars, optimizer, shapes, step));
    }
    return last;
  } finally {
    optimizer.dispose();
    for (const v of vars) v.dispose();
    for (const t of owned) t.dispose();
  }
}

/** The network's weights and Adam's state, copied out of the tensors. */
async function snapshot(
  vars: readonly tf.Variable[],
  optimizer: tf.AdamOptimizer,
  shapes: readonly (readonly number[])[],
  step: number,
): Promise<MlpCheckpoint> {
  const state = await optimizer.getWeights();
  const [iterations, ...moments] = state;
  const count = (await (iterations as NamedTensor).tensor.data())[0] as number;
  // The iteration count is a fresh tensor; the moments are Adam's own variables (not ours to dispose).
  (iterations as NamedTensor).tensor.dispose();
  return {
    step,
    shapes: shapes.map((s) => [...s]),
    weights: vars.map((v) => Float32Array.from(v.dataSync() as Float32Array)),
    optimizer: {
      iterations: count,
      moments: moments.map((m) => Float32Array.from(m.tensor.dataSync() as Float32Array)),
    },
  };
}

/** Load a checkpoint's weights and Adam state into a freshly built network and optimizer. */
async function restore(
  vars: readonly tf.Variable[],
  optimizer: tf.AdamOptimizer,
  state: MlpCheckpoint,
): Promise<void> {
  vars.forEach((v, i) => {
    tf.tidy(() => v.assign(tf.tensor(state.weights[i] as Float32Array, v.shape)));
  });
  const moments = state.optimizer.moments;
  if (moments.length !== 2 * vars.length) return;
  const values: NamedTensor[] = [
    { name: 'iter', tensor: tf.scalar(state.optimizer.iterations, 'int32') },
    ...moments.map((m, i) => ({
      name: `moment${i}`,
      tensor: tf.tensor(m, (vars[i % vars.length] as tf.Variable).shape),
    })),
  ];
  await optimizer.setWeights(values);
  // Adam made its own variables from these; the originals are no longer needed.
  for (const v of values) v.tensor.dispose();
}
