import { afterEach, describe, expect, it } from 'vitest';
import { Consensus, type Vote, withVoting } from '../../src/coordination/consensus.js';
import { Allocator, computeAllocation, withNeeds } from '../../src/economics/allocation.js';
import { MAX_EVIDENCE, REPUTATION_RECORDED, Reputation, subjectKey } from '../../src/economics/reputation.js';
import {
  type AnyRef,
  behaviour,
  InvalidArgumentError,
  pidKey,
  Runtime,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitTelemetry } from '../../src/kernel/testkit.js';

let rt: Runtime;
let clock: VirtualClock;
afterEach(async () => {
  await rt?.shutdown();
});

function setup(options?: ConstructorParameters<typeof Reputation>[1]): Reputation {
  clock = new VirtualClock();
  rt = new Runtime({ clock });
  return new Reputation(rt, options);
}

const HOUR = 3_600_000;

describe('Reputation: the model', () => {
  it('an unknown agent scores the prior mean; outcomes move it towards the success rate', () => {
    const rep = setup();
    expect(rep.score('a')).toBe(0.5);
    expect(rep.entry('a')).toBeUndefined();
    expect(rep.record('a', 'success')).toBeCloseTo(2 / 3, 12);
    rep.record('a', 'success');
    rep.record('a', 'failure');
    // (2 + 1) / (3 + 2)
    expect(rep.score('a')).toBeCloseTo(3 / 5, 12);
    expect(rep.entry('a')).toMatchObject({ agent: 'a', successes: 2, failures: 1, updatedAt: 0 });
  });

  it('graded outcomes count as partial successes, weights as several outcomes', () => {
    const rep = setup();
    rep.record('a', 0.75);
    expect(rep.entry('a')).toMatchObject({ successes: 0.75, failures: 0.25 });
    rep.record('b', 'failure', 3);
    expect(rep.score('b')).toBeCloseTo(1 / 5, 12);
  });

  it('the prior is configurable', () => {
    const rep = setup({ prior: { successes: 9, failures: 1 } });
    expect(rep.score('x')).toBeCloseTo(0.9, 12);
    rep.record('x', 'failure', 10);
    expect(rep.score('x')).toBeCloseTo(9 / 20, 12);
  });

  it('evidence halves after one half-life, lazily, with no timer per agent', () => {
    const rep = setup({ halfLifeMs: 1000 });
    rep.record('a', 'success', 8);
    rep.record('a', 'failure', 4);
    expect(clock.pending).toBe(0);
    clock.advance(1000);
    expect(rep.entry('a')).toMatchObject({ successes: 4, failures: 2, updatedAt: 0 });
    expect(rep.score('a')).toBeCloseTo(5 / 8, 12);
    clock.advance(1000);
    expect(rep.entry('a')).toMatchObject({ successes: 2, failures: 1 });
    // The score drifts back towards the prior as the evidence fades.
    clock.advance(100_000);
    expect(rep.score('a')).toBeCloseTo(0.5, 9);
  });

  it('a new outcome adds to the decayed evidence (recent outcomes weigh more)', () => {
    const rep = setup({ halfLifeMs: 1000 });
    rep.record('a', 'failure', 4);
    clock.advance(2000);
    rep.record('a', 'success');
    expect(rep.entry('a')).toMatchObject({ successes: 1, failures: 1, updatedAt: 2000 });
    // Same outcomes without decay: one success against four failures.
    const still = setup({ halfLifeMs: Number.POSITIVE_INFINITY });
    still.record('a', 'failure', 4);
    clock.advance(10 * HOUR);
    still.record('a', 'success');
    expect(still.entry('a')).toMatchObject({ successes: 1, failures: 4 });
  });

  it('keys refs and pids by pidKey, names as given', () => {
    const rep = setup();
    const ref = rt.spawnSync(behaviour<void, null>({ init: () => null }), undefined);
    rep.record(ref, 'success');
    expect(subjectKey(ref)).toBe(pidKey(ref));
    expect(rep.score(pidKey(ref))).toBe(rep.score(ref));
    expect(rep.score(JSON.parse(JSON.stringify(ref)))).toBe(rep.score(ref));
    expect(rep.rankings()[0]?.agent).toBe(pidKey(ref));
  });

  it('publishes recorded telemetry', async () => {
    const rep = setup();
    const event = awaitTelemetry(rt, REPUTATION_RECORDED);
    rep.record('a', 'success');
    expect(await event).toMatchObject({
      measurements: { successes: 1, failures: 0 },
      metadata: { agent: 'a', outcome: 'success', weight: 1 },
    });
  });
});

describe('Reputation: rankings, forget, prune', () => {
  it('ranks by score, then by evidence, then by key; limit cuts the list', () => {
    const rep = setup();
    rep.record('c', 'success', 10);
    rep.record('a', 'success');
    rep.record('b', 'success');
    rep.record('d', 'failure');
    rep.record('e', 'success', 1);
    expect(rep.rankings().map((e) => e.agent)).toEqual(['c', 'a', 'b', 'e', 'd']);
    expect(rep.rankings(2).map((e) => e.agent)).toEqual(['c', 'a']);
    expect(rep.rankings(0)).toEqual([]);
  });

  it('rankings reflect decay: an old star falls behind a recent performer', () => {
    const rep = setup({ halfLifeMs: 1000 });
    rep.record('old', 'success', 20);
    clock.advance(10_000);
    rep.record('new', 'success', 3);
    expect(rep.rankings().map((e) => e.agent)).toEqual(['new', 'old']);
  });

  it('forget drops a record; prune drops records whose evidence has faded', () => {
    const rep = setup({ halfLifeMs: 1000 });
    rep.record('a', 'success');
    rep.record('b', 'success');
    expect(rep.forget('a')).toBe(true);
    expect(rep.forget('a')).toBe(false);
    expect(rep.score('a')).toBe(0.5);
    clock.advance(5000);
    rep.record('c', 'success');
    expect(rep.prune(0.5)).toBe(1);
    expect(rep.size).toBe(1);
    expect(rep.rankings().map((e) => e.agent)).toEqual(['c']);
  });
});

describe('Reputation: as weights', () => {
  const Voter = withVoting<Vote, Vote, never, never, never, never>(
    behaviour<Vote, Vote>({ init: (v) => v }),
    (_p, v) => v,
  );

  it('weights a real Consensus.propose weighted vote: the trusted agent outweighs two untrusted ones', async () => {
    const rep = setup();
    const c = await Consensus.start(rt);
    const trusted = rt.spawnSync(Voter, 'yes');
    const others = [rt.spawnSync(Voter, 'no'), rt.spawnSync(Voter, 'no')];
    rep.record(trusted, 'success', 18);
    for (const o of others) rep.record(o, 'failure', 18);
    const ps = [trusted, ...others];
    const weights = rep.weights(ps);
    expect(weights).toEqual([0.95, 0.05, 0.05].map((w) => expect.closeTo(w, 12)));
    expect(await c.propose(ps, 'deploy')).toMatchObject({ decided: true, outcome: 'rejected' });
    const r = await c.propose(ps, 'deploy', { rule: { kind: 'weighted', weights, threshold: 0.5 } });
    expect(r).toMatchObject({ decided: true, outcome: 'accepted', rule: 'weighted' });
  });

  it('weights an allocate: shares of a scarce resource follow reputation', async () => {
    const rep = setup();
    const alloc = await Allocator.start(rt);
    const Greedy = withNeeds<void, null, never, never, never, never>(
      behaviour<void, null>({ init: () => null }),
      () => ({ gpu: 100 }),
    );
    const agents: AnyRef[] = [rt.spawnSync(Greedy, undefined), rt.spawnSync(Greedy, undefined)];
    // Scores 3/4 and 1/4.
    rep.record(agents[0] as AnyRef, 'success', 2);
    rep.record(agents[1] as AnyRef, 'failure', 2);
    const r = await alloc.allocate(
      agents,
      { gpu: 8 },
      { kind: 'weighted_max_min', weights: rep.weights(agents) },
    );
    expect(r.allocations.map((a) => a.granted.gpu)).toEqual([6, 2]);
    // A weight function over the same keys gives the same.
    const f = await alloc.allocate(
      agents,
      { gpu: 8 },
      {
        kind: 'weighted_proportional',
        weights: (key) => rep.score(key),
      },
    );
    expect(f.allocations.map((a) => a.granted.gpu)).toEqual([6, 2]);
  });

  it('every weight is > 0, unknown agents weigh the prior mean', () => {
    const rep = setup();
    rep.record('bad', 'failure', 1e6);
    const w = rep.weights(['bad', 'unknown']);
    expect(w[0]).toBeGreaterThan(0);
    expect(w[1]).toBe(0.5);
  });
});

describe('Reputation: extreme evidence (regression)', () => {
  const inside = (x: number) => x > 0 && x < 1;

  it('valid records with huge weights never drive the score to NaN, 0 or 1', () => {
    const rep = setup();
    rep.record('a', 'success', 1e308);
    // Used to overflow to Infinity: the score was NaN.
    const s = rep.record('a', 'success', 1e308);
    expect(inside(s)).toBe(true);
    expect(s).toBeGreaterThan(0.999);
    expect(rep.record('z', 'failure', Number.MAX_VALUE)).toSatisfy(inside);
    expect(rep.record('z', 'failure', Number.MAX_VALUE)).toSatisfy(inside);
    for (const e of rep.rankings()) {
      expect(Number.isFinite(e.successes) && Number.isFinite(e.failures)).toBe(true);
      expect(e.successes + e.failures).toBeLessThanOrEqual(MAX_EVIDENCE);
    }
  });

  it('saturated evidence keeps the ratio of successes to failures', () => {
    const rep = setup();
    expect(rep.record('a', 0.25, 1e308)).toBeCloseTo(0.25, 12);
    expect(rep.entry('a')).toMatchObject({ successes: 0.25 * MAX_EVIDENCE, failures: 0.75 * MAX_EVIDENCE });
    // Below saturation, counts are exact as before.
    rep.record('b', 'success', 1e14);
    expect(rep.entry('b')?.successes).toBe(1e14);
    // At saturation one more outcome of weight 1 still counts.
    rep.record('c', 'success', MAX_EVIDENCE);
    const before = rep.score('c');
    rep.record('c', 'failure');
    expect(rep.score('c')).toBeLessThan(before);
  });

  it('huge scores stay usable as allocation weights (used to be exactly 0, refused)', () => {
    const rep = setup();
    rep.record('a', 'success', 1e308);
    rep.record('a', 'failure', 1e308);
    const w = rep.weights(['a', 'b']);
    expect(w.every(inside)).toBe(true);
    const claims = [
      { agent: 'a', needs: { r: 1 } },
      { agent: 'b', needs: { r: 1 } },
    ];
    expect(() => computeAllocation(claims, { r: 1 }, { kind: 'weighted_max_min', weights: w })).not.toThrow();
  });

  it('extreme priors keep every score strictly inside (0, 1)', () => {
    const big = setup({ prior: { successes: Number.MAX_VALUE, failures: Number.MAX_VALUE } });
    // The prior sum overflows; the mean is still 1/2.
    expect(big.score('x')).toBe(0.5);
    big.record('x', 'success', 1e308);
    expect(big.score('x')).toSatisfy(inside);
    const tiny = setup({ prior: { successes: Number.MIN_VALUE, failures: Number.MIN_VALUE } });
    tiny.record('lose', 'failure', MAX_EVIDENCE);
    tiny.record('win', 'success', MAX_EVIDENCE);
    // Exactly 0 and 1 in plain arithmetic: clamped to the nearest doubles inside.
    expect(tiny.score('lose')).toBe(Number.MIN_VALUE);
    expect(tiny.score('win')).toBe(1 - Number.EPSILON / 2);
    expect(tiny.weights(['lose', 'win', 'new']).every(inside)).toBe(true);
  });
});

describe('Reputation: invalid input', () => {
  it.each([
    ['a zero half-life', { halfLifeMs: 0 }, /halfLifeMs/],
    ['a NaN half-life', { halfLifeMs: Number.NaN }, /halfLifeMs.*NaN/],
    ['a zero prior', { prior: { successes: 0, failures: 1 } }, /prior\.successes/],
    ['an infinite prior', { prior: { successes: 1, failures: Number.POSITIVE_INFINITY } }, /prior\.failures/],
    ['a prior that is not an object', { prior: 3 as never }, /invalid prior/],
  ])('the constructor rejects %s', (_n, options, re) => {
    expect(() => setup(options)).toThrow(InvalidArgumentError);
    expect(() => setup(options)).toThrow(re);
  });

  it('record, score, rankings, weights and prune reject bad arguments naming them', () => {
    const rep = setup();
    expect(() => rep.record('a', 'win' as never)).toThrow(/invalid outcome.*"win"/);
    expect(() => rep.record('a', 1.5)).toThrow(/invalid outcome.*1\.5/);
    expect(() => rep.record('a', Number.NaN)).toThrow(/invalid outcome/);
    expect(() => rep.record('a', 'success', 0)).toThrow(/invalid weight/);
    expect(() => rep.record('', 'success')).toThrow(/invalid agent/);
    expect(() => rep.score(42 as never)).toThrow(/invalid agent.*42/);
    expect(() => rep.rankings(-1)).toThrow(/invalid limit/);
    expect(() => rep.rankings(1.5)).toThrow(/invalid limit/);
    expect(() => rep.weights('a' as never)).toThrow(/invalid agents/);
    // A bad element is named by its index (it used to say just `agent`).
    expect(() => rep.weights(['a', 42 as never])).toThrow(/invalid agents\[1\].*42/);
    expect(() => rep.weights(['', 'b'])).toThrow(InvalidArgumentError);
    expect(() => rep.weights(['', 'b'])).toThrow(/invalid agents\[0\]/);
    expect(() => rep.prune(-1)).toThrow(/invalid minEvidence/);
    expect(rep.size).toBe(0);
  });
});
