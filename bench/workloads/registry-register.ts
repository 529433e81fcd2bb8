/**
 * registry_register: one `register` plus one `unregister` of a tuple name in the foundation
 * registry, both awaited: two serialized calls to the registry's owner agent, each applying the
 * write to the read model (and adding, then removing, the exit hook that drops an agent's entries
 * when it exits). Reports the time per pair.
 *
 * `ns_per_op` is taken in a populated namespace (10,000 agents under `['agent', i]`, as in
 * registry_lookup), the steady state of a registry in use. `ns_per_op_empty` repeats it in an
 * otherwise empty registry, where every pair also creates and drops the namespace and its trie
 * nodes (the registry prunes empty ones, so that per-test namespaces leave nothing behind).
 */
import { Registry } from '../../src/foundation/registry.js';
import { type AnyRef, behaviour, Runtime } from '../../src/kernel/index.js';
import { type Fields, now, nsSince, type Workload } from '../harness.js';

const PAIRS = 100_000;
const WARMUP_PAIRS = 20_000;
/** Agents already registered in the populated namespace. */
const RESIDENTS = 10_000;
/** Distinct names cycled through, built before the clock starts. */
const NAMES = 1_000;
const NAMESPACE = 'bench';

const Idle = behaviour<void, null>({ init: () => null });

type AgentName = readonly ['agent', number];

/** Register and unregister `pairs` times, cycling through `names`; returns how many were removed. */
async function cycle(registry: Registry, ref: AnyRef, names: readonly AgentName[], pairs: number) {
  let removed = 0;
  let k = 0;
  for (let i = 0; i < pairs; i++) {
    const name = names[k] as AgentName;
    await registry.register(NAMESPACE, name, ref);
    if (await registry.unregister(NAMESPACE, name)) removed++;
    if (++k === names.length) k = 0;
  }
  return removed;
}

/** ns per register+unregister pair, after `residents` agents were registered in the namespace. */
async function measure(residents: number): Promise<number> {
  const rt = new Runtime();
  try {
    const registry = await Registry.start(rt);
    for (let i = 0; i < residents; i++) {
      await registry.register(NAMESPACE, ['agent', i], rt.spawnSync(Idle, undefined));
    }
    const ref = rt.spawnSync(Idle, undefined);
    const names: AgentName[] = [];
    for (let i = 0; i < NAMES; i++) names.push(['agent', residents + i]);
    await cycle(registry, ref, names, WARMUP_PAIRS);
    const start = now();
    const removed = await cycle(registry, ref, names, PAIRS);
    const ns = nsSince(start);
    if (removed !== PAIRS || registry.count() !== residents) {
      throw new Error(`registry_register: ${removed} of ${PAIRS} registrations were removed`);
    }
    return ns / PAIRS;
  } finally {
    await rt.shutdown();
  }
}

async function run(): Promise<Fields> {
  const populated = await measure(RESIDENTS);
  const empty = await measure(0);
  return { ns_per_op: populated, ns_per_op_empty: empty };
}

export const registryRegister: Workload = {
  name: 'registry_register',
  description: 'one awaited register plus one unregister of a tuple name (populated, then empty registry)',
  needsGc: false,
  run,
};
