/**
 * consensus_round_100: 100 voter agents; a round casts a proposal to all 100, each votes yes (its
 * own decision: its policy accepts every proposal) by cast to a collector, and is timed until the
 * 51st yes has arrived. The other 49 votes are collected before the next round starts, outside
 * the timed part. 100 untimed warm-up rounds, then 2,000 timed rounds.
 *
 * The headline figure reuses one long-lived collector session across rounds (BENCH_SPEC.md times
 * the vote, not the session's start). `p99_us_session_per_round` and `p50_us_session_per_round`
 * time the full service path instead: `Consensus.propose` starting a session under the dynamic
 * supervisor for every round, until its promise resolves with the majority decision.
 */
import {
  Consensus,
  type ProposalMessage,
  type SessionRef,
  type VoteMessage,
  withVoting,
} from '../../src/coordination/consensus.js';
import { type AnyRef, behaviour, Runtime } from '../../src/kernel/index.js';
import { type Fields, now, percentiles, settle, type Workload } from '../harness.js';

const VOTERS = 100;
const MAJORITY = VOTERS / 2 + 1;
const WARMUP = 100;
const ROUNDS = 2_000;

/** A voter whose policy decides: it accepts proposals up to its limit (every round number here). */
export const BenchVoter = withVoting<number, number, never, never, never, never, number>(
  behaviour<number, number>({ init: (limit) => limit }),
  (round, limit) => (round <= limit ? 'yes' : 'no'),
);

/** What the long-lived collector reports each round. */
interface Round {
  id: number;
  yes: number;
  votes: number;
  majorityAt: bigint;
  onMajority: () => void;
  onAll: () => void;
}

const Collector = behaviour<Round, Round, never, never, VoteMessage>({
  init: (round) => round,
  handleCast(msg, r) {
    const { id, vote } = msg;
    // Read: the voter may reuse its vote object (as the real session does).
    msg.inFlight = false;
    if (id !== r.id) return r;
    r.votes++;
    if (vote === 'yes' && ++r.yes === MAJORITY) {
      // Taken in the handler: the moment the majority exists.
      r.majorityAt = now();
      r.onMajority();
    }
    if (r.votes === VOTERS) r.onAll();
    return r;
  },
});

async function collectorRounds(rt: Runtime, voters: AnyRef[]): Promise<Float64Array> {
  const round: Round = { id: 0, yes: 0, votes: 0, majorityAt: 0n, onMajority: () => {}, onAll: () => {} };
  const session = rt.spawnSync(Collector, round) as unknown as SessionRef;
  const samples = new Float64Array(ROUNDS);
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const majority = new Promise<void>((resolve) => {
      round.onMajority = resolve;
    });
    const all = new Promise<void>((resolve) => {
      round.onAll = resolve;
    });
    round.id = i + 1;
    round.yes = 0;
    round.votes = 0;
    const msg: ProposalMessage<number> = { type: 'proposal', session, id: round.id, proposal: round.id };
    const start = now();
    for (let v = 0; v < VOTERS; v++) rt.cast(voters[v] as AnyRef, msg);
    await majority;
    if (i >= WARMUP) samples[i - WARMUP] = Number(round.majorityAt - start) / 1e3;
    await all;
    // Untimed: let the event loop turn between rounds, so the scheduler's time slice (which
    // yields mid-drain once used up) starts fresh and never splits a timed round.
    await settle();
  }
  return samples;
}

async function sessionRounds(rt: Runtime, voters: AnyRef[]): Promise<Float64Array> {
  const consensus = await Consensus.start(rt);
  const samples = new Float64Array(ROUNDS);
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const start = now();
    const result = await consensus.propose(voters, i + 1);
    const us = Number(now() - start) / 1e3;
    if (!result.decided || result.outcome !== 'accepted') {
      throw new Error(`consensus_round_100: round ${i} ended ${JSON.stringify(result)}`);
    }
    if (i >= WARMUP) samples[i - WARMUP] = us;
    // The session stopped at the majority; let the remaining votes drain before the next round.
    await settle();
  }
  await consensus.stop();
  return samples;
}

async function run(): Promise<Fields> {
  const rt = new Runtime();
  try {
    const voters: AnyRef[] = [];
    for (let v = 0; v < VOTERS; v++) voters.push(rt.spawnSync(BenchVoter, Number.MAX_SAFE_INTEGER));
    const p = percentiles(await collectorRounds(rt, voters));
    const s = percentiles(await sessionRounds(rt, voters));
    return {
      p50_us: p.p50,
      p99_us: p.p99,
      mean_us: p.mean,
      n: p.n,
      p50_us_session_per_round: s.p50,
      p99_us_session_per_round: s.p99,
    };
  } finally {
    await rt.shutdown();
  }
}

export const consensusRound100: Workload = {
  name: 'consensus_round_100',
  description: 'proposal cast to 100 voters, timed to the 51st yes at the collector (2,000 rounds)',
  needsGc: false,
  run,
};
