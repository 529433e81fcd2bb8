/**
 * `tune()`: a study run by agents. One study agent owns the `Study` (sampler, scheduler, records,
 * storage); each running trial is an agent under the study's dynamic supervisor, which runs its
 * trainable on the executor's worker threads and relays the trainable's reports and checkpoints to
 * the study agent as calls (the scheduler's decision is the reply). The runtime's thread only
 * routes messages; training happens on the worker threads.
 *
 * The best configuration so far is published as universal variables (`best.config.<dimension>`,
 * `best.value`, `best.trial`), to which every trial agent subscribes: each trial holds a replica
 * of the best so far and reports how far it is from it (`TuneEvent` "trial-end": `gapToBest`).
 *
 * A PBT exploit stops the trial's current run and starts it again on the same agent with the
 * donor's latest checkpoint and the new configuration.
 *
 * Worker slots go to trials by the study's `allocation`: `fifo` (the default) starts a trial
 * whenever a slot is free and lets it train to its end; `auction` keeps more trial agents than
 * slots, leases compute in segments of steps and sells each free slot in a Vickrey (or, for
 * several free slots, multi-unit VCG) auction among the waiting trials, which bid from their
 * budgets and learning curves (allocation.ts describes the rules and the bid).
 *
 * A trial that throws, times out, runs out of memory or sends a bad report is marked failed with
 * its reason and the study goes on; a trial agent that crashes is marked failed by the study
 * agent's monitor. Anything else that goes wrong in the study agent (a store that fails to write)
 * crashes it: `tune()` rejects with StudyCrashedError, running trials are terminated and stay
 * "running" in the store, and a resume continues them.
 *
 * When `tune()` returns (or rejects), nothing it started runs any more: the study agent, its
 * supervisor and trial agents are stopped (trial agents trap exits, so their runs are terminated
 * at once rather than at their next report) and the executor's threads are closed.
 */
import { handleVariables, VariableReplica, Variables } from '../agents/index.js';
import {
  type AuctionId,
  type AuctionResult,
  type AuctionSpec,
  Auctions,
  isBidRejection,
  isBidRequest,
  Ledger,
  placeBid,
} from '../economics/index.js';
import { EventStore, MemoryEventLog } from '../foundation/index.js';
import {
  type AgentContext,
  type AnyRef,
  behaviour,
  DynamicSupervisor,
  describe,
  InvalidArgumentError,
  MabeamError,
  type Pid,
  pidKey,
  Runtime,
  reply,
  stop,
} from '../kernel/index.js';
import { type AuctionAllocation, leaseBid } from './allocation.js';
import { type ExecutorOptions, TrialExecutor, type TrialRunOutcome } from './executor.js';
import { spaceVariables } from './space.js';
import {
  type AskedTrial,
  BadReportError,
  type BestTrial,
  type Objective,
  type Persistence,
  Study,
  type StudyOptions,
  type StudySpec,
  type StudySummary,
  TrialNotRunningError,
  type TrialOutcome,
} from './study.js';
import type { Config, Decision, TrainableRef, TrialMetrics, TrialRecord } from './types.js';

/** Error codes of tune() (unique across mabeam, never reused). */
export const TuneErrorCodes = {
  /** The study agent exited before the study ended. */
  STUDY_CRASHED: 'E_TUNE_STUDY_CRASHED',
} as const;

/** The study agent itself crashed (a bug, or a store that failed to write): the study stops. */
export class StudyCrashedError extends MabeamError {
  readonly reason: unknown;
  constructor(reason: unknown) {
    super(TuneErrorCodes.STUDY_CRASHED, `the study agent exited: ${describe(reason)}`);
    this.reason = reason;
  }
}

// ---- options and results -----------------------------------------------------------------------

/** Progress of a study, for terminal output and tests. */
export type TuneEvent =
  | {
      readonly type: 'trial-start';
      readonly trialId: number;
      readonly config: Config;
      readonly resumed: boolean;
    }
  | {
      readonly type: 'report';
      readonly trialId: number;
      readonly metrics: TrialMetrics;
      readonly decision: Decision['action'];
    }
  | {
      readonly type: 'trial-end';
      readonly trialId: number;
      readonly state: 'completed' | 'pruned' | 'failed';
      readonly best: number | null;
      readonly error: string | null;
      /**
       * How far this trial's best is from the study's best as its agent's replica held it when it
       * ended: the absolute difference of the two objective values (0 for the best trial).
       */
      readonly gapToBest: number | null;
      readonly summary: StudySummary;
    }
  | { readonly type: 'best'; readonly best: BestTrial }
  /** Auction allocation: an auction for `slots` free slots closed (bids as the trials placed them). */
  | {
      readonly type: 'auction';
      readonly auction: number;
      readonly slots: number;
      readonly reserve: number;
      /** Every waiting trial's bid, null when it passed (and gave up, for `reason`). */
      readonly bids: readonly AuctionBidRecord[];
      readonly awards: readonly { readonly trialId: number; readonly bid: number; readonly price: number }[];
    }
  /** Auction allocation: a trial paid `price` and trains `steps` new steps from `fromStep`. */
  | {
      readonly type: 'lease';
      readonly trialId: number;
      readonly auction: number;
      readonly steps: number;
      readonly fromStep: number;
      readonly price: number;
      /** Its balance after paying. */
      readonly balance: number;
    }
  /** Auction allocation: a trial's lease ended at `step`; its run stopped and its slot is free. */
  | { readonly type: 'pause'; readonly trialId: number; readonly step: number };

/** A trial's bid in an auction, as it placed it. */
export interface AuctionBidRecord {
  readonly trialId: number;
  /** The amount, or null: it passed and gave up (ends pruned). */
  readonly amount: number | null;
  /** Its estimated chance that the lease improves on the study's best (allocation.ts). */
  readonly chance: number;
  /** Why it gave up. */
  readonly reason?: string;
}

export interface TuneOptions extends StudyOptions {
  readonly trainable: TrainableRef;
  /** Per-trial wall-clock limit in ms (the trial fails with E_TASK_TIMEOUT). Default: none. */
  readonly trialTimeoutMs?: number;
  /** Per-trial heap limit in MiB (the trial fails, out of memory). Default 512. */
  readonly memoryLimitMb?: number;
  /** Persist to this store under this name (create it there first, or use `resume`). */
  readonly persist?: Persistence;
  /** The runtime to run the study's agents on. Default: a runtime of its own, shut down at the end. */
  readonly runtime?: Runtime;
  /** Called for each progress event (from the study agent: keep it quick, do not throw). */
  readonly onEvent?: (event: TuneEvent) => void;
  /**
   * Stop the study: running trials are terminated (and stay "running" in the store, to resume).
   * Aborted before the study started, it starts no trial and leaves the store untouched.
   */
  readonly signal?: AbortSignal;
}

/** What `tune()` resolves with. */
export interface TuneResult {
  readonly spec: StudySpec;
  readonly best: BestTrial | null;
  readonly summary: StudySummary;
  readonly trials: readonly TrialRecord[];
  /** Wall-clock ms from start to the last trial's end. */
  readonly wallMs: number;
  readonly startedAt: number;
  /** True when the signal stopped the study before every trial ran. */
  readonly aborted: boolean;
  /** Auction allocation: each trial's balance at the end, by trial id (spent on leases: budget - balance). */
  readonly balances?: Readonly<Record<number, number>>;
}

// ---- the study agent ---------------------------------------------------------------------------

type StudyCall =
  | { readonly type: 'report'; readonly trialId: number; readonly metrics: TrialMetrics }
  | { readonly type: 'checkpoint'; readonly trialId: number; readonly step: number; readonly state: unknown }
  | { readonly type: 'donor'; readonly donor: number };
type StudyCast =
  | { readonly type: 'fill' }
  | {
      readonly type: 'ended';
      readonly trialId: number;
      readonly outcome: TrialOutcome;
      readonly gap: number | null;
    }
  | { readonly type: 'paused'; readonly trialId: number; readonly step: number }
  | ({ readonly type: 'bid'; readonly auction: AuctionId } & AuctionBidRecord);
type StudyInfo = {
  readonly type: 'auction-closed';
  readonly auction: number;
  readonly slots: number;
  readonly reserve: number;
  readonly result: AuctionResult;
};

/** The compute market of auction allocation: the auction service and the budgets' ledger. */
interface Market {
  readonly auctions: Auctions;
  readonly ledger: Ledger;
  readonly store: EventStore;
}

const STUDY_ACCOUNT = 'study';
const accountOf = (trialId: number) => `trial-${trialId}`;

interface StudyArgs {
  readonly study: Study;
  readonly executor: TrialExecutor;
  readonly variables: Variables;
  readonly trainable: TrainableRef;
  readonly trialTimeoutMs: number | undefined;
  readonly onEvent: (event: TuneEvent) => void;
  readonly onDone: () => void;
  /** Called with the study's trial supervisor once it runs (tune() stops it at the end). */
  readonly onSupervisor: (sup: AnyRef) => void;
  /** Auction allocation's market, or null for fifo. */
  readonly market: Market | null;
  /** Once aborted, no trial starts and no lease is sold. */
  readonly signal: AbortSignal | undefined;
}

interface StudyState extends StudyArgs {
  sup: AnyRef | null;
  /** Trial id -> its agent. */
  readonly agents: Map<number, AnyRef>;
  /** Agent pid key -> trial id, for DOWN messages. */
  readonly byPid: Map<string, number>;
  filling: boolean;
  stopped: boolean;
  lastBest: BestTrial | null;
  // Auction allocation only:
  /** Trials waiting for a lease (their agents are idle). */
  readonly waiting: Set<number>;
  /** Trials holding a lease -> new steps left in it. */
  readonly leases: Map<number, number>;
  auctionOpen: boolean;
  auctionSeq: number;
  /** The bids of the open auction, as the trials cast them. */
  bids: AuctionBidRecord[];
}

const BEST_PREFIX = 'best';
/** The best configuration's dimensions live under their own namespace: `best.config.<dim>`. */
const BEST_CONFIG_PREFIX = `${BEST_PREFIX}.config`;

function outcomeOf(run: TrialRunOutcome): TrialOutcome {
  if (run.status === 'completed')
    return run.metrics === undefined ? { state: 'completed' } : { state: 'completed', metrics: run.metrics };
  if (run.status === 'stopped') return { state: 'pruned' };
  return { state: 'failed', error: run.reason };
}

async function publishBest(s: StudyState): Promise<void> {
  const best = s.study.best();
  if (best === null || best === s.lastBest) return;
  s.lastBest = best;
  s.onEvent({ type: 'best', best });
  const changes = Object.entries(best.config).map(([dim, value]) => ({
    name: `${BEST_CONFIG_PREFIX}.${dim}`,
    value,
  }));
  changes.push(
    { name: `${BEST_PREFIX}.value`, value: best.value },
    { name: `${BEST_PREFIX}.trial`, value: best.trialId },
  );
  // The broadcast is not awaited: a trial busy in a call to this agent could not ack it yet.
  await s.variables.updateBatch(changes, { awaitAcks: false });
}

/** Start trials until `concurrency` run or the study has no more to hand out. */
async function fill(s: StudyState, ctx: AgentContext): Promise<void> {
  if (s.stopped || s.sup === null || s.signal?.aborted === true) return;
  const auction = s.market === null ? undefined : s.study.spec.auction;
  const live = auction?.candidates ?? s.study.spec.concurrency;
  while (s.agents.size < live) {
    const asked = s.study.ask();
    if (asked === null) break;
    const record = s.study.trials()[asked.id] as TrialRecord;
    if (s.market !== null && auction !== undefined)
      await s.market.ledger.open(accountOf(asked.id), auction.budget);
    const args: TrialArgs = {
      asked,
      studyRef: ctx.self,
      executor: s.executor,
      variables: s.variables,
      trainable: s.trainable,
      trialTimeoutMs: s.trialTimeoutMs,
      objective: s.study.spec.objective,
      auction: auction ?? null,
      ledger: s.market?.ledger ?? null,
      curve: record.reports.map((m) =>
        lossOf(s.study.spec.objective, m[s.study.spec.objective.metric] as number),
      ),
      lastStep: record.reports.at(-1)?.step ?? 0,
    };
    const ref = await DynamicSupervisor.startChild(ctx, s.sup, {
      id: `trial-${asked.id}`,
      start: { behaviour: TrialAgent, args },
      restart: 'temporary',
    });
    s.agents.set(asked.id, ref);
    s.byPid.set(pidKey(ref), asked.id);
    ctx.monitor(ref);
    if (auction !== undefined) s.waiting.add(asked.id);
    s.onEvent({
      type: 'trial-start',
      trialId: asked.id,
      config: asked.config,
      resumed: asked.checkpoint !== undefined,
    });
  }
  await allocate(s, ctx);
  if (s.agents.size === 0 && s.study.done) {
    s.study.finish();
    s.onDone();
  }
}

function ended(
  s: StudyState,
  ctx: AgentContext,
  trialId: number,
  outcome: TrialOutcome,
  gap: number | null,
): void {
  const agent = s.agents.get(trialId);
  if (agent === undefined) return; // already ended (a DOWN after the trial's own report)
  s.agents.delete(trialId);
  s.byPid.delete(pidKey(agent));
  s.waiting.delete(trialId);
  s.leases.delete(trialId);
  s.study.tell(trialId, outcome);
  const t = s.study.trials()[trialId] as TrialRecord;
  s.onEvent({
    type: 'trial-end',
    trialId,
    state: t.state as 'completed' | 'pruned' | 'failed',
    best: t.best,
    error: t.error,
    gapToBest: gap,
    summary: s.study.summary(),
  });
  ctx.cast(ctx.self, { type: 'fill' });
}

/** The objective's value as a loss (lower is better), as samplers and schedulers see it. */
function lossOf(objective: Objective, value: number): number {
  return objective.mode === 'min' ? value : -value;
}

/**
 * Auction allocation: when slots are free and trials wait, sell the free slots to the waiting
 * trials, one auction at a time (Vickrey for one slot, multi-unit VCG for several).
 */
async function allocate(s: StudyState, ctx: AgentContext): Promise<void> {
  const auction = s.study.spec.auction;
  const market = s.market;
  if (market === null || auction === undefined || s.stopped || s.auctionOpen || s.signal?.aborted === true)
    return;
  const free = s.study.spec.concurrency - s.leases.size;
  if (free <= 0 || s.waiting.size === 0) return;
  const bidders = [...s.waiting].map((id) => s.agents.get(id) as AnyRef);
  const id = ++s.auctionSeq;
  const lot = { leaseSteps: auction.leaseSteps, slots: free };
  // What each trial could pay now: its account's available funds (the ledger's synchronous read).
  const budgetOf = (pid: Pid) => {
    const trialId = s.byPid.get(pidKey(pid));
    return trialId === undefined ? 0 : market.ledger.available(accountOf(trialId));
  };
  const spec: AuctionSpec =
    free === 1
      ? { kind: 'vickrey', id, item: 'slot', reserve: auction.minBid, lot, budgetOf }
      : { kind: 'vcg', id, supply: { slot: free }, reserve: { slot: auction.minBid }, lot, budgetOf };
  s.auctionOpen = true;
  s.bids = [];
  const rt = ctx.runtime;
  const self = ctx.self;
  const handle = await market.auctions.start(bidders, spec);
  handle.result.then((result) =>
    rt.send(self, { type: 'auction-closed', auction: id, slots: free, reserve: auction.minBid, result }),
  );
}

/** An auction closed: winners pay their price into the study's account and start their lease. */
async function auctionClosed(s: StudyState, ctx: AgentContext, msg: StudyInfo): Promise<void> {
  s.auctionOpen = false;
  const auction = s.study.spec.auction as AuctionAllocation;
  const market = s.market as Market;
  const awards: { trialId: number; bid: number; price: number }[] = [];
  for (const award of msg.result.outcome === 'sold' ? msg.result.winners : []) {
    const trialId = s.byPid.get(pidKey(award.bidder));
    const agent = trialId === undefined ? undefined : s.agents.get(trialId);
    if (trialId === undefined || agent === undefined || !s.waiting.has(trialId)) continue;
    awards.push({ trialId, bid: award.bid, price: award.price });
    try {
      if (award.price > 0)
        await market.ledger.transfer(accountOf(trialId), STUDY_ACCOUNT, award.price, `lease ${msg.auction}`);
    } catch (error) {
      // Cannot happen while bids stay within the ledger's balances; if it does, the trial gives up.
      ctx.cast(agent, { type: 'give-up', reason: `cannot pay ${award.price}: ${describe(error)}` });
      continue;
    }
    s.waiting.delete(trialId);
    s.leases.set(trialId, auction.leaseSteps);
    const record = s.study.trials()[trialId] as TrialRecord;
    ctx.cast(agent, { type: 'lease', checkpoint: s.study.latestCheckpoint(trialId)?.state });
    s.onEvent({
      type: 'lease',
      trialId,
      auction: msg.auction,
      steps: auction.leaseSteps,
      fromStep: record.reports.at(-1)?.step ?? 0,
      price: award.price,
      balance: market.ledger.available(accountOf(trialId)),
    });
  }
  s.onEvent({
    type: 'auction',
    auction: msg.auction,
    slots: msg.slots,
    reserve: msg.reserve,
    bids: s.bids,
    awards,
  });
  s.bids = [];
  await allocate(s, ctx);
}

const StudyAgent = behaviour<StudyArgs, StudyState, StudyCall, unknown, StudyCast, StudyInfo>({
  async init(args, ctx) {
    const live =
      args.market === null ? args.study.spec.concurrency : (args.study.spec.auction?.candidates ?? 1);
    const sup = await DynamicSupervisor.start(ctx, { maxChildren: live + 1 });
    args.onSupervisor(sup);
    ctx.cast(ctx.self, { type: 'fill' });
    return {
      ...args,
      sup,
      agents: new Map(),
      byPid: new Map(),
      filling: false,
      stopped: false,
      lastBest: null,
      waiting: new Set(),
      leases: new Map(),
      auctionOpen: false,
      auctionSeq: 0,
      bids: [],
    };
  },
  async handleCall(msg, _from, s) {
    try {
      if (msg.type === 'report') {
        const decision = s.study.report(msg.trialId, msg.metrics);
        s.onEvent({ type: 'report', trialId: msg.trialId, metrics: msg.metrics, decision: decision.action });
        await publishBest(s);
        // Auction allocation: a lease counts the new steps reported; at its last one the trial
        // pauses (unless that is the trial's last step anyway).
        let leaseOver = false;
        const left = s.leases.get(msg.trialId);
        if (left !== undefined) {
          s.leases.set(msg.trialId, left - 1);
          const maxSteps = s.study.spec.auction?.maxSteps;
          leaseOver =
            decision.action === 'continue' &&
            left <= 1 &&
            !(maxSteps !== undefined && msg.metrics.step >= maxSteps);
        }
        return reply({ ok: true, decision, leaseOver }, s);
      }
      if (msg.type === 'checkpoint') {
        s.study.checkpoint(msg.trialId, msg.step, msg.state);
        return reply({ ok: true }, s);
      }
      const donor = s.study.latestCheckpoint(msg.donor);
      return reply({ ok: true, checkpoint: donor?.state, step: donor?.step ?? 0 }, s);
    } catch (error) {
      // A bad report, or one for a trial that ended, fails that trial (its agent throws the
      // message in the trainable's run). Anything else (a store that failed to write) is the
      // study's failure, not the trial's: it crashes the study agent, the trial stays running
      // in the store, and a resume continues it.
      if (error instanceof BadReportError || error instanceof TrialNotRunningError)
        return reply({ ok: false, error: error.message }, s);
      throw error;
    }
  },
  async handleCast(msg, s, ctx) {
    if (msg.type === 'fill') await fill(s, ctx as AgentContext);
    else if (msg.type === 'bid') {
      if (msg.auction === s.auctionSeq && s.auctionOpen) {
        const { trialId, amount, chance, reason } = msg;
        s.bids.push({ trialId, amount, chance, ...(reason === undefined ? {} : { reason }) });
      }
    } else if (msg.type === 'paused') {
      if (s.leases.delete(msg.trialId) && s.agents.has(msg.trialId)) {
        s.waiting.add(msg.trialId);
        s.onEvent({ type: 'pause', trialId: msg.trialId, step: msg.step });
        await allocate(s, ctx as AgentContext);
      }
    } else {
      ended(s, ctx as AgentContext, msg.trialId, msg.outcome, msg.gap);
      await publishBest(s);
    }
    return s;
  },
  async handleInfo(msg, s, ctx) {
    if (msg.type === 'auction-closed') {
      await auctionClosed(s, ctx as AgentContext, msg);
      return s;
    }
    const m = msg as { type?: string; pid?: Pid; reason?: unknown };
    if (m.type === 'DOWN' && m.pid !== undefined) {
      const trialId = s.byPid.get(pidKey(m.pid));
      // A trial agent that exits without reporting its end (a crash) fails its trial.
      if (trialId !== undefined && !s.stopped) {
        ended(
          s,
          ctx as AgentContext,
          trialId,
          { state: 'failed', error: `trial agent exited: ${String(m.reason)}` },
          null,
        );
      }
    }
    return s;
  },
  terminate(_reason, s) {
    s.stopped = true;
  },
});

// ---- trial agents ------------------------------------------------------------------------------

interface TrialArgs {
  readonly asked: AskedTrial;
  readonly studyRef: AnyRef;
  readonly executor: TrialExecutor;
  readonly variables: Variables;
  readonly trainable: TrainableRef;
  readonly trialTimeoutMs: number | undefined;
  readonly objective: Objective;
  /** Auction allocation's settings (null: fifo, the trial runs at once and to its end). */
  readonly auction: AuctionAllocation | null;
  /** Where its budget is (auction allocation), read synchronously when it bids. */
  readonly ledger: Ledger | null;
  /** Its recorded losses so far, in step order (a continued trial has some). */
  readonly curve: readonly number[];
  /** The last step the study recorded for it (0: none). */
  readonly lastStep: number;
}

interface TrialState extends Omit<TrialArgs, 'curve' | 'lastStep'> {
  readonly replica: VariableReplica;
  readonly abort: AbortController;
  config: Config;
  /** Set by an exploit decision: restart from the donor with this config once the run stops. */
  exploit: { donor: number; config: Config } | null;
  /** The best objective value this trial reported. */
  best: number | null;
  /** The scheduler ended the run because it reached its last step: completed, not pruned. */
  completedByScheduler: boolean;
  // Auction allocation only:
  /** Its learning curve: the losses the study recorded for it, in order. */
  readonly curve: number[];
  /** The last step the study recorded; a report of a step at or before it is a replay. */
  lastStep: number;
  /** Its lease ended: the run stops, and the trial waits for the next auction. */
  pausing: boolean;
}

type TrialInfo =
  | { readonly type: 'run'; readonly checkpoint: unknown }
  | { readonly type: 'outcome'; readonly run: TrialRunOutcome };

function startRun(s: TrialState, ctx: AgentContext, checkpoint: unknown): void {
  const rt = ctx.runtime;
  const self = ctx.self;
  const id = s.asked.id;
  const request = {
    trialId: id,
    config: s.config,
    trainable: s.trainable,
    checkpoint,
    ...(s.trialTimeoutMs === undefined ? {} : { timeoutMs: s.trialTimeoutMs }),
  };
  const hooks = {
    onReport: async (metrics: TrialMetrics): Promise<'continue' | 'stop'> => {
      // A run continued from a checkpoint older than its last report repeats a few steps: they
      // were recorded already (and paid for), so they are not reported again.
      if (s.auction !== null && metrics.step <= s.lastStep) return 'continue';
      const answer = (await rt.call(
        s.studyRef,
        { type: 'report', trialId: id, metrics },
        Number.POSITIVE_INFINITY,
      )) as { ok: true; decision: Decision; leaseOver: boolean } | { ok: false; error: string };
      if (!answer.ok) throw new Error(answer.error);
      const value = metrics[s.objective.metric];
      if (s.auction !== null) {
        s.lastStep = metrics.step;
        if (typeof value === 'number') s.curve.push(lossOf(s.objective, value));
      }
      if (
        value !== undefined &&
        (s.best === null || (s.objective.mode === 'min' ? value < s.best : value > s.best))
      ) {
        s.best = value;
      }
      const decision = answer.decision;
      if (decision.action === 'exploit') {
        s.exploit = { donor: decision.donor, config: decision.config };
        return 'stop';
      }
      // A stop at the end of the budget (ASHA at maxSteps) completes the trial; others prune it.
      if (decision.action === 'stop' && decision.reason === 'completed') s.completedByScheduler = true;
      if (decision.action === 'continue' && answer.leaseOver) {
        s.pausing = true;
        return 'stop';
      }
      return decision.action;
    },
    onCheckpoint: async (state: unknown, step: number): Promise<void> => {
      const answer = (await rt.call(
        s.studyRef,
        { type: 'checkpoint', trialId: id, step, state },
        Number.POSITIVE_INFINITY,
      )) as { ok: true } | { ok: false; error: string };
      if (!answer.ok) throw new Error(answer.error);
    },
  };
  s.executor.run(request, hooks, s.abort.signal).then(
    (run) => rt.send(self, { type: 'outcome', run }),
    (error: unknown) =>
      rt.send(self, {
        type: 'outcome',
        run: {
          status: 'failed',
          code: 'E_TUNE_EXECUTOR',
          reason: error instanceof Error ? error.message : String(error),
        },
      }),
  );
}

/** How far this trial's best is from the study's best, as this agent's replica holds the latter. */
function gapToBest(s: TrialState): number | null {
  const studyBest = s.replica.get(`${BEST_PREFIX}.value`);
  const bestTrial = s.replica.get(`${BEST_PREFIX}.trial`);
  if (s.best === null || typeof studyBest !== 'number' || typeof bestTrial !== 'number' || bestTrial < 0)
    return null;
  return Math.abs(s.best - studyBest);
}

/** The study's best loss as this trial's replica of the `best.*` variables holds it, or null. */
function replicaBestLoss(s: TrialState): number | null {
  const value = s.replica.get(`${BEST_PREFIX}.value`);
  const trial = s.replica.get(`${BEST_PREFIX}.trial`);
  if (typeof value !== 'number' || typeof trial !== 'number' || trial < 0) return null;
  return lossOf(s.objective, value);
}

/** Give up (auction allocation): the trial ends pruned; the agent stops. */
function giveUp(s: TrialState, ctx: AgentContext): void {
  ctx.cast(s.studyRef, {
    type: 'ended',
    trialId: s.asked.id,
    outcome: { state: 'pruned' },
    gap: gapToBest(s),
  });
}

type TrialCast =
  | { readonly type: 'lease'; readonly checkpoint: unknown }
  | { readonly type: 'give-up'; readonly reason: string };

const TrialAgent = behaviour<TrialArgs, TrialState, never, never, unknown, TrialInfo>({
  init(args, ctx) {
    // Trapping exits, the supervisor's shutdown runs terminate, which ends the run at once.
    ctx.trapExit(true);
    args.variables.subscribe(
      args.variables.names().filter((n) => n.startsWith(`${BEST_PREFIX}.`)),
      ctx.self,
    );
    // Under auction allocation the trial waits for a lease; under fifo it runs at once.
    if (args.auction === null) ctx.send(ctx.self, { type: 'run', checkpoint: args.asked.checkpoint });
    return {
      ...args,
      replica: new VariableReplica(),
      abort: new AbortController(),
      config: args.asked.config,
      exploit: null,
      best: null,
      completedByScheduler: false,
      curve: [...args.curve],
      lastStep: args.lastStep,
      pausing: false,
    };
  },
  handleCast(msg, s, ctx) {
    if (isBidRequest(msg) && s.auction !== null && s.ledger !== null) {
      // The trial's own decision, from its own state: its balance, its curve, its replica of the best.
      const reserve =
        msg.kind === 'vcg'
          ? (msg.reserve.slot ?? 0)
          : msg.kind === 'vickrey' || msg.kind === 'first_price'
            ? msg.reserve
            : 0;
      const balance = s.ledger.has(accountOf(s.asked.id)) ? s.ledger.available(accountOf(s.asked.id)) : 0;
      const bid = leaseBid({
        curve: s.curve,
        bestLoss: replicaBestLoss(s),
        balance,
        step: s.lastStep,
        reserve,
        settings: s.auction,
      });
      const record = { trialId: s.asked.id, amount: bid.amount, chance: bid.outlook.chance };
      ctx.cast(s.studyRef, {
        type: 'bid',
        auction: msg.id,
        ...record,
        ...(bid.amount === null ? { reason: bid.reason } : {}),
      });
      if (bid.amount === null) {
        placeBid(ctx, msg, null);
        giveUp(s, ctx as AgentContext);
        return stop('normal', s);
      }
      placeBid(
        ctx,
        msg,
        msg.kind === 'vcg'
          ? { items: { slot: 1 }, amount: bid.amount }
          : { amount: bid.amount, item: 'slot' },
      );
      return s;
    }
    if (isBidRejection(msg)) {
      // Only a bid above what the ledger holds is rejected, which a trial never bids: give up.
      placeBid(ctx, msg, null);
      giveUp(s, ctx as AgentContext);
      return stop('normal', s);
    }
    const m = msg as TrialCast;
    if (m.type === 'lease') {
      s.pausing = false;
      startRun(s, ctx as AgentContext, m.checkpoint);
      return s;
    }
    if (m.type === 'give-up') {
      giveUp(s, ctx as AgentContext);
      return stop('normal', s);
    }
    handleVariables(msg, s.replica, ctx);
    return s;
  },
  async handleInfo(msg, s, ctx) {
    if (msg.type === 'run') {
      startRun(s, ctx as AgentContext, msg.checkpoint);
      return s;
    }
    if (msg.type !== 'outcome') return s;
    const exploit = s.exploit;
    if (exploit !== null && msg.run.status === 'stopped') {
      // PBT: continue from the donor's latest checkpoint with the new configuration.
      s.exploit = null;
      s.pausing = false;
      s.config = exploit.config;
      const answer = (await ctx.call(
        s.studyRef,
        { type: 'donor', donor: exploit.donor },
        Number.POSITIVE_INFINITY,
      )) as {
        checkpoint: unknown;
        step: number;
      };
      // Its steps now go on from the donor's.
      s.lastStep = answer.step;
      startRun(s, ctx as AgentContext, answer.checkpoint);
      return s;
    }
    if (s.pausing && msg.run.status === 'stopped') {
      // Auction allocation: the lease is over; the slot is free once the run has stopped.
      s.pausing = false;
      ctx.cast(s.studyRef, { type: 'paused', trialId: s.asked.id, step: s.lastStep });
      return s;
    }
    ctx.cast(s.studyRef, {
      type: 'ended',
      trialId: s.asked.id,
      outcome:
        msg.run.status === 'stopped' && s.completedByScheduler ? { state: 'completed' } : outcomeOf(msg.run),
      gap: gapToBest(s),
    });
    return stop('normal', s);
  },
  terminate(_reason, s) {
    // Ends the run on its worker thread (terminated) if the agent stops mid-run.
    s.abort.abort();
  },
});

/** A trial thread's heap limit when none is given (MiB). */
const DEFAULT_MEMORY_LIMIT_MB = 512;

// ---- tune() ------------------------------------------------------------------------------------

/** Register the best-so-far variables: one per dimension, plus the value and the trial id. */
async function registerBest(variables: Variables, spec: StudySpec): Promise<void> {
  for (const v of spaceVariables(spec.space, BEST_CONFIG_PREFIX)) await variables.register(v);
  await variables.register({
    name: `${BEST_PREFIX}.value`,
    kind: { type: 'float', min: -Number.MAX_VALUE, max: Number.MAX_VALUE },
    default: 0,
  });
  // -1 until a trial reports: no best yet.
  await variables.register({
    name: `${BEST_PREFIX}.trial`,
    kind: { type: 'int', min: -1, max: 2 ** 31 },
    default: -1,
  });
}

/**
 * Run a study: `trials` trials of `trainable`, `concurrency` at a time, configurations from the
 * sampler, early stopping (or PBT) by the scheduler. Resolves when every trial has ended (or the
 * signal aborted the study). Bad options throw before any work starts.
 *
 * ```ts
 * const result = await tune({
 *   space: { learningRate: float(1e-4, 1, { log: true }), hidden: int(4, 64) },
 *   objective: { metric: 'accuracy', mode: 'max' },
 *   trainable: { module: './train.js' },
 *   sampler: { name: 'tpe' }, scheduler: { name: 'asha', options: { maxSteps: 30 } },
 *   trials: 40, concurrency: 2, seed: 1,
 * });
 * ```
 */
export async function tune(options: TuneOptions): Promise<TuneResult> {
  const study =
    options.persist === undefined ? Study.create(options) : Study.create(options, options.persist);
  return runStudy(study, options);
}

/**
 * Run an existing study (a new one from `Study.create`, or one rebuilt by `Study.resume`) to its
 * end with `tune`'s machinery. `options` supplies the run-time settings (trainable, limits, events).
 */
export async function runStudy(
  study: Study,
  options: Pick<TuneOptions, 'trialTimeoutMs' | 'memoryLimitMb' | 'runtime' | 'onEvent' | 'signal'> & {
    readonly trainable?: TrainableRef;
  },
): Promise<TuneResult> {
  const trainable = options.trainable ?? study.spec.trainable;
  if (trainable === undefined) {
    throw new InvalidArgumentError('tune option "trainable"', 'is required (a module exporting train)');
  }
  const startedAt = Date.now();
  const ownRuntime = options.runtime === undefined;
  const runtime = options.runtime ?? new Runtime();
  const executorOptions: ExecutorOptions = {
    runtime,
    threads: study.spec.concurrency,
    memoryLimitMb: options.memoryLimitMb ?? DEFAULT_MEMORY_LIMIT_MB,
    ...(options.trialTimeoutMs === undefined ? {} : { trialTimeoutMs: options.trialTimeoutMs }),
  };
  const executor = await TrialExecutor.start(executorOptions);
  const signal = options.signal;
  let variables: Variables | null = null;
  let aborted = false;
  /** The study ran to its end (every trial ended): nothing is left to terminate. */
  let completed = false;
  let agent: AnyRef | null = null;
  let sup: AnyRef | null = null;
  let market: Market | null = null;
  let balances: Record<number, number> | undefined;
  let removeAbort: (() => void) | null = null;
  try {
    // A trainable that cannot load is reported now, before any trial starts.
    await executor.check(trainable);
    variables = Variables.start(runtime);
    await registerBest(variables, study.spec);
    if (study.spec.allocation === 'auction') market = await startMarket(runtime);
    // Aborted already: no study agent starts, so no trial starts and the store is untouched.
    if (signal?.aborted === true) aborted = true;
    else {
      let settled = false;
      const callbacks: { resolve: () => void; reject: (error: unknown) => void } = {
        resolve: () => {},
        reject: () => {},
      };
      const done = new Promise<void>((resolve, reject) => {
        callbacks.resolve = resolve;
        callbacks.reject = reject;
      });
      /** Settle `done` once: resolved (the study ended, or the abort), or rejected (a crash). */
      const finish = (error?: unknown) => {
        if (settled) return;
        settled = true;
        if (error === undefined) callbacks.resolve();
        else callbacks.reject(error);
      };
      const onAbort = () => {
        if (settled) return;
        aborted = true;
        finish();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      removeAbort = () => signal?.removeEventListener('abort', onAbort);
      const args: StudyArgs = {
        study,
        executor,
        variables,
        trainable,
        trialTimeoutMs: options.trialTimeoutMs,
        onEvent: options.onEvent ?? (() => {}),
        onDone: () => {
          if (!settled) completed = true;
          finish();
        },
        onSupervisor: (ref) => {
          sup = ref;
        },
        market,
        signal,
      };
      const ref = await runtime.spawn(StudyAgent, args);
      agent = ref;
      // The study agent only exits when stopped below; an exit before that is a crash.
      runtime.awaitExit(ref).then((reason) => finish(new StudyCrashedError(reason)));
      await done;
    }
  } finally {
    removeAbort?.();
    // The study agent first (once it is gone, nothing writes to the store), then its supervisor,
    // whose shutdown terminates the trial agents (and so their runs).
    if (agent !== null) await halt(runtime, agent);
    const finalSup = sup as AnyRef | null;
    if (finalSup !== null) await halt(runtime, finalSup);
    const finalMarket = market as Market | null;
    if (finalMarket !== null) {
      balances = {};
      for (const t of study.trials()) {
        if (finalMarket.ledger.has(accountOf(t.id)))
          balances[t.id] = finalMarket.ledger.balance(accountOf(t.id));
      }
      await stopMarket(finalMarket);
    }
    const owner = (variables as Variables | null)?.owner;
    if (owner !== undefined) await halt(runtime, owner);
    // Unless the study ran to its end, runs may still be going: terminate them.
    await executor.close(completed ? {} : { force: true });
    if (ownRuntime) await runtime.shutdown();
  }
  return {
    spec: study.spec,
    best: study.best(),
    summary: study.summary(),
    trials: study.trials(),
    wallMs: Date.now() - startedAt,
    startedAt,
    aborted,
    ...(balances === undefined ? {} : { balances }),
  };
}

/** Stop an agent (if it still runs) and wait until it has exited. */
async function halt(runtime: Runtime, ref: AnyRef | Pid): Promise<void> {
  if (runtime.isAlive(ref)) await runtime.stop(ref, 'shutdown').catch(() => {});
  await runtime.awaitExit(ref);
}

/** Auction allocation's market: an auction service and a ledger of budgets (in memory). */
async function startMarket(runtime: Runtime): Promise<Market> {
  const store = await EventStore.start(runtime, { backend: new MemoryEventLog(), name: 'tune-budgets' });
  try {
    const ledger = await Ledger.start(runtime, { store, name: 'tune-budgets' });
    await ledger.open(STUDY_ACCOUNT, 0);
    const auctions = await Auctions.start(runtime);
    return { auctions, ledger, store };
  } catch (error) {
    await store.close().catch(() => {});
    throw error;
  }
}

async function stopMarket(market: Market): Promise<void> {
  await market.auctions.stop().catch(() => {});
  await market.ledger.close().catch(() => {});
  await market.store.close().catch(() => {});
}
