/**
 * memory_growth: the roadmap's memory objectives on a short run of the soak's mixed workload
 * (src/perf/soak.ts: every comprehensive operation once per cycle on one runtime, plus 10 agents
 * spawned, messaged and stopped), for the CI gate. 1,000 untimed warm-up cycles, then 6 s of cycles
 * with a memory sample after forced GC at the start and every second.
 *
 * - `agent_bytes_per_hour`: the sustained growth of the long-lived agents' own memory (their
 *   state, mailbox and locals, by the size walk; all of them together, so an upper bound on any one
 *   agent's), per hour (roadmap: under 1 MB per hour per agent).
 * - `system_bytes_per_day`: the sustained growth of the platform's own structures (the runtime's
 *   tables and every service's, by the size walk; each one's sustained growth, added up), per day
 *   (roadmap: under 10 MB per day).
 * - `heap_bytes_per_day`: V8's used heap after GC, its least-squares slope from the first interval
 *   on, per day. Process-wide and noisy over seconds (the JIT, V8 sizing its heap: a 100 KB wobble
 *   over 5 s reads as 1.7 GB per day). Reported for reference, not budgeted: judge the heap with
 *   `mabeam bench --soak 1h`.
 * - `cycles_per_s`: the rate the growth was measured at; `agents`: the long-lived agents walked.
 *
 * Sustained growth (soak.ts, sustainedGrowthPerHour) is the smaller of the slopes over the two
 * halves of the run: a leak grows in both, while a one-time step (a table or ring buffer doubling
 * at a new high-water mark, then flat) is in one half only. A walk has no noise of its own (a
 * structure that does not change measures the same bytes every time), so a leak of a few bytes per
 * operation shows at thousands of operations per second. The rates are extrapolated from this run's
 * own pace: conservative for a system busy less than all the time.
 */
import {
  soak,
  soakMemorySeries,
  sustainedGrowthPerHour,
  sustainedStructuresGrowthPerHour,
} from '../../src/perf/soak.js';
import { type Fields, forceGc, type Workload } from '../harness.js';

const DURATION_MS = 6_000;
const INTERVAL_MS = 1_000;
const WARMUP_CYCLES = 1_000;

async function run(): Promise<Fields> {
  const report = await soak({
    durationMs: DURATION_MS,
    intervalMs: INTERVAL_MS,
    warmupCycles: WARMUP_CYCLES,
    gc: forceGc,
  });
  const errors = report.intervals.reduce((n, i) => n + i.overall.errors, 0);
  if (errors > 0) throw new Error(`memory_growth: ${errors} operations of the mixed workload failed`);
  if (report.intervals.length < 2) {
    throw new Error(`memory_growth: only ${report.intervals.length} interval(s) measured`);
  }
  const g = report.growth;
  const last = report.intervals[report.intervals.length - 1];
  return {
    agent_bytes_per_hour: sustainedGrowthPerHour(soakMemorySeries(report, (m) => m.agentBytesTotal)),
    system_bytes_per_day: sustainedStructuresGrowthPerHour(report) * 24,
    heap_bytes_per_day: g.steadyHeapBytesPerDay ?? g.heapBytesPerDay,
    cycles_per_s: report.cycles / (report.elapsedMs / 1000),
    agents: last?.memory.trackedAgents ?? 0,
  };
}

export const memoryGrowth: Workload = {
  name: 'memory_growth',
  description: '6 s of the soak mixed workload: sustained agent growth per hour, platform structures per day',
  needsGc: true,
  run,
};
