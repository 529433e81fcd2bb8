/**
 * Random crash schedules through leader elections, on a VirtualClock. Members are killed (and
 * restarted by the group's supervisor), stopped and started again at random virtual times, the
 * leader among them, while the network between them delays, reorders, loses and duplicates
 * messages. Invariants: at most one leader per term; each member's election terms
 * strictly increase; every election is backed by a majority of persisted votes; a member never
 * changes its vote within a term, nor goes back a term, across restarts; `leader()` only ever
 * reports a member that won that term; and once a majority is alive long enough, a leader exists
 * that every running member follows.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ELECTION_ELECTED,
  ElectionGroup,
  type ElectionPersistentState,
  type ElectionStorage,
  type ElectionTransport,
  MemoryElectionStorage,
  memberRandom,
} from '../../src/coordination/election.js';
import { Runtime, VirtualClock } from '../../src/kernel/index.js';

type OpKind = 'kill' | 'kill_leader' | 'stop' | 'start';
const HEARTBEAT_MS = 10;
const TIMEOUT: [number, number] = [50, 100];
const SCHEDULE_MS = 1500;

const caseArb = fc.record({
  n: fc.integer({ min: 1, max: 7 }),
  seed: fc.integer(),
  monitorLeader: fc.boolean(),
  checkQuorum: fc.boolean(),
  // How far virtual time jumps between event-loop turns. Large steps fire several members' timers
  // before any of them has run, so candidacies overlap and votes split, as with slow networks.
  stepMs: fc.constantFrom(2, 5, 15, 30, 45),
  // The network between members: each message is delayed (reordering them), lost or duplicated.
  net: fc.record({
    delayMax: fc.constantFrom(0, 5, 20, 40, 80),
    drop: fc.constantFrom(0, 0, 0.1, 0.3),
    duplicate: fc.constantFrom(0, 0.1),
  }),
  ops: fc.array(
    fc.record({
      at: fc.integer({ min: 0, max: SCHEDULE_MS }),
      kind: fc.constantFrom<OpKind>('kill', 'kill', 'kill_leader', 'stop', 'start'),
      who: fc.nat({ max: 6 }),
    }),
    { maxLength: 16 },
  ),
});

function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Stable storage that keeps every write, to check what members persisted across restarts. */
class RecordingStorage implements ElectionStorage {
  readonly inner = new MemoryElectionStorage();
  readonly history = new Map<string, ElectionPersistentState[]>();
  load(member: string): ElectionPersistentState | undefined {
    return this.inner.load(member);
  }
  save(member: string, state: ElectionPersistentState): void {
    const list = this.history.get(member) ?? [];
    list.push({ term: state.term, votedFor: state.votedFor });
    this.history.set(member, list);
    this.inner.save(member, state);
  }
}

describe('election properties', () => {
  it('one leader per term, votes kept across crashes, and a leader once a majority is up', async () => {
    await fc.assert(
      fc.asyncProperty(caseArb, async ({ n, seed, monitorLeader, checkQuorum, stepMs, net, ops }) => {
        const clock = new VirtualClock();
        const rt = new Runtime({ clock });
        const storage = new RecordingStorage();
        const elected: { term: number; member: string }[] = [];
        const random = memberRandom(seed, 1000, 0);
        const faults: { delayMax: number; drop: number; duplicate: number } = { ...net };
        const transport: ElectionTransport = (_envelope, deliver) => {
          if (random() < faults.drop) return;
          const copies = random() < faults.duplicate ? 2 : 1;
          for (let i = 0; i < copies; i++) clock.setTimeout(deliver, random() * faults.delayMax);
        };
        rt.telemetry.attach('prop', [ELECTION_ELECTED], (_e, _m, meta) => {
          elected.push({ term: meta.term as number, member: meta.member as string });
        });
        try {
          const group = await ElectionGroup.start(rt, {
            members: n,
            heartbeatMs: HEARTBEAT_MS,
            electionTimeoutMs: TIMEOUT,
            seed,
            monitorLeader,
            checkQuorum,
            storage,
            transport,
            restartIntensity: { intensity: 1000 },
          });
          const names = group.members().map((m) => m.member);

          /** What must hold at every instant, checked after every step. */
          const checkNow = () => {
            const leader = group.leader();
            if (leader !== undefined) {
              // No false claim: the reported leader won exactly that term and still leads it.
              expect(elected).toContainEqual({ term: leader.term, member: leader.member });
              const view = group.members().find((m) => m.member === leader.member);
              expect(view).toMatchObject({ role: 'leader', term: leader.term });
              expect(view?.ref?.equals(leader.ref)).toBe(true);
              expect(leader.term).toBe(group.term());
            }
            const leading = group.members().filter((m) => m.role === 'leader');
            expect(new Set(leading.map((m) => m.term)).size).toBe(leading.length);
          };
          const step = async () => {
            clock.advance(stepMs);
            await flush();
            checkNow();
          };

          for (const op of [...ops].sort((a, b) => a.at - b.at)) {
            while (clock.now() < op.at) await step();
            const member = op.kind === 'kill_leader' ? group.leader()?.member : (names[op.who % n] as string);
            if (member === undefined) continue;
            if (op.kind === 'kill' || op.kind === 'kill_leader') group.kill(member);
            else if (op.kind === 'stop') await group.stopMember(member);
            else await group.startMember(member);
            await flush();
            checkNow();
          }

          // A majority up for long enough, on a network that has healed, elects a leader that
          // every running member follows. First a quiet period, so messages delayed before the
          // network healed have landed (Raft has no pre-vote here: a late candidacy may still
          // replace a fresh leader, which is allowed, so stability is checked once all follow).
          faults.drop = 0;
          faults.duplicate = 0;
          faults.delayMax = Math.min(faults.delayMax, 2);
          for (const m of group.members()) {
            if (group.members().filter((x) => x.ref !== undefined).length >= group.majority) break;
            if (m.ref === undefined) await group.startMember(m.member);
          }
          for (let t = 0; t < 2 * TIMEOUT[1]; t += stepMs) await step();
          const converged = () => {
            const l = group.leader();
            return (
              l !== undefined &&
              group
                .members()
                .every((m) => m.ref === undefined || (m.term === l.term && m.leader === l.member))
            );
          };
          for (let t = 0; !converged() && t < 5000; t += stepMs) await step();
          expect(converged(), 'no leader followed by all within 5 s of virtual time with a majority up').toBe(
            true,
          );
          // ... and it stays: heartbeats keep every follower's election timer from running out.
          const leader = group.leader();
          for (let t = 0; t < 3 * TIMEOUT[1]; t += stepMs) await step();
          expect(group.leader()).toEqual(leader);
          expect(converged()).toBe(true);

          // At most one leader per term; each member's election terms strictly increase.
          const byTerm = new Map<number, string>();
          const lastTerm = new Map<string, number>();
          for (const e of elected) {
            const other = byTerm.get(e.term);
            expect(other === undefined || other === e.member, `two leaders in term ${e.term}`).toBe(true);
            byTerm.set(e.term, e.member);
            expect(e.term).toBeGreaterThan(lastTerm.get(e.member) ?? 0);
            lastTerm.set(e.member, e.term);
          }
          // Persisted state: terms never go back, a vote once given in a term never changes.
          const votesFor = new Map<string, number>();
          for (const [member, list] of storage.history) {
            let term = 0;
            let vote: string | undefined;
            for (const s of list) {
              expect(s.term).toBeGreaterThanOrEqual(term);
              if (s.term === term && vote !== undefined)
                expect(s.votedFor, `${member} voted twice in ${term}`).toBe(vote);
              if (s.term !== term || vote === undefined) {
                if (s.votedFor !== undefined) {
                  const key = `${s.term}:${s.votedFor}`;
                  votesFor.set(key, (votesFor.get(key) ?? 0) + 1);
                }
              }
              term = s.term;
              vote = s.votedFor;
            }
          }
          // Every election is backed by a majority of votes persisted for the winner in its term.
          for (const e of elected) {
            expect(votesFor.get(`${e.term}:${e.member}`) ?? 0).toBeGreaterThanOrEqual(group.majority);
          }
        } finally {
          await rt.shutdown();
        }
      }),
      { numRuns: 80 },
    );
  });
});
