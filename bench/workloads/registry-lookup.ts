/**
 * registry_lookup: 10,000 agents registered under names standing for `{agent, i}`, then 1,000,000
 * `whereis` lookups cycling through them.
 *
 * The kernel's name registry takes strings, numbers and symbols, not tuples, so the names are the
 * strings `agent:${i}`, built before the clock starts (building them would cost more than the
 * lookup itself).
 */
import { behaviour, Runtime } from '../../src/index.js';
import { type Fields, now, nsSince, type Workload } from '../harness.js';

const AGENTS = 10_000;
const LOOKUPS = 1_000_000;
const WARMUP_LOOKUPS = 100_000;

const Idle = behaviour<void, null>({ init: () => null });

/**
 * Look up `lookups` names cycling through `names`, summing the ids found. The sum keeps every
 * result in use (so the loop cannot be optimized away) and is checked against `expected`.
 */
function lookupAll(rt: Runtime, names: readonly string[], lookups: number): number {
  let idSum = 0;
  let k = 0;
  for (let i = 0; i < lookups; i++) {
    const ref = rt.whereis(names[k] as string);
    if (ref === undefined) throw new Error(`registry_lookup: ${names[k]} is not registered`);
    idSum += ref.id;
    if (++k === names.length) k = 0;
  }
  return idSum;
}

/** The id sum `lookupAll` must find, given the id registered under each name. */
function expectedSum(ids: readonly number[], lookups: number): number {
  let sum = 0;
  for (let i = 0; i < lookups; i++) sum += ids[i % ids.length] as number;
  return sum;
}

async function run(): Promise<Fields> {
  const rt = new Runtime();
  try {
    const names: string[] = [];
    const ids: number[] = [];
    for (let i = 0; i < AGENTS; i++) {
      const name = `agent:${i}`;
      const ref = rt.spawnSync(Idle, undefined);
      rt.register(name, ref);
      names.push(name);
      ids.push(ref.id);
    }
    lookupAll(rt, names, WARMUP_LOOKUPS);
    const start = now();
    const idSum = lookupAll(rt, names, LOOKUPS);
    const ns = nsSince(start);
    if (idSum !== expectedSum(ids, LOOKUPS))
      throw new Error('registry_lookup: lookups found the wrong agents');
    return { ns_per_op: ns / LOOKUPS };
  } finally {
    await rt.shutdown();
  }
}

export const registryLookup: Workload = {
  name: 'registry_lookup',
  description: '1,000,000 whereis lookups cycling through 10,000 registered names',
  needsGc: false,
  run,
};
