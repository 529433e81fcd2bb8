/** The samplers of `mabeam tune`: random search, grid search and TPE. */
export { type GridOptions, GridSampler, gridSampler, gridValues } from './grid.js';
export {
  PENDING_LIMIT,
  PendingConfigs,
  RandomSampler,
  randomSampler,
  sampleConfig,
  sampleDimension,
} from './random.js';
export {
  defaultGamma,
  optunaGamma,
  type ResolvedTpeOptions,
  type TpeOptions,
  TpeSampler,
  tpeSampler,
} from './tpe.js';
