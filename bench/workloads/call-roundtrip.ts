/**
 * call_roundtrip: one caller awaits 1,000,000 sequential `ping` -> `pong` calls to one agent,
 * after 10,000 warm-up calls. Reports the mean time per round trip.
 */
import { behaviour, Runtime, reply } from '../../src/index.js';
import { type Fields, now, nsSince, type Workload } from '../harness.js';

const CALLS = 1_000_000;
const WARMUP_CALLS = 10_000;

const Echo = behaviour<void, null, 'ping', 'pong'>({
  init: () => null,
  handleCall: (_msg, _from, state) => reply('pong', state),
});

async function run(): Promise<Fields> {
  const rt = new Runtime();
  try {
    const echo = rt.spawnSync(Echo, undefined);
    for (let i = 0; i < WARMUP_CALLS; i++) await rt.call(echo, 'ping');
    let pongs = 0;
    const start = now();
    for (let i = 0; i < CALLS; i++) {
      // Counting the replies keeps the awaited value in use and checks every answer.
      if ((await rt.call(echo, 'ping')) === 'pong') pongs++;
    }
    const ns = nsSince(start);
    if (pongs !== CALLS) throw new Error(`call_roundtrip: ${pongs} of ${CALLS} calls answered pong`);
    return { ns_per_op: ns / CALLS };
  } finally {
    await rt.shutdown();
  }
}

export const callRoundtrip: Workload = {
  name: 'call_roundtrip',
  description: '1,000,000 sequential awaited ping->pong calls to one agent',
  needsGc: false,
  run,
};
