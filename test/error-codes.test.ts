/**
 * Error codes are stable and never reused: each layer keeps its own code map, and no code may
 * appear in two maps (a reused code would make `err.code` ambiguous to callers).
 */
import { describe, expect, it } from 'vitest';
import * as mabeam from '../src/index.js';
import * as perf from '../src/perf/index.js';
import * as tune from '../src/tune/index.js';

const maps = Object.entries({ ...mabeam, ...perf, ...tune }).filter(
  ([name, value]) => name.endsWith('ErrorCodes') && value !== null && typeof value === 'object',
) as [string, Record<string, string>][];

describe('error codes', () => {
  it('every layer exports a code map', () => {
    expect(maps.map(([name]) => name).sort()).toEqual([
      'AgentPoolErrorCodes',
      'AgentRegistryErrorCodes',
      'AllocationErrorCodes',
      'AuctionErrorCodes',
      'BarrierErrorCodes',
      'BenchErrorCodes',
      'BenchRunnerErrorCodes',
      'CircuitBreakerErrorCodes',
      'ConfigErrorCodes',
      'ElectionErrorCodes',
      'ErrorCodes',
      'EventStoreErrorCodes',
      'LeaseErrorCodes',
      'LedgerErrorCodes',
      'MarketplaceErrorCodes',
      'MemoryErrorCodes',
      'MetricsErrorCodes',
      'OrderBookErrorCodes',
      'PoolErrorCodes',
      'RateLimiterErrorCodes',
      'RegistryErrorCodes',
      'SloErrorCodes',
      'SoakErrorCodes',
      'StudyErrorCodes',
      'TableErrorCodes',
      'TaskPoolErrorCodes',
      'TrainableErrorCodes',
      'TuneDataErrorCodes',
      'TuneErrorCodes',
      'TuneSpaceErrorCodes',
      'TuneStorageErrorCodes',
      'VariableErrorCodes',
    ]);
  });

  it('codes are E_ plus upper case, and unique across the whole package', () => {
    const seen = new Map<string, string>();
    for (const [map, codes] of maps) {
      for (const code of Object.values(codes)) {
        expect(code).toMatch(/^E_[A-Z][A-Z0-9_]*$/);
        expect(seen.get(code), `${code} is in both ${seen.get(code)} and ${map}`).toBeUndefined();
        seen.set(code, map);
      }
    }
    expect(seen.size).toBeGreaterThan(40);
  });
});
