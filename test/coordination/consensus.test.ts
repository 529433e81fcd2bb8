import { afterEach, describe, expect, it } from 'vitest';
import {
  CONSENSUS_FAILED,
  CONSENSUS_REACHED,
  Consensus,
  type ConsensusResult,
  castVote,
  type ProposalMessage,
  type SessionId,
  type SessionRef,
  type Vote,
  type VoteMessage,
  withVoting,
} from '../../src/coordination/consensus.js';
import {
  type AnyRef,
  behaviour,
  DynamicSupervisor,
  InvalidArgumentError,
  Runtime,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitTelemetry } from '../../src/kernel/testkit.js';

/** A participant that accepts proposals at or below its own limit; 'silent' ones never answer. */
interface VoterState {
  limit: number;
  mode: 'judge' | 'abstain' | 'silent';
  seen: number;
}
const Judge = withVoting<VoterState, VoterState, never, never, 'crash', never, number>(
  behaviour<VoterState, VoterState, never, never, 'crash'>({
    init: (s) => s,
    handleCast: () => {
      throw new Error('crash requested');
    },
  }),
  (value, state): Vote | { vote: Vote; state: VoterState } => {
    if (state.mode === 'abstain') return 'abstain';
    const next = { ...state, seen: state.seen + 1 };
    return { vote: value <= state.limit ? 'yes' : 'no', state: next };
  },
);

/** Never answers: lets tests hold a session open and then crash participants mid-protocol. */
const Silent = behaviour<void, null, never, never, ProposalMessage>({
  init: () => null,
  handleCast: (_m, s) => s,
});

let rt: Runtime;
let clock: VirtualClock;
afterEach(async () => {
  await rt?.shutdown();
});

async function setup() {
  clock = new VirtualClock();
  rt = new Runtime({ clock });
  const consensus = await Consensus.start(rt);
  return consensus;
}
function judges(limits: number[], mode: VoterState['mode'] = 'judge'): AnyRef[] {
  return limits.map((limit) => rt.spawnSync(Judge, { limit, mode, seen: 0 }));
}
function silent(n: number): AnyRef[] {
  return Array.from({ length: n }, () => rt.spawnSync(Silent, undefined));
}

describe('Consensus: majority', () => {
  it('accepts when more than half vote yes, and publishes reached', async () => {
    const c = await setup();
    const reached = awaitTelemetry(rt, CONSENSUS_REACHED);
    const r = await c.propose(judges([10, 10, 10, 0, 0]), 5);
    expect(r).toMatchObject({ decided: true, outcome: 'accepted', threshold: 3 });
    if (r.decided) expect(r.yes).toBeGreaterThanOrEqual(3);
    expect((await reached).metadata.id).toBe(r.id);
  });

  it('rejects as soon as the majority is unreachable, with reason rejected', async () => {
    const c = await setup();
    const failed = awaitTelemetry(rt, CONSENSUS_FAILED);
    const r = await c.propose(judges([0, 0, 0, 10]), 5);
    expect(r).toMatchObject({ decided: true, outcome: 'rejected' });
    expect((await failed).metadata.reason).toBe('rejected');
  });

  it('decides early: a held-open session accepts at the threshold without waiting for the rest', async () => {
    const c = await setup();
    const r = await c.propose([...judges([9, 9]), ...silent(1)], 1, { rule: { kind: 'majority' } });
    expect(r).toMatchObject({ decided: true, outcome: 'accepted', yes: 2, pending: 1 });
  });

  it('the participants vote from their own state (a participant remembers proposals)', async () => {
    const c = await setup();
    const ps = judges([5, 5, 5]);
    await c.propose(ps, 1);
    const r = await c.propose(ps, 9);
    expect(r).toMatchObject({ decided: true, outcome: 'rejected', no: 2 });
  });
});

describe('Consensus: crashes and deadlines', () => {
  it('counts participants crashing mid-protocol as absent and decides once the outcome is fixed', async () => {
    const c = await setup();
    const ps = silent(3);
    const pending = c.propose(ps, 'x', { deadlineMs: 1000 });
    // The supervisor answers in order, so once this returns the session has started; then kill
    // two voters: a 3-party majority is out of reach.
    await DynamicSupervisor.countChildren(rt, c.supervisor);
    rt.kill(ps[0] as AnyRef);
    rt.kill(ps[1] as AnyRef);
    const r = await pending;
    expect(r).toMatchObject({ decided: true, outcome: 'rejected', absent: 2, pending: 1 });
  });

  it('a crash of a voter that already voted does not change its vote', async () => {
    const c = await setup();
    const [a] = judges([9]);
    const [s] = silent(1);
    // Unanimous: the session stays open while the silent participant has not voted.
    const pending = c.propose([a as AnyRef, s as AnyRef], 1, { rule: { kind: 'unanimous' } });
    await DynamicSupervisor.countChildren(rt, c.supervisor); // the session has started and cast
    await rt.whenMailboxBelow(a as AnyRef, 1); // a has taken the proposal and cast its yes
    rt.kill(a as AnyRef); // its DOWN reaches the session after its vote
    rt.kill(s as AnyRef);
    expect(await pending).toMatchObject({ decided: true, outcome: 'rejected', yes: 1, absent: 1 });
  });

  it('a participant that is already dead counts as absent', async () => {
    const c = await setup();
    const [dead, ...live] = judges([9, 9, 9]);
    rt.kill(dead as AnyRef);
    const r = await c.propose([dead as AnyRef, ...live], 1, { rule: { kind: 'unanimous' } });
    expect(r).toMatchObject({ decided: true, outcome: 'rejected', absent: 1 });
  });

  it('fails with reason deadline when votes are missing at the deadline (virtual clock)', async () => {
    const c = await setup();
    const failed = awaitTelemetry(rt, CONSENSUS_FAILED);
    const pending = c.propose([...judges([9]), ...silent(2)], 1, { deadlineMs: 200 });
    await DynamicSupervisor.countChildren(rt, c.supervisor);
    clock.advance(199);
    let done: ConsensusResult | undefined;
    void pending.then((r) => {
      done = r;
    });
    await DynamicSupervisor.countChildren(rt, c.supervisor);
    expect(done).toBeUndefined();
    clock.advance(1);
    expect(await pending).toMatchObject({ decided: false, reason: 'deadline', yes: 1, pending: 2 });
    expect((await failed).metadata.reason).toBe('deadline');
  });

  it('a session killed before deciding ends the proposal with session_exit', async () => {
    const c = await setup();
    const pending = c.propose(silent(3), 1);
    const [child] = await DynamicSupervisor.whichChildren(rt, c.supervisor);
    rt.kill(child?.ref as AnyRef);
    expect(await pending).toMatchObject({ decided: false, reason: 'session_exit', exitReason: 'killed' });
  });

  it('sessions are temporary children: gone after deciding, not restarted', async () => {
    const c = await setup();
    await c.propose(judges([9, 9, 9]), 1);
    await rt.stop(rt.spawnSync(Silent, undefined));
    expect((await DynamicSupervisor.countChildren(rt, c.supervisor)).active).toBe(0);
  });
});

describe('Consensus: unanimous, weighted, quorum', () => {
  it('unanimous accepts only when everyone says yes; an abstention rejects', async () => {
    const c = await setup();
    expect(await c.propose(judges([9, 9, 9]), 1, { rule: { kind: 'unanimous' } })).toMatchObject({
      outcome: 'accepted',
      yes: 3,
    });
    const ps = [...judges([9, 9]), ...judges([0], 'abstain')];
    expect(await c.propose(ps, 1, { rule: { kind: 'unanimous' } })).toMatchObject({
      outcome: 'rejected',
      abstain: 1,
    });
  });

  it('weighted: one heavy yes outweighs two light no votes', async () => {
    const c = await setup();
    const ps = judges([9, 0, 0]);
    const rule = { kind: 'weighted', weights: [5, 1, 1], threshold: 0.6 } as const;
    expect(await c.propose(ps, 1, { rule })).toMatchObject({ outcome: 'accepted', yesWeight: 5 });
    const rule2 = { kind: 'weighted', weights: [1, 5, 1], threshold: 0.6 } as const;
    expect(await c.propose(ps, 1, { rule: rule2 })).toMatchObject({ outcome: 'rejected' });
  });

  it('quorum: decided by the majority of cast votes once the quorum is met', async () => {
    const c = await setup();
    const ps = [...judges([9, 9, 0]), ...silent(2)];
    const pending = c.propose(ps, 1, { rule: { kind: 'quorum', quorum: 3 }, deadlineMs: 100 });
    await DynamicSupervisor.countChildren(rt, c.supervisor);
    clock.advance(100);
    expect(await pending).toMatchObject({ decided: true, outcome: 'accepted', yes: 2, no: 1, pending: 2 });
  });

  it('quorum: fails with no_quorum at the deadline, or early once it is unreachable', async () => {
    const c = await setup();
    const s = silent(3);
    const pending = c.propose([...judges([9]), ...s], 1, {
      rule: { kind: 'quorum', quorum: 3 },
      deadlineMs: 100,
    });
    await DynamicSupervisor.countChildren(rt, c.supervisor);
    clock.advance(100);
    expect(await pending).toMatchObject({ decided: false, reason: 'no_quorum', yes: 1 });
    const s2 = silent(3);
    const early = c.propose(s2, 1, { rule: { kind: 'quorum', quorum: 2 }, deadlineMs: 100 });
    await DynamicSupervisor.countChildren(rt, c.supervisor);
    rt.kill(s2[0] as AnyRef);
    rt.kill(s2[1] as AnyRef);
    expect(await early).toMatchObject({ decided: false, reason: 'no_quorum', absent: 2 });
  });
});

describe('Consensus: invalid input', () => {
  it.each([
    ['no participants', [], {}, /participants/],
    ['a non-pid', [{ id: 1 }], {}, /participants\[0\]/],
    [
      'a bad threshold',
      'ps',
      { rule: { kind: 'weighted', weights: [1, 1], threshold: 1.5 } },
      /threshold.*1\.5/,
    ],
    [
      'weights of the wrong length',
      'ps',
      { rule: { kind: 'weighted', weights: [1], threshold: 0.5 } },
      /weights/,
    ],
    [
      'a negative weight',
      'ps',
      { rule: { kind: 'weighted', weights: [1, -1], threshold: 0.5 } },
      /weights\[1\]/,
    ],
    ['a quorum above the participants', 'ps', { rule: { kind: 'quorum', quorum: 3 } }, /quorum.*3/],
    ['an unknown rule', 'ps', { rule: { kind: 'plurality' } }, /plurality/],
    ['a negative deadline', 'ps', { deadlineMs: -1 }, /deadlineMs/],
  ])('rejects %s with E_INVALID_ARGUMENT naming the value', async (_what, participants, options, message) => {
    const c = await setup();
    const ps = participants === 'ps' ? judges([1, 1]) : participants;
    // biome-ignore lint/suspicious/noExplicitAny: deliberately ill-typed input
    const err = await c.propose(ps as any, 1, options as any).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err).toMatchObject({ code: 'E_INVALID_ARGUMENT', message });
  });

  it('rejects duplicate participants', async () => {
    const c = await setup();
    const [a] = judges([1]);
    await expect(c.propose([a as AnyRef, a as AnyRef], 1)).rejects.toMatchObject({
      code: 'E_INVALID_ARGUMENT',
      message: /duplicate/,
    });
  });
});

/** Votes twice and asks a stranger to vote too: the session must count one vote per participant. */
const Stuffer = behaviour<AnyRef, AnyRef, never, never, ProposalMessage>({
  init: (stranger) => stranger,
  handleCast(msg, stranger, ctx) {
    castVote(ctx, msg, 'yes');
    castVote(ctx, msg, 'yes');
    ctx.cast(msg.session, { type: 'vote', id: msg.id, from: stranger, vote: 'yes' });
    ctx.cast(msg.session, { type: 'vote', id: 'other-session', from: ctx.self, vote: 'yes' });
    return stranger;
  },
});

describe('Consensus: participants and sessions', () => {
  it('counts one vote per participant: duplicates, strangers and other sessions are ignored', async () => {
    const c = await setup();
    const stranger = rt.spawnSync(Silent, undefined);
    const ps = [rt.spawnSync(Stuffer, stranger), ...judges([0, 0])];
    const r = await c.propose(ps, 5, { rule: { kind: 'majority' } });
    expect(r).toMatchObject({ decided: true, outcome: 'rejected', yes: 1, no: 2 });
  });

  it('withVoting: async decisions, withheld votes, and other casts reach the base behaviour', async () => {
    const c = await setup();
    const seen: string[] = [];
    const Async = withVoting<boolean, boolean, never, never, 'ping', never, number>(
      behaviour<boolean, boolean, never, never, 'ping'>({
        init: (b) => b,
        handleCast: (m, s) => {
          seen.push(m);
          return s;
        },
      }),
      async (_value, answers) => (answers ? 'yes' : null),
    );
    const yes = rt.spawnSync(Async, true);
    const quiet = rt.spawnSync(Async, false);
    rt.cast(yes, 'ping');
    const pending = c.propose([yes, quiet], 1, { deadlineMs: 50 });
    await DynamicSupervisor.countChildren(rt, c.supervisor);
    clock.advance(50);
    expect(await pending).toMatchObject({ decided: false, reason: 'deadline', yes: 1, pending: 1 });
    expect(seen).toEqual(['ping']);
  });

  it('runs concurrent sessions over the same participants independently', async () => {
    const c = await setup();
    const ps = judges([5, 5, 1]);
    const results = await Promise.all([c.propose(ps, 1), c.propose(ps, 3), c.propose(ps, 9)]);
    expect(results.map((r) => (r.decided ? r.outcome : r.reason))).toEqual([
      'accepted',
      'accepted',
      'rejected',
    ]);
    expect(new Set(results.map((r) => r.id)).size).toBe(3);
  });

  it('stopping the service ends running sessions with session_exit', async () => {
    const c = await setup();
    const failed = awaitTelemetry(rt, CONSENSUS_FAILED);
    const pending = c.propose(silent(2), 1);
    await DynamicSupervisor.countChildren(rt, c.supervisor);
    await c.stop();
    expect(await pending).toMatchObject({ decided: false, reason: 'session_exit', exitReason: 'shutdown' });
    expect((await failed).metadata.reason).toBe('session_exit');
  });
});

describe('Consensus: regressions', () => {
  it('weighted: a yes weight exactly at the threshold accepts despite float rounding of the total', async () => {
    const c = await setup();
    // 0.1 + 0.2 + 0.3 sums to 0.6000000000000001, so 0.5 of it is 0.30000000000000004 > 0.3.
    const ps = judges([0, 0, 9]);
    const rule = { kind: 'weighted', weights: [0.1, 0.2, 0.3], threshold: 0.5 } as const;
    expect(await c.propose(ps, 1, { rule })).toMatchObject({
      decided: true,
      outcome: 'accepted',
      yes: 1,
      no: 2,
    });
  });
});

describe('castVote: one vote object per participant, reused only once read', () => {
  interface Rec {
    readonly clear: boolean;
    /** What each vote said when it was read. */
    readonly said: [SessionId, Vote][];
    readonly objects: VoteMessage[];
    readonly onRead: () => void;
  }
  /** A collector that records each vote object; clears `inFlight` only if `clear` (a reading session). */
  const Recorder = behaviour<Rec, Rec, never, never, VoteMessage>({
    init: (s) => s,
    handleCast(msg, s) {
      s.said.push([msg.id, msg.vote]);
      s.objects.push(msg);
      if (s.clear) msg.inFlight = false;
      s.onRead();
      return s;
    },
  });
  /** Casts every vote it is given in one handler run, so all are in flight together. */
  const Voter = behaviour<void, void, never, never, readonly [ProposalMessage, Vote][]>({
    init: () => undefined,
    handleCast(votes, s, ctx) {
      for (const [p, v] of votes) castVote(ctx as never, p, v);
      return s;
    },
  });

  it.each([true, false])(
    'votes cast before any is read keep their own values (collector clears: %s)',
    async (clear) => {
      const rt = new Runtime();
      let read = deferredCount(3);
      const rec: Rec = { clear, said: [], objects: [], onRead: () => read.tick() };
      const session = rt.spawnSync(Recorder, rec) as unknown as SessionRef;
      const voter = rt.spawnSync(Voter, undefined);
      const p = (id: number): ProposalMessage => ({ type: 'proposal', session, id, proposal: id });
      rt.cast(voter, [
        [p(1), 'yes'],
        [p(2), 'no'],
        [p(3), 'abstain'],
      ]);
      await read.done;
      expect(rec.said).toEqual([
        [1, 'yes'],
        [2, 'no'],
        [3, 'abstain'],
      ]);
      expect(new Set(rec.objects).size).toBe(3);
      // Once read (and cleared), the participant's pooled object is used again.
      read = deferredCount(1);
      rt.cast(voter, [[p(4), 'no']]);
      await read.done;
      expect(rec.said.at(-1)).toEqual([4, 'no']);
      if (clear) expect(rec.objects.slice(0, 3)).toContain(rec.objects[3]);
      else expect(new Set(rec.objects).size).toBe(4);
      await rt.shutdown();
    },
  );
});

function deferredCount(n: number): { tick: () => void; done: Promise<void> } {
  let left = n;
  let resolve!: () => void;
  const done = new Promise<void>((r) => {
    resolve = r;
  });
  return {
    tick: () => {
      if (--left === 0) resolve();
    },
    done,
  };
}

describe('castVote after a session decided early', () => {
  it('a participant whose vote was never read (the session stopped) reuses its next vote object again', async () => {
    const rt = new Runtime();
    const Yes = withVoting(behaviour<void, void>({ init: () => undefined }), () => 'yes' as const);
    const ps = [0, 1, 2].map(() => rt.spawnSync(Yes, undefined));
    const consensus = await Consensus.start(rt);
    // Majority of 3 decides on the second yes; the third vote is never read.
    expect(await consensus.propose(ps, 'x')).toMatchObject({ decided: true, yes: 2, pending: 1 });
    const seen = new Map<number, Set<VoteMessage>>();
    let round = deferredCount(3);
    // Reads votes as the session does (clears inFlight).
    const Collector = behaviour<void, void, never, never, VoteMessage>({
      init: () => undefined,
      handleCast(v, s) {
        v.inFlight = false;
        const set = seen.get(v.from.id) ?? new Set();
        set.add(v);
        seen.set(v.from.id, set);
        round.tick();
        return s;
      },
    });
    const session = rt.spawnSync(Collector, undefined) as unknown as SessionRef;
    for (let r = 0; r < 3; r++) {
      round = deferredCount(3);
      for (const p of ps)
        rt.cast(p as AnyRef as never, { type: 'proposal', session, id: `r${r}`, proposal: 'y' });
      await round.done;
    }
    // Each participant used one object for all three rounds, the one whose vote was dropped too.
    expect(ps.map((p) => seen.get(p.id)?.size)).toEqual([1, 1, 1]);
    await rt.shutdown();
  });
});

describe('Consensus: a participant that cannot be reached', () => {
  it('one with a full bounded mailbox counts as absent; the others still decide', async () => {
    const c = await setup();
    // Busy: its one-message mailbox holds a message it has not taken yet (held in an async handler).
    const hold = deferredCount(1);
    const Busy = behaviour<void, void, never, never, 'work'>({
      init: () => undefined,
      async handleCast(_m, s) {
        await hold.done;
        return s;
      },
    });
    const busy = await rt.spawn(Busy, undefined, { mailbox: { capacity: 1 } });
    rt.cast(busy, 'work'); // taken: the handler is now waiting
    rt.cast(busy, 'work'); // queued: the mailbox is full
    const r = await c.propose([...judges([10, 10]), busy], 5);
    expect(r).toMatchObject({ decided: true, outcome: 'accepted', yes: 2, absent: 1 });
    // Nobody reachable: decided at once (the virtual clock never reaches the deadline).
    const lone = await c.propose([busy], 5);
    expect(lone).toMatchObject({ decided: true, outcome: 'rejected', absent: 1, pending: 0 });
    hold.tick();
  });
});
