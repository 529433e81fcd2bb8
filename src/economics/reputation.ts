/**
 * Reputation: how well each agent has done, from the outcomes recorded for it, with old outcomes
 * counting less and less (DESIGN.md, "Economics"). Scores are usable as weights by consensus's
 * weighted rule and by the weighted allocation policies.
 *
 * The model is a Beta distribution with decaying evidence. Each agent has a success count `s` and
 * a failure count `f` (real numbers): a success adds 1 to `s`, a failure 1 to `f`, and a graded
 * outcome `x` in [0, 1] adds `x` to `s` and `1 - x` to `f` (times the outcome's weight). Both
 * counts decay exponentially on the runtime clock: after one half-life they are worth half. The
 * score is the posterior mean with a prior of `a` successes and `b` failures (default 1 and 1):
 *
 *     score = (s + a) / (s + f + a + b)
 *
 * so an unknown agent scores a / (a + b) (0.5 by default), evidence moves it towards its success
 * rate, many outcomes move it further than a few, and with no new outcomes it drifts back towards
 * the prior as the evidence fades. With positive priors the score is always strictly between 0 and
 * 1: every weight is > 0, as both weighted consumers require.
 *
 * Evidence saturates: when `s + f` would pass `MAX_EVIDENCE` (1e15, still small enough that one
 * more outcome of weight 1 changes it), both are scaled down together, keeping their ratio, so
 * no run of valid records (weights up to the largest double) can overflow them. And the score is
 * computed so that huge priors cannot overflow either, then kept inside
 * [Number.MIN_VALUE, 1 - 2^-53]: never NaN, never exactly 0 or 1.
 *
 * Decay costs no timers: each agent keeps its counts and the time they were last brought up to
 * date, and a read scales them by `2 ** (-elapsed / halfLifeMs)`. Reads (`score`, `rankings`,
 * `weights`) are synchronous and never write; a record decays the stored counts, then adds.
 *
 * Not an agent: a Reputation is a plain object owned by whoever creates it, read and written on
 * the caller's thread (JS runs one callback at a time, so each call is atomic), so reading
 * reputation is never a round trip through a mailbox. Agents are keyed by string: a name or id
 * as given, a ref or pid by `pidKey` (the same key `allocate` uses for weight maps).
 *
 * Telemetry: `['mabeam','reputation','recorded']` (measurements `score`, `successes`, `failures`;
 * metadata `agent`, `outcome`, `weight`), emitted only while someone listens.
 */
import { type AnyRef, InvalidArgumentError, isPid, type Pid, pidKey, type Runtime } from '../kernel/index.js';

/** Whom a reputation is about: a name or id, or an agent's ref or pid (keyed by `pidKey`). */
export type Subject = string | AnyRef | Pid;

/** One outcome: a success, a failure, or a graded result in [0, 1] (1 is a full success). */
export type Outcome = 'success' | 'failure' | number;

export interface ReputationOptions {
  /**
   * Runtime-clock ms after which evidence counts half. Default one hour. Infinity: no decay.
   */
  readonly halfLifeMs?: number;
  /** The prior's pseudo-counts, each finite and > 0. Default 1 success and 1 failure. */
  readonly prior?: { readonly successes: number; readonly failures: number };
}

/** An agent's standing, decayed to the time it was read. */
export interface ReputationEntry {
  /** The agent's key. */
  readonly agent: string;
  readonly score: number;
  /** Decayed success evidence (the prior not included). */
  readonly successes: number;
  /** Decayed failure evidence (the prior not included). */
  readonly failures: number;
  /** Runtime-clock time of the last recorded outcome. */
  readonly updatedAt: number;
}

export const REPUTATION_RECORDED = ['mabeam', 'reputation', 'recorded'] as const;

const DEFAULT_HALF_LIFE_MS = 3_600_000;
/**
 * The most evidence (successes + failures) an agent keeps. Below 2^53, so an outcome of weight 1
 * still counts; far below the float range, so adding any finite weight cannot overflow.
 */
export const MAX_EVIDENCE = 1e15;
/** The largest double below 1. */
const BELOW_ONE = 1 - Number.EPSILON / 2;

interface Evidence {
  successes: number;
  failures: number;
  /** When the counts were last decayed (the last record). */
  at: number;
}

/** The key of a subject: a string as given, a ref or pid by `pidKey`. */
export function subjectKey(agent: Subject, argument = 'agent'): string {
  if (typeof agent === 'string') {
    if (agent.length === 0)
      throw new InvalidArgumentError(argument, 'must be a non-empty string, a ref or a pid', agent);
    return agent;
  }
  if (isPid(agent)) return pidKey(agent);
  throw new InvalidArgumentError(argument, 'must be a non-empty string, a ref or a pid', agent);
}

export class Reputation {
  readonly runtime: Runtime;
  readonly halfLifeMs: number;
  readonly prior: { readonly successes: number; readonly failures: number };
  readonly #records = new Map<string, Evidence>();

  constructor(runtime: Runtime, options: ReputationOptions = {}) {
    const halfLifeMs = options.halfLifeMs ?? DEFAULT_HALF_LIFE_MS;
    if (typeof halfLifeMs !== 'number' || Number.isNaN(halfLifeMs) || !(halfLifeMs > 0)) {
      throw new InvalidArgumentError('halfLifeMs', 'must be a number > 0 (Infinity: no decay)', halfLifeMs);
    }
    const prior = options.prior ?? { successes: 1, failures: 1 };
    if (prior === null || typeof prior !== 'object') {
      throw new InvalidArgumentError('prior', 'must be {successes, failures}', prior);
    }
    for (const field of ['successes', 'failures'] as const) {
      const v: unknown = prior[field];
      if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0)) {
        throw new InvalidArgumentError(`prior.${field}`, 'must be a finite number > 0', v);
      }
    }
    this.runtime = runtime;
    this.halfLifeMs = halfLifeMs;
    this.prior = { successes: prior.successes, failures: prior.failures };
  }

  /** How much evidence from `at` is worth now. */
  #decay(at: number, now: number): number {
    if (this.halfLifeMs === Number.POSITIVE_INFINITY || now <= at) return 1;
    return 2 ** (-(now - at) / this.halfLifeMs);
  }

  /** The posterior mean, strictly inside (0, 1) whatever the (finite) counts and prior. */
  #score(successes: number, failures: number): number {
    const { successes: a, failures: b } = this.prior;
    const up = successes + a;
    const down = failures + b;
    const total = up + down;
    // A prior near the float range can overflow the sum: the same mean as 1 / (1 + down / up).
    const score = Number.isFinite(total) ? up / total : 1 / (1 + down / up);
    return Math.min(BELOW_ONE, Math.max(Number.MIN_VALUE, score));
  }

  /**
   * Record an outcome for `agent` (`weight` times: a weight of 2 counts as two such outcomes) and
   * return its new score. Throws InvalidArgumentError for an outcome that is not `success`,
   * `failure` or a number in [0, 1], or a weight that is not finite and > 0.
   */
  record(agent: Subject, outcome: Outcome, weight = 1): number {
    const key = subjectKey(agent);
    let x: number;
    if (outcome === 'success') x = 1;
    else if (outcome === 'failure') x = 0;
    else if (typeof outcome === 'number' && outcome >= 0 && outcome <= 1) x = outcome;
    else
      throw new InvalidArgumentError(
        'outcome',
        "must be 'success', 'failure' or a number in [0, 1]",
        outcome,
      );
    if (typeof weight !== 'number' || !Number.isFinite(weight) || !(weight > 0)) {
      throw new InvalidArgumentError('weight', 'must be a finite number > 0', weight);
    }
    const now = this.runtime.clock.now();
    let r = this.#records.get(key);
    if (r === undefined) {
      r = { successes: 0, failures: 0, at: now };
      this.#records.set(key, r);
    } else {
      const k = this.#decay(r.at, now);
      r.successes *= k;
      r.failures *= k;
      r.at = Math.max(r.at, now);
    }
    // Finite: the stored sum is at most MAX_EVIDENCE, which no finite weight can push past the
    // largest double. Past MAX_EVIDENCE, both are scaled down together (their ratio kept).
    r.successes += weight * x;
    r.failures += weight * (1 - x);
    const evidence = r.successes + r.failures;
    if (evidence > MAX_EVIDENCE) {
      const k = MAX_EVIDENCE / evidence;
      r.successes *= k;
      r.failures *= k;
    }
    const score = this.#score(r.successes, r.failures);
    const tel = this.runtime.telemetry;
    if (tel.enabled) {
      tel.execute(
        REPUTATION_RECORDED,
        { score, successes: r.successes, failures: r.failures },
        { agent: key, outcome, weight },
      );
    }
    return score;
  }

  /** The agent's score now, in (0, 1); the prior mean for an agent with no outcomes. */
  score(agent: Subject): number {
    return this.#scoreOf(subjectKey(agent));
  }

  #scoreOf(key: string): number {
    const r = this.#records.get(key);
    if (r === undefined) return this.#score(0, 0);
    const k = this.#decay(r.at, this.runtime.clock.now());
    return this.#score(r.successes * k, r.failures * k);
  }

  /** The agent's standing now, or undefined if no outcome was ever recorded for it. */
  entry(agent: Subject): ReputationEntry | undefined {
    const key = subjectKey(agent);
    const r = this.#records.get(key);
    return r === undefined ? undefined : this.#entry(key, r, this.runtime.clock.now());
  }

  #entry(agent: string, r: Evidence, now: number): ReputationEntry {
    const k = this.#decay(r.at, now);
    const successes = r.successes * k;
    const failures = r.failures * k;
    return { agent, score: this.#score(successes, failures), successes, failures, updatedAt: r.at };
  }

  /**
   * The `limit` best agents with recorded outcomes (default all), best first: by score, then by
   * evidence (more outcomes first), then by key, so the order is deterministic.
   */
  rankings(limit = Number.POSITIVE_INFINITY): ReputationEntry[] {
    if (
      typeof limit !== 'number' ||
      Number.isNaN(limit) ||
      limit < 0 ||
      (Number.isFinite(limit) && !Number.isInteger(limit))
    ) {
      throw new InvalidArgumentError('limit', 'must be an integer >= 0 (or Infinity)', limit);
    }
    const now = this.runtime.clock.now();
    const all: ReputationEntry[] = [];
    for (const [key, r] of this.#records) all.push(this.#entry(key, r, now));
    all.sort(
      (x, y) =>
        y.score - x.score ||
        y.successes + y.failures - (x.successes + x.failures) ||
        (x.agent < y.agent ? -1 : x.agent > y.agent ? 1 : 0),
    );
    return Number.isFinite(limit) ? all.slice(0, limit) : all;
  }

  /**
   * The agents' scores, aligned with `agents`: an array usable as it is by consensus's weighted
   * rule (`{kind: 'weighted', weights, threshold}`) and by the weighted allocation policies.
   * Every weight is > 0 (an agent with no outcomes weighs the prior mean).
   */
  weights(agents: readonly Subject[]): number[] {
    if (!Array.isArray(agents))
      throw new InvalidArgumentError('agents', 'must be an array of agents', agents);
    return agents.map((a, i) => this.#scoreOf(subjectKey(a, `agents[${i}]`)));
  }

  /** Drop an agent's record (its score returns to the prior). True if it had one. */
  forget(agent: Subject): boolean {
    return this.#records.delete(subjectKey(agent));
  }

  /**
   * Drop the records whose decayed evidence (successes + failures) is below `minEvidence`: they
   * score within a hair of the prior anyway. Returns how many were dropped. Bounds the memory of
   * a long-lived Reputation whose agents come and go.
   */
  prune(minEvidence = 1e-3): number {
    if (typeof minEvidence !== 'number' || !(minEvidence >= 0)) {
      throw new InvalidArgumentError('minEvidence', 'must be a number >= 0', minEvidence);
    }
    const now = this.runtime.clock.now();
    let dropped = 0;
    for (const [key, r] of this.#records) {
      if ((r.successes + r.failures) * this.#decay(r.at, now) < minEvidence) {
        this.#records.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  /** Agents with a record. */
  get size(): number {
    return this.#records.size;
  }
}
