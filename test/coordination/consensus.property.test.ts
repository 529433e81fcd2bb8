/**
 * Random vote patterns and crash schedules through consensus sessions. Invariants: one result and
 * at most one decision event per session, decisions consistent with the votes that arrived, and
 * every session ended once its deadline passed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CONSENSUS_FAILED,
  CONSENSUS_REACHED,
  Consensus,
  type ConsensusResult,
  type ConsensusRule,
  type Vote,
  withVoting,
} from '../../src/coordination/consensus.js';
import { type AnyRef, behaviour, DynamicSupervisor, Runtime, VirtualClock } from '../../src/kernel/index.js';

type Crash = 'none' | 'before' | 'on_proposal' | 'after_start';
interface Spec {
  /** What the participant's own logic answers; 'silent' never answers. */
  readonly answer: Vote | 'silent';
  readonly crash: Crash;
}

const Participant = withVoting<Spec, Spec, never, never, never, never>(
  behaviour<Spec, Spec>({ init: (s) => s }),
  (_proposal, state): Vote | null => {
    if (state.crash === 'on_proposal') throw new Error('crashed while voting');
    if (state.answer === 'silent') return null;
    return state.answer;
  },
);

const specArb = fc.record({
  answer: fc.constantFrom<Spec['answer']>('yes', 'yes', 'no', 'abstain', 'silent'),
  crash: fc.constantFrom<Crash>('none', 'none', 'none', 'before', 'on_proposal', 'after_start'),
});

const caseArb = fc.array(specArb, { minLength: 1, maxLength: 9 }).chain((specs) =>
  fc.record({
    specs: fc.constant(specs),
    rule: fc.oneof(
      fc.constant<ConsensusRule>({ kind: 'majority' }),
      fc.constant<ConsensusRule>({ kind: 'unanimous' }),
      fc.record({
        kind: fc.constant('weighted' as const),
        weights: fc.array(fc.integer({ min: 1, max: 5 }), {
          minLength: specs.length,
          maxLength: specs.length,
        }),
        threshold: fc.double({ min: 0.05, max: 1, noNaN: true }),
      }),
      fc.integer({ min: 1, max: specs.length }).map((quorum): ConsensusRule => ({ kind: 'quorum', quorum })),
    ),
  }),
);

function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('consensus properties', () => {
  it('one decision per session, consistent with the votes, and always ended after the deadline', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, fc.integer({ min: 1, max: 3 }), async ({ specs, rule }, sessions) => {
        const clock = new VirtualClock();
        const rt = new Runtime({ clock });
        const events: { id: unknown; kind: string }[] = [];
        rt.telemetry.attach('prop', [CONSENSUS_REACHED, CONSENSUS_FAILED], (event, _m, meta) => {
          events.push({ id: meta.id, kind: event[2] as string });
        });
        try {
          const c = await Consensus.start(rt);
          const ps: AnyRef[] = specs.map((s) => rt.spawnSync(Participant, s));
          specs.forEach((s, i) => {
            if (s.crash === 'before') rt.kill(ps[i] as AnyRef);
          });
          // Several sessions at once over the same participants, each with its own id.
          const settled: ConsensusResult[] = [];
          const pending = Array.from({ length: sessions }, () =>
            c.propose(ps, 'p', { rule, deadlineMs: 1000 }).then((r) => {
              settled.push(r);
              return r;
            }),
          );
          await DynamicSupervisor.countChildren(rt, c.supervisor);
          specs.forEach((s, i) => {
            if (s.crash === 'after_start') rt.kill(ps[i] as AnyRef);
          });
          await flush();
          clock.advance(1000);
          await flush();
          await flush();
          // Every session has ended once its deadline passed, each exactly once.
          expect(settled).toHaveLength(sessions);
          const all = await Promise.all(pending);
          expect(new Set(all.map((r) => r.id)).size).toBe(sessions);
          expect(events).toHaveLength(sessions);
          for (const r of all) check(r);
        } finally {
          await rt.shutdown();
        }

        // The session compares weight sums with a relative tolerance of 1e-9 (sums of floats in
        // another order than the total: 0.05 of 20 is 1.0000000000000002); so does the oracle.
        function reach(r: ConsensusResult): number {
          return r.threshold * (1 - 1e-9);
        }

        function check(r: ConsensusResult): void {
          const mine = events.filter((e) => e.id === r.id);
          expect(mine).toHaveLength(1);
          expect(mine[0]?.kind).toBe(r.decided && r.outcome === 'accepted' ? 'reached' : 'failed');

          // The tally accounts for every participant exactly once.
          const n = specs.length;
          expect(r.yes + r.no + r.abstain + r.absent + r.pending).toBe(n);
          // Votes match what the participants' own logic answers (crashed-before ones cannot vote).
          const could = (v: Vote) =>
            specs.filter((s) => s.answer === v && s.crash !== 'before' && s.crash !== 'on_proposal').length;
          expect(r.yes).toBeLessThanOrEqual(could('yes'));
          expect(r.no).toBeLessThanOrEqual(could('no'));
          expect(r.abstain).toBeLessThanOrEqual(could('abstain'));
          // A crashed participant is absent, or still pending when the session decided early.
          expect(r.absent + r.pending).toBeGreaterThanOrEqual(
            specs.filter((s) => s.crash === 'before' || s.crash === 'on_proposal').length,
          );

          // Decisions are consistent with the votes that arrived.
          const cast = r.yes + r.no + r.abstain;
          if (r.decided) {
            if (rule.kind === 'quorum') {
              expect(cast).toBeGreaterThanOrEqual(rule.quorum);
              if (r.outcome === 'accepted') expect(2 * r.yes).toBeGreaterThan(cast);
              // Early, pending votes could not have changed it; at the deadline they count as not cast.
              else expect(2 * r.yes).toBeLessThanOrEqual(cast);
            } else if (r.outcome === 'accepted') {
              expect(r.yesWeight).toBeGreaterThanOrEqual(reach(r));
            } else {
              const maxPendingWeight = rule.kind === 'weighted' ? r.pending * 5 : r.pending;
              if (rule.kind !== 'weighted') expect(r.yesWeight + maxPendingWeight).toBeLessThan(reach(r));
              expect(r.yesWeight).toBeLessThan(reach(r));
            }
          } else if (r.reason === 'no_quorum') {
            expect(rule.kind).toBe('quorum');
            expect(cast).toBeLessThan((rule as { quorum: number }).quorum);
          } else {
            // Undecided at the deadline: still open, so someone had not voted.
            expect(r.reason).toBe('deadline');
            expect(r.pending).toBeGreaterThan(0);
            expect(r.yesWeight).toBeLessThan(reach(r));
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});
