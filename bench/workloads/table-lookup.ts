/**
 * table_lookup: an owned table (kind `set`, protected: the ETS default with read_concurrency)
 * with 10,000 keys, then 1,000,000 `get` lookups cycling through them.
 *
 * Keys are the integers 0..9,999 in a prebuilt array (so the loop times the lookup, not building
 * keys); values are their squares, summed so that every result is used and checked. The reads run
 * outside the owner, as any other agent's reads would: a protected table needs no owner check to
 * be read.
 */
import { type Table, Tables } from '../../src/foundation/table.js';
import { behaviour, Runtime } from '../../src/index.js';
import { type Fields, now, nsSince, type Workload } from '../harness.js';

const KEYS = 10_000;
const LOOKUPS = 1_000_000;
const WARMUP_LOOKUPS = 200_000;

/** The owner: it fills the table in init, where it is the agent running. */
const Owner = behaviour<{ tables: Tables; keys: readonly number[] }, null, 'table', unknown>({
  init: ({ tables, keys }, ctx) => {
    const table = tables.create<number, number>(ctx, { name: 'bench', kind: 'set', access: 'protected' });
    for (const k of keys) table.put(k, k * k);
    return null;
  },
});

/**
 * Look up `lookups` keys cycling through `keys`, summing the values found. The sum keeps every
 * result in use (so the loop cannot be optimized away) and is checked against `expectedSum`.
 */
function lookupAll(table: Table<number, number>, keys: readonly number[], lookups: number): number {
  let sum = 0;
  let k = 0;
  for (let i = 0; i < lookups; i++) {
    const v = table.get(keys[k] as number);
    if (v === undefined) throw new Error(`table_lookup: key ${keys[k]} is missing`);
    sum += v;
    if (++k === keys.length) k = 0;
  }
  return sum;
}

/** The sum `lookupAll` must find. */
function expectedSum(keys: readonly number[], lookups: number): number {
  let sum = 0;
  for (let i = 0; i < lookups; i++) {
    const k = keys[i % keys.length] as number;
    sum += k * k;
  }
  return sum;
}

async function run(): Promise<Fields> {
  const rt = new Runtime();
  try {
    const tables = new Tables(rt);
    const keys = Array.from({ length: KEYS }, (_, i) => i);
    rt.spawnSync(Owner, { tables, keys });
    const table = tables.whereis<number, number>('bench');
    if (table === undefined || table.size !== KEYS) throw new Error('table_lookup: the table was not filled');
    lookupAll(table, keys, WARMUP_LOOKUPS);
    const start = now();
    const sum = lookupAll(table, keys, LOOKUPS);
    const ns = nsSince(start);
    if (sum !== expectedSum(keys, LOOKUPS)) throw new Error('table_lookup: lookups found the wrong values');
    return { ns_per_op: ns / LOOKUPS };
  } finally {
    await rt.shutdown();
  }
}

export const tableLookup: Workload = {
  name: 'table_lookup',
  description: '1,000,000 get lookups cycling through an owned table of 10,000 keys',
  needsGc: false,
  run,
};
