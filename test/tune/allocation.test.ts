/**
 * Auction allocation in tune(): trials lease worker slots in Vickrey / multi-unit VCG auctions,
 * bidding from their budgets and learning curves. Real threads, the economics layer's real
 * Auctions service and Ledger; trainables are the fixtures in test/fixtures/study/. Every
 * assertion reads the study's events and records, never the clock.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/kernel/index.js';
import { checkAllocation, leaseBid, leaseOutlook, normalCdf } from '../../src/tune/allocation.js';
import {
  runStudy,
  Study,
  StudyStorage,
  type TuneEvent,
  type TuneResult,
  tune,
} from '../../src/tune/index.js';

const fixture = (name: string) => new URL(`../fixtures/study/${name}`, import.meta.url).href;
const quadraticSpace = {
  x: { type: 'float', min: -10, max: 10 },
  y: { type: 'choice', values: [0, 1, 2] },
} as const;

type Ev<T extends TuneEvent['type']> = Extract<TuneEvent, { type: T }>;
const ofType = <T extends TuneEvent['type']>(events: TuneEvent[], type: T) =>
  events.filter((e): e is Ev<T> => e.type === type);

/** The most trials that held a lease at once, replaying lease / pause / trial-end events in order. */
function mostTraining(events: TuneEvent[]): number {
  const holding = new Set<number>();
  let most = 0;
  for (const e of events) {
    if (e.type === 'lease') {
      expect(holding.has(e.trialId), `trial ${e.trialId} leased twice`).toBe(false);
      holding.add(e.trialId);
      most = Math.max(most, holding.size);
    }
    if (e.type === 'pause' || e.type === 'trial-end') holding.delete(e.trialId);
  }
  return most;
}

/** Every auction: winners bid at least every loser, and each pays the (k+1)-th bid or the reserve. */
function checkAuctions(events: TuneEvent[]): number {
  let checked = 0;
  for (const a of ofType(events, 'auction')) {
    const bids = a.bids.filter((b) => b.amount !== null).map((b) => b.amount as number);
    const winners = new Set(a.awards.map((w) => w.trialId));
    const losing = a.bids
      .filter((b) => b.amount !== null && !winners.has(b.trialId))
      .map((b) => b.amount as number);
    expect(a.awards.length).toBeLessThanOrEqual(a.slots);
    // Every free slot is sold while valid bids remain.
    expect(a.awards.length).toBe(Math.min(a.slots, bids.length));
    const sorted = [...bids].sort((x, y) => y - x);
    const clearing = Math.max(a.reserve, sorted[a.slots] ?? 0);
    for (const w of a.awards) {
      const placed = a.bids.find((b) => b.trialId === w.trialId);
      expect(placed?.amount).toBe(w.bid);
      for (const l of losing) expect(w.bid).toBeGreaterThanOrEqual(l);
      expect(w.price).toBeCloseTo(clearing, 9);
      expect(w.price).toBeLessThanOrEqual(w.bid);
      checked++;
    }
  }
  return checked;
}

/** Budgets: what each trial paid (lease events) is its budget minus its final balance; none below 0. */
function checkBudgets(result: TuneResult, budget: number, events: TuneEvent[]): void {
  const balances = result.balances ?? {};
  const paid = new Map<number, number>();
  for (const l of ofType(events, 'lease')) {
    expect(l.balance).toBeGreaterThanOrEqual(0);
    paid.set(l.trialId, (paid.get(l.trialId) ?? 0) + l.price);
  }
  for (const t of result.trials) {
    const balance = balances[t.id];
    expect(balance, `trial ${t.id} has an account`).toBeDefined();
    expect(balance as number).toBeGreaterThanOrEqual(0);
    expect(balance as number).toBeCloseTo(budget - (paid.get(t.id) ?? 0), 6);
  }
}

/** Each trial's reports are steps 1, 2, ... n: a pause and its continuation never record a step twice. */
function checkSteps(result: TuneResult): void {
  for (const t of result.trials) expect(t.reports.map((r) => r.step)).toEqual(t.reports.map((_, i) => i + 1));
}

describe('the bid (allocation.ts)', () => {
  const settings = { leaseSteps: 2, budget: 100, minBid: 1, candidates: 2, prior: 0.5, maxSteps: 8 };

  it('takes the prior without a curve, bids high on a steep curve and nothing on a flat one', () => {
    expect(leaseOutlook([], null, settings)).toMatchObject({ chance: 0.5, basis: 'prior' });
    expect(leaseOutlook([3], null, settings)).toMatchObject({ chance: 0.5, basis: 'prior' });
    const steep = leaseOutlook([1, 0.6, 0.37], 0.37, settings);
    expect(steep.basis).toBe('curve');
    expect(steep.chance).toBeGreaterThan(0.8);
    expect(steep.predicted as number).toBeLessThan(0.37);
    // A plateau that is the best so far has nothing left to gain.
    expect(leaseOutlook([1, 1, 1], 1, settings).chance).toBeLessThan(1e-6);
    // Improving, but far behind the best: little chance in one lease.
    const behind = leaseOutlook([10, 9.5, 9], 2, settings);
    expect(behind.chance).toBeLessThan(0.01);
    expect(normalCdf(0)).toBeCloseTo(0.5, 6);
    expect(normalCdf(1.96)).toBeCloseTo(0.975, 3);
  });

  it('spreads the budget over the leases still needed and gives up below the reserve', () => {
    const fresh = leaseBid({ curve: [], bestLoss: null, balance: 100, step: 0, reserve: 1, settings });
    expect(fresh.leasesLeft).toBe(4);
    expect(fresh.amount).toBeCloseTo((100 / 4) * 0.5, 9);
    const late = leaseBid({
      curve: [1, 0.6, 0.37],
      bestLoss: 0.37,
      balance: 50,
      step: 6,
      reserve: 1,
      settings,
    });
    expect(late.leasesLeft).toBe(1);
    expect(late.amount as number).toBeGreaterThan(40);
    const broke = leaseBid({ curve: [], bestLoss: null, balance: 0.5, step: 0, reserve: 1, settings });
    expect(broke.amount).toBeNull();
    expect(broke.amount === null && broke.reason).toMatch(/out of budget/);
    const flat = leaseBid({ curve: [1, 1, 1], bestLoss: 1, balance: 100, step: 2, reserve: 1, settings });
    expect(flat.amount).toBeNull();
    expect(flat.amount === null && flat.reason).toMatch(/below the reserve/);
  });

  it('validates the options and fills in the defaults', () => {
    const study = { concurrency: 2, scheduler: { name: 'asha', options: { maxSteps: 9 } } };
    expect(checkAllocation(undefined, undefined, study)).toBeUndefined();
    expect(checkAllocation('fifo', undefined, study)).toBeUndefined();
    expect(checkAllocation('auction', undefined, study)).toEqual({
      leaseSteps: 3,
      budget: 100,
      minBid: 1,
      candidates: 4,
      prior: 0.5,
      maxSteps: 9,
    });
    const bad: [unknown, unknown, RegExp][] = [
      ['lottery', undefined, /allocation/],
      ['fifo', { budget: 3 }, /only for allocation "auction"/],
      ['auction', { candidates: 1 }, /candidates/],
      ['auction', { budget: 1, minBid: 2 }, /minBid/],
      ['auction', { leaseSteps: 0 }, /leaseSteps/],
      ['auction', { prior: 0 }, /prior/],
      ['auction', { budgt: 3 }, /budgt/],
    ];
    for (const [allocation, options, message] of bad) {
      expect(() => checkAllocation(allocation, options, study)).toThrow(InvalidArgumentError);
      expect(() => checkAllocation(allocation, options, study)).toThrow(message);
    }
    // tune() refuses before any work starts.
    expect(() =>
      Study.create({
        space: quadraticSpace,
        objective: { metric: 'loss', mode: 'min' },
        allocation: 'lottery' as 'fifo',
      }),
    ).toThrow(InvalidArgumentError);
  });
});

describe('tune() with allocation "auction"', () => {
  it('runs every trial to an end, never trains more than `concurrency` at once, and sells slots to the highest bids', async () => {
    const events: TuneEvent[] = [];
    const result = await tune({
      space: quadraticSpace,
      objective: { metric: 'loss', mode: 'min' },
      trainable: { module: fixture('quadratic.mjs'), params: { maxSteps: 9, checkpoint: true } },
      sampler: { name: 'random' },
      trials: 12,
      concurrency: 2,
      seed: 1,
      allocation: 'auction',
      onEvent: (e) => events.push(e),
    });
    expect(result.spec.allocation).toBe('auction');
    expect(result.spec.auction).toMatchObject({ leaseSteps: 3, candidates: 4, maxSteps: 9, budget: 100 });
    expect(result.summary).toMatchObject({ trials: 12, running: 0, failed: 0 });
    expect(result.summary.completed + result.summary.pruned).toBe(12);
    expect(result.summary.completed).toBeGreaterThan(0);
    for (const t of result.trials) {
      if (t.state === 'completed') expect(t.reports.length).toBe(9);
      else expect(t.reports.length).toBeLessThan(9);
    }
    checkSteps(result);
    expect(mostTraining(events)).toBe(2);
    // Trials paused at lease ends and continued later.
    expect(ofType(events, 'pause').length).toBeGreaterThan(0);
    // More trials were alive than slots: candidates waited for auctions.
    let live = 0;
    let mostLive = 0;
    for (const e of events) {
      if (e.type === 'trial-start') mostLive = Math.max(mostLive, ++live);
      if (e.type === 'trial-end') live--;
    }
    expect(mostLive).toBe(4);
    expect(checkAuctions(events)).toBe(ofType(events, 'lease').length);
    checkBudgets(result, 100, events);
    // The best is the minimum over every recorded report.
    expect(result.best?.value).toBe(
      Math.min(...result.trials.flatMap((t) => t.reports.map((r) => r.loss as number))),
    );
  });

  it('gives a steep learning curve its leases ahead of a flat one, at the second-highest bid', async () => {
    const events: TuneEvent[] = [];
    const result = await tune({
      space: { rate: { type: 'choice', values: [0.5, 0] } },
      objective: { metric: 'loss', mode: 'min' },
      trainable: { module: fixture('curve.mjs'), params: { steps: 8 } },
      sampler: { name: 'grid', options: { shuffle: false } },
      trials: 2,
      concurrency: 1,
      seed: 3,
      allocation: 'auction',
      auction: { leaseSteps: 2, maxSteps: 8, candidates: 2 },
      onEvent: (e) => events.push(e),
    });
    const steep = result.trials.find((t) => t.config.rate === 0.5);
    const flat = result.trials.find((t) => t.config.rate === 0);
    if (steep === undefined || flat === undefined) throw new Error('the grid did not give both curves');
    // The steep trial trains to its end; the flat one gets one lease, then its curve promises
    // nothing and it gives up, whichever of them won the first (tied) auction.
    expect(steep.state).toBe('completed');
    expect(steep.reports.length).toBe(8);
    expect(flat.state).toBe('pruned');
    expect(flat.reports.length).toBe(2);
    const leases = ofType(events, 'lease');
    expect(leases.filter((l) => l.trialId === steep.id).length).toBe(4);
    expect(leases.filter((l) => l.trialId === flat.id).length).toBe(1);
    const gaveUp = ofType(events, 'auction')
      .flatMap((a) => a.bids)
      .find((b) => b.trialId === flat.id && b.amount === null);
    expect(gaveUp?.reason).toMatch(/below the reserve/);
    // The first auction: both fresh, equal bids; the winner pays the other's bid (Vickrey).
    const first = ofType(events, 'auction')[0];
    expect(first?.bids.length).toBe(2);
    expect(first?.awards[0]?.price).toBe(first?.bids[1]?.amount);
    expect(checkAuctions(events)).toBe(leases.length);
    expect(mostTraining(events)).toBe(1);
    checkBudgets(result, 100, events);
    checkSteps(result);
  });

  it('ends a trial that runs out of budget, its balance never below 0', async () => {
    const events: TuneEvent[] = [];
    const result = await tune({
      space: { rate: { type: 'choice', values: [0.5] } },
      objective: { metric: 'loss', mode: 'min' },
      // `steps`, not `maxSteps`: the study does not know the last step, so a trial bids its whole
      // balance (times its chance) for each lease.
      trainable: { module: fixture('curve.mjs'), params: { steps: 10 } },
      sampler: { name: 'grid' },
      trials: 1,
      concurrency: 1,
      allocation: 'auction',
      auction: { leaseSteps: 1, budget: 2.5, minBid: 1, prior: 1 },
      onEvent: (e) => events.push(e),
    });
    const [trial] = result.trials;
    expect(trial?.state).toBe('pruned');
    // Alone, it pays the reserve (1) per lease: two leases, then 0.5 left is not enough.
    expect(trial?.reports.length).toBe(2);
    const leases = ofType(events, 'lease');
    expect(leases.map((l) => l.price)).toEqual([1, 1]);
    const last = ofType(events, 'auction').at(-1);
    expect(last?.awards).toEqual([]);
    expect(last?.bids[0]?.reason).toMatch(/out of budget/);
    expect(result.balances?.[0]).toBeCloseTo(0.5, 9);
    checkBudgets(result, 2.5, events);
  });
});

describe('a resumed study in auction mode', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'mabeam-allocation-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('stores the allocation in the spec and finishes the study after an interruption', async () => {
    const db = path.join(dir, 'studies.db');
    const options = {
      space: quadraticSpace,
      objective: { metric: 'loss', mode: 'min' },
      trainable: { module: fixture('quadratic.mjs'), params: { maxSteps: 6, checkpoint: true } },
      sampler: { name: 'random' },
      trials: 6,
      concurrency: 2,
      seed: 5,
      allocation: 'auction',
      auction: { leaseSteps: 2 },
    } as const;
    const storage = StudyStorage.open(db);
    try {
      const first = Study.create(options, { store: storage, name: 'auction' });
      storage.createStudy('auction', first.spec);
      const controller = new AbortController();
      const interrupted = await runStudy(first, {
        signal: controller.signal,
        // Stop once a trial has paused and the next lease was sold: trials are mid-study.
        onEvent: (e) => {
          if (e.type === 'lease' && e.fromStep > 0) controller.abort();
        },
      });
      expect(interrupted.aborted).toBe(true);
      expect(interrupted.summary.running).toBeGreaterThan(0);

      const stored = storage.loadStudy('auction');
      expect(stored.spec.allocation).toBe('auction');
      expect(stored.spec.auction).toMatchObject({ leaseSteps: 2, maxSteps: 6, candidates: 4 });
      const before = stored.trials.map((t) => structuredClone(t));
      const events: TuneEvent[] = [];
      const resumed = await runStudy(
        Study.resume(stored.spec, stored.trials, { store: storage, name: 'auction' }),
        {
          onEvent: (e) => events.push(e),
        },
      );
      expect(resumed.aborted).toBe(false);
      expect(resumed.summary).toMatchObject({ trials: 6, running: 0, failed: 0 });
      expect(resumed.summary.completed + resumed.summary.pruned).toBe(6);
      // Finished trials were not re-run; interrupted ones continued: their steps stay 1, 2, ...
      for (const t of before.filter((b) => b.state === 'completed' || b.state === 'pruned')) {
        expect(resumed.trials[t.id]?.reports).toEqual(t.reports);
      }
      checkSteps(resumed);
      expect(ofType(events, 'lease').length).toBeGreaterThan(0);
      expect(mostTraining(events)).toBeLessThanOrEqual(2);
      checkAuctions(events);
      checkBudgets(resumed, 100, events);
    } finally {
      storage.close();
    }
  });
});
