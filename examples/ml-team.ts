/**
 * A team of training agents coordinating without a central loop, with every MABEAM protocol:
 *
 * - four trial agents registered with capabilities in the agent registry (and restarted by its
 *   supervisor when one crashes);
 * - a learning rate they all keep a copy of, which changes only when a majority of them votes
 *   for the change (each trial judges it by its own limit);
 * - a coordinator chosen by Raft-style leader election among three candidates, and chosen again
 *   when it dies;
 * - a barrier at the end of each epoch, and a checkpoint written under a lease whose fencing token
 *   keeps a deposed coordinator from overwriting a newer checkpoint.
 *
 * Run: `npx tsc -p tsconfig.run.json && node build/examples/ml-team.js`.
 */
import { pathToFileURL } from 'node:url';
import {
  AGENT_RESTARTED,
  type AgentRef,
  AgentRegistry,
  Barriers,
  behaviour,
  Consensus,
  consensusPolicy,
  ElectionGroup,
  FencedError,
  FencedStore,
  handleVariables,
  isVariableChangeProposal,
  LeaseLock,
  proposeChange,
  Runtime,
  reply,
  type VariableChangeProposal,
  VariableReplica,
  Variables,
  withVoting,
} from '../src/index.js';

interface TrialConfig {
  readonly vars: Variables;
  /** The highest learning rate this trial accepts. */
  readonly maxLr: number;
}
interface TrialState {
  readonly maxLr: number;
  readonly replica: VariableReplica;
  epochs: number;
}
type TrialCall = { readonly type: 'train' } | { readonly type: 'lr' };

/**
 * A trial: keeps a replica of `lr` (subscribing itself in init, so a restarted trial is
 * subscribed again), votes on proposed learning rates by its own limit, and "trains" one epoch
 * per call: its loss falls with the epochs, faster with a larger learning rate.
 */
const Trial = withVoting<TrialConfig, TrialState, TrialCall, number, never, never, VariableChangeProposal>(
  behaviour<TrialConfig, TrialState, TrialCall, number, never>({
    init(config, ctx) {
      config.vars.subscribe('lr', ctx.self);
      return { maxLr: config.maxLr, replica: new VariableReplica(), epochs: 0 };
    },
    handleCall(msg, _from, s) {
      const lr = s.replica.get('lr') as number;
      if (msg.type === 'lr') return reply(lr, s);
      s.epochs++;
      return reply(Math.round(1000 * Math.exp(-lr * 10 * s.epochs)) / 1000, s);
    },
    handleCast(msg, s, ctx) {
      handleVariables(msg, s.replica, ctx);
      return s;
    },
  }),
  (p, s) => (isVariableChangeProposal(p) && (p.proposed as number) <= s.maxLr ? 'yes' : 'no'),
);

export interface TeamSummary {
  readonly accepted: number;
  readonly rejected: string;
  readonly lrSeenByTrials: number[];
  readonly losses: number[];
  readonly firstLeader: { member: string; term: number };
  readonly secondLeader: { member: string; term: number };
  readonly restartedTrialLr: number;
  readonly checkpoint: string | undefined;
  readonly staleWriteFenced: boolean;
}

export async function main(log: (line: string) => void = console.log): Promise<TeamSummary> {
  const runtime = new Runtime();
  try {
    const vars = Variables.start(runtime);
    const consensus = await Consensus.start(runtime);
    await vars.register({
      name: 'lr',
      kind: { type: 'float', min: 1e-4, max: 1, log: true },
      default: 0.01,
      policy: consensusPolicy(consensus, vars, { rule: { kind: 'majority' }, deadlineMs: 1000 }),
    });

    // Four trials in the agent registry, two on GPUs.
    const agents = await AgentRegistry.start(runtime);
    const limits = [0.1, 0.1, 0.05, 0.5];
    for (const [i, maxLr] of limits.entries()) {
      await agents.register({
        id: `trial-${i}`,
        type: 'trial',
        capabilities: i < 2 ? ['gpu'] : ['cpu'],
        config: { vars, maxLr },
        behaviour: Trial,
      });
      await agents.start(`trial-${i}`);
    }
    log(
      `trials on GPUs: ${agents
        .findByCapability('gpu')
        .map((a) => a.id)
        .join(', ')}`,
    );

    // A learning-rate change goes to the trials' vote.
    const up = await proposeChange(vars, 'lr', 0.08, { modifier: 'tuner' });
    log(`lr 0.08: ${up.accepted ? 'accepted' : 'rejected'}`);
    const tooHigh = await proposeChange(vars, 'lr', 0.3, { modifier: 'tuner' });
    const rejected = tooHigh.accepted ? 'accepted' : tooHigh.reason;
    log(`lr 0.3: ${rejected}`);
    const ids = limits.map((_, i) => `trial-${i}`);
    const refOf = (id: string) => agents.whereis(id) as AgentRef<TrialCall, number, never, never>;
    const lrSeenByTrials = await Promise.all(ids.map((id) => runtime.call(refOf(id), { type: 'lr' })));

    // A coordinator among three candidates.
    const election = await ElectionGroup.start(runtime, { members: ['c1', 'c2', 'c3'], seed: 7 });
    const first = await election.awaitLeader({ timeoutMs: 5000 });
    log(`coordinator: ${first.member} (term ${first.term})`);

    // One epoch: every trial trains, then waits at the barrier for the others.
    const barriers = await Barriers.start(runtime);
    const epoch = await barriers.create({ parties: ids.map(refOf), deadlineMs: 5000 });
    const losses = await Promise.all(
      ids.map(async (id) => {
        const loss = await runtime.call(refOf(id), { type: 'train' });
        await epoch.await(refOf(id));
        return loss;
      }),
    );
    log(`epoch 1 losses: ${losses.join(', ')}`);

    // The coordinator checkpoints under a lease; its fencing token guards the store.
    const lock = await LeaseLock.start(runtime);
    const checkpoints = new FencedStore<string>();
    const leaseA = await lock.acquire('checkpoint', first.ref, { ttlMs: 10_000 });
    checkpoints.write('checkpoint', leaseA.token, `epoch 1 by ${first.member}`);

    // The coordinator dies: a new one is elected in a later term and takes the checkpoint over.
    election.kill(first.member);
    const second = await election.awaitLeader({ minTerm: first.term + 1, timeoutMs: 5000 });
    log(`new coordinator: ${second.member} (term ${second.term})`);
    const leaseB = await lock.acquire('checkpoint', second.ref, { ttlMs: 10_000 });
    checkpoints.write('checkpoint', leaseB.token, `epoch 1 by ${second.member}`);
    // A late write from the deposed coordinator's old lease is refused.
    let staleWriteFenced = false;
    try {
      checkpoints.write('checkpoint', leaseA.token, 'stale');
    } catch (error) {
      staleWriteFenced = error instanceof FencedError;
    }
    log(`checkpoint: ${checkpoints.read('checkpoint')}; stale write fenced: ${staleWriteFenced}`);

    // A trial crashes: the registry's supervisor restarts it, and it subscribes again.
    const old = refOf('trial-2');
    const restartedEvent = new Promise<void>((resolve) => {
      runtime.telemetry.attach('example-restart', AGENT_RESTARTED, (_e, _m, meta) => {
        if (meta.id === 'trial-2') resolve();
      });
    });
    runtime.kill(old);
    await restartedEvent;
    runtime.telemetry.detach('example-restart');
    const restarted = refOf('trial-2');
    const restartedTrialLr = await runtime.call(restarted, { type: 'lr' });
    log(`trial-2 restarted (restarts: ${agents.info('trial-2')?.restarts}), lr ${restartedTrialLr}`);

    return {
      accepted: up.accepted ? 1 : 0,
      rejected,
      lrSeenByTrials,
      losses,
      firstLeader: { member: first.member, term: first.term },
      secondLeader: { member: second.member, term: second.term },
      restartedTrialLr,
      checkpoint: checkpoints.read('checkpoint'),
      staleWriteFenced,
    };
  } finally {
    await runtime.shutdown();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
