/**
 * auction_vickrey_100: 100 bidder agents, one Vickrey auction per round through the full service
 * path: `Auctions.run` starts a session under the dynamic supervisor, the session casts the bid
 * request to all 100 bidders, each decides its bid from its own private value (`withBidding`),
 * casts it back, and the round is timed until the result promise resolves (all 100 bids
 * collected and validated, winner and second price determined, telemetry published). Values are
 * redrawn between rounds (untimed) from a seeded generator, and every result is checked against
 * the expected winner and price. 100 untimed warm-up rounds, then 2,000 timed rounds.
 */
import { Auctions, withBidding } from '../../src/economics/auction.js';
import { type AnyRef, behaviour, type Pid, pidEquals, Runtime } from '../../src/kernel/index.js';
import { type Fields, now, percentiles, settle, type Workload } from '../harness.js';

const BIDDERS = 100;
const WARMUP = 100;
const ROUNDS = 2_000;

/** A bidder's private value, redrawn by the workload between rounds. */
interface Value {
  v: number;
}

/** Bids its private value (truthful: the dominant strategy in a Vickrey auction). */
export const BenchBidder = withBidding<Value, Value, never, never, never, never>(
  behaviour<Value, Value>({ init: (value) => value }),
  (_request, value) => ({ amount: value.v }),
);

/** Small seeded generator (mulberry32), so every run draws the same values. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function run(): Promise<Fields> {
  const rt = new Runtime();
  try {
    const values: Value[] = Array.from({ length: BIDDERS }, () => ({ v: 1 }));
    const bidders: AnyRef[] = values.map((v) => rt.spawnSync(BenchBidder, v));
    const auctions = await Auctions.start(rt);
    const rand = random(0x5eed);
    const samples = new Float64Array(ROUNDS);
    for (let i = 0; i < WARMUP + ROUNDS; i++) {
      // Untimed: new private values (distinct, so the expected winner is unambiguous).
      let best = -1;
      let second = 0;
      for (let b = 0; b < BIDDERS; b++) {
        const v = 1 + Math.floor(rand() * 1e6) + b / BIDDERS;
        (values[b] as Value).v = v;
        if (best < 0 || v > (values[best] as Value).v) {
          second = best < 0 ? second : (values[best] as Value).v;
          best = b;
        } else if (v > second) second = v;
      }
      const start = now();
      const result = await auctions.run(bidders, { kind: 'vickrey' });
      const us = Number(now() - start) / 1e3;
      if (
        result.outcome !== 'sold' ||
        result.revenue !== second ||
        !pidEquals(result.winners[0]?.bidder as Pid, bidders[best] as AnyRef) ||
        result.validBids !== BIDDERS
      ) {
        throw new Error(`auction_vickrey_100: round ${i} ended ${JSON.stringify(result)}`);
      }
      if (i >= WARMUP) samples[i - WARMUP] = us;
      // Untimed: let the event loop turn, so the scheduler's time slice starts fresh each round.
      await settle();
    }
    await auctions.stop();
    const p = percentiles(samples);
    return { p50_us: p.p50, p99_us: p.p99, mean_us: p.mean, n: p.n };
  } finally {
    await rt.shutdown();
  }
}

export const auctionVickrey100: Workload = {
  name: 'auction_vickrey_100',
  description: 'Vickrey auction among 100 bidder agents, session start to result (2,000 rounds)',
  needsGc: false,
  run,
};
