/**
 * Every workload of the suite, in BENCH_SPEC.md's order (the main table, then the later ones), then
 * the performance toolkit's gate workloads (coordination_pair, memory_growth).
 */
import type { Workload } from '../harness.js';
import { allocation1000 } from './allocation-1000.js';
import { auctionVickrey100 } from './auction-vickrey-100.js';
import { callRoundtrip } from './call-roundtrip.js';
import { castThroughput } from './cast-throughput.js';
import { consensusRound100 } from './consensus-round-100.js';
import { consensusRound100Faults } from './consensus-round-100-faults.js';
import { coordinationPair } from './coordination-pair.js';
import { eventAppend } from './event-append.js';
import { eventSubscribeLag } from './event-subscribe-lag.js';
import { idleAgents1m } from './idle-agents-1m.js';
import { memoryGrowth } from './memory-growth.js';
import { orderbookMatch } from './orderbook-match.js';
import { pingpongAllCores } from './pingpong-all-cores.js';
import { registryLookup } from './registry-lookup.js';
import { registryRegister } from './registry-register.js';
import { spawn } from './spawn.js';
import { tableLookup } from './table-lookup.js';
import { tuneOverhead } from './tune-overhead.js';
import { tuneParallelBranin } from './tune-parallel-branin.js';
import { tuneQualityBranin } from './tune-quality-branin.js';
import { variableBroadcast100 } from './variable-broadcast-100.js';
import { variableSync1000 } from './variable-sync-1000.js';

export const workloads: readonly Workload[] = [
  callRoundtrip,
  castThroughput,
  spawn,
  registryLookup,
  tableLookup,
  variableBroadcast100,
  consensusRound100,
  pingpongAllCores,
  idleAgents1m,
  registryRegister,
  eventAppend,
  eventSubscribeLag,
  variableSync1000,
  consensusRound100Faults,
  auctionVickrey100,
  allocation1000,
  orderbookMatch,
  tuneOverhead,
  tuneQualityBranin,
  tuneParallelBranin,
  coordinationPair,
  memoryGrowth,
];
