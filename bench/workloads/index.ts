/** Every workload of the suite, in BENCH_SPEC.md's order. */
import type { Workload } from '../harness.js';
import { callRoundtrip } from './call-roundtrip.js';
import { castThroughput } from './cast-throughput.js';
import { idleAgents1m } from './idle-agents-1m.js';
import { pingpongAllCores } from './pingpong-all-cores.js';
import { registryLookup } from './registry-lookup.js';
import { spawn } from './spawn.js';

export const workloads: readonly Workload[] = [
  callRoundtrip,
  castThroughput,
  spawn,
  registryLookup,
  pingpongAllCores,
  idleAgents1m,
];
