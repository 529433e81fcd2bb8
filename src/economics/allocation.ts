/**
 * Resource allocation (DESIGN.md, "Economics"): gather every agent's needs in parallel, then share
 * named capacities among them by a policy computed in a pure function.
 *
 * Gathering is a supervised session agent, a temporary child of the `Allocator` service's dynamic
 * supervisor, in the pattern of consensus: the session monitors every agent, casts it a needs
 * request, and collects the needs the agents cast back (each answers from its own state, through
 * `withNeeds` or `reportNeeds`; the session never calls an agent, so a slow one holds up nobody).
 * It computes the allocation as soon as every agent has answered or died, or at its deadline (a
 * runtime timer, so a VirtualClock drives it in tests). An agent that did not answer in time,
 * died, or could not be asked (its bounded mailbox full) gets nothing and is named in `missing`;
 * an agent whose needs are invalid gets nothing and is named in `rejected`, and the others are
 * allocated as usual. Needs are read once, when they arrive: the session keeps a copy of what it
 * checked, never the agent's object. The session resolves the caller's promise exactly once,
 * publishes telemetry and stops.
 *
 * The allocation itself is `computeAllocation`, a pure function (property-tested), built on the
 * single-resource `waterFill`. Each resource is shared independently of the others (an agent's
 * share of cpu does not depend on what it asked of memory): simple, and every guarantee below
 * holds per resource. Policies, with `d` an agent's need of a resource, `w` its weight and `C` the
 * resource's capacity; when the needs fit (sum of d <= C), every policy grants every need in full:
 *
 * - `proportional`: oversubscribed, each agent gets `C * d / sum(d)`, the same fraction of its need.
 * - `max_min` (max-min fairness by water-filling): each agent gets `min(d, L)` for the level L that
 *   uses up C. Nobody can get more without taking from an agent that has less or the same.
 * - `weighted_max_min`: each gets `min(d, L * w)`; among agents not fully served, shares are in the
 *   ratio of their weights, and nobody can gain without taking from an agent whose share per
 *   unit of weight is less or the same.
 * - `weighted_proportional`: each gets `min(d, L * w * d)`: proportional to weight times need, and
 *   an agent served in full hands what it does not need to the others, in the same ratio.
 *
 * Agents are identified by a token, not by the sender a reply names (a cast does not carry its
 * sender): each agent's request carries a secret of its own, 128 random bits drawn per
 * allocation, and needs count as that agent's only when they bring the secret back. So an agent
 * cannot report needs in a competitor's name, as in auctions.
 *
 * Telemetry: `['mabeam','allocation','done']` (measurements `agents`, `allocated`, `missing`,
 * `rejected`, `elapsedMs`; metadata the id, the policy kind and the result) and
 * `['mabeam','allocation','aborted']` when a session dies before deciding.
 */
import { randomBytes } from 'node:crypto';
import { SessionService } from '../coordination/session-service.js';
import {
  type AgentContext,
  type AgentRef,
  type AnyRef,
  type Behaviour,
  type CastResult,
  describe,
  InvalidArgumentError,
  isPid,
  MabeamError,
  type Pid,
  pidEquals,
  pidKey,
  type Runtime,
  type SystemMessage,
  stop,
} from '../kernel/index.js';

// ---- errors ------------------------------------------------------------------------------------

/** Error codes of resource allocation (unique across mabeam, never reused). */
export const AllocationErrorCodes = {
  /** An agent answered with needs that are not a map of known resources to amounts >= 0. */
  INVALID_NEEDS: 'E_ALLOCATION_INVALID_NEEDS',
  /** The allocation session died before deciding (killed, or the service was stopped). */
  ABORTED: 'E_ALLOCATION_ABORTED',
} as const;

/** Why one agent's needs were rejected (found in `AllocationResult.rejected`, never thrown). */
export class InvalidNeedsError extends MabeamError {
  /** The agent (its pid key) whose needs these were. */
  readonly agent: string;
  /** The offending part: `needs`, or `needs.<resource>`. */
  readonly field: string;
  constructor(agent: string, field: string, problem: string, value: unknown) {
    super(
      AllocationErrorCodes.INVALID_NEEDS,
      `invalid ${field} from agent ${agent}: ${problem} (got ${safeDescribe(value)})`,
    );
    this.agent = agent;
    this.field = field;
  }
}

/**
 * `describe`, for values an agent chose: one whose `toString` throws, or a Proxy whose every trap
 * throws, must not crash the session that is reporting it.
 */
function safeDescribe(value: unknown): string {
  try {
    return describe(value);
  } catch {
    return 'an unprintable value';
  }
}

/** What a thrown `error` says, however hostile the thrown value. */
function whyThrown(error: unknown): string {
  try {
    return error instanceof Error ? String(error.message) : describe(error);
  } catch {
    return 'an unprintable value';
  }
}

/** The session died before the allocation was computed; `exitReason` says how. */
export class AllocationAbortedError extends MabeamError {
  readonly id: AllocationId;
  readonly exitReason: unknown;
  constructor(id: AllocationId, exitReason: unknown) {
    super(
      AllocationErrorCodes.ABORTED,
      `allocation ${describe(id)} aborted: its session exited with reason ${describe(exitReason)}`,
      { cause: exitReason instanceof Error ? exitReason : undefined },
    );
    this.id = id;
    this.exitReason = exitReason;
  }
}

// ---- public types ------------------------------------------------------------------------------

/** Named capacities: resource name -> amount available (finite, >= 0). */
export type Resources = Readonly<Record<string, number>>;

/** One agent's needs: resource name -> amount (finite, >= 0). A resource left out counts as 0. */
export type Needs = Readonly<Record<string, number>>;

/**
 * Weights of a weighted policy, each finite and > 0:
 * - an array, aligned with the agents (for `computeAllocation`, with the claims), as consensus's
 *   weighted rule takes them and as `Reputation.weights(agents)` returns them;
 * - a Map or a plain object keyed by agent key (`pidKey(pid)` for agents; the claim's `agent`
 *   for `computeAllocation`); every agent must have a weight;
 * - a function of the agent key and its index.
 */
export type Weights =
  | readonly number[]
  | ReadonlyMap<string, number>
  | Readonly<Record<string, number>>
  | ((agent: string, index: number) => number);

/** How capacities are shared; see the module comment for each policy's guarantees. */
export type AllocationPolicy =
  | { readonly kind: 'proportional' }
  | { readonly kind: 'max_min' }
  | { readonly kind: 'weighted_max_min'; readonly weights: Weights }
  | { readonly kind: 'weighted_proportional'; readonly weights: Weights };

export type AllocationPolicyKind = AllocationPolicy['kind'];

/** One claimant of `computeAllocation`: an id (unique among the claims) and its needs. */
export interface Claim {
  readonly agent: string;
  readonly needs: Needs;
}

/** What `computeAllocation` grants one claimant: every resource, 0 where it gets none. */
export interface Grant {
  readonly agent: string;
  readonly granted: Readonly<Record<string, number>>;
}

export type AllocationId = number | string;

/** The timer message of a session (its deadline). */
export interface AllocationDeadline {
  readonly type: 'allocation_deadline';
}

/** An allocation session's handle: it takes needs replies by cast. */
export type AllocationSessionRef = AgentRef<never, never, NeedsReply, AllocationDeadline>;

/**
 * What a session casts to each agent. Answer with `reportNeeds` (or use `withNeeds`). `context`
 * is the caller's `options.context` (what the resources are for, say).
 */
export interface NeedsRequest<C = unknown> {
  readonly type: 'needs_request';
  readonly session: AllocationSessionRef;
  readonly id: AllocationId;
  /** This agent's secret for this allocation: its answer counts only with it. */
  readonly token: string;
  /** The capacities on offer. */
  readonly resources: Resources;
  readonly context: C;
}

/** What an agent casts back to the session. */
export interface NeedsReply {
  readonly type: 'needs';
  readonly id: AllocationId;
  /** The token of the request answered: it, not the sender, says whose needs these are. */
  readonly token: string;
  /** Validated by the session: invalid needs put the agent in `rejected`. */
  readonly needs: unknown;
}

/** An agent that answered with valid needs, and what it was granted. */
export interface AgentAllocation {
  readonly agent: Pid;
  /** `pidKey(agent)`. */
  readonly key: string;
  readonly needs: Needs;
  /** Every resource, 0 where the agent gets none. */
  readonly granted: Readonly<Record<string, number>>;
}

/**
 * An agent that gets nothing because it did not answer by the deadline (`deadline`), exited first
 * (`exit`), or could not be asked at all (`undeliverable`: its bounded mailbox was full and
 * refused or dropped the request).
 */
export interface MissingAgent {
  readonly agent: Pid;
  readonly key: string;
  readonly reason: 'deadline' | 'exit' | 'undeliverable';
  /** The agent's exit reason (`noproc` if it was already gone), for `exit`. */
  readonly exitReason?: unknown;
  /**
   * For `undeliverable`: the error the request's cast threw (a MailboxFullError under the
   * `reject` overflow policy), or undefined when the mailbox dropped it.
   */
  readonly error?: unknown;
}

/** An agent that gets nothing because its needs were invalid. */
export interface RejectedAgent {
  readonly agent: Pid;
  readonly key: string;
  /** What it sent. */
  readonly needs: unknown;
  readonly error: InvalidNeedsError;
}

/** The outcome of `Allocator.allocate`. Every agent is in exactly one of the three lists. */
export interface AllocationResult {
  readonly id: AllocationId;
  readonly policy: AllocationPolicyKind;
  readonly resources: Resources;
  /** Agents that answered with valid needs, in the order given. */
  readonly allocations: readonly AgentAllocation[];
  /** Agents that did not answer (deadline) or exited (exit), in the order given. */
  readonly missing: readonly MissingAgent[];
  /** Agents whose needs were invalid, in the order given. */
  readonly rejected: readonly RejectedAgent[];
  /** Capacity left over per resource (more than 0 only when the needs did not use it all). */
  readonly unallocated: Readonly<Record<string, number>>;
  /** Runtime-clock ms from the call to the result. */
  readonly elapsedMs: number;
}

/** Options of one allocation. */
export interface AllocateOptions<C = unknown> {
  /** Runtime-clock ms to wait for needs; agents that have not answered by then get nothing. Default 5000. */
  readonly deadlineMs?: number;
  /** The id agents and results see; default a per-service counter. */
  readonly id?: AllocationId;
  /**
   * Passed to every agent in its request. Plain data (plain objects and arrays) is copied and
   * frozen first, since every agent gets the same object; other objects are passed as they are.
   */
  readonly context?: C;
}

/** Options of the service. */
export interface AllocatorOptions {
  /** Most allocations at once (the dynamic supervisor's maxChildren). Default: no limit. */
  readonly maxSessions?: number;
}

export const ALLOCATION_DONE = ['mabeam', 'allocation', 'done'] as const;
export const ALLOCATION_ABORTED = ['mabeam', 'allocation', 'aborted'] as const;

const DEFAULT_DEADLINE_MS = 5000;
/** Random bytes of an agent's token. */
const TOKEN_BYTES = 16;

// ---- the pure part -----------------------------------------------------------------------------

/**
 * Share one resource: grant each claimant `min(demand, L * rate)` for the largest level L whose
 * grants fit in `capacity` (all demands in full when they fit). Rates are 1 for max-min, the
 * weight for weighted max-min, the demand for proportional and weight times demand for weighted
 * proportional; only their ratios matter. Pure; O(n log n).
 *
 * Guarantees, for any finite inputs: no grant exceeds its demand or is negative; the grants,
 * summed in index order, never exceed `capacity` (float rounding can push such a sum a few ulps
 * over, so any excess is taken back from the largest grant); and when the demands do not
 * fit, the capacity is handed out (up to rounding).
 *
 * Demands must be finite and >= 0, `capacity` finite and >= 0, rates finite and >= 0 (checked by
 * `computeAllocation`, not here). A rate of 0 gets nothing until every positive rate is served,
 * then shares what is left equally.
 */
export function waterFill(
  demands: ArrayLike<number>,
  capacity: number,
  rates: ArrayLike<number>,
): Float64Array {
  const logRate = (i: number) => {
    const r = rates[i] as number;
    return r > 0 ? Math.log(r) : Number.NEGATIVE_INFINITY;
  };
  const out = fill(demands, capacity, rates, logRate);
  trimExcess(out, capacity);
  return out;
}

/**
 * Rates within this factor of each other and needs below `PLAIN_MAX_NEED` are shared with plain
 * float arithmetic (exact for round numbers); nothing can then overflow or underflow.
 */
const PLAIN_RATE_SPAN = 1e100;
const PLAIN_MAX_NEED = 1e200;
/** Below this a float is subnormal: it loses precision, and scaling it up can overflow. */
const MIN_NORMAL = 2 ** -1022;

/** log(e^a + e^b), without overflow. */
function logAdd(a: number, b: number): number {
  if (a === Number.NEGATIVE_INFINITY) return b;
  if (b === Number.NEGATIVE_INFINITY) return a;
  const hi = Math.max(a, b);
  return hi + Math.log1p(Math.exp(Math.min(a, b) - hi));
}

/**
 * Water-filling proper. The level L at which claimant i is served in full is its key
 * `d / rate`; claimants are taken by key, and each is served in full while its key is at most
 * the level the rest could get, `remaining / (sum of the rates left)`. The first one that is not
 * sets the level for everyone left.
 *
 * With rates of moderate spread this is plain arithmetic. Rates spanning more than the float
 * range (a weight of 1e-300 beside one of 1e23, or weight times need overflowing) are handled in
 * logarithms instead: keys, levels and rate sums (log-sum-exp) never overflow or underflow, so
 * the order and the shares stay right where plain floats would collapse to 0 or Infinity.
 */
function fill(
  demands: ArrayLike<number>,
  capacity: number,
  rates: ArrayLike<number>,
  /** The logarithm of rate i, asked for only when plain floats will not do. */
  logRate: (i: number) => number,
): Float64Array {
  const n = demands.length;
  const out = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) total += demands[i] as number;
  if (total <= capacity) {
    for (let i = 0; i < n; i++) out[i] = demands[i] as number;
    return out;
  }
  // Claimants with something to ask for.
  const order: number[] = [];
  let top = 0;
  let bottom = Number.POSITIVE_INFINITY;
  let plain = true;
  for (let i = 0; i < n; i++) {
    const d = demands[i] as number;
    if (d > 0) {
      order.push(i);
      const r = rates[i] as number;
      top = Math.max(top, r);
      bottom = Math.min(bottom, r);
      if (d > PLAIN_MAX_NEED) plain = false;
    }
  }
  if (!(bottom >= MIN_NORMAL && top < Number.POSITIVE_INFINITY && top / bottom <= PLAIN_RATE_SPAN))
    plain = false;
  return plain
    ? fillPlain(demands, capacity, rates, order, top, out)
    : fillLog(demands, capacity, logRate, order, out);
}

/**
 * Plain-float water-filling. The grants at level t, `G(t) = sum of min(d, t * rate)`, grow with
 * t; the claimants served in full are those whose key is at most the largest key t* with
 * `G(t*) <= capacity`, found by binary search over the keys (sorted natively, which is several
 * times faster than sorting indices with a comparator), and the others share the rest at the
 * level `(capacity - their needs) / (sum of their rates)`. Rates are scaled by a power of two,
 * which is exact: round numbers stay round.
 */
function fillPlain(
  demands: ArrayLike<number>,
  capacity: number,
  rates: ArrayLike<number>,
  order: number[],
  top: number,
  out: Float64Array,
): Float64Array {
  const m = order.length;
  const scale = 2 ** -Math.floor(Math.log2(top));
  const rate = new Float64Array(m);
  const need = new Float64Array(m);
  const key = new Float64Array(m);
  for (let k = 0; k < m; k++) {
    const i = order[k] as number;
    const d = demands[i] as number;
    const r = (rates[i] as number) * scale;
    need[k] = d;
    rate[k] = r;
    key[k] = d / r;
  }
  const sorted = Float64Array.from(key).sort();
  const grants = (t: number): number => {
    let g = 0;
    for (let k = 0; k < m; k++) g += Math.min(need[k] as number, t * (rate[k] as number));
    return g;
  };
  // The largest index whose key's grants fit (-1: nobody is served in full).
  let lo = -1;
  let hi = m - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (grants(sorted[mid] as number) <= capacity) lo = mid;
    else hi = mid - 1;
  }
  const served = lo < 0 ? Number.NEGATIVE_INFINITY : (sorted[lo] as number);
  let servedNeed = 0;
  let restRate = 0;
  for (let k = 0; k < m; k++) {
    if ((key[k] as number) <= served) servedNeed += need[k] as number;
    else restRate += rate[k] as number;
  }
  const level = restRate > 0 ? Math.max(0, capacity - servedNeed) / restRate : 0;
  for (let k = 0; k < m; k++) {
    const d = need[k] as number;
    out[order[k] as number] = (key[k] as number) <= served ? d : Math.min(d, level * (rate[k] as number));
  }
  return out;
}

function fillLog(
  demands: ArrayLike<number>,
  capacity: number,
  logRate: (i: number) => number,
  order: number[],
  out: Float64Array,
): Float64Array {
  const n = demands.length;
  let top = Number.NEGATIVE_INFINITY;
  const logs = new Float64Array(n);
  for (const i of order) {
    logs[i] = logRate(i);
    top = Math.max(top, logs[i] as number);
  }
  const lr = new Float64Array(n);
  const key = new Float64Array(n);
  for (const i of order) {
    // Every rate 0: share equally.
    lr[i] = top === Number.NEGATIVE_INFINITY ? 0 : (logs[i] as number) - top;
    key[i] = Math.log(demands[i] as number) - (lr[i] as number);
  }
  order.sort((a, b) => (key[a] as number) - (key[b] as number) || a - b);
  const m = order.length;
  const suffix = new Float64Array(m + 1);
  suffix[m] = Number.NEGATIVE_INFINITY;
  for (let k = m - 1; k >= 0; k--)
    suffix[k] = logAdd(suffix[k + 1] as number, lr[order[k] as number] as number);
  let remaining = capacity;
  for (let k = 0; k < m; k++) {
    const sum = suffix[k] as number;
    const i = order[k] as number;
    if (sum === Number.NEGATIVE_INFINITY) {
      // Rates of 0 wait until every positive rate is served, then share the rest equally.
      const tail = order.slice(k);
      const shares = fill(
        tail.map((x) => demands[x] as number),
        remaining,
        tail.map(() => 1),
        () => 0,
      );
      tail.forEach((x, t) => {
        out[x] = shares[t] as number;
      });
      break;
    }
    const level = Math.log(remaining) - sum;
    if ((key[i] as number) <= level) {
      out[i] = demands[i] as number;
      remaining = Math.max(0, remaining - (demands[i] as number));
      continue;
    }
    for (let j = k; j < m; j++) {
      const x = order[j] as number;
      out[x] = Math.min(demands[x] as number, Math.exp(Math.log(remaining) + (lr[x] as number) - sum));
    }
    break;
  }
  return out;
}

/** Take back from the largest grant whatever float rounding put over `capacity`. */
function trimExcess(out: Float64Array, capacity: number): void {
  for (let round = 0; round < 64; round++) {
    let sum = 0;
    for (let i = 0; i < out.length; i++) sum += out[i] as number;
    if (sum <= capacity) return;
    // The largest grant: where the rounding is, and where a few ulps matter least.
    let largest = 0;
    for (let i = 1; i < out.length; i++) if ((out[i] as number) > (out[largest] as number)) largest = i;
    const x = out[largest] as number;
    out[largest] = Math.max(0, x - Math.max(sum - capacity, x * Number.EPSILON));
  }
}

interface NeedsProblem {
  readonly field: string;
  readonly problem: string;
  readonly value: unknown;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Read `needs` once and validate what was read: the agent's needs as a fresh plain record (the
 * only thing the caller may keep), or the problem. Each own key and each amount is read exactly
 * once, so an agent cannot get one value past the check and another into the allocation (by
 * changing its object afterwards, or with getters or a Proxy); reading that throws is a problem
 * too, never a crash of the reader.
 */
function readNeeds(
  needs: unknown,
  resources: Resources,
): { readonly needs: Needs; readonly problem?: undefined } | { readonly problem: NeedsProblem } {
  try {
    // A Map or an array would pass as "no needs at all" if its (absent) own keys were read.
    if (!isPlainObject(needs)) {
      return {
        problem: {
          field: 'needs',
          problem: 'must be a plain object of resource name to amount',
          value: needs,
        },
      };
    }
    // Keys are resource names, and `__proto__` is never one (checkResources), so assigning to a
    // plain object is safe.
    const copy: Record<string, number> = {};
    for (const name of Object.keys(needs)) {
      const value: unknown = (needs as Record<string, unknown>)[name];
      if (!Object.hasOwn(resources, name)) {
        const offer = Object.keys(resources).join(', ');
        return {
          problem: { field: `needs.${name}`, problem: `is not a resource on offer (${offer})`, value },
        };
      }
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
        return { problem: { field: `needs.${name}`, problem: 'must be a finite number >= 0', value } };
      }
      copy[name] = value;
    }
    return { needs: copy };
  } catch (error) {
    const why = whyThrown(error);
    return { problem: { field: 'needs', problem: `could not be read (${why})`, value: needs } };
  }
}

/**
 * Validate `needs` against the resources on offer: undefined when valid, else the error naming
 * the offending field (`needs`, or `needs.<resource>`); `agent` labels the error.
 */
export function checkNeeds(
  needs: unknown,
  resources: Resources,
  agent: string,
): InvalidNeedsError | undefined {
  const { problem: bad } = readNeeds(needs, resources);
  return bad === undefined ? undefined : new InvalidNeedsError(agent, bad.field, bad.problem, bad.value);
}

function checkResources(resources: unknown): Resources {
  if (resources === null || typeof resources !== 'object' || Array.isArray(resources)) {
    throw new InvalidArgumentError('resources', 'must be an object of resource name to capacity', resources);
  }
  const names = Object.keys(resources);
  if (names.length === 0)
    throw new InvalidArgumentError('resources', 'must name at least one resource', resources);
  const copy: Record<string, number> = {};
  for (const name of names) {
    // Results are plain objects keyed by resource name, where `__proto__` would silently vanish
    // (assigning it sets the prototype): refused rather than lost.
    if (name === '__proto__') {
      throw new InvalidArgumentError('resources.__proto__', 'is a reserved name, not a resource name');
    }
    const v: unknown = (resources as Record<string, unknown>)[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new InvalidArgumentError(`resources.${name}`, 'must be a finite number >= 0', v);
    }
    copy[name] = v;
  }
  return Object.freeze(copy);
}

const KINDS: ReadonlySet<unknown> = new Set([
  'proportional',
  'max_min',
  'weighted_max_min',
  'weighted_proportional',
]);

function checkPolicy(policy: unknown): AllocationPolicy {
  if (policy === null || typeof policy !== 'object' || !KINDS.has((policy as { kind?: unknown }).kind)) {
    throw new InvalidArgumentError(
      'policy',
      'must be {kind: proportional|max_min|weighted_max_min|weighted_proportional, ...}',
      policy,
    );
  }
  return policy as AllocationPolicy;
}

/**
 * The weights of a weighted policy for `keys` (aligned), or null for an unweighted one. Throws
 * InvalidArgumentError naming the weight that is missing, not finite or not above 0.
 */
function resolveWeights(policy: AllocationPolicy, keys: readonly string[]): Float64Array | null {
  if (policy.kind !== 'weighted_max_min' && policy.kind !== 'weighted_proportional') return null;
  const ws: unknown = policy.weights;
  const n = keys.length;
  const out = new Float64Array(n);
  let read: (key: string, i: number) => unknown;
  let label: (key: string, i: number) => string;
  if (Array.isArray(ws)) {
    if (ws.length !== n) {
      throw new InvalidArgumentError('policy weights', `must be an array of ${n} weights, one per agent`, ws);
    }
    read = (_k, i) => ws[i];
    label = (_k, i) => `policy weights[${i}]`;
  } else if (ws instanceof Map) {
    read = (k) => ws.get(k);
    label = (k) => `policy weights for agent ${k}`;
  } else if (typeof ws === 'function') {
    read = (k, i) => (ws as (agent: string, index: number) => number)(k, i);
    label = (k) => `policy weights(${JSON.stringify(k)})`;
  } else if (ws !== null && typeof ws === 'object') {
    read = (k) => (Object.hasOwn(ws, k) ? (ws as Record<string, unknown>)[k] : undefined);
    label = (k) => `policy weights for agent ${k}`;
  } else {
    throw new InvalidArgumentError('policy weights', 'must be an array, a Map, an object or a function', ws);
  }
  for (let i = 0; i < n; i++) {
    const k = keys[i] as string;
    let w: unknown;
    try {
      w = read(k, i);
    } catch (error) {
      // A weights function (or a getter, a Proxy) that throws is bad input, named like any other.
      const why = whyThrown(error);
      const err = new InvalidArgumentError(label(k, i), `threw: ${why}`);
      Object.defineProperty(err, 'cause', { value: error, writable: true, configurable: true });
      throw err;
    }
    if (typeof w !== 'number' || !Number.isFinite(w) || !(w > 0)) {
      throw new InvalidArgumentError(label(k, i), 'must be a finite number > 0', w);
    }
    out[i] = w;
  }
  return out;
}

/** Share every resource among `claims` (weights aligned with them, or null), validated input. */
function share(
  needs: readonly Needs[],
  resources: Resources,
  kind: AllocationPolicyKind,
  weights: ArrayLike<number> | null,
): Record<string, number>[] {
  const n = needs.length;
  const granted: Record<string, number>[] = [];
  for (let i = 0; i < n; i++) granted.push({});
  const demands = new Float64Array(n);
  const rates = new Float64Array(n);
  const byNeed = kind === 'proportional' || kind === 'weighted_proportional';
  const weight = (i: number) => (weights === null ? 1 : (weights[i] as number));
  // Weight times need can leave the float range; the log path then takes logarithms apart.
  const logRate = (i: number) => {
    const d = demands[i] as number;
    if (!byNeed) return Math.log(weight(i));
    return d > 0 ? Math.log(weight(i)) + Math.log(d) : Number.NEGATIVE_INFINITY;
  };
  for (const name of Object.keys(resources)) {
    for (let i = 0; i < n; i++) {
      // Own keys only: a resource named `toString` must not read Object.prototype's.
      const own = needs[i] as Needs;
      const d = Object.hasOwn(own, name) ? own[name] : undefined;
      demands[i] = d === undefined ? 0 : d;
      rates[i] = byNeed ? weight(i) * (demands[i] as number) : weight(i);
    }
    const out = fill(demands, resources[name] as number, rates, logRate);
    trimExcess(out, resources[name] as number);
    for (let i = 0; i < n; i++) (granted[i] as Record<string, number>)[name] = out[i] as number;
  }
  return granted;
}

/**
 * Share `resources` among `claims` by `policy`: a pure function (no runtime, no clock). Each
 * resource is shared independently by `waterFill`; every claim's grant lists every resource.
 * Throws InvalidArgumentError (E_INVALID_ARGUMENT) naming the bad value: resources that are not
 * finite amounts >= 0, claims that are not unique ids with valid needs (`claims[i].needs.cpu`),
 * an unknown policy, a missing or non-positive weight.
 */
export function computeAllocation(
  claims: readonly Claim[],
  resources: Resources,
  policy: AllocationPolicy,
): Grant[] {
  const res = checkResources(resources);
  const pol = checkPolicy(policy);
  if (!Array.isArray(claims))
    throw new InvalidArgumentError('claims', 'must be an array of {agent, needs}', claims);
  const keys: string[] = [];
  const needs: Needs[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < claims.length; i++) {
    const c: unknown = claims[i];
    const agent = (c as { agent?: unknown } | null)?.agent;
    if (typeof agent !== 'string')
      throw new InvalidArgumentError(`claims[${i}].agent`, 'must be a string', agent);
    if (seen.has(agent))
      throw new InvalidArgumentError(`claims[${i}].agent`, 'is a duplicate claimant', agent);
    seen.add(agent);
    const read = readNeeds((c as Claim).needs, res);
    if (read.problem !== undefined) {
      const bad = read.problem;
      throw new InvalidArgumentError(`claims[${i}].${bad.field}`, bad.problem, bad.value);
    }
    keys.push(agent);
    // The copy read during the check, never the claim's object again.
    needs.push(read.needs);
  }
  const granted = share(needs, res, pol.kind, resolveWeights(pol, keys));
  return keys.map((agent, i) => ({ agent, granted: granted[i] as Record<string, number> }));
}

// ---- the session -------------------------------------------------------------------------------

/** @internal what a session agent is started with */
export interface AllocationSessionArgs {
  readonly id: AllocationId;
  readonly agents: readonly Pid[];
  readonly keys: readonly string[];
  readonly resources: Resources;
  readonly policy: AllocationPolicyKind;
  /** Aligned with `agents`; null for unweighted policies. */
  readonly weights: Float64Array | null;
  readonly deadlineMs: number;
  readonly context: unknown;
  readonly startedAt: number;
  readonly done: (result: AllocationResult) => void;
}

// Per-agent slot states.
const PENDING = 0;
const ANSWERED = 1;
const REJECTED = 2;
const EXITED = 3;
const UNDELIVERABLE = 4;

interface SessionState {
  readonly args: AllocationSessionArgs;
  /** Agent index by pid id (for DOWN), verified in full on lookup; `byKey` only when ids collide. */
  readonly byId: Map<number, number>;
  readonly byKey: Map<string, number> | null;
  /** Agent index by its token (for answers). */
  readonly byToken: Map<string, number>;
  readonly slots: Uint8Array;
  /**
   * Per agent, by slot state: its valid needs (a copy made when they were checked), its raw
   * invalid needs, its exit reason, or why its request could not be delivered.
   */
  readonly answers: unknown[];
  readonly errors: (InvalidNeedsError | undefined)[];
  pending: number;
  decided: boolean;
}

type SessionCtx = AgentContext<never, never, NeedsReply, AllocationDeadline>;

function indexOf(state: SessionState, pid: Pid): number | undefined {
  if (state.byKey !== null) return state.byKey.get(pidKey(pid));
  const i = state.byId.get(pid.id);
  return i !== undefined && pidEquals(state.args.agents[i] as Pid, pid) ? i : undefined;
}

function decide(state: SessionState, ctx: SessionCtx): CastResult<SessionState> {
  const { args } = state;
  state.decided = true;
  const n = args.agents.length;
  const answered: number[] = [];
  const missing: MissingAgent[] = [];
  const rejected: RejectedAgent[] = [];
  for (let i = 0; i < n; i++) {
    const agent = args.agents[i] as Pid;
    const key = args.keys[i] as string;
    switch (state.slots[i]) {
      case ANSWERED:
        answered.push(i);
        break;
      case REJECTED:
        rejected.push({ agent, key, needs: state.answers[i], error: state.errors[i] as InvalidNeedsError });
        break;
      case EXITED:
        missing.push({ agent, key, reason: 'exit', exitReason: state.answers[i] });
        break;
      case UNDELIVERABLE:
        missing.push({ agent, key, reason: 'undeliverable', error: state.answers[i] });
        break;
      default:
        missing.push({ agent, key, reason: 'deadline' });
    }
  }
  const needs = answered.map((i) => state.answers[i] as Needs);
  let weights: Float64Array | null = null;
  if (args.weights !== null) {
    const all = args.weights;
    weights = Float64Array.from(answered, (i) => all[i] as number);
  }
  const granted = share(needs, args.resources, args.policy, weights);
  const unallocated: Record<string, number> = {};
  for (const name of Object.keys(args.resources)) {
    let used = 0;
    for (const g of granted) used += g[name] as number;
    unallocated[name] = Math.max(0, (args.resources[name] as number) - used);
  }
  const result: AllocationResult = {
    id: args.id,
    policy: args.policy,
    resources: args.resources,
    allocations: answered.map((i, k) => ({
      agent: args.agents[i] as Pid,
      key: args.keys[i] as string,
      needs: needs[k] as Needs,
      granted: granted[k] as Record<string, number>,
    })),
    missing,
    rejected,
    unallocated,
    elapsedMs: ctx.runtime.clock.now() - args.startedAt,
  };
  args.done(result);
  const tel = ctx.runtime.telemetry;
  if (tel.enabled) {
    tel.execute(
      ALLOCATION_DONE,
      {
        agents: n,
        allocated: result.allocations.length,
        missing: missing.length,
        rejected: rejected.length,
        elapsedMs: result.elapsedMs,
      },
      { id: args.id, policy: args.policy, result },
    );
  }
  // `normal`: a decided session is finished work, not a crash, for its temporary supervisor slot.
  return stop('normal', state);
}

/** The session agent. Started by `Allocator.allocate`; exported for supervision introspection. */
export const AllocationSession: Behaviour<
  AllocationSessionArgs,
  SessionState,
  never,
  never,
  NeedsReply,
  AllocationDeadline
> = {
  init(args, ctx) {
    const n = args.agents.length;
    const byId = new Map<number, number>();
    for (let i = 0; i < n; i++) byId.set((args.agents[i] as Pid).id, i);
    let byKey: Map<string, number> | null = null;
    if (byId.size !== n) {
      byKey = new Map();
      for (let i = 0; i < n; i++) byKey.set(args.keys[i] as string, i);
    }
    // One draw for all the tokens: 128 random bits per agent, unguessable by the other agents.
    const random = randomBytes(TOKEN_BYTES * n);
    const tokens: string[] = new Array(n);
    const byToken = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const token = random.toString('base64url', TOKEN_BYTES * i, TOKEN_BYTES * (i + 1));
      tokens[i] = token;
      byToken.set(token, i);
    }
    const state: SessionState = {
      args,
      byId,
      byKey,
      byToken,
      slots: new Uint8Array(n),
      answers: new Array(n),
      errors: new Array(n),
      pending: n,
      decided: false,
    };
    for (let i = 0; i < n; i++) {
      const p = args.agents[i] as Pid;
      // Monitor before casting: an agent that dies surely reports DOWN, after any answer it sent.
      ctx.monitor(p);
      const request: NeedsRequest = {
        type: 'needs_request',
        session: ctx.self,
        id: args.id,
        token: tokens[i] as string,
        resources: args.resources,
        context: args.context,
      };
      // One agent that cannot be asked (a full bounded mailbox: `reject` throws, `drop_newest`
      // returns false) is missing, never the end of the whole allocation. False for an agent
      // already gone is not that: its DOWN (noproc) is on the way and names it `exit`.
      let delivered: boolean;
      let error: unknown;
      try {
        delivered = ctx.cast(p, request) || !ctx.runtime.isAlive(p);
      } catch (e) {
        delivered = false;
        error = e;
      }
      if (!delivered) {
        state.slots[i] = UNDELIVERABLE;
        state.answers[i] = error;
        state.pending--;
      }
    }
    // Nobody left to wait for (every request undeliverable): decide at once, as the first
    // message handled (init cannot stop the agent itself).
    if (state.pending === 0) ctx.send(ctx.self, { type: 'allocation_deadline' });
    else ctx.sendAfter({ type: 'allocation_deadline' }, args.deadlineMs);
    return state;
  },

  handleCast(msg, state, ctx): CastResult<SessionState> {
    if (state.decided || msg === null || typeof msg !== 'object' || msg.type !== 'needs') return state;
    if (msg.id !== state.args.id || typeof msg.token !== 'string') return state;
    const i = state.byToken.get(msg.token);
    // Strangers (no valid token) and second answers are ignored: one agent, one answer.
    if (i === undefined || state.slots[i] !== PENDING) return state;
    // Read once: what is kept (and later shared) is the copy that passed the check, so an agent
    // that changes the object it answered with cannot change its needs after validation.
    const read = readNeeds(msg.needs, state.args.resources);
    if (read.problem === undefined) {
      state.slots[i] = ANSWERED;
      state.answers[i] = read.needs;
    } else {
      const bad = read.problem;
      state.slots[i] = REJECTED;
      state.answers[i] = msg.needs;
      state.errors[i] = new InvalidNeedsError(
        state.args.keys[i] as string,
        bad.field,
        bad.problem,
        bad.value,
      );
    }
    return --state.pending === 0 ? decide(state, ctx) : state;
  },

  handleInfo(msg: AllocationDeadline | SystemMessage, state, ctx): CastResult<SessionState> {
    if (state.decided) return state;
    if (msg.type === 'allocation_deadline') return decide(state, ctx);
    if (msg.type !== 'DOWN') return state;
    const i = indexOf(state, msg.pid);
    if (i === undefined || state.slots[i] !== PENDING) return state;
    state.slots[i] = EXITED;
    state.answers[i] = msg.reason;
    return --state.pending === 0 ? decide(state, ctx) : state;
  },
};

/**
 * The context every agent is handed: one object shared by all of them, so plain data (plain
 * objects and arrays, however nested) is copied and frozen, and no agent can change what the
 * others read. Other objects (class instances, Maps, functions) are passed as they are.
 */
function frozenContext(context: unknown): unknown {
  const copies = new Map<object, unknown>();
  const copy = (value: unknown): unknown => {
    const plain = isPlainObject(value);
    if (!plain && !Array.isArray(value)) return value;
    const seen = copies.get(value);
    if (seen !== undefined) return seen;
    const out: Record<string, unknown> | unknown[] = Array.isArray(value)
      ? []
      : Object.getPrototypeOf(value) === null
        ? Object.create(null)
        : {};
    copies.set(value, out);
    for (const k of Object.keys(value)) {
      // defineProperty: an own `__proto__` key stays a key, never becomes the prototype.
      Object.defineProperty(out, k, {
        value: copy((value as Record<string, unknown>)[k]),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return Object.freeze(out);
  };
  try {
    return copy(context);
  } catch (error) {
    const why = whyThrown(error);
    const err = new InvalidArgumentError('options.context', `could not be copied: ${why}`);
    Object.defineProperty(err, 'cause', { value: error, writable: true, configurable: true });
    throw err;
  }
}

function checkAgents(agents: unknown): { pids: Pid[]; keys: string[] } {
  if (!Array.isArray(agents) || agents.length === 0) {
    throw new InvalidArgumentError('agents', 'must be a non-empty array of agent refs or pids', agents);
  }
  const seen = new Set<string>();
  const pids: Pid[] = [];
  const keys: string[] = [];
  for (let i = 0; i < agents.length; i++) {
    const p: unknown = agents[i];
    if (!isPid(p)) throw new InvalidArgumentError(`agents[${i}]`, 'must be an agent ref or pid', p);
    const key = pidKey(p);
    if (seen.has(key)) throw new InvalidArgumentError(`agents[${i}]`, 'is a duplicate agent', p);
    seen.add(key);
    pids.push(p);
    keys.push(key);
  }
  return { pids, keys };
}

/**
 * The allocation service: owns a dynamic supervisor whose temporary children are the sessions.
 * Start it with `Allocator.start(runtime)`, then `allocate` as often as needed (concurrently too).
 */
export class Allocator extends SessionService {
  /** Start the service (a top-level dynamic supervisor on `runtime`). */
  static async start(runtime: Runtime, options: AllocatorOptions = {}): Promise<Allocator> {
    return new Allocator(runtime, await SessionService.startSupervisor(runtime, options.maxSessions));
  }

  /**
   * Ask every agent for its needs (in parallel, by cast), wait until all have answered or exited
   * or `options.deadlineMs` has passed, and share `resources` among the valid answers by `policy`.
   * Agents that did not answer, exited, or sent invalid needs get nothing and are named in the
   * result. Rejects with InvalidArgumentError (naming the value) for bad agents, resources,
   * policy, weights (a weights function that throws included, the error as `cause`), deadline
   * or options, before asking anyone; with AllocationAbortedError if the session
   * dies first; with the supervisor's error if it cannot start.
   */
  async allocate<C = unknown>(
    agents: readonly (AnyRef | Pid)[],
    resources: Resources,
    policy: AllocationPolicy,
    options: AllocateOptions<C> = {},
  ): Promise<AllocationResult> {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('options', 'must be an object {deadlineMs?, id?, context?}', options);
    }
    const { pids, keys } = checkAgents(agents);
    const res = checkResources(resources);
    const pol = checkPolicy(policy);
    const weights = resolveWeights(pol, keys);
    const deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    if (typeof deadlineMs !== 'number' || !Number.isFinite(deadlineMs) || deadlineMs < 0) {
      throw new InvalidArgumentError('deadlineMs', 'must be a finite number >= 0', deadlineMs);
    }
    const context = frozenContext(options.context);
    const id = options.id ?? this.nextSessionId();
    let settled = false;
    let resolve!: (r: AllocationResult) => void;
    let reject!: (e: unknown) => void;
    const result = new Promise<AllocationResult>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const args: AllocationSessionArgs = {
      id,
      agents: pids,
      keys,
      resources: res,
      policy: pol.kind,
      weights,
      deadlineMs,
      context,
      startedAt: this.runtime.clock.now(),
      done: (r) => {
        if (settled) return;
        settled = true;
        resolve(r);
      },
    };
    // A session killed before deciding (service stopped, `kill`) still ends the call.
    await this.startSession(id, AllocationSession, args, (exitReason) => {
      if (settled) return;
      settled = true;
      const tel = this.runtime.telemetry;
      if (tel.enabled) tel.execute(ALLOCATION_ABORTED, { agents: pids.length }, { id, exitReason });
      reject(new AllocationAbortedError(id, exitReason));
    });
    return result;
  }
  // stop() (from SessionService): running allocations reject with AllocationAbortedError.
}

// ---- the agents' side --------------------------------------------------------------------------

type MaybePromise<T> = T | Promise<T>;

/** True when a cast message is an allocation's needs request. */
export function isNeedsRequest(msg: unknown): msg is NeedsRequest {
  return (
    msg !== null &&
    typeof msg === 'object' &&
    (msg as { type?: unknown }).type === 'needs_request' &&
    isPid((msg as { session?: unknown }).session)
  );
}

/**
 * Answer `request` from inside an agent's callback: cast (a copy of) its needs to the session.
 */
export function reportNeeds(
  ctx: AgentContext<unknown, unknown, unknown, unknown>,
  request: NeedsRequest<unknown>,
  needs: Needs,
): void {
  // A snapshot: messages travel by reference, and the agent may go on changing the object it
  // answered with (a field of its state, say) before the session reads it.
  const copy = isPlainObject(needs) ? { ...needs } : needs;
  const reply: NeedsReply = { type: 'needs', id: request.id, token: request.token, needs: copy };
  ctx.cast(request.session, reply);
}

const NEXT_STATE: unique symbol = Symbol('mabeam.allocation.nextState');

/** Needs plus the agent's next state, as a `DecideNeeds` may return (make it with `needsAndState`). */
export interface NeedsAndState<S> {
  readonly needs: Needs | null;
  readonly [NEXT_STATE]: S;
}

/** What a `DecideNeeds` returns to answer `needs` and also move the agent to `state`. */
export function needsAndState<S>(needs: Needs | null, state: S): NeedsAndState<S> {
  return { needs, [NEXT_STATE]: state };
}

/**
 * How an agent decides what it needs: from the request and its own state. Return its needs,
 * `needsAndState(needs, next)` to also change its state, or `null` to withhold an answer (the
 * agent then gets nothing at the deadline). Throwing crashes the agent (it is then missing).
 */
export type DecideNeeds<S, C = unknown> = (
  request: NeedsRequest<C>,
  state: S,
) => MaybePromise<Needs | null | NeedsAndState<S>>;

/**
 * Make `base` an allocation participant: needs requests go to `decide`, whose answer is cast to
 * the session; every other cast goes to `base.handleCast`. The needs are the agent's own: the
 * session never chooses them.
 */
export function withNeeds<A, S, C, R, K, I, Ctx = unknown>(
  base: Behaviour<A, S, C, R, K, I>,
  decide: DecideNeeds<S, Ctx>,
): Behaviour<A, S, C, R, K | NeedsRequest<Ctx>, I> {
  const inner = base.handleCast;
  const apply = (
    answer: Needs | null | NeedsAndState<S>,
    request: NeedsRequest<Ctx>,
    state: S,
    ctx: AgentContext<C, R, K | NeedsRequest<Ctx>, I>,
  ): S => {
    if (answer === null) return state;
    const c = ctx as AgentContext<unknown, unknown, unknown, unknown>;
    if (typeof answer === 'object' && NEXT_STATE in answer) {
      if (answer.needs !== null) reportNeeds(c, request, answer.needs);
      return answer[NEXT_STATE];
    }
    reportNeeds(c, request, answer as Needs);
    return state;
  };
  return {
    ...(base as unknown as Behaviour<A, S, C, R, K | NeedsRequest<Ctx>, I>),
    handleCast(msg, state, ctx) {
      if (isNeedsRequest(msg)) {
        const request = msg as NeedsRequest<Ctx>;
        const answer = decide(request, state);
        return answer instanceof Promise
          ? answer.then((a) => apply(a, request, state, ctx))
          : apply(answer, request, state, ctx);
      }
      if (inner === undefined) return state;
      return inner.call(base, msg as K, state, ctx as unknown as AgentContext<C, R, K, I>);
    },
  };
}
