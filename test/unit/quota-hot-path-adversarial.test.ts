import { enforcedLimit } from '../../runtime/quota/enforcement';
import { QuotaLimiter } from '../../runtime/quota/limiter';
import { encodeSnapshot } from '../../runtime/quota/snapshot';
import { MemoryLimiterStore } from '../../runtime/quota/store';
import { runSyncPass } from '../../runtime/quota/sync';
import {
  AP,
  at,
  CONFIG,
  counters,
  DELAY,
  E,
  EU,
  LIMIT,
  MemorySnapshots,
  RecordingMetrics,
  REGIONS,
  REQUESTS,
  US,
  windowTotal,
  type Region,
  ranThrough,
} from '../support/quota-fixtures';

const KEY = 'requests\u0000tenant-x';

describe('the hot path against one global bucket', () => {
  it('F1 on the hot path: what the regions admit in one second beats one global bucket (90 burst + 90/s)', async () => {
    let t = at(E, 0);
    const snapshots = new MemorySnapshots();
    const stores = {
      [AP]: new MemoryLimiterStore(),
      [EU]: new MemoryLimiterStore(),
      [US]: new MemoryLimiterStore(),
    } as Record<Region, MemoryLimiterStore>;
    for (const r of REGIONS) {
      stores[r].heartbeat = ranThrough(E - 1);
      const entries =
        r === US
          ? [{ entity: 'tenant-x', resource: 'requests', consumed: 0, demand: windowTotal(LIMIT) }]
          : [];
      await snapshots
        .forRegion(r)
        .put(
          E - 1,
          encodeSnapshot({ region: r, epoch: E - 1, generatedAt: at(E - 1, 1000), config: CONFIG, entries }),
        );
    }
    t = at(E, 3000);
    for (const r of REGIONS) {
      const own = snapshots.forRegion(r);
      await runSyncPass({
        config: CONFIG,
        region: r,
        store: stores[r],
        metrics: new RecordingMetrics(),
        now: () => t,
        settleMs: 0,
        snapshots: {
          put: own.put,
          get: async (from, e, s) => {
            if (r === EU && from === US) throw new Error('timeout');
            return own.get(from, e, s);
          },
        },
      });
    }
    const limiters = REGIONS.map(
      (r) => new QuotaLimiter({ store: stores[r], config: CONFIG, region: r, now: () => t }),
    );
    let admitted = 0;
    const from = at(E + 1, DELAY + 1);
    for (t = from; t <= from + 1000; t += 10)
      for (const l of limiters) while ((await l.consume('tenant-x', 'requests', 1)).admitted) admitted++;
    expect(admitted).toBeLessThanOrEqual(90 + 90); // fails: ~240
  });

  it('F7: a hot-path write that lands after the pass scanned its window inflates the fallback past what peers saw', async () => {
    // Window E-3: ap 60/s, eu 10/s, us 60/s; snapshots of E-2 say so. Peers' shares of E-1: 40,000 each, eu 10,000.
    let t = at(E - 3, 59_900);
    const snapshots = new MemorySnapshots();
    let gate: Promise<void> | undefined;
    class Slow extends MemoryLimiterStore {
      override async read(entity: string, resource: string) {
        const item = await super.read(entity, resource);
        if (gate) await gate;
        return item;
      }
    }
    const stores = {
      [AP]: new MemoryLimiterStore(),
      [EU]: new Slow(),
      [US]: new MemoryLimiterStore(),
    } as Record<Region, MemoryLimiterStore>;
    const perSec = { [AP]: 60_000, [EU]: 10_000, [US]: 60_000 } as Record<Region, number>;
    for (const r of REGIONS) {
      stores[r].heartbeat = ranThrough(E - 2);
      stores[r].items.set(KEY, {
        entity: 'tenant-x',
        resource: 'requests',
        sync: { epoch: E - 2, prior: r === EU ? 45_000 : 22_500, share: r === EU ? 45_000 : 22_500 },
        counters: counters(E - 3, [windowTotal(perSec[r])]),
      });
    }
    // A request of eu-central-1 starts at the end of window E-3; its read is slow (throttled, retried).
    let open = () => undefined as void;
    gate = new Promise<void>((r) => (open = r));
    const limiter = new QuotaLimiter({ store: stores[EU], config: CONFIG, region: EU, now: () => t });
    const late = limiter.consume('tenant-x', 'requests', 3000);
    // Pass E-2 of every region scans at 2.5 s into E-2 and publishes 10/s for eu.
    t = at(E - 2, 2500);
    for (const r of REGIONS)
      await snapshots.forRegion(r).put(
        E - 2,
        encodeSnapshot({
          region: r,
          epoch: E - 2,
          generatedAt: t,
          config: CONFIG,
          entries: [
            { entity: 'tenant-x', resource: 'requests', consumed: 0, demand: windowTotal(perSec[r]) },
          ],
        }),
      );
    t = at(E - 2, 4000);
    gate = undefined;
    open();
    await late; // its counters go to window E-3, which the pass already published
    // Pass E-1: ap and us run, eu's is missed.
    t = at(E - 1, 3000);
    for (const r of [AP, US] as const)
      await runSyncPass({
        config: CONFIG,
        region: r,
        store: stores[r],
        snapshots: snapshots.forRegion(r),
        metrics: new RecordingMetrics(),
        now: () => t,
        settleMs: 0,
      });
    const now = at(E, DELAY + 1);
    const limits = REGIONS.map((r) =>
      enforcedLimit(
        stores[r].items.get(KEY) ?? {},
        { config: CONFIG, region: r, resource: REQUESTS, heartbeat: stores[r].heartbeat },
        now,
      ),
    );
    expect(limits.map((l) => l.limit)).toEqual([40_000, 10_000, 40_000]); // fails: eu's fallback is 30,000
  });
});

describe('admitted vs one global bucket when a share moves', () => {
  it('H2: a bucket that grows (or is new) is credited at the new rate for time before the grow', async () => {
    const BURST = 60; // allowed: 1-3,600
    const config = { ...CONFIG, resources: [{ ...REQUESTS, burstSec: BURST }] };
    let t = at(E, 0);
    const snapshots = new MemorySnapshots();
    const stores = {
      [AP]: new MemoryLimiterStore(),
      [EU]: new MemoryLimiterStore(),
      [US]: new MemoryLimiterStore(),
    } as Record<Region, MemoryLimiterStore>;
    for (const r of REGIONS) {
      stores[r].heartbeat = ranThrough(E - 1);
      const share = r === EU ? LIMIT : 0; // eu had all the demand until window E-3
      stores[r].items.set(KEY, {
        entity: 'tenant-x',
        resource: 'requests',
        sync: { epoch: E - 1, prior: share, share },
      });
      await snapshots
        .forRegion(r)
        .put(
          E - 1,
          encodeSnapshot({ region: r, epoch: E - 1, generatedAt: at(E - 1, 1000), config, entries: [] }),
        );
    }
    const limiters = Object.fromEntries(
      REGIONS.map((r) => [r, new QuotaLimiter({ store: stores[r], config, region: r, now: () => t })]),
    ) as Record<Region, QuotaLimiter>;
    const drain = async (r: Region) => {
      let n = 0;
      while ((await limiters[r].consume('tenant-x', 'requests', 10)).admitted) n += 10;
      while ((await limiters[r].consume('tenant-x', 'requests', 1)).admitted) n += 1;
      return n;
    };
    const start = at(E, 57_000);
    t = start;
    let admitted = await drain(EU); // eu's full bucket, just before its pass
    t = at(E, 58_000);
    for (const r of REGIONS)
      await runSyncPass({
        config,
        region: r,
        store: stores[r],
        snapshots: snapshots.forRegion(r),
        metrics: new RecordingMetrics(),
        now: () => t,
        settleMs: 0,
      });
    // window E-2 was idle everywhere: 30,000 each; eu's shrink is in force at once, ap's and us's grows at E+1 + 2.1 s
    t = at(E + 1, DELAY + 1);
    for (const r of REGIONS) admitted += await drain(r);
    const bound = (LIMIT * BURST + (LIMIT * (t - start)) / 1000) / 1000; // one global bucket, full at `start`
    expect(admitted).toBeLessThanOrEqual(bound); // fails: 9,150 admitted vs 5,859
  });
});
