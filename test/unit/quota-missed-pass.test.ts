import { allocate } from '../../runtime/quota/allocate';
import { enforcedLimit } from '../../runtime/quota/enforcement';
import { encodeSnapshot } from '../../runtime/quota/snapshot';
import { MemoryLimiterStore, type OverrideResult } from '../../runtime/quota/store';
import { runSyncPass, SyncPassError } from '../../runtime/quota/sync';
import {
  AP,
  at,
  CONFIG,
  counters,
  E,
  EU,
  LIMIT,
  MemorySnapshots,
  RecordingMetrics,
  REGIONS,
  REQUESTS,
  US,
  windowTotal,
  ranThrough,
  type Region,
} from '../support/quota-fixtures';

/** A limiter table whose override writes fail while `failing` is set. */
class Flaky extends MemoryLimiterStore {
  failing = false;
  override async writeOverride(
    ...args: Parameters<MemoryLimiterStore['writeOverride']>
  ): Promise<OverrideResult> {
    if (this.failing) throw new Error('ProvisionedThroughputExceededException');
    return super.writeOverride(...args);
  }
}

type Demands = Readonly<Record<Region, number>>;

describe('a region whose pass H + 1 failed (plan.ts / enforcement.ts)', () => {
  /**
   * The shares in force were allocated from window H - 2 (`inForce`); windows H - 1 and H had other demands.
   * Pass H + 1: eu-central-1's fails, its peers' run. Pass H + 2: eu-central-1's and ap-southeast-1's run at
   * `euPassMs`, us-east-1's at 3,000 ms (late: after the activation delay, when its grow of H + 1 is in force).
   */
  it.each<[string, Demands, Demands, Demands, number]>([
    [
      'its next pass completes before the activation delay and writes a shrink',
      { [AP]: 20_000, [EU]: 60_000, [US]: 10_000 },
      { [AP]: 20_000, [EU]: 10_000, [US]: 60_000 },
      { [AP]: 20_000, [EU]: 10_000, [US]: 60_000 },
      1000,
    ],
    [
      'its next pass completes after the activation delay and holds back a small grow',
      { [AP]: 25_000, [EU]: 40_000, [US]: 25_000 },
      { [AP]: 20_000, [EU]: 10_000, [US]: 60_000 },
      { [AP]: 24_000, [EU]: 10_000, [US]: 24_000 },
      2500,
    ],
  ])(
    'keeps the regions within the limit in sum while a peer is on its grow of H + 1: %s',
    async (_, inForce, windowHm1, windowH, euPassMs) => {
      const H = E;
      expect(
        allocate(
          LIMIT,
          REGIONS.map((region) => ({ region, demand: inForce[region] })),
        ),
      ).toEqual(inForce);
      const stores: Record<Region, Flaky> = { [AP]: new Flaky(), [EU]: new Flaky(), [US]: new Flaky() };
      const snapshots = new MemorySnapshots();
      for (const region of REGIONS) {
        stores[region].heartbeat = ranThrough(H);
        stores[region].items.set('requests\u0000tenant-1', {
          entity: 'tenant-1',
          resource: 'requests',
          sync: { epoch: H - 1, prior: inForce[region], share: inForce[region] },
          counters: counters(H, [windowTotal(windowH[region]), windowTotal(windowHm1[region])]),
        });
        snapshots.setRaw(
          region,
          H,
          encodeSnapshot({
            region,
            epoch: H,
            generatedAt: at(H, 1000),
            config: CONFIG,
            entries: [
              {
                entity: 'tenant-1',
                resource: 'requests',
                consumed: 0,
                demand: windowTotal(windowHm1[region]),
              },
            ],
          }),
        );
      }
      let t = 0;
      const pass = (region: Region) =>
        runSyncPass({
          config: CONFIG,
          region,
          store: stores[region],
          snapshots: snapshots.forRegion(region),
          metrics: new RecordingMetrics(),
          now: () => t,
          settleMs: 0,
        });
      const sumAt = (now: number) =>
        REGIONS.reduce((sum, region) => {
          const item = stores[region].items.get('requests\u0000tenant-1') ?? {};
          const context = { config: CONFIG, region, resource: REQUESTS, heartbeat: stores[region].heartbeat };
          return sum + enforcedLimit(item, context, now).limit;
        }, 0);

      t = at(H + 1, 1000);
      stores[EU].failing = true;
      await expect(pass(EU)).rejects.toBeInstanceOf(SyncPassError);
      stores[EU].failing = false;
      await pass(US);
      await pass(AP);
      expect(stores[US].items.get('requests\u0000tenant-1')?.sync?.share).toBe(60_000);

      t = at(H + 2, euPassMs);
      await pass(EU);
      await pass(AP);
      for (let now = at(H + 2, 0); now < at(H + 2, 3000); now += 100)
        expect(sumAt(now)).toBeLessThanOrEqual(LIMIT);
      t = at(H + 2, 3000);
      await pass(US);
      for (let now = at(H + 2, 3000); now < at(H + 4, 0); now += 500)
        expect(sumAt(now)).toBeLessThanOrEqual(LIMIT);
    },
  );
});
