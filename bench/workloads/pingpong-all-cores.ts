/**
 * pingpong_all_cores: 1,000 pairs of agents, each pair doing 2,000 ping/pong round trips, all
 * pairs at once. A pinger casts `ping` (carrying its ref) to its ponger, the ponger casts `pong`
 * back, and the pinger sends the next ping; after its last pong it reports to a shared countdown.
 * Pings and pongs both count: 1,000 x 2,000 x 2 = 4,000,000 messages.
 *
 * The runtime runs on one thread (worker-thread runtimes come later), so `threads` is 1.
 */
import { type AgentRef, behaviour, Runtime } from '../../src/index.js';
import { type Fields, now, nsSince, type Workload } from '../harness.js';

const PAIRS = 1_000;
const ROUND_TRIPS = 2_000;
const WARMUP_ROUND_TRIPS = 200;
const THREADS = 1;

type PingerCast = 'start' | 'pong';
type PingerRef = AgentRef<never, never, PingerCast>;
type PongerRef = AgentRef<never, never, Ping>;

/** A ping names its sender, so that one ponger behaviour can answer anyone. */
interface Ping {
  readonly from: PingerRef;
}

const Ponger = behaviour<void, null, never, never, Ping>({
  init: () => null,
  handleCast: (ping, state, ctx) => {
    ctx.cast(ping.from, 'pong');
    return state;
  },
});

interface PingerArgs {
  peer: PongerRef;
  roundTrips: number;
  /** Called once, after the last pong. */
  done: () => void;
}

interface PingerState {
  readonly peer: PongerRef;
  /** Messages are immutable values, so one ping object serves every round trip. */
  readonly ping: Ping;
  left: number;
  readonly done: () => void;
}

const Pinger = behaviour<PingerArgs, PingerState, never, never, PingerCast>({
  init: ({ peer, roundTrips, done }, ctx) => ({ peer, ping: { from: ctx.self }, left: roundTrips, done }),
  handleCast: (msg, state, ctx) => {
    if (msg === 'pong' && --state.left === 0) {
      state.done();
      return state;
    }
    ctx.cast(state.peer, state.ping);
    return state;
  },
});

/** Throw unless each agent in `refs` has handled exactly `expected` messages. */
function checkHandled(rt: Runtime, refs: readonly (PingerRef | PongerRef)[], expected: number): void {
  for (const ref of refs) {
    const handled = rt.info(ref, { stateSize: false })?.reductions;
    if (handled !== expected) {
      throw new Error(`pingpong_all_cores: ${ref} handled ${handled} messages, expected ${expected}`);
    }
  }
}

/** Run `pairs` pairs of `roundTrips` round trips each; returns the nanoseconds until all ended. */
async function measure(pairs: number, roundTrips: number): Promise<number> {
  const rt = new Runtime();
  try {
    let running = pairs;
    let allDone: () => void = () => {};
    const finished = new Promise<void>((resolve) => {
      allDone = resolve;
    });
    const done = () => {
      if (--running === 0) allDone();
    };
    const pingers: PingerRef[] = [];
    const pongers: PongerRef[] = [];
    for (let i = 0; i < pairs; i++) {
      const peer = rt.spawnSync(Ponger, undefined);
      pongers.push(peer);
      pingers.push(rt.spawnSync(Pinger, { peer, roundTrips, done }));
    }
    const start = now();
    for (const pinger of pingers) rt.cast(pinger, 'start');
    await finished;
    const ns = nsSince(start);
    // Off the clock: every pinger handled `start` plus one pong per round trip, every ponger one
    // ping per round trip, so no message was lost or duplicated.
    checkHandled(rt, pingers, roundTrips + 1);
    checkHandled(rt, pongers, roundTrips);
    return ns;
  } finally {
    await rt.shutdown();
  }
}

async function run(): Promise<Fields> {
  await measure(PAIRS, WARMUP_ROUND_TRIPS);
  const ns = await measure(PAIRS, ROUND_TRIPS);
  const messages = PAIRS * ROUND_TRIPS * 2;
  return { msgs_per_s: messages / (ns / 1e9), threads: THREADS };
}

export const pingpongAllCores: Workload = {
  name: 'pingpong_all_cores',
  description: '1,000 pairs x 2,000 ping/pong round trips at once (4,000,000 messages)',
  needsGc: false,
  run,
};
