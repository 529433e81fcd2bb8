/**
 * How `tune()` hands its worker slots to trials: `fifo` (the default: a trial gets a slot when it
 * starts and keeps it to its end) or `auction` (trials lease compute in segments and bid for it).
 *
 * Auction allocation, as tune.ts runs it:
 * - The study keeps more live trial agents than slots: `candidates` (default 2 x concurrency),
 *   sampled ahead. A trial trains only while it holds a lease of `leaseSteps` new training steps.
 *   At the report that ends its lease, the study answers "stop"; the trial's run ends after its
 *   checkpoint, and the trial waits for the next auction. Its next lease continues from its latest
 *   checkpoint, exactly as a PBT restart does (a trainable that checkpoints after checking
 *   `shouldStop` repeats the steps since its last checkpoint: their reports are not recorded twice).
 * - Whenever slots are free and trials wait, the study agent runs a sealed-bid auction in the
 *   economics layer's `Auctions` service among the waiting trial agents: Vickrey for one free
 *   slot, multi-unit VCG (each trial wants one slot; each winner pays the (k+1)-th bid, the
 *   multi-unit Vickrey price) for k free slots. The reserve is `minBid`.
 * - Each trial agent bids from its own state (`leaseBid` below): its remaining budget, spread
 *   over the leases it still needs, times the chance that its next lease beats the study's best
 *   so far (its replica of the `best.*` variables) according to its learning curve. A trial whose
 *   bid would be below the reserve (out of budget, or a curve that no longer promises anything)
 *   passes and gives up: it ends pruned.
 * - Budgets are accounts in an economics `Ledger` (over an in-memory event store): every trial
 *   opens one with `budget` credits, a winner pays its price to the study's account before its
 *   lease starts, and the ledger never lets a balance go below 0. The auction reads the same
 *   balances (`budgetOf`), so no trial can bid more than it has. Balances live for one run of
 *   the study: a resumed study gives every unfinished trial a fresh budget.
 * - Schedulers still apply: ASHA or median stopping may stop a trial at any report.
 */
import { InvalidArgumentError } from '../kernel/index.js';
import type { SchedulerSpec } from './registry.js';
import type { TrainableRef } from './types.js';

/** How worker slots are given to trials. */
export type Allocation = 'fifo' | 'auction';

/** Options of auction allocation (all optional; see `AuctionAllocation` for the defaults). */
export interface AuctionAllocationOptions {
  /** Training steps per lease. Default: a quarter of `maxSteps` (rounded up), or 3 when unknown. */
  readonly leaseSteps?: number;
  /** Credits each trial starts with. Default 100. */
  readonly budget?: number;
  /** The reserve price of a lease; a trial that cannot bid this much gives up. Default budget / 100. */
  readonly minBid?: number;
  /** Live trial agents (training or waiting). Default 2 x concurrency; at least concurrency. */
  readonly candidates?: number;
  /**
   * A trial's last step, when known: a lease never pauses a trial at it, and a trial spreads its
   * budget over the leases it still needs. Default: the scheduler's `maxSteps` option, else the
   * trainable's `params.maxSteps`, else unknown.
   */
  readonly maxSteps?: number;
  /**
   * The chance of improving on the best that a trial without a learning curve (fewer than two
   * recorded steps) assumes: the optimism that makes fresh trials worth a first lease. Default 0.5.
   */
  readonly prior?: number;
}

/** Auction allocation with every default filled in (what a study spec stores). */
export interface AuctionAllocation {
  readonly leaseSteps: number;
  readonly budget: number;
  readonly minBid: number;
  readonly candidates: number;
  readonly maxSteps?: number;
  readonly prior: number;
}

const DEFAULT_BUDGET = 100;
const DEFAULT_PRIOR = 0.5;

function whole(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidArgumentError(`auction option "${name}"`, `must be a whole number >= ${min}`, value);
  }
  return value;
}

function positive(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidArgumentError(`auction option "${name}"`, 'must be a finite number > 0', value);
  }
  return value;
}

/** The maxSteps a study's scheduler or trainable declares, if any. */
function declaredMaxSteps(scheduler: SchedulerSpec, trainable: TrainableRef | undefined): number | undefined {
  for (const v of [scheduler.options?.maxSteps, trainable?.params?.maxSteps]) {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 1) return v;
  }
  return undefined;
}

/**
 * Validate the allocation options of a study and fill in the defaults. Returns undefined for
 * `fifo` (nothing to store). Throws InvalidArgumentError naming a bad option.
 */
export function checkAllocation(
  allocation: unknown,
  options: unknown,
  study: {
    readonly concurrency: number;
    readonly scheduler: SchedulerSpec;
    readonly trainable?: TrainableRef;
  },
): AuctionAllocation | undefined {
  if (allocation !== undefined && allocation !== 'fifo' && allocation !== 'auction') {
    throw new InvalidArgumentError('study option "allocation"', 'must be "fifo" or "auction"', allocation);
  }
  if (allocation !== 'auction') {
    if (options !== undefined) {
      throw new InvalidArgumentError('study option "auction"', 'is only for allocation "auction"', options);
    }
    return undefined;
  }
  const o = (options ?? {}) as AuctionAllocationOptions;
  if (o === null || typeof o !== 'object' || Array.isArray(o)) {
    throw new InvalidArgumentError('study option "auction"', 'must be an object', options);
  }
  for (const key of Object.keys(o)) {
    if (!['leaseSteps', 'budget', 'minBid', 'candidates', 'maxSteps', 'prior'].includes(key)) {
      throw new InvalidArgumentError(
        `auction option "${key}"`,
        'is not an option of auction allocation',
        o[key as keyof typeof o],
      );
    }
  }
  const maxSteps =
    o.maxSteps === undefined
      ? declaredMaxSteps(study.scheduler, study.trainable)
      : whole('maxSteps', o.maxSteps, 1);
  const leaseSteps =
    o.leaseSteps === undefined
      ? maxSteps === undefined
        ? 3
        : Math.ceil(maxSteps / 4)
      : whole('leaseSteps', o.leaseSteps, 1);
  const budget = o.budget === undefined ? DEFAULT_BUDGET : positive('budget', o.budget);
  const minBid = o.minBid === undefined ? budget / 100 : positive('minBid', o.minBid);
  if (minBid > budget) {
    throw new InvalidArgumentError('auction option "minBid"', `must not exceed the budget ${budget}`, minBid);
  }
  const candidates =
    o.candidates === undefined ? 2 * study.concurrency : whole('candidates', o.candidates, study.concurrency);
  const prior = o.prior === undefined ? DEFAULT_PRIOR : o.prior;
  if (typeof prior !== 'number' || !(prior > 0 && prior <= 1)) {
    throw new InvalidArgumentError('auction option "prior"', 'must be a number in (0, 1]', o.prior);
  }
  return { leaseSteps, budget, minBid, candidates, prior, ...(maxSteps === undefined ? {} : { maxSteps }) };
}

// ---- a trial's bid -----------------------------------------------------------------------------

/** The standard normal distribution function (Abramowitz and Stegun 7.1.26, error < 1.5e-7). */
export function normalCdf(z: number): number {
  if (z === Number.POSITIVE_INFINITY) return 1;
  if (z === Number.NEGATIVE_INFINITY || Number.isNaN(z)) return 0;
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const poly =
    t * (0.254829592 + t * (-0.284496736 + t * (1.421413061 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** What a trial expects of its next lease. */
export interface LeaseOutlook {
  /** The chance, in [0, 1], that the next lease takes this trial below the study's best loss. */
  readonly chance: number;
  /** The loss it predicts at the end of the next lease (null without a curve). */
  readonly predicted: number | null;
  /** "prior" (no curve yet) or "curve". */
  readonly basis: 'prior' | 'curve';
}

/**
 * What a trial expects of its next lease, from its learning curve: its recorded losses in step
 * order (lower is better) and the study's best loss (null when there is none yet).
 *
 * The curve's slope over its last `leaseSteps` steps, extrapolated over the next lease, predicts
 * the loss p it will reach (never above its last loss). The uncertainty of that prediction is the
 * predicted gain itself plus the noise of the recent steps (an extrapolation is as unsure as the
 * distance it extrapolates). The chance is P(loss < best - margin) under a normal with that mean
 * and spread, where the margin (1% of the curve's range) keeps a plateau from bidding forever.
 * A trial with fewer than two losses has no curve and takes `prior`.
 */
export function leaseOutlook(
  curve: readonly number[],
  bestLoss: number | null,
  settings: { readonly leaseSteps: number; readonly prior: number },
): LeaseOutlook {
  const n = curve.length;
  if (n < 2) return { chance: settings.prior, predicted: null, basis: 'prior' };
  const last = curve[n - 1] as number;
  const w = Math.min(n - 1, settings.leaseSteps);
  const slope = (last - (curve[n - 1 - w] as number)) / w;
  const gain = Math.max(0, -slope * settings.leaseSteps);
  const predicted = last - gain;
  let sum = 0;
  let sumSq = 0;
  for (let i = n - w; i < n; i++) {
    const d = (curve[i] as number) - (curve[i - 1] as number);
    sum += d;
    sumSq += d * d;
  }
  const noise = Math.sqrt(Math.max(0, sumSq / w - (sum / w) ** 2));
  let lo = last;
  let hi = last;
  for (const v of curve) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const range = hi - lo;
  const scale = Math.max(Math.abs(last), range, 1e-12);
  const best = bestLoss === null ? lo : Math.min(bestLoss, lo);
  const margin = 0.01 * range + 1e-6 * scale;
  const spread = gain + noise + 1e-9 * scale;
  return { chance: normalCdf((best - margin - predicted) / spread), predicted, basis: 'curve' };
}

/** A trial's decision in an auction: a bid, or giving up. */
export type LeaseBid =
  | { readonly amount: number; readonly outlook: LeaseOutlook; readonly leasesLeft: number }
  | {
      readonly amount: null;
      readonly outlook: LeaseOutlook;
      readonly leasesLeft: number;
      readonly reason: string;
    };

/**
 * A trial's bid for a lease: `balance / leasesLeft * chance`, i.e. the budget it can spend per
 * lease it still needs (all of it when its last step is unknown), scaled by the chance that the
 * lease improves on the study's best. Below `reserve` (the auction's minimum) it gives up.
 */
export function leaseBid(input: {
  readonly curve: readonly number[];
  readonly bestLoss: number | null;
  readonly balance: number;
  /** The last step it reached (0 before its first). */
  readonly step: number;
  readonly reserve: number;
  readonly settings: AuctionAllocation;
}): LeaseBid {
  const { settings } = input;
  const outlook = leaseOutlook(input.curve, input.bestLoss, settings);
  const leasesLeft =
    settings.maxSteps === undefined
      ? 1
      : Math.max(1, Math.ceil((settings.maxSteps - input.step) / settings.leaseSteps));
  const amount = (Math.max(0, input.balance) / leasesLeft) * outlook.chance;
  if (!(amount >= input.reserve) || amount <= 0) {
    const reason =
      input.balance < input.reserve
        ? `out of budget (${input.balance.toPrecision(4)} left, a lease costs at least ${input.reserve})`
        : `its bid ${amount.toPrecision(4)} is below the reserve ${input.reserve} (chance of improving ${outlook.chance.toPrecision(3)})`;
    return { amount: null, outlook, leasesLeft, reason };
  }
  return { amount: Math.min(amount, input.balance), outlook, leasesLeft };
}
