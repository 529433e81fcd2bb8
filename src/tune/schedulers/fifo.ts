/**
 * The FIFO scheduler: no early stopping, every trial runs until its trainable returns. It still
 * checks the trial lifecycle (add once, report while live, end once), so a study that misuses
 * one scheduler misuses them all in the same, visible way.
 */
import type { Config, Decision, Scheduler, SchedulerFactory, SearchSpace } from '../types.js';
import {
  CONTINUE,
  checkNewTrial,
  checkOptionKeys,
  checkOutcome,
  checkReport,
  liveTrial,
  type TrialLife,
} from './validate.js';

class FifoScheduler implements Scheduler {
  readonly name = 'fifo';
  readonly #trials = new Map<number, TrialLife>();

  onTrialAdd(trialId: number, _config: Config): void {
    checkNewTrial(this.name, this.#trials, trialId);
    this.#trials.set(trialId, { ended: false });
  }

  onReport(trialId: number, step: number, loss: number): Decision {
    checkReport(trialId, step, loss);
    liveTrial(this.name, this.#trials, trialId);
    return CONTINUE;
  }

  onTrialEnd(trialId: number, outcome: 'completed' | 'pruned' | 'failed', _loss: number | null): void {
    checkOutcome(outcome);
    liveTrial(this.name, this.#trials, trialId).ended = true;
  }
}

/**
 * A factory of FIFO schedulers: every report is answered `continue`. It has no options; any
 * given (through a registry's `{name, options}`) is rejected as unknown.
 */
export function fifoScheduler(options?: Readonly<Record<string, never>>): SchedulerFactory {
  checkOptionKeys('fifo', options, []);
  return (_space: SearchSpace, _seed: number) => new FifoScheduler();
}
