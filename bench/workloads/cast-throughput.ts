/**
 * cast_throughput: 1,000,000 fire-and-forget `inc` casts to one counting agent, then one call that
 * reads the count, which must equal the number sent. The clock stops when that call answers, so
 * the figure covers processing every message, not just queueing it.
 */
import { behaviour, Runtime, reply } from '../../src/index.js';
import { type Fields, now, nsSince, type Workload } from '../harness.js';

const CASTS = 1_000_000;
const WARMUP_CASTS = 100_000;
/** Generous: the reading call waits behind every cast, and the machine may be busy. */
const READ_TIMEOUT_MS = 60_000;

const Counter = behaviour<void, number, 'count', number, 'inc'>({
  init: () => 0,
  handleCall: (_msg, _from, count) => reply(count, count),
  handleCast: (_msg, count) => count + 1,
});

/** Send `casts` incs to a fresh counter and return the nanoseconds until the count was read. */
async function measure(rt: Runtime, casts: number): Promise<number> {
  const counter = rt.spawnSync(Counter, undefined);
  const start = now();
  for (let i = 0; i < casts; i++) rt.cast(counter, 'inc');
  const count = await rt.call(counter, 'count', READ_TIMEOUT_MS);
  const ns = nsSince(start);
  if (count !== casts) throw new Error(`cast_throughput: counter read ${count} after ${casts} casts`);
  rt.kill(counter);
  return ns;
}

async function run(): Promise<Fields> {
  const rt = new Runtime();
  try {
    await measure(rt, WARMUP_CASTS);
    const ns = await measure(rt, CASTS);
    return { ops_per_s: CASTS / (ns / 1e9) };
  } finally {
    await rt.shutdown();
  }
}

export const castThroughput: Workload = {
  name: 'cast_throughput',
  description: '1,000,000 inc casts to one counter, then one call reading the count',
  needsGc: false,
  run,
};
