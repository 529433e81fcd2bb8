/**
 * `mabeam/tune`: multi-agent hyperparameter optimization. Search spaces made of universal
 * variables; random, grid and TPE samplers; FIFO, median stopping, ASHA and PBT schedulers; trials
 * as agents whose training runs on worker threads; studies in SQLite that resume after a crash;
 * an HTML report. The guide is docs/tune.md.
 */
export * from './allocation.js';
export * from './data.js';
export {
  checkExecutorOptions,
  checkTrainable,
  type ExecutorOptions,
  MIN_MEMORY_LIMIT_MB,
  TrainableError,
  type TrainableErrorCode,
  TrainableErrorCodes,
  type TrainableInfo,
  TrialExecutor,
  type TrialHooks,
  type TrialRequest,
  type TrialRunOutcome,
} from './executor.js';
export { Rng } from './random.js';
export {
  makeSampler,
  makeScheduler,
  SAMPLER_NAMES,
  type SamplerSpec,
  SCHEDULER_NAMES,
  type SchedulerSpec,
} from './registry.js';
export { escapeHtml, type ReportAlgorithm, renderStudyReport, type StudyReportInput } from './report.js';
export * from './samplers/index.js';
export * from './schedulers/index.js';
export * from './space.js';
export * from './storage.js';
export * from './study.js';
export * from './tune.js';
export * from './types.js';
