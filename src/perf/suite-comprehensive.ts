/**
 * The roadmap's comprehensive suite, on mabeam's real services: service discovery, config
 * retrieval, event append, agent variable update, consensus proposal, two-agent coordination and a
 * 100-agent variable broadcast, as one harness suite (./harness.ts), with the roadmap's SLOs
 * (shared/BENCH_SPEC.md, last paragraph) as a budgets object in ./slo.ts's format.
 *
 * ```ts
 * const result = await comprehensiveSuite({ maxTimeMs: 500 }).run();
 * console.log(renderTable({ result }));
 * const report = checkSlos(suiteSloResults(result), comprehensiveBudgets());
 * ```
 *
 * Every operation gets its own runtime and services, started in the operation's `setup` and shut
 * down in its `teardown` (a SQLite file lives in a temp dir removed at teardown), so nothing one
 * operation leaves behind is measured by the next and nothing outlives the run. The same fixtures
 * (`startFixture`) drive the soak (./soak.ts), there all on one runtime.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { AgentRegistry } from '../agents/agent-registry.js';
import { VariableSubscriber, Variables } from '../agents/variables.js';
import { type BarrierHandle, type BarrierMessage, Barriers } from '../coordination/barrier.js';
import { Consensus, withVoting } from '../coordination/consensus.js';
import { ConfigServer } from '../foundation/config.js';
import { EventStore, MemoryEventLog } from '../foundation/event-store/index.js';
import {
  type AgentRef,
  type AnyRef,
  behaviour,
  InvalidArgumentError,
  Runtime,
  reply,
} from '../kernel/index.js';
import { type OperationResult, type Suite, type SuiteOptions, type SuiteResult, suite } from './harness.js';
import type { Budgets, SloResult } from './slo.js';

// ---- operations ----------------------------------------------------------------------------------

/** The operations of the comprehensive suite, in the order they run. */
export const COMPREHENSIVE_OPERATIONS = [
  'service_discovery',
  'config_retrieval',
  'event_append_memory',
  'event_append_sqlite',
  'variable_update',
  'consensus_proposal',
  'agent_coordination',
  'agent_barrier',
  'broadcast_100_agents',
] as const;

export type ComprehensiveOperation = (typeof COMPREHENSIVE_OPERATIONS)[number];

/** What each operation does, for tables and docs. */
export const COMPREHENSIVE_DESCRIPTIONS: Readonly<Record<ComprehensiveOperation, string>> = {
  service_discovery: 'AgentRegistry.whereis(id) of one of 100 running agents (a CQRS registry read)',
  config_retrieval: "ConfigServer.get('model.optimizer.lr') and three other paths, in turn",
  event_append_memory: 'EventStore.append of one small event, memory backend, awaited',
  event_append_sqlite:
    'EventStore.append of one small event, SQLite (synchronous=FULL) in a temp dir, awaited',
  variable_update: 'Variables.update of a float with 1 subscriber agent, until it acked',
  consensus_proposal: 'Consensus.propose among 5 voter agents (majority), until decided',
  agent_coordination: 'call to agent A, which calls agent B and replies with its answer',
  agent_barrier: 'a barrier of 2 agents: each arrives from its own callback, until it trips',
  broadcast_100_agents: 'Variables.update with 100 subscriber agents, until all 100 acked',
};

/** Options of the comprehensive suite: the harness's options and the workload sizes. */
export interface ComprehensiveOptions extends SuiteOptions {
  /** Include `event_append_sqlite` (a SQLite file in a temp dir, fsync per append). Default false. */
  readonly sqlite?: boolean;
  /** Running agents registered for service discovery. Default 100. */
  readonly discoveryAgents?: number;
  /** Voters of a consensus proposal. Default 5. */
  readonly voters?: number;
  /** Subscribers of the broadcast. Default 100. */
  readonly broadcastAgents?: number;
  /** The suite's name. Default `comprehensive`. */
  readonly name?: string;
}

/** Sizes of the fixtures, defaults filled in. */
export interface FixtureSizes {
  readonly discoveryAgents: number;
  readonly voters: number;
  readonly broadcastAgents: number;
}

const DEFAULT_SIZES: FixtureSizes = { discoveryAgents: 100, voters: 5, broadcastAgents: 100 };

/** One operation's services on a runtime: the call to measure, the agents and services it keeps. */
export interface Fixture {
  readonly name: ComprehensiveOperation;
  /** One operation (checks its own outcome and throws on a wrong one). */
  readonly run: () => unknown;
  /** Whether `run` returns a promise. */
  readonly async: boolean;
  /** The long-lived agents it holds (for per-agent memory). */
  agents(): AnyRef[];
  /** The services it holds, by name (for their own memory). */
  services(): Record<string, object>;
  /** Housekeeping a long run needs (the soak): keep the last 100 events. Not part of `run`. */
  readonly trim?: () => Promise<void>;
  /** Stop its services (not the runtime). */
  stop(): Promise<void>;
}

const Idle = behaviour<void, null>({ init: () => null });

/** A voter that accepts every proposal (its own decision, through its policy). */
const Voter = withVoting<void, number, never, never, never, never, number>(
  behaviour<void, number>({ init: () => 0 }),
  () => 'yes',
);

/** Agent B of the coordination: answers `n + 1`. */
const Worker = behaviour<void, number, number, number>({
  init: () => 0,
  handleCall: (n, _from, count) => reply(n + 1, count + 1),
});

/** Agent A of the coordination: asks B, replies with B's answer. */
type WorkerRef = AgentRef<number, number, never, never>;
const Coordinator = behaviour<WorkerRef, WorkerRef, number, number>({
  init: (worker) => worker,
  async handleCall(n, _from, worker, ctx) {
    const answer = await ctx.call(worker, n);
    return reply(answer, worker);
  },
});

/** A barrier party: arrives when told, from its own callback; ignores the barrier's answer. */
const Party = behaviour<void, number, never, never, BarrierHandle, BarrierMessage>({
  init: () => 0,
  handleCast(barrier, trips, ctx) {
    barrier.castArrive(ctx);
    return trips;
  },
  handleInfo: (_msg, trips) => trips + 1,
});

const ConfigSchema = z.object({
  service: z.object({ name: z.string(), port: z.number().int() }),
  model: z.object({
    layers: z.number().int(),
    optimizer: z.object({ kind: z.enum(['adam', 'sgd']), lr: z.number().positive() }),
  }),
  limits: z.object({ maxAgents: z.number().int() }),
});

const CONFIG_PATHS = ['model.optimizer.lr', 'service.port', 'model.layers', 'limits.maxAgents'] as const;

const fail = (op: string, detail: string): never => {
  throw new Error(`${op}: ${detail}`);
};

const eventPayload = (i: number) => ({
  type: 'bench.comprehensive',
  data: { i, note: 'a small event payload' },
  correlationId: 'comprehensive',
});

/**
 * Start the services of one operation on `runtime`. `tmpDir` is where `event_append_sqlite` puts
 * its file (the caller removes it). The caller stops the fixture, then the runtime.
 */
export async function startFixture(
  runtime: Runtime,
  name: ComprehensiveOperation,
  sizes: FixtureSizes = DEFAULT_SIZES,
  tmpDir?: string,
): Promise<Fixture> {
  switch (name) {
    case 'service_discovery': {
      const registry = await AgentRegistry.start(runtime, { label: 'comprehensive' });
      const ids: string[] = [];
      for (let i = 0; i < sizes.discoveryAgents; i++) {
        const id = `service-${i}`;
        await registry.register({ id, type: 'service', capabilities: ['bench'], behaviour: Idle });
        await registry.start(id);
        ids.push(id);
      }
      let k = 0;
      return {
        name,
        async: false,
        run: () => {
          const ref = registry.whereis(ids[k] as string);
          if (++k === ids.length) k = 0;
          if (ref === undefined) fail(name, 'a running agent was not found');
          return ref;
        },
        agents: () => ids.map((id) => registry.whereis(id)).filter((r): r is AnyRef => r !== undefined),
        services: () => ({ agentRegistry: registry.registry }),
        stop: () => registry.shutdown(),
      };
    }
    case 'config_retrieval': {
      const config = await ConfigServer.start(runtime, {
        schema: ConfigSchema,
        defaults: {
          service: { name: 'mabeam', port: 8080 },
          model: { layers: 4, optimizer: { kind: 'adam', lr: 0.001 } },
          limits: { maxAgents: 10_000 },
        },
        updatable: ['model.optimizer.lr'],
        env: { prefix: 'MABEAM_BENCH_CONFIG', env: {} },
      });
      let k = 0;
      return {
        name,
        async: false,
        run: () => {
          const value = config.get(CONFIG_PATHS[k] as (typeof CONFIG_PATHS)[number]);
          if (++k === CONFIG_PATHS.length) k = 0;
          if (typeof value !== 'number') fail(name, `read ${String(value)}`);
          return value;
        },
        agents: () => [],
        services: () => ({ config }),
        stop: () => config.stop(),
      };
    }
    case 'event_append_memory':
    case 'event_append_sqlite': {
      const sqlite = name === 'event_append_sqlite';
      if (sqlite && tmpDir === undefined) {
        throw new InvalidArgumentError('tmpDir', 'is needed for event_append_sqlite');
      }
      const store = await EventStore.start(
        runtime,
        sqlite ? { path: join(tmpDir as string, 'events.db') } : { backend: new MemoryEventLog() },
      );
      let i = 0;
      return {
        name,
        async: true,
        run: async () => {
          // Appends are awaited one by one, so the log's sequence numbers are 1, 2, 3, ...
          const seq = ++i;
          const e = await store.append(eventPayload(seq));
          if (e.seq !== seq) fail(name, `append ${seq} got sequence number ${e.seq}`);
          return e;
        },
        agents: () => [],
        services: () => ({ [sqlite ? 'eventStoreSqlite' : 'eventStoreMemory']: store }),
        trim: async () => {
          if (store.lastSeq > 100) await store.prune({ beforeSeq: store.lastSeq - 100 });
        },
        stop: () => store.close(),
      };
    }
    case 'variable_update':
    case 'broadcast_100_agents': {
      const subscribers = name === 'variable_update' ? 1 : sizes.broadcastAgents;
      const vars = Variables.start(runtime, { ackTimeoutMs: 5000 });
      const variable = name === 'variable_update' ? 'learning_rate' : 'temperature';
      await vars.register({
        name: variable,
        kind: { type: 'float', min: 1e-6, max: 1, log: true },
        default: 0.1,
        historyLimit: 50,
      });
      const refs: AnyRef[] = [];
      for (let s = 0; s < subscribers; s++) {
        const ref = runtime.spawnSync(VariableSubscriber, undefined);
        vars.subscribe(variable, ref);
        refs.push(ref);
      }
      let i = 0;
      return {
        name,
        async: true,
        run: async () => {
          // Alternate two values, so every update is a real change.
          const r = await vars.update(variable, (i++ & 1) === 0 ? 0.01 : 0.02, 'bench');
          if (r.acked !== subscribers) fail(name, `${r.acked} of ${subscribers} subscribers acked`);
          return r;
        },
        agents: () => refs.filter((r) => runtime.isAlive(r)),
        services: () => ({ [name === 'variable_update' ? 'variables' : 'variablesBroadcast']: vars }),
        stop: async () => {
          for (const ref of refs) await runtime.stop(ref);
          await runtime.stop(vars.owner);
        },
      };
    }
    case 'consensus_proposal': {
      const consensus = await Consensus.start(runtime);
      const voters: AnyRef[] = [];
      for (let v = 0; v < sizes.voters; v++) voters.push(runtime.spawnSync(Voter, undefined));
      let i = 0;
      return {
        name,
        async: true,
        run: async () => {
          const r = await consensus.propose(voters, ++i);
          if (!r.decided || r.outcome !== 'accepted') fail(name, `ended ${JSON.stringify(r)}`);
          return r;
        },
        agents: () => voters.filter((r) => runtime.isAlive(r)),
        services: () => ({}),
        stop: async () => {
          for (const ref of voters) await runtime.stop(ref);
          await consensus.stop();
        },
      };
    }
    case 'agent_coordination': {
      const worker = runtime.spawnSync(Worker, undefined);
      const coordinator = runtime.spawnSync(Coordinator, worker);
      let n = 0;
      return {
        name,
        async: true,
        run: async () => {
          const sent = n++;
          const answer = await runtime.call(coordinator, sent);
          if (answer !== sent + 1) fail(name, `answered ${answer} to ${sent}`);
          return answer;
        },
        agents: () => [coordinator, worker].filter((r) => runtime.isAlive(r)),
        services: () => ({}),
        stop: async () => {
          await runtime.stop(coordinator);
          await runtime.stop(worker);
        },
      };
    }
    case 'agent_barrier': {
      const barriers = await Barriers.start(runtime);
      const a = runtime.spawnSync(Party, undefined);
      const b = runtime.spawnSync(Party, undefined);
      return {
        name,
        async: true,
        run: async () => {
          const barrier = await barriers.create({ parties: [a, b], deadlineMs: 5000 });
          runtime.cast(a, barrier);
          runtime.cast(b, barrier);
          const r = await barrier.result;
          if (r.outcome !== 'tripped') fail(name, `barrier ${JSON.stringify(r)}`);
          return r;
        },
        agents: () => [a, b].filter((r) => runtime.isAlive(r)),
        services: () => ({}),
        stop: async () => {
          await runtime.stop(a);
          await runtime.stop(b);
          await barriers.stop();
        },
      };
    }
    default:
      throw new InvalidArgumentError(
        'operation',
        `is not one of ${COMPREHENSIVE_OPERATIONS.join(', ')}`,
        name,
      );
  }
}

// ---- the suite -----------------------------------------------------------------------------------

function positiveInt(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError(name, 'must be a whole number >= 1', value);
  }
  return value;
}

/** The fixture sizes of `options`, checked (InvalidArgumentError naming the option). */
export function fixtureSizes(options: Partial<FixtureSizes> = {}): FixtureSizes {
  return {
    discoveryAgents: positiveInt('discoveryAgents', options.discoveryAgents, DEFAULT_SIZES.discoveryAgents),
    voters: positiveInt('voters', options.voters, DEFAULT_SIZES.voters),
    broadcastAgents: positiveInt('broadcastAgents', options.broadcastAgents, DEFAULT_SIZES.broadcastAgents),
  };
}

/**
 * The comprehensive suite: one harness operation per entry of COMPREHENSIVE_OPERATIONS
 * (`event_append_sqlite` only with `sqlite: true`), each on its own runtime started in its setup
 * and shut down in its teardown. Harness options (sampling, memory, gc, clock) pass through.
 */
export function comprehensiveSuite(options: ComprehensiveOptions = {}): Suite {
  const {
    sqlite = false,
    discoveryAgents,
    voters,
    broadcastAgents,
    name = 'comprehensive',
    ...harness
  } = options;
  const sizes = fixtureSizes({
    ...(discoveryAgents === undefined ? {} : { discoveryAgents }),
    ...(voters === undefined ? {} : { voters }),
    ...(broadcastAgents === undefined ? {} : { broadcastAgents }),
  });
  const s = suite(name, harness);
  for (const op of COMPREHENSIVE_OPERATIONS) {
    if (op === 'event_append_sqlite' && !sqlite) continue;
    let runtime: Runtime | null = null;
    let fixture: Fixture | null = null;
    let dir: string | null = null;
    const isAsync = op !== 'service_discovery' && op !== 'config_retrieval';
    s.add(op, () => (fixture as Fixture).run(), {
      async: isAsync,
      setup: async () => {
        runtime = new Runtime();
        if (op === 'event_append_sqlite') dir = mkdtempSync(join(tmpdir(), 'mabeam-comprehensive-'));
        fixture = await startFixture(runtime, op, sizes, dir ?? undefined);
      },
      teardown: async () => {
        try {
          await fixture?.stop();
        } finally {
          fixture = null;
          await runtime?.shutdown();
          runtime = null;
          if (dir !== null) rmSync(dir, { recursive: true, force: true });
          dir = null;
        }
      },
    });
  }
  return s;
}

// ---- SLOs ----------------------------------------------------------------------------------------

/**
 * The suite's results as SLO results (./slo.ts): one per operation, its workload the operation's
 * name, with fields `mean_ns`, `median_ns`, `p90_ns`, `p99_ns`, `p999_ns`, `max_ns`, `ops_per_s`
 * and `n`; a failed operation has `fields: null` and its error.
 */
export function suiteSloResults(result: SuiteResult): SloResult[] {
  return result.operations.map((o: OperationResult) =>
    o.state === 'ok'
      ? {
          workload: o.name,
          fields: {
            mean_ns: o.stats.mean,
            median_ns: o.stats.median,
            p90_ns: o.stats.p90,
            p99_ns: o.stats.p99,
            p999_ns: o.stats.p999,
            max_ns: o.stats.max,
            ops_per_s: o.opsPerSecond,
            n: o.stats.n,
          },
        }
      : { workload: o.name, fields: null, error: `${o.phase}: ${o.error.message}` },
  );
}

/**
 * The roadmap's SLOs (shared/BENCH_SPEC.md, last paragraph) on the comprehensive suite's
 * operations. `sqlite` adds nothing: the roadmap sets no bound on event appends, so neither event
 * append has a budget. Throughputs read `ops_per_s` (1e9 / mean of calls made one after another).
 */
export function comprehensiveBudgets(): Budgets {
  return {
    description:
      "the roadmap's service-level objectives (BENCH_SPEC.md, last paragraph) on the comprehensive suite",
    budgets: [
      {
        workload: 'service_discovery',
        operation: 'service discovery',
        note: 'roadmap: service discovery p99 under 1 ms; 50,000 service calls/s',
        p99: { max: 1, unit: 'ms' },
        throughput: { min: 50_000, unit: 'ops/s' },
      },
      {
        workload: 'config_retrieval',
        operation: 'config retrieval',
        note: 'roadmap: 50,000 service calls/s (a config read is a service call); p99 as discovery',
        p99: { max: 1, unit: 'ms' },
        throughput: { min: 50_000, unit: 'ops/s' },
      },
      {
        workload: 'variable_update',
        operation: 'variable sync',
        note: 'roadmap: variable sync p99 under 5 ms',
        p99: { max: 5, unit: 'ms' },
      },
      {
        workload: 'broadcast_100_agents',
        operation: 'variable sync across 100 agents',
        note: 'roadmap: variable sync p99 under 10 ms across 100+ agents',
        p99: { max: 10, unit: 'ms' },
      },
      {
        workload: 'consensus_proposal',
        operation: 'consensus',
        note: 'roadmap: consensus p99 under 50 ms; 100 consensus operations/s',
        p99: { max: 50, unit: 'ms' },
        throughput: { min: 100, unit: 'ops/s' },
      },
      {
        workload: 'agent_coordination',
        operation: 'agent coordination',
        note: 'roadmap: agent coordination p99 under 10 ms; 10,000 agent operations/s',
        p99: { max: 10, unit: 'ms' },
        throughput: { min: 10_000, unit: 'ops/s' },
      },
      {
        workload: 'agent_barrier',
        operation: 'agent coordination (barrier)',
        note: 'roadmap: agent coordination p99 under 10 ms',
        p99: { max: 10, unit: 'ms' },
      },
    ],
  };
}
