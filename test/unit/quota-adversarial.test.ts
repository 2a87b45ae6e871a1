import { type AllocationConfig } from '../../runtime/quota/config';
import { enforcedLimit } from '../../runtime/quota/enforcement';
import { encodeSnapshot } from '../../runtime/quota/snapshot';
import type { SnapshotStore } from '../../runtime/quota/snapshot-store';
import { MemoryLimiterStore } from '../../runtime/quota/store';
import { runSyncPass } from '../../runtime/quota/sync';
import {
  AP,
  at,
  CONFIG,
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
  ranThrough,
  type Region,
} from '../support/quota-fixtures';

const KEY = (entity: string) => `requests\u0000${entity}`;

/** Three regions with their own config, table and snapshot view; `cannotRead[r]` = peers r cannot read. */
class World {
  t = at(E, 0);
  readonly snapshots = new MemorySnapshots();
  readonly stores: Record<Region, MemoryLimiterStore> = {
    [AP]: new MemoryLimiterStore(),
    [EU]: new MemoryLimiterStore(),
    [US]: new MemoryLimiterStore(),
  };
  cannotRead: Partial<Record<Region, Region[]>> = {};
  constructor(
    readonly configs: Record<Region, AllocationConfig> = { [AP]: CONFIG, [EU]: CONFIG, [US]: CONFIG },
  ) {}

  view(region: Region): SnapshotStore {
    const inner = this.snapshots.forRegion(region);
    return {
      put: (epoch, body) => inner.put(epoch, body),
      get: async (from, epoch, signal) => {
        if (this.cannotRead[region]?.includes(from as Region)) throw new Error('timeout');
        return inner.get(from, epoch, signal);
      },
    };
  }

  pass(region: Region) {
    return runSyncPass({
      config: this.configs[region],
      region,
      store: this.stores[region],
      snapshots: this.view(region),
      metrics: new RecordingMetrics(),
      now: () => this.t,
      settleMs: 0,
    });
  }

  /** Publishes `region`'s snapshot of `epoch` as its pass would, with these window totals. */
  publish(region: Region, epoch: number, demands: Record<string, number>) {
    void this.snapshots.forRegion(region).put(
      epoch,
      encodeSnapshot({
        region,
        epoch,
        generatedAt: at(epoch, 1000),
        config: this.configs[region],
        entries: Object.entries(demands).map(([entity, demand]) => ({
          entity,
          resource: 'requests',
          consumed: 0,
          demand,
        })),
      }),
    );
  }

  enforced(region: Region, entity: string, now: number) {
    const config = this.configs[region];
    const store = this.stores[region];
    const resource = config.resources[0]!;
    return enforcedLimit(
      store.items.get(KEY(entity)) ?? {},
      { config, region, resource, heartbeat: store.heartbeat },
      now,
    );
  }

  sum(entity: string, now: number) {
    return REGIONS.reduce((s, r) => s + this.enforced(r, entity, now).limit, 0);
  }
}

describe('the sum of enforced limits under adversarial views, rollouts and operators', () => {
  it('F1: an entity a region cannot see in any snapshot stays at static there while a peer takes the whole limit', async () => {
    const w = new World();
    for (const r of REGIONS) w.stores[r].heartbeat = ranThrough(E - 1);
    // Window E-2: only us-east-1 asked for tenant-x (the whole limit). Snapshots of E-1 say so.
    w.publish(US, E - 1, { 'tenant-x': windowTotal(LIMIT) });
    w.publish(AP, E - 1, {});
    w.publish(EU, E - 1, {});
    // eu-central-1's read of us-east-1's snapshot times out (asymmetric: the others read everything).
    w.cannotRead[EU] = [US];
    w.t = at(E, 3000);
    for (const r of REGIONS) await w.pass(r);
    const now = at(E + 1, DELAY + 1);
    expect(w.sum('tenant-x', now)).toBeLessThanOrEqual(LIMIT);
  });

  it('F1b: the same with no failure at all, when a peer snapshot lands after one reader and before the others', async () => {
    const w = new World();
    for (const r of REGIONS) w.stores[r].heartbeat = ranThrough(E - 1);
    w.publish(AP, E - 1, {});
    w.publish(EU, E - 1, {});
    w.t = at(E, 2500);
    await w.pass(EU); // us-east-1's pass of E-1 is still running: its snapshot is missing for eu-central-1
    w.publish(US, E - 1, { 'tenant-x': windowTotal(LIMIT) });
    w.t = at(E, 20_000);
    await w.pass(US);
    await w.pass(AP);
    expect(w.sum('tenant-x', at(E + 1, DELAY + 1))).toBeLessThanOrEqual(LIMIT);
  });

  it('F2: with a floor, an entity that goes idle is static (floor-sized) in one region and a slack split in the others', async () => {
    const floored: AllocationConfig = {
      ...CONFIG,
      resources: [{ ...REQUESTS, floors: [{ region: EU, floor: 60_000 }] }],
    };
    const w = new World({ [AP]: floored, [EU]: floored, [US]: floored });
    for (const r of REGIONS) w.stores[r].heartbeat = ranThrough(E - 1);
    // Window E-2: eu 60/s, us 30/s. allocate -> eu 60 (= its static, no write), us 30 (grow), ap 0 (shrink).
    w.publish(EU, E - 1, { 'tenant-x': windowTotal(60_000) });
    w.publish(US, E - 1, { 'tenant-x': windowTotal(30_000) });
    w.publish(AP, E - 1, {});
    w.t = at(E, 3000);
    for (const r of REGIONS) await w.pass(r);
    // Window E-1: idle everywhere. Every peer sees every snapshot.
    w.t = at(E + 1, 3000);
    for (const r of REGIONS) await w.pass(r);
    const now = at(E + 2, DELAY + 1);
    expect(w.sum('tenant-x', now)).toBeLessThanOrEqual(LIMIT);
  });

  it('F3: during a weights rollout every entity no pass computes is at a static share of a different config', async () => {
    const weighted: AllocationConfig = {
      ...CONFIG,
      regions: [
        { region: AP, weight: 1 },
        { region: EU, weight: 2 },
        { region: US, weight: 1 },
      ],
    };
    // eu-central-1 and us-east-1 got the new weights; ap-southeast-1 has not yet. Every sync runs, every peer is read.
    const w = new World({ [AP]: CONFIG, [EU]: weighted, [US]: weighted });
    for (const r of REGIONS) w.publish(r, E - 1, {});
    for (const r of REGIONS) w.stores[r].heartbeat = ranThrough(E - 1);
    w.t = at(E, 3000);
    for (const r of REGIONS) await w.pass(r);
    const now = at(E + 1, DELAY + 1);
    // 30,000 (1/3 under the old weights) + 45,000 (2/4) + 22,500 (1/4)
    expect(w.sum('any-idle-tenant', now)).toBeLessThanOrEqual(LIMIT);
  });

  it('F4: a mutual partition during a weights rollout: each side computes under the only config it sees', async () => {
    const weighted: AllocationConfig = {
      ...CONFIG,
      regions: [
        { region: AP, weight: 1 },
        { region: EU, weight: 1 },
        { region: US, weight: 4 },
      ],
    };
    const w = new World({ [AP]: CONFIG, [EU]: CONFIG, [US]: weighted });
    // us-east-1 has run the new config for a window already (its own snapshot of E-1 carries it).
    for (const r of REGIONS) w.publish(r, E - 1, { 'tenant-x': windowTotal(LIMIT) });
    for (const r of REGIONS) w.stores[r].heartbeat = ranThrough(E - 1);
    w.cannotRead = { [AP]: [US], [EU]: [US], [US]: [AP, EU] };
    w.t = at(E, 3000);
    for (const r of REGIONS) await w.pass(r);
    // ap, eu: 1/3 of 90,000 each (us unknown under the old weights); us: 4/6 of 90,000 (peers unknown, new weights).
    expect(w.sum('tenant-x', at(E + 1, DELAY + 1))).toBeLessThanOrEqual(LIMIT);
  });

  it('F5: removing an operator value resurrects a sync override the passes stopped maintaining', async () => {
    const w = new World();
    for (const r of REGIONS) w.stores[r].heartbeat = ranThrough(E - 1);
    // Long ago eu-central-1 had all the demand: its override is the whole limit. Then an operator capped it.
    w.stores[EU].items.set(KEY('tenant-x'), {
      entity: 'tenant-x',
      resource: 'requests',
      sync: { epoch: E - 50, prior: 90_000, share: 90_000 },
      operator: 10_000,
    });
    // Now only us-east-1 asks.
    w.publish(US, E - 1, { 'tenant-x': windowTotal(LIMIT) });
    w.publish(AP, E - 1, {});
    w.publish(EU, E - 1, {});
    w.t = at(E, 3000);
    for (const r of REGIONS) await w.pass(r);
    // The operator ends the cap (README: `REMOVE op`) in the next interval, before eu-central-1's next pass.
    const now = at(E + 1, DELAY + 1);
    w.stores[EU].setLimits('tenant-x', 'requests', { operator: undefined });
    expect(w.sum('tenant-x', now)).toBeLessThanOrEqual(LIMIT);
  });
});

describe('a pass that completed after a later one', () => {
  it('keeps only what it shrank: its grow never takes effect', () => {
    const w = new World();
    w.stores[EU].heartbeat = {
      epoch: E + 1,
      completed: [E + 1, E - 1, E - 2],
      partial: [],
      staticCaps: new Map(),
    };
    w.stores[EU].items.set(KEY('tenant-x'), {
      entity: 'tenant-x',
      resource: 'requests',
      sync: { epoch: E, prior: 30_000, share: 80_000 },
    });
    expect(w.enforced(EU, 'tenant-x', at(E + 2, DELAY + 1))).toEqual({
      limit: 30_000,
      source: 'sync-pending',
    });
    w.stores[EU].items.set(KEY('tenant-x'), {
      entity: 'tenant-x',
      resource: 'requests',
      sync: { epoch: E, prior: 30_000, share: 10_000 },
    });
    expect(w.enforced(EU, 'tenant-x', at(E + 2, DELAY + 1)).limit).toBe(10_000);
  });
});
