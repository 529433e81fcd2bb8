/**
 * Variables whose changes go through voting consensus (issue 4, "Proposals to change a variable
 * go through consensus when its policy says so").
 *
 * `consensusPolicy(consensus, variables)` is a variable's conflict policy: every change of the
 * variable becomes a `VariableChangeProposal` put by the `Consensus` service to the agents
 * subscribed to that variable (or to the participants you choose). Each participant votes with its
 * own logic (`withVoting`); the change is applied and broadcast only when the session accepts it.
 * `proposeChange(variables, name, value)` is the caller's side: it resolves with the outcome and
 * the session's tally instead of throwing on a refusal.
 *
 * The variables owner serializes writes, so while one proposal is being voted on, later writes
 * to any variable of that service wait (reads never do). Keep consensus deadlines short.
 */

import {
  type ConsensusPolicy,
  type ConsensusVerdict,
  type ProposedChange,
  UnknownVariableError,
  VariableRejectedError,
  type Variables,
  type WriteOptions,
  type WriteResult,
} from '../agents/index.js';
import type { AnyRef, Pid } from '../kernel/index.js';
import { InvalidArgumentError } from '../kernel/index.js';
import { type Consensus, type ConsensusResult, type ConsensusRule, checkRule } from './consensus.js';

/** What the participants of a variable's consensus are asked (the `proposal` of the session). */
export interface VariableChangeProposal {
  readonly type: 'variable_change';
  readonly name: string;
  readonly current: unknown;
  readonly proposed: unknown;
  readonly modifier: string;
}

/** Options of `consensusPolicy`. */
export interface VariableConsensusOptions {
  /** Decision rule (default majority). */
  readonly rule?: ConsensusRule;
  /** Runtime-clock ms each vote may take (default 1000). */
  readonly deadlineMs?: number;
  /**
   * Who votes on a change. Default: the agents subscribed to the variable at the time of the
   * proposal. Participants vote with their own logic (`withVoting`); one that does not vote (the
   * ready-made `VariableSubscriber`, say) stays pending until the deadline.
   */
  readonly participants?: (change: ProposedChange) => readonly (AnyRef | Pid)[];
  /**
   * What a change with nobody to vote on it gets: 'reject' (default; a consensus of nobody is not
   * a consensus) or 'accept'.
   */
  readonly whenNoParticipants?: 'accept' | 'reject';
}

/** True when a proposal is a variable change (for a participant's `decide`). */
export function isVariableChangeProposal(p: unknown): p is VariableChangeProposal {
  return p !== null && typeof p === 'object' && (p as { type?: unknown }).type === 'variable_change';
}

/**
 * A conflict policy that puts every change of the variable to a vote. `variables` is the service
 * the variable is registered with (needed for the default participants, its subscribers).
 */
export function consensusPolicy(
  consensus: Consensus,
  variables: Variables,
  options: VariableConsensusOptions = {},
): ConsensusPolicy {
  // Checked here so a bad rule or deadline fails when the policy is made, not at the first write.
  const rule = checkRule(options.rule ?? { kind: 'majority' });
  const deadlineMs = options.deadlineMs ?? 1000;
  const whenNone = options.whenNoParticipants ?? 'reject';
  if (whenNone !== 'accept' && whenNone !== 'reject') {
    throw new InvalidArgumentError('whenNoParticipants', "must be 'accept' or 'reject'", whenNone);
  }
  if (options.participants !== undefined && typeof options.participants !== 'function') {
    throw new InvalidArgumentError('participants', 'must be a function of the change', options.participants);
  }
  if (!Number.isFinite(deadlineMs) || deadlineMs <= 0) {
    throw new InvalidArgumentError('deadlineMs', 'must be a positive number of ms', deadlineMs);
  }
  const pick = options.participants ?? ((change: ProposedChange) => variables.subscribers(change.name));
  return {
    type: 'consensus',
    async decide(change: ProposedChange): Promise<ConsensusVerdict> {
      const participants = pick(change);
      if (participants.length === 0) {
        return whenNone === 'accept'
          ? { accepted: true, reason: 'no participants' }
          : { accepted: false, reason: 'no participants to vote' };
      }
      const proposal: VariableChangeProposal = {
        type: 'variable_change',
        name: change.name,
        current: change.current,
        proposed: change.proposed,
        modifier: change.modifier,
      };
      const result = await consensus.propose(participants, proposal, { rule, deadlineMs });
      if (result.decided && result.outcome === 'accepted') return { accepted: true, evidence: result };
      return { accepted: false, reason: describeResult(result), evidence: result };
    },
  };
}

function describeResult(r: ConsensusResult): string {
  const votes = `${r.yes} yes, ${r.no} no, ${r.abstain} abstain, ${r.absent} absent, ${r.pending} pending`;
  return r.decided ? `${r.outcome} (${votes})` : `${r.reason} (${votes})`;
}

/** Options of `proposeChange`: who proposes it, plus the write's ack options. */
export interface ProposeChangeOptions extends WriteOptions {
  readonly modifier?: string;
}

/** What `proposeChange` resolves with. */
export type ProposeChangeOutcome =
  | { readonly accepted: true; readonly version: number; readonly write: WriteResult }
  | {
      readonly accepted: false;
      /** Why, as in the rejection's message. */
      readonly reason: string;
      /** The session's result (tally, rule, reason), when a vote was held. */
      readonly consensus?: ConsensusResult;
    };

/**
 * Propose that variable `name` take `value`: the variable's consensus policy holds the vote.
 * Resolves with the outcome (a refusal is an outcome, not an error); rejects with
 * UnknownVariableError (E_VARIABLE_UNKNOWN), InvalidArgumentError (E_INVALID_ARGUMENT) for an
 * invalid value or a variable whose policy is not consensus (use `update` for those), or the
 * error `decide` failed with.
 */
export async function proposeChange(
  variables: Variables,
  name: string,
  value: unknown,
  options: ProposeChangeOptions = {},
): Promise<ProposeChangeOutcome> {
  const spec = variables.spec(name);
  if (spec === undefined) throw new UnknownVariableError(name);
  const policy = spec.policy;
  if (policy === undefined || typeof policy !== 'object' || policy.type !== 'consensus') {
    throw new InvalidArgumentError(
      `variable ${JSON.stringify(name)} policy`,
      'is not consensus: change it with update()',
      typeof policy === 'function' ? 'resolver function' : (policy ?? 'last-write-wins'),
    );
  }
  const { modifier, ...write } = options;
  try {
    const result = await variables.update(name, value, modifier, write);
    return { accepted: true, version: result.versions[0] as number, write: result };
  } catch (error) {
    // A `decide` that threw (its error is the evidence) is a failure to report, not an outcome.
    if (
      error instanceof VariableRejectedError &&
      error.variable === name &&
      !(error.evidence instanceof Error)
    ) {
      const consensus = isConsensusResult(error.evidence) ? error.evidence : undefined;
      const reason = error.detail;
      return consensus === undefined ? { accepted: false, reason } : { accepted: false, reason, consensus };
    }
    throw error;
  }
}

function isConsensusResult(x: unknown): x is ConsensusResult {
  return x !== null && typeof x === 'object' && typeof (x as { decided?: unknown }).decided === 'boolean';
}
