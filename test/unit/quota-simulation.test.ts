import { simulateQuota, type QuotaSimulationResult } from '../support/quota-simulation';

jest.setTimeout(120_000);

/**
 * A small run of the seeded simulation (bench/quota.ts runs the full one: 1,000 entities, 100 windows):
 * the real hot path and sync pass in three regions, one of them partitioned for five windows.
 */
const run = (seed: number) =>
  simulateQuota({
    seed,
    regions: ['eu-central-1', 'us-east-1', 'ap-southeast-1'],
    entities: 12,
    windows: 24,
    windowSec: 60,
    tickMs: 1000,
    limitPerSec: 20,
    burstSec: 1,
    partition: { region: 'us-east-1', from: 8, to: 13 },
    leaseMs: 100,
    heartbeatCacheMs: 1000,
    clockMarginMs: 1000,
    containersPerRegion: 2,
    burstChance: 0.05,
    moveEvery: { min: 5, spread: 10 },
  });

describe('the quota simulation (seeded, no AWS)', () => {
  let results: QuotaSimulationResult[];
  beforeAll(async () => {
    results = [await run(1), await run(2)];
  });

  it('never admits beyond one global bucket, partition included, and never enforces more than the limit', () => {
    for (const result of results) {
      expect(result.strategies.sync.overAdmission).toBe(0);
      expect(result.strategies.sync.windowsOverAdmitting).toBe(0);
      expect(result.maxEnforcedExcess).toBeLessThanOrEqual(0);
      expect(result.requests).toBeGreaterThan(10_000);
    }
  });

  it('measures over-admission: the no-sync baseline (every region enforcing the whole limit) over-admits', () => {
    for (const result of results) {
      expect(result.strategies.noSync.overAdmission).toBeGreaterThan(0);
      expect(result.strategies.globalBucket.overAdmission).toBe(0);
    }
  });

  it('admits more than a static equal split outside the partition, and less than the clairvoyant allocator', () => {
    for (const { strategies } of results) {
      expect(strategies.sync.admittedOutside).toBeGreaterThan(strategies.staticSplit.admittedOutside);
      expect(strategies.sync.admittedOutside).toBeLessThan(strategies.clairvoyant.admittedOutside);
    }
  });

  it('replays the same run from the same seed', async () => {
    const again = await run(1);
    expect(again.strategies.sync.byWindow).toEqual(results[0]?.strategies.sync.byWindow);
    expect(again.overridesWritten).toBe(results[0]?.overridesWritten);
  });
});
