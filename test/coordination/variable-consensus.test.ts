import { describe, expect, it } from 'vitest';
import {
  handleVariables,
  UnknownVariableError,
  VariableRejectedError,
  VariableReplica,
  type VariableSpec,
  VariableSubscriber,
  Variables,
} from '../../src/agents/variables.js';
import { Consensus, withVoting } from '../../src/coordination/consensus.js';
import {
  consensusPolicy,
  isVariableChangeProposal,
  proposeChange,
  type VariableChangeProposal,
} from '../../src/coordination/variable-consensus.js';
import {
  type AnyRef,
  behaviour,
  DynamicSupervisor,
  InvalidArgumentError,
  Runtime,
  reply,
  VirtualClock,
} from '../../src/kernel/index.js';
import { deferred, flush, watch } from '../kernel/helpers.js';

/**
 * A trial agent that keeps a replica of the variables and votes on learning-rate changes with its
 * own rule: yes when the proposed rate is at most `limit`; a 'silent' one never answers.
 */
interface Trial {
  readonly limit: number;
  readonly silent: boolean;
  readonly replica: VariableReplica;
  seen: number;
  /** Called each time the trial is asked to vote (tests await it). */
  readonly onAsked: () => void;
}
const TrialAgent = withVoting<Trial, Trial, 'lr', unknown, never, never, VariableChangeProposal>(
  behaviour<Trial, Trial, 'lr', unknown, never>({
    init: (s) => s,
    handleCall: (_m, _from, s) => reply(s.replica.get('lr'), s),
    handleCast: (msg, s, ctx) => {
      handleVariables(msg, s.replica, ctx);
      return s;
    },
  }),
  (p, s) => {
    if (!isVariableChangeProposal(p)) return 'abstain';
    s.seen++;
    s.onAsked();
    if (s.silent) return null;
    return (p.proposed as number) <= s.limit ? 'yes' : 'no';
  },
);

const LR: VariableSpec = { name: 'lr', kind: { type: 'float', min: 1e-5, max: 1, log: true }, default: 0.1 };

async function setup(
  limits: readonly (number | 'silent')[],
  opts: { clock?: VirtualClock; deadlineMs?: number } = {},
) {
  const rt = new Runtime(opts.clock === undefined ? {} : { clock: opts.clock });
  const vars = Variables.start(rt);
  const consensus = await Consensus.start(rt);
  await vars.register({
    ...LR,
    policy: consensusPolicy(consensus, vars, { deadlineMs: opts.deadlineMs ?? 1000 }),
  });
  const states: Trial[] = [];
  const trials: AnyRef[] = [];
  // Resolves once every trial has been asked to vote once.
  const allAsked = deferred();
  let asked = 0;
  const onAsked = () => {
    if (++asked === limits.length) allAsked.resolve();
  };
  for (const l of limits) {
    const s: Trial = {
      limit: l === 'silent' ? 0 : l,
      silent: l === 'silent',
      replica: new VariableReplica(),
      seen: 0,
      onAsked,
    };
    states.push(s);
    const ref = rt.spawnSync(TrialAgent, s);
    trials.push(ref);
    vars.subscribe('lr', ref);
  }
  return { rt, vars, consensus, states, trials, allAsked: allAsked.promise };
}

describe('proposeChange: variables governed by consensus', () => {
  it('applies a change the subscribers accept, and every replica gets it', async () => {
    const { rt, vars, trials } = await setup([0.5, 0.5, 0.01]);
    const out = await proposeChange(vars, 'lr', 0.3, { modifier: 'tuner' });
    expect(out).toMatchObject({ accepted: true, version: 1 });
    expect(vars.info('lr')).toMatchObject({ value: 0.3, version: 1, modifier: 'tuner' });
    for (const t of trials) expect(await rt.call(t, 'lr')).toBe(0.3);
    await rt.shutdown();
  });

  it('keeps the value when the majority refuses, and reports the tally', async () => {
    const { rt, vars, states } = await setup([0.5, 0.01, 0.01]);
    const out = await proposeChange(vars, 'lr', 0.3);
    expect(out.accepted).toBe(false);
    if (out.accepted) throw new Error('unreachable');
    expect(out.consensus).toMatchObject({ decided: true, outcome: 'rejected' });
    expect(out.consensus?.no).toBeGreaterThanOrEqual(2);
    expect(out.reason).toContain('rejected');
    expect(vars.info('lr')).toMatchObject({ value: 0.1, version: 0 });
    expect(states.every((s) => s.seen === 1)).toBe(true);
    // update() on the same variable goes through the same vote, and fails typed.
    await expect(vars.update('lr', 0.2)).rejects.toMatchObject({ code: 'E_VARIABLE_REJECTED' });
    await rt.shutdown();
  });

  it('decides without a crashed voter (counted absent) and still applies a majority yes', async () => {
    const { rt, vars, trials } = await setup([0.5, 0.5, 0.5, 0.01, 0.5]);
    rt.kill(trials[3] as AnyRef);
    await rt.awaitExit(trials[3] as AnyRef);
    const out = await proposeChange(vars, 'lr', 0.2);
    expect(out.accepted).toBe(true);
    expect(vars.get('lr')).toBe(0.2);
    await rt.shutdown();
  });

  it('fails at the deadline when voters stay silent (virtual clock), and nothing changes', async () => {
    const clock = new VirtualClock();
    const { rt, vars, allAsked } = await setup([0.5, 'silent', 'silent'], { clock, deadlineMs: 200 });
    const promise = proposeChange(vars, 'lr', 0.2);
    const pending = watch(promise);
    // The session armed its deadline before fanning out; once all were asked, move past it.
    await allAsked;
    clock.advance(199);
    await flush();
    expect(pending.current.state).toBe('pending');
    clock.advance(1);
    const out = await promise;
    expect(out.accepted).toBe(false);
    if (out.accepted) throw new Error('unreachable');
    expect(out.consensus).toMatchObject({ decided: false, reason: 'deadline', yes: 1, pending: 2 });
    expect(vars.info('lr')?.version).toBe(0);
    await rt.shutdown();
  });

  it('rejects with nobody to vote unless told to accept', async () => {
    const rt = new Runtime();
    const vars = Variables.start(rt);
    const consensus = await Consensus.start(rt);
    await vars.register({ ...LR, policy: consensusPolicy(consensus, vars) });
    await vars.register({
      ...LR,
      name: 'momentum',
      default: 0.5,
      policy: consensusPolicy(consensus, vars, { whenNoParticipants: 'accept' }),
    });
    expect(await proposeChange(vars, 'lr', 0.2)).toMatchObject({
      accepted: false,
      reason: expect.stringContaining('no participants'),
    });
    expect(await proposeChange(vars, 'momentum', 0.9)).toMatchObject({ accepted: true, version: 1 });
    await rt.shutdown();
  });

  it('bad input: unknown variable, non-consensus variable, invalid value, bad options', async () => {
    const { rt, vars, consensus, states } = await setup([0.5]);
    await vars.register({ ...LR, name: 'plain' });
    await expect(proposeChange(vars, 'nope', 1)).rejects.toBeInstanceOf(UnknownVariableError);
    const plain = await proposeChange(vars, 'plain', 0.2).catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(InvalidArgumentError);
    expect((plain as Error).message).toContain('"plain" policy');
    // An out-of-bounds value never reaches the voters.
    const bad = await proposeChange(vars, 'lr', 5).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(InvalidArgumentError);
    expect((bad as Error).message).toContain('lr');
    expect(states[0]?.seen).toBe(0);
    expect(() => consensusPolicy(consensus, vars, { deadlineMs: 0 })).toThrow(/deadlineMs/);
    expect(() => consensusPolicy(consensus, vars, { whenNoParticipants: 'maybe' as 'accept' })).toThrow(
      /whenNoParticipants/,
    );
    await rt.shutdown();
  });

  it('a decide that fails is an error, not an outcome', async () => {
    const rt = new Runtime();
    const vars = Variables.start(rt);
    const consensus = await Consensus.start(rt);
    await vars.register({
      ...LR,
      policy: consensusPolicy(consensus, vars, {
        participants: () => {
          throw new Error('directory down');
        },
      }),
    });
    await expect(proposeChange(vars, 'lr', 0.2)).rejects.toThrow(/directory down/);
    expect(vars.info('lr')?.version).toBe(0);
    await rt.shutdown();
  });
});

describe('proposeChange: regressions', () => {
  it('the ready-made VariableSubscriber, asked to vote as a subscriber, ignores the proposal and stays subscribed', async () => {
    const clock = new VirtualClock();
    const rt = new Runtime({ clock });
    const vars = Variables.start(rt);
    const consensus = await Consensus.start(rt);
    await vars.register({ ...LR, policy: consensusPolicy(consensus, vars, { deadlineMs: 100 }) });
    const sub = rt.spawnSync(VariableSubscriber, undefined);
    vars.subscribe('lr', sub);
    const exits: unknown[] = [];
    rt.onExit(sub, (r) => exits.push(r));
    const out = proposeChange(vars, 'lr', 0.2);
    // Once the session has started (the supervisor answers after starting it), the proposal is in
    // the subscriber's mailbox; a call behind it returns once the proposal was handled.
    await DynamicSupervisor.countChildren(rt, consensus.supervisor);
    expect(await rt.call(sub, { type: 'get', name: 'lr' })).toBe(0.1);
    clock.advance(100);
    expect(await out).toMatchObject({ accepted: false, consensus: { reason: 'deadline', pending: 1 } });
    expect(exits).toEqual([]);
    expect(vars.subscribers('lr')).toHaveLength(1);
    await rt.shutdown();
  });

  it('an ack that arrived before its deadline counts, even while the owner was waiting on a vote', async () => {
    const clock = new VirtualClock();
    const rt = new Runtime({ clock });
    const vars = Variables.start(rt, { ackTimeoutMs: 100 });
    const consensus = await Consensus.start(rt);
    // A participant that never answers: the vote on `b` runs to its 1000 ms deadline.
    const asked = deferred();
    const Slow = withVoting(behaviour<void, void>({ init: () => undefined }), () => {
      asked.resolve();
      return null;
    });
    const slow = rt.spawnSync(Slow, undefined);
    await vars.register({ name: 'a', kind: { type: 'int', min: 0, max: 9 }, default: 0 });
    await vars.register({
      name: 'b',
      kind: { type: 'int', min: 0, max: 9 },
      default: 0,
      policy: consensusPolicy(consensus, vars, { deadlineMs: 1000, participants: () => [slow] }),
    });
    const sub = rt.spawnSync(VariableSubscriber, undefined);
    vars.subscribe('a', sub);
    const wa = vars.update('a', 1);
    const wb = vars.update('b', 1).catch((e: unknown) => e);
    await asked.promise; // the owner is waiting on b's vote
    // The subscriber applied a's broadcast (and cast its ack, now queued at the busy owner).
    expect(await rt.call(sub, { type: 'get', name: 'a' })).toBe(1);
    clock.advance(150); // a's ack deadline passes while the owner is still busy
    clock.advance(900); // b's vote reaches its deadline; the owner reads its mailbox again
    expect(await wa).toMatchObject({ acked: 1, missing: [] });
    expect(await wb).toBeInstanceOf(VariableRejectedError);
    await rt.shutdown();
  });

  it('a bad rule is refused when the policy is made', async () => {
    const rt = new Runtime();
    const vars = Variables.start(rt);
    const consensus = await Consensus.start(rt);
    expect(() => consensusPolicy(consensus, vars, { rule: { kind: 'quorum', quorum: 0 } })).toThrow(
      /rule quorum/,
    );
    expect(() => consensusPolicy(consensus, vars, { rule: { kind: 'vibes' } as never })).toThrow(/rule kind/);
    expect(() =>
      consensusPolicy(consensus, vars, { rule: { kind: 'weighted', weights: [1, -1], threshold: 0.5 } }),
    ).toThrow(/weights\[1\]/);
    await rt.shutdown();
  });
});
