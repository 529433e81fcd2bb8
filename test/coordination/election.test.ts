/**
 * Leader election on a VirtualClock: time moves only when a test advances it, in small steps with
 * an event-loop turn after each, so the members' messages flow between timer firings as they would
 * in real time. Nothing here sleeps or waits on the wall clock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  ELECTION_ELECTED,
  ELECTION_STEPPED_DOWN,
  ElectionErrorCodes,
  ElectionGroup,
  type ElectionOptions,
  ElectionStoppedError,
  type LeaderChangedMessage,
  type LeaderInfo,
  MemoryElectionStorage,
  memberRandom,
  type RequestVoteMessage,
  UnknownMemberError,
  type VoteReplyMessage,
} from '../../src/coordination/election.js';
import {
  type AnyRef,
  ErrorCodes,
  InvalidArgumentError,
  Runtime,
  TimeoutError,
  VirtualClock,
} from '../../src/kernel/index.js';
import { awaitTelemetry, probe } from '../../src/kernel/testkit.js';

let rt: Runtime;
let clock: VirtualClock;
afterEach(async () => {
  await rt?.shutdown();
});

interface Elected {
  term: number;
  member: string;
  at: number;
}
interface SteppedDown {
  term: number;
  member: string;
  reason: string;
}

function setup() {
  clock = new VirtualClock();
  rt = new Runtime({ clock });
  const elected: Elected[] = [];
  const stepped: SteppedDown[] = [];
  rt.telemetry.attach('election-test', [ELECTION_ELECTED, ELECTION_STEPPED_DOWN], (event, _m, meta) => {
    if (event[2] === 'elected')
      elected.push({ term: meta.term as number, member: meta.member as string, at: clock.now() });
    else
      stepped.push({
        term: meta.term as number,
        member: meta.member as string,
        reason: meta.reason as string,
      });
  });
  return { elected, stepped };
}

const FAST: Omit<ElectionOptions, 'members'> = { heartbeatMs: 20, electionTimeoutMs: [100, 200], seed: 7 };

function start(
  members: ElectionOptions['members'],
  extra: Partial<ElectionOptions> = {},
): Promise<ElectionGroup> {
  return ElectionGroup.start(rt, { members, ...FAST, ...extra });
}

/** One event-loop turn: the runtime drains what is runnable. No time passes on purpose. */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Advance virtual time by `ms` in steps, letting messages flow after each step. */
async function drive(ms: number, stepMs = 5): Promise<void> {
  for (let t = 0; t < ms; t += stepMs) {
    clock.advance(Math.min(stepMs, ms - t));
    await flush();
  }
}

/** Advance virtual time until `promise` settles (at most `maxMs`), then return it. */
async function driveUntil<T>(promise: Promise<T>, maxMs = 5000, stepMs = 5): Promise<T> {
  let settled = false;
  const watched = promise.finally(() => {
    settled = true;
  });
  watched.catch(() => {});
  for (let t = 0; t < maxMs && !settled; t += stepMs) {
    clock.advance(stepMs);
    await flush();
  }
  await flush();
  return watched;
}

function leadersByTerm(elected: Elected[]): Map<number, Set<string>> {
  const byTerm = new Map<number, Set<string>>();
  for (const e of elected) {
    const set = byTerm.get(e.term) ?? new Set();
    set.add(e.member);
    byTerm.set(e.term, set);
  }
  return byTerm;
}

describe('ElectionGroup: electing a leader', () => {
  it('elects one leader that every member follows, and publishes elected', async () => {
    const { elected } = setup();
    const group = await start(5);
    expect(group.leader()).toBeUndefined();
    expect(group.term()).toBe(0);
    const event = awaitTelemetry(rt, ELECTION_ELECTED);
    const leader = await driveUntil(group.awaitLeader());
    expect((await event).metadata).toMatchObject({
      group: group.id,
      member: leader.member,
      term: leader.term,
    });
    expect(leader.term).toBeGreaterThanOrEqual(1);
    expect(group.leader()).toEqual(leader);
    expect(rt.isAlive(leader.ref)).toBe(true);

    // After a few heartbeats every member is in the leader's term and follows it.
    await drive(100);
    const members = group.members();
    expect(members.map((m) => m.term)).toEqual(Array(5).fill(leader.term));
    expect(members.map((m) => m.leader)).toEqual(Array(5).fill(leader.member));
    expect(members.filter((m) => m.role === 'leader').map((m) => m.member)).toEqual([leader.member]);
    expect(group.term()).toBe(leader.term);
    expect(elected).toHaveLength(1);
  });

  it('keeps one leader per term and a stable leader while heartbeats flow', async () => {
    const { elected, stepped } = setup();
    const group = await start(5);
    const leader = await driveUntil(group.awaitLeader());
    await drive(5000);
    // Heartbeats (every 20 ms) keep every follower's election timer (100..200 ms) from running out.
    expect(group.leader()).toEqual(leader);
    expect(elected).toHaveLength(1);
    expect(stepped).toHaveLength(0);
    for (const members of leadersByTerm(elected).values()) expect(members.size).toBe(1);
  });

  it('a group of one elects itself', async () => {
    setup();
    const group = await start(1);
    const leader = await driveUntil(group.awaitLeader());
    expect(leader).toMatchObject({ member: 'm1', term: 1 });
  });

  it('takes member names', async () => {
    setup();
    const group = await start(['alpha', 'beta', 'gamma']);
    const leader = await driveUntil(group.awaitLeader());
    expect(['alpha', 'beta', 'gamma']).toContain(leader.member);
    expect(group.members().map((m) => m.member)).toEqual(['alpha', 'beta', 'gamma']);
    expect(group.majority).toBe(2);
  });

  it('is deterministic for a seed: same winner, term and time on a fresh runtime', async () => {
    const runOnce = async (seed: number) => {
      const { elected } = setup();
      const group = await start(5, { seed });
      await driveUntil(group.awaitLeader());
      await rt.shutdown();
      return elected;
    };
    const a = await runOnce(42);
    const b = await runOnce(42);
    expect(a).toEqual(b);
    expect(a).toHaveLength(1);
  });

  it('draws timeouts from a seeded generator per member and incarnation', () => {
    const draw = (seed: number, index: number, inc: number) => {
      const r = memberRandom(seed, index, inc);
      return [r(), r(), r()];
    };
    expect(draw(1, 0, 0)).toEqual(draw(1, 0, 0));
    expect(draw(1, 0, 0)).not.toEqual(draw(1, 1, 0));
    expect(draw(1, 0, 0)).not.toEqual(draw(1, 0, 1));
    expect(draw(1, 0, 0)).not.toEqual(draw(2, 0, 0));
    expect(draw(2 ** 40, 0, 0)).not.toEqual(draw(0, 0, 0));
    for (const x of draw(3, 4, 5)) expect(x >= 0 && x < 1).toBe(true);
  });
});

describe('ElectionGroup: failures', () => {
  it('elects a new leader with a higher term when the leader is killed, soon thanks to monitors', async () => {
    const { elected, stepped } = setup();
    const group = await start(5);
    const first = await driveUntil(group.awaitLeader());
    await drive(50);
    const killedAt = clock.now();
    expect(group.kill(first.member)).toBe(true);
    // The dead leader is no leader, at once.
    expect(group.leader()).toBeUndefined();
    expect(stepped).toContainEqual({ term: first.term, member: first.member, reason: 'exit' });

    const second = await driveUntil(group.awaitLeader({ minTerm: first.term + 1 }));
    expect(second.term).toBeGreaterThan(first.term);
    expect(second.ref.equals(first.ref)).toBe(false);
    // Followers watching the leader start within one heartbeat, not after a 100..200 ms timeout.
    expect(clock.now() - killedAt).toBeLessThan(100);
    for (const members of leadersByTerm(elected).values()) expect(members.size).toBe(1);

    // The killed member was restarted by the group's supervisor and follows the new leader.
    await drive(100);
    const back = group.members().find((m) => m.member === first.member);
    expect(back?.ref).toBeDefined();
    expect(back?.ref?.equals(first.ref)).toBe(false);
    expect(back).toMatchObject({ role: 'follower', term: second.term, leader: second.member });
  });

  it('re-elects by Raft timeouts alone when followers do not monitor the leader', async () => {
    setup();
    const group = await start(5, { monitorLeader: false });
    const first = await driveUntil(group.awaitLeader());
    await drive(50);
    const killedAt = clock.now();
    group.kill(first.member);
    const second = await driveUntil(group.awaitLeader({ minTerm: first.term + 1 }));
    expect(second.term).toBeGreaterThan(first.term);
    // Nobody noticed before a follower's election timeout (at least 100 ms after its last heartbeat).
    expect(clock.now() - killedAt).toBeGreaterThanOrEqual(100 - 20);
  });

  it('a restarted member keeps its term and vote: it does not vote twice in a term', async () => {
    setup();
    const storage = new MemoryElectionStorage();
    // The clock is never advanced here, so no member times out: the only candidate is the probe.
    const group = await start(3, { storage });
    const p = probe(rt);
    const target = group.ref('m3') as AnyRef;
    const ask = (candidate: string, term: number) => {
      const msg: RequestVoteMessage = { type: 'request_vote', group: group.id, term, candidate, from: p.ref };
      rt.cast(group.ref('m3') as AnyRef, msg);
    };

    ask('m1', 5);
    const first = await p.expectMessage<VoteReplyMessage>({ type: 'vote_reply', voter: 'm3' });
    expect(first).toMatchObject({ term: 5, granted: true });
    expect(storage.load('m3')).toEqual({ term: 5, votedFor: 'm1' });
    // The same candidate asking again (a retried request) is granted again; another is not.
    ask('m1', 5);
    expect(await p.expectMessage({ type: 'vote_reply' })).toMatchObject({ term: 5, granted: true });

    const restarted = awaitTelemetry(rt, ['mabeam', 'agent', 'spawn']);
    group.kill('m3');
    await restarted;
    const again = group.ref('m3');
    expect(again).toBeDefined();
    expect(again?.equals(target)).toBe(false);
    expect(group.members()[2]).toMatchObject({ role: 'follower', term: 5, votedFor: 'm1' });

    ask('m2', 5);
    expect(await p.expectMessage({ type: 'vote_reply' })).toMatchObject({
      voter: 'm3',
      term: 5,
      granted: false,
    });
    expect(storage.load('m3')).toEqual({ term: 5, votedFor: 'm1' });
    // A stale term is refused too; a newer term is a new vote.
    ask('m2', 4);
    expect(await p.expectMessage({ type: 'vote_reply' })).toMatchObject({ term: 5, granted: false });
    ask('m2', 6);
    expect(await p.expectMessage({ type: 'vote_reply' })).toMatchObject({ term: 6, granted: true });
    expect(storage.load('m3')).toEqual({ term: 6, votedFor: 'm2' });
  });

  it('a member that was stopped and started again also remembers its vote', async () => {
    setup();
    const group = await start(3);
    const p = probe(rt);
    rt.cast(group.ref('m2') as AnyRef, {
      type: 'request_vote',
      group: group.id,
      term: 3,
      candidate: 'm1',
      from: p.ref,
    } satisfies RequestVoteMessage);
    await p.expectMessage({ type: 'vote_reply', granted: true });
    await group.stopMember('m2');
    expect(group.ref('m2')).toBeUndefined();
    expect(group.members()[1]).toMatchObject({ role: undefined, term: 3, votedFor: 'm1' });
    await group.startMember('m2');
    rt.cast(group.ref('m2') as AnyRef, {
      type: 'request_vote',
      group: group.id,
      term: 3,
      candidate: 'm3',
      from: p.ref,
    } satisfies RequestVoteMessage);
    expect(await p.expectMessage({ type: 'vote_reply' })).toMatchObject({ granted: false, term: 3 });
  });

  it('a minority alive elects nobody and claims nobody', async () => {
    const { elected } = setup();
    const group = await start(5);
    await group.stopMember('m1');
    await group.stopMember('m2');
    await group.stopMember('m3');
    const waiting = group.awaitLeader({ timeoutMs: 3000 });
    const error = await driveUntil(
      waiting.catch((e: unknown) => e),
      4000,
    );
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as TimeoutError).code).toBe(ErrorCodes.TIMEOUT);
    expect(elected).toHaveLength(0);
    expect(group.leader()).toBeUndefined();
    expect(group.members().some((m) => m.role === 'leader')).toBe(false);
    // The two alive keep trying (terms rise), and no split vote ever makes a leader of one.
    expect(group.term()).toBeGreaterThan(1);

    // Back to a majority: a leader comes.
    await group.startMember('m1');
    const leader = await driveUntil(group.awaitLeader());
    expect(['m1', 'm4', 'm5']).toContain(leader.member);
  });

  it('a leader that loses its majority steps down (CheckQuorum) and is no longer reported', async () => {
    const { stepped } = setup();
    const group = await start(5, { monitorLeader: false });
    const leader = await driveUntil(group.awaitLeader());
    await drive(50);
    const others = group.members().filter((m) => m.member !== leader.member);
    // Keep the leader and one follower: two of five.
    for (const m of others.slice(0, 3)) await group.stopMember(m.member);
    const down = awaitTelemetry(rt, ELECTION_STEPPED_DOWN);
    await driveUntil(down, 1000);
    expect((await down).metadata).toMatchObject({
      member: leader.member,
      term: leader.term,
      reason: 'lost_quorum',
    });
    expect(stepped).toHaveLength(1);
    expect(group.leader()).toBeUndefined();
    await drive(1000);
    expect(group.leader()).toBeUndefined();
  });

  it('without CheckQuorum a cut-off leader keeps its term until it hears of a newer one', async () => {
    setup();
    const group = await start(3, { checkQuorum: false, monitorLeader: false });
    const leader = await driveUntil(group.awaitLeader());
    const others = group.members().filter((m) => m.member !== leader.member);
    for (const m of others) await group.stopMember(m.member);
    await drive(1000);
    expect(group.leader()).toEqual(leader);
  });

  it('a leader that hears of a higher term steps down', async () => {
    const { stepped } = setup();
    const group = await start(3);
    const leader = await driveUntil(group.awaitLeader());
    const p = probe(rt);
    const other = leader.member === 'm1' ? 'm2' : 'm1';
    rt.cast(leader.ref, {
      type: 'request_vote',
      group: group.id,
      term: leader.term + 10,
      candidate: other,
      from: p.ref,
    } satisfies RequestVoteMessage);
    await p.expectMessage({ type: 'vote_reply', granted: true, term: leader.term + 10 });
    expect(stepped).toContainEqual({ term: leader.term, member: leader.member, reason: 'higher_term' });
    // The stepped-down leader is a follower of the new term; until someone wins it, no leader.
    expect(group.leader()).toBeUndefined();
    const next = await driveUntil(group.awaitLeader({ minTerm: leader.term + 11 }));
    expect(next.term).toBeGreaterThan(leader.term + 10);
  });

  it('ignores messages of another group and malformed terms', async () => {
    setup();
    const group = await start(3);
    const p = probe(rt);
    const ref = group.ref('m1') as AnyRef;
    rt.cast(ref, { type: 'request_vote', group: 'other', term: 9, candidate: 'm2', from: p.ref });
    rt.cast(ref, { type: 'request_vote', group: group.id, term: Number.NaN, candidate: 'm2', from: p.ref });
    rt.cast(ref, { type: 'request_vote', group: group.id, term: 9, candidate: 'stranger', from: p.ref });
    rt.cast(ref, { type: 'append_entries', group: group.id, term: 9, leader: 'stranger', from: p.ref });
    await p.refuteMessage({ type: (t: unknown) => t === 'vote_reply' || t === 'append_reply' });
    expect(group.members()[0]).toMatchObject({ term: 0, votedFor: undefined, leader: undefined });
    // A member's request in the same message shape is answered.
    rt.cast(ref, { type: 'request_vote', group: group.id, term: 1, candidate: 'm2', from: p.ref });
    expect(await p.expectMessage({ type: 'vote_reply' })).toMatchObject({ granted: true, term: 1 });
  });
});

describe('ElectionGroup: an unreliable network', () => {
  it('elects nobody while every message is lost, and a leader once they flow again', async () => {
    const { elected } = setup();
    let lose = true;
    const group = await start(3, {
      transport: (_envelope, deliver) => {
        if (!lose) clock.setTimeout(deliver, 3);
      },
    });
    await drive(2000);
    expect(elected).toHaveLength(0);
    expect(group.leader()).toBeUndefined();
    // Everyone stood for election, over and over, and never won.
    expect(group.members().every((m) => m.votedFor === m.member && m.term > 1)).toBe(true);
    lose = false;
    const leader = await driveUntil(group.awaitLeader());
    expect(leader.term).toBeGreaterThan(1);
  });
});

describe('ElectionGroup: learning the leader', () => {
  it('casts leader changes to subscribed agents, starting with the current state', async () => {
    setup();
    const group = await start(3);
    const p = probe(rt);
    group.subscribe(p.ref);
    const initial = await p.expectMessage<LeaderChangedMessage>({ type: 'leader_changed' });
    expect(initial).toEqual({ type: 'leader_changed', group: group.id, leader: undefined });
    const leader = await driveUntil(group.awaitLeader());
    const told = await p.expectMessage<LeaderChangedMessage>({ type: 'leader_changed' });
    expect(told.leader).toEqual(leader);

    group.kill(leader.member);
    expect((await p.expectMessage<LeaderChangedMessage>({ type: 'leader_changed' })).leader).toBeUndefined();
    const next = await driveUntil(group.awaitLeader({ minTerm: leader.term + 1 }));
    const nextTold = await p.expectMessage<LeaderChangedMessage>({
      type: 'leader_changed',
      leader: (l: LeaderInfo | undefined) => l !== undefined,
    });
    expect(nextTold.leader).toEqual(next);
  });

  it('stops casting after unsubscribe', async () => {
    setup();
    const group = await start(3);
    const p = probe(rt);
    const unsubscribe = group.subscribe(p.ref);
    await p.expectMessage({ type: 'leader_changed' });
    unsubscribe();
    await driveUntil(group.awaitLeader());
    await p.refuteMessage({ type: 'leader_changed' });
  });

  it('awaitLeader resolves at once when a leader is there, and honours minTerm', async () => {
    setup();
    const group = await start(3);
    const leader = await driveUntil(group.awaitLeader());
    await expect(group.awaitLeader()).resolves.toEqual(leader);
    const later = group.awaitLeader({ minTerm: leader.term + 1, timeoutMs: 500 });
    await expect(driveUntil(later, 1000)).rejects.toBeInstanceOf(TimeoutError);
  });
});

describe('ElectionGroup: lifecycle and misuse', () => {
  it('stop ends the group: waiters reject with E_ELECTION_STOPPED, members are gone', async () => {
    setup();
    const group = await start(3);
    const waiting = group.awaitLeader({ timeoutMs: Number.POSITIVE_INFINITY });
    await group.stop();
    const error = await waiting.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ElectionStoppedError);
    expect((error as ElectionStoppedError).code).toBe(ElectionErrorCodes.STOPPED);
    expect(group.running).toBe(false);
    expect(group.leader()).toBeUndefined();
    expect(group.members().every((m) => m.ref === undefined)).toBe(true);
    await expect(group.awaitLeader()).rejects.toBeInstanceOf(ElectionStoppedError);
    await expect(group.startMember('m1')).rejects.toBeInstanceOf(ElectionStoppedError);
    expect(() => group.subscribe(rt.spawnSync({ init: () => null }, undefined))).toThrow(
      ElectionStoppedError,
    );
    await group.stop();
  });

  it('rejects unknown members with E_ELECTION_UNKNOWN_MEMBER', async () => {
    setup();
    const group = await start(2);
    expect(() => group.kill('nobody')).toThrow(UnknownMemberError);
    expect(() => group.ref('nobody')).toThrow(/has no member "nobody"/);
    await expect(group.stopMember('nobody')).rejects.toMatchObject({
      code: ElectionErrorCodes.UNKNOWN_MEMBER,
    });
  });

  it('rejects invalid options with InvalidArgumentError naming the field', async () => {
    setup();
    const cases: [unknown, RegExp][] = [
      [{ members: 0 }, /"members"/],
      [{ members: 2.5 }, /"members"/],
      [{ members: [] }, /"members"/],
      [{ members: ['a', 'a'] }, /"members\[1\]".*duplicate/],
      [{ members: ['a', ''] }, /"members\[1\]"/],
      [{ members: 'three' }, /"members"/],
      [{ members: 3, heartbeatMs: 0 }, /"heartbeatMs"/],
      [{ members: 3, heartbeatMs: 150 }, /"heartbeatMs".*below the minimum election timeout/],
      [{ members: 3, heartbeatMs: 200, electionTimeoutMs: [150, 300] }, /"heartbeatMs"/],
      [{ members: 3, electionTimeoutMs: [300, 150] }, /"electionTimeoutMs".*min must not exceed max/],
      [{ members: 3, electionTimeoutMs: [150] }, /"electionTimeoutMs"/],
      [{ members: 3, electionTimeoutMs: [-1, 150] }, /electionTimeoutMs\[0\]/],
      [{ members: 3, electionTimeoutMs: [150, Number.POSITIVE_INFINITY] }, /electionTimeoutMs\[1\]/],
      [{ members: 3, seed: 1.5 }, /"seed"/],
      [{ members: 3, monitorLeader: 'yes' }, /"monitorLeader"/],
      [{ members: 3, checkQuorum: 1 }, /"checkQuorum"/],
      [{ members: 3, restartIntensity: { intensity: -1 } }, /restartIntensity.intensity/],
      [{ members: 3, storage: {} }, /"storage"/],
      [{ members: 3, id: '' }, /"id"/],
      [{ members: 3, transport: 5 }, /"transport"/],
      [{ members: 3, heartbeat: 10 }, /"heartbeat".*unknown option/],
      [null, /election options/],
    ];
    for (const [options, field] of cases) {
      const error = await ElectionGroup.start(rt, options as ElectionOptions).catch((e: unknown) => e);
      expect(error, JSON.stringify(options)).toBeInstanceOf(InvalidArgumentError);
      expect((error as InvalidArgumentError).message).toMatch(field);
    }
    // Nothing was started for any of them.
    expect(rt.processes()).toHaveLength(0);
  });

  it('rejects invalid awaitLeader options and subscribers', async () => {
    setup();
    const group = await start(3);
    await expect(group.awaitLeader({ timeoutMs: 0 })).rejects.toThrow(/"timeoutMs"/);
    await expect(group.awaitLeader({ minTerm: Number.NaN })).rejects.toThrow(/"minTerm"/);
    expect(() => group.subscribe({} as AnyRef)).toThrow(InvalidArgumentError);
  });
});
