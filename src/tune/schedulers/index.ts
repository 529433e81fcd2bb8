/**
 * The trial schedulers of `mabeam tune`: FIFO, the median stopping rule, ASHA and PBT. Each
 * `xScheduler(options)` validates its options at once and returns a SchedulerFactory; all of
 * them minimize a loss (see ../types.ts).
 */
export {
  type AshaOptions,
  type AshaRung,
  type AshaRungEntry,
  type AshaScheduler,
  type AshaSchedulerFactory,
  ashaRungSteps,
  ashaScheduler,
  quantile,
} from './asha.js';
export { fifoScheduler } from './fifo.js';
export { type MedianStoppingOptions, medianStoppingScheduler } from './median.js';
export {
  type ExploreOptions,
  exploreConfig,
  type PbtOptions,
  type PbtScheduler,
  type PbtSchedulerFactory,
  pbtScheduler,
} from './pbt.js';
export { isCompletion, type StopDecision } from './validate.js';
