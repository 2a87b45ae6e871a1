import { allocate } from '../../runtime/quota/allocate';
import { configHash } from '../../runtime/quota/config';
import type { SyncOverride } from '../../runtime/quota/enforcement';
import { QuotaLimiter } from '../../runtime/quota/limiter';
import { encodeSnapshot, type SnapshotEntry } from '../../runtime/quota/snapshot';
import { MemoryLimiterStore, type LimiterItem, type OverrideResult } from '../../runtime/quota/store';
import { runSyncPass, SyncPassError, type PassResult, type SyncPassOptions } from '../../runtime/quota/sync';
import {
  AP,
  at,
  CONFIG,
  E,
  EU,
  LIMIT,
  MemorySnapshots,
  RecordingMetrics,
  REGIONS,
  snapshotOf,
  US,
  windowTotal,
  type Region,
  ranThrough,
} from '../support/quota-fixtures';

interface Node {
  readonly store: MemoryLimiterStore;
  readonly limiter: QuotaLimiter;
  readonly metrics: RecordingMetrics;
}

/** Three regions, each with its table, one hot-path container and its sync, on one clock. */
class World {
  t = at(E, 0);
  readonly snapshots = new MemorySnapshots();
  readonly nodes: Record<Region, Node>;

  constructor(stores: Partial<Record<Region, MemoryLimiterStore>> = {}) {
    const node = (region: Region): Node => {
      const store = stores[region] ?? new MemoryLimiterStore();
      const limiter = new QuotaLimiter({ store, config: CONFIG, region, now: () => this.t });
      return { store, limiter, metrics: new RecordingMetrics() };
    };
    this.nodes = { [AP]: node(AP), [EU]: node(EU), [US]: node(US) };
  }

  pass(region: Region, options: Partial<SyncPassOptions> = {}): Promise<PassResult> {
    const { store, metrics } = this.nodes[region];
    return runSyncPass({
      config: CONFIG,
      region,
      store,
      snapshots: this.snapshots.forRegion(region),
      metrics,
      now: () => this.t,
      settleMs: 0,
      ...options,
    });
  }

  item(region: Region, entity: string): LimiterItem | undefined {
    return this.nodes[region].store.items.get(`requests\u0000${entity}`);
  }
}

/** Units per second each region asks for `tenant-1` in windows E + 0 .. E + 9. */
const SCHEDULE: readonly Readonly<Record<Region, number>>[] = [
  { [AP]: 20, [EU]: 20, [US]: 20 },
  { [AP]: 20, [EU]: 20, [US]: 20 },
  { [AP]: 10, [EU]: 60, [US]: 20 },
  { [AP]: 10, [EU]: 60, [US]: 20 },
  { [AP]: 10, [EU]: 60, [US]: 20 },
  { [AP]: 10, [EU]: 60, [US]: 20 },
  { [AP]: 10, [EU]: 60, [US]: 20 },
  { [AP]: 10, [EU]: 10, [US]: 10 },
  { [AP]: 10, [EU]: 10, [US]: 10 },
  { [AP]: 10, [EU]: 10, [US]: 10 },
];
const PASSES = 11;
/** ap-southeast-1's pass of epoch E + 5 does not run: its snapshot of E + 5 is missing. */
const skipped = (region: Region, k: number) => region === AP && k === 5;

/** The writes for tenant-1 the triggers call for, by pass. */
const EXPECTED_WRITES: Readonly<Record<number, Readonly<Partial<Record<Region, 'grow' | 'shrink'>>>>> = {
  4: { [EU]: 'grow', [US]: 'shrink', [AP]: 'shrink' },
  6: { [EU]: 'shrink', [AP]: 'grow' },
  7: { [EU]: 'grow', [AP]: 'shrink' },
  9: { [EU]: 'shrink', [US]: 'grow', [AP]: 'grow' },
};

/** What every region should compute for an entity in pass k, from the snapshots of E + k - 1 it can see. */
function expectedShares(
  k: number,
  demandOf: (region: Region, window: number) => number,
): Record<string, number> {
  return allocate(
    LIMIT,
    REGIONS.map((region) => ({
      region,
      demand: k === 0 || skipped(region, k - 1) ? ('unknown' as const) : demandOf(region, k - 2),
    })),
  );
}
const tenantDemand = (region: Region, window: number) =>
  window < 0 ? 0 : (SCHEDULE[window]?.[region] ?? 0) * 1000;

describe('runSyncPass: three regions over eleven epochs', () => {
  const world = new World();
  const results: Record<Region, (PassResult | undefined)[]> = { [AP]: [], [EU]: [], [US]: [] };
  /** The override each pass wrote for tenant-1, with the share it replaced (the static 30,000 at first). */
  const writes: Record<Region, ({ readonly was: number } & SyncOverride)[]> = {
    [AP]: [],
    [EU]: [],
    [US]: [],
  };
  /** Per instant where all three regions asked: the sum of the limits their hot paths enforced. */
  const enforcedSums: number[] = [];
  const sources = new Set<string>();

  beforeAll(async () => {
    world.nodes[US].store.setLimits('op-tenant', 'requests', { operator: 50_000 });
    for (let k = 0; k < PASSES; k++) {
      // Every pass at its own moment early in the window, in a different order each epoch.
      const order = [...REGIONS.slice(k % 3), ...REGIONS.slice(0, k % 3)];
      for (const [i, region] of order.entries()) {
        world.t = at(E + k, 1000 + i * 300);
        const before = world.item(region, 'tenant-1')?.sync;
        results[region][k] = skipped(region, k) ? undefined : await world.pass(region);
        const after = world.item(region, 'tenant-1')?.sync;
        if (after && after !== before) writes[region][k] = { ...after, was: before?.share ?? 30_000 };
      }
      const demand = SCHEDULE[k];
      if (!demand) continue;
      for (let i = 0; i < 60; i++) {
        world.t = at(E + k, 2000 + i * 900);
        let sum = 0;
        for (const region of REGIONS) {
          const decision = await world.nodes[region].limiter.consume('tenant-1', 'requests', demand[region]);
          sum += decision.limit;
          sources.add(`${region} ${decision.source}`);
        }
        enforcedSums.push(sum);
      }
    }
  });

  it('records the heartbeat of every pass that ran, and only those', () => {
    for (const region of REGIONS)
      for (let k = 0; k < PASSES; k++)
        expect([region, k, results[region][k]?.epoch]).toEqual([
          region,
          k,
          skipped(region, k) ? undefined : E + k,
        ]);
    expect(world.nodes[AP].store.heartbeat?.epoch).toBe(E + PASSES - 1);
    expect(world.nodes[EU].store.heartbeat?.epoch).toBe(E + PASSES - 1);
  });

  it('publishes in every pass a snapshot of the window before, decodable by its peers', () => {
    for (const region of REGIONS)
      for (let k = 0; k < PASSES; k++) {
        if (skipped(region, k)) {
          expect(world.snapshots.read(region, E + k)).toBeUndefined();
          continue;
        }
        expect(results[region][k]?.snapshot).toBe('written');
        const snapshot = world.snapshots.read(region, E + k);
        expect(snapshot?.configHash).toBe(configHash(CONFIG));
        const entry = snapshot?.entries.find((e) => e.entity === 'tenant-1');
        const demand = k === 0 ? 0 : windowTotal(tenantDemand(region, k - 1));
        expect([region, k, entry?.demand ?? 0]).toEqual([region, k, demand]);
        expect(entry?.consumed ?? 0).toBeLessThanOrEqual(demand);
      }
  });

  it('computes in every region its entry of one allocation when the regions see the same snapshots', () => {
    for (let k = 0; k < PASSES; k++) {
      const tenant = expectedShares(k, tenantDemand);
      // op-tenant: nobody asks for it; us-east-1 publishes it for its operator value.
      const op = expectedShares(k, () => 0);
      let sum = 0;
      for (const region of REGIONS) {
        if (skipped(region, k)) continue;
        const plan = world.nodes[region].metrics.plans[k - (region === AP && k > 5 ? 1 : 0)];
        // tenant-1 is in the snapshots from pass 2 on (window E + 0); op-tenant from pass 1 on.
        const expected = (k >= 2 ? (tenant[region] ?? 0) : 0) + (k >= 1 ? (op[region] ?? 0) : 0);
        expect([region, k, plan?.shareByResource.get('requests') ?? 0]).toEqual([region, k, expected]);
        sum += plan?.shareByResource.get('requests') ?? 0;
      }
      if (!REGIONS.some((r) => skipped(r, k))) expect(sum).toBe(k === 0 ? 0 : k >= 2 ? 2 * LIMIT : LIMIT);
    }
  });

  it('writes an override only when a trigger calls for it, with the share of the one allocation', () => {
    for (let k = 0; k < PASSES; k++)
      for (const region of REGIONS) {
        const kind = EXPECTED_WRITES[k]?.[region];
        const written = writes[region][k];
        expect([region, k, written === undefined ? undefined : written.epoch]).toEqual([
          region,
          k,
          kind ? E + k : undefined,
        ]);
        if (!kind || !written) continue;
        expect([region, k, written.share]).toEqual([region, k, expectedShares(k, tenantDemand)[region]]);
        expect([
          region,
          k,
          kind === 'grow' ? written.share > written.was : written.share < written.was,
        ]).toEqual([region, k, true]);
      }
  });

  it('shrinks the others while a region’s snapshot is missing, and recovers when it returns', () => {
    expect(writes[EU][4]?.share).toBe(60_000);
    expect(writes[EU][6]?.share).toBe(35_000);
    expect(writes[EU][7]?.share).toBe(60_000);
    for (const region of [EU, US] as const)
      expect(world.nodes[region].metrics.unknown).toContainEqual({ peer: AP, reason: 'missing' });
    expect(results[EU][6]?.peersUnknown).toBe(1);
    expect(results[EU][7]?.peersUnknown).toBe(0);
  });

  it('never lets the hot paths enforce more than the limit in sum', () => {
    expect(enforcedSums).toHaveLength(60 * SCHEDULE.length);
    for (const sum of enforcedSums) expect(sum).toBeLessThanOrEqual(LIMIT);
    expect(Math.max(...enforcedSums)).toBe(LIMIT);
    expect(sources).toEqual(
      new Set([
        ...REGIONS.map((r) => `${r} static`),
        ...REGIONS.flatMap((r) => [`${r} sync`, `${r} sync-pending`]),
      ]),
    );
  });

  it('keeps an operator value through every pass, enforcing it over the override kept current beneath it', async () => {
    const op = world.item(US, 'op-tenant');
    expect(op?.operator).toBe(50_000);
    // The sync never touches the operator's value; the share it keeps beneath applies once it is removed.
    expect(op?.sync?.epoch).toBeGreaterThanOrEqual(E);
    // From the first pass that sees its snapshot (E + 0) on.
    for (const plan of world.nodes[US].metrics.plans.slice(1)) expect(plan.operatorHeld).toBe(1);
    expect(world.nodes[US].metrics.plans).toHaveLength(PASSES);
    expect(await world.nodes[US].limiter.consume('op-tenant', 'requests')).toEqual({
      admitted: true,
      limit: 50_000,
      source: 'operator',
    });
  });
});

describe('runSyncPass: one pass', () => {
  /** Snapshots of E - 1 in which eu-central-1's share of tenant-1 is 10,000 (a shrink from 30,000). */
  function plantShrink(world: World): void {
    const demands: Record<Region, number> = { [AP]: 10_000, [EU]: 10_000, [US]: 70_000 };
    for (const region of REGIONS) {
      const entries: SnapshotEntry[] = [
        { entity: 'tenant-1', resource: 'requests', consumed: 0, demand: windowTotal(demands[region]) },
      ];
      world.snapshots.setRaw(
        region,
        E - 1,
        encodeSnapshot({ region, epoch: E - 1, generatedAt: at(E - 1, 1000), config: CONFIG, entries }),
      );
    }
    world.nodes[EU].store.heartbeat = ranThrough(E - 1);
    world.t = at(E, 1000);
  }

  it('reports an undecodable peer snapshot by the field at fault, sees that peer as unknown, and completes', async () => {
    const world = new World();
    plantShrink(world);
    world.snapshots.setRaw(US, E - 1, '{"schema":1,');
    const valid = JSON.parse(
      new TextDecoder().decode(world.snapshots.bodies.get(`${AP}/${E - 1}`)),
    ) as Record<string, unknown>;
    world.snapshots.setRaw(AP, E - 1, JSON.stringify({ ...valid, configHash: 'f'.repeat(64) }));

    const result = await world.pass(EU);
    const { metrics } = world.nodes[EU];
    expect(metrics.decodeFailures).toEqual([
      { peer: AP, field: 'configHash' },
      { peer: US, field: 'snapshot' },
    ]);
    expect(metrics.unknown).toEqual([
      { peer: AP, reason: 'undecodable' },
      { peer: US, reason: 'undecodable' },
    ]);
    expect(result).toMatchObject({ epoch: E, peersUnknown: 2, snapshot: 'written' });
    // With both peers unbounded, its own demand of 10,000 is all it gets.
    expect(world.item(EU, 'tenant-1')?.sync).toEqual({ epoch: E, prior: 30_000, share: 10_000 });
  });

  it("refuses a peer's snapshot that names another region or epoch than the one asked for", async () => {
    const world = new World();
    plantShrink(world);
    world.snapshots.setRaw(US, E - 1, new TextDecoder().decode(world.snapshots.bodies.get(`${AP}/${E - 1}`)));
    world.snapshots.setRaw(
      AP,
      E - 1,
      encodeSnapshot({ region: AP, epoch: E - 2, generatedAt: at(E - 1, 1000), config: CONFIG, entries: [] }),
    );
    await world.pass(EU);
    expect(world.nodes[EU].metrics.decodeFailures).toEqual([
      { peer: AP, field: 'epoch' },
      { peer: US, field: 'region' },
    ]);
  });

  it('sees an unreachable peer as unknown and completes', async () => {
    const world = new World();
    plantShrink(world);
    const snapshots = world.snapshots.forRegion(EU);
    const result = await world.pass(EU, {
      snapshots: {
        put: snapshots.put,
        get: (region, epoch, signal) =>
          region === US
            ? Promise.reject(new Error('connect ETIMEDOUT'))
            : snapshots.get(region, epoch, signal),
      },
    });
    expect(result.peersUnknown).toBe(1);
    expect(world.nodes[EU].metrics.unknown).toEqual([
      { peer: US, reason: expect.stringMatching(/^unreachable/) },
    ]);
  });

  it('throws SyncPassError when an override write fails, and records no heartbeat and no snapshot', async () => {
    class FailingWrites extends MemoryLimiterStore {
      override async writeOverride(): Promise<OverrideResult> {
        throw new Error('ProvisionedThroughputExceededException');
      }
    }
    const world = new World({ [EU]: new FailingWrites() });
    plantShrink(world);
    const pass = world.pass(EU);
    await expect(pass).rejects.toBeInstanceOf(SyncPassError);
    await expect(pass).rejects.toMatchObject({ failed: 1 });
    expect(world.nodes[EU].store.heartbeat?.epoch).toBe(E - 1);
    expect(world.snapshots.read(EU, E)).toBeUndefined();
    expect(world.nodes[EU].metrics.written).toEqual([{ count: 0, failed: 1 }]);
  });

  it('in shadow mode plans and publishes but writes no override', async () => {
    const world = new World();
    plantShrink(world);
    const result = await world.pass(EU, { shadow: true });
    expect(world.nodes[EU].metrics.lastPlan.writes).toHaveLength(1);
    expect(result.written).toBe(0);
    expect(world.nodes[EU].store.counts.overrideWrites).toBe(0);
    expect(world.item(EU, 'tenant-1')?.sync).toBeUndefined();
    expect(result.snapshot).toBe('written');
    expect(world.snapshots.read(EU, E)?.epoch).toBe(E);
  });

  it("publishes the previous window's demand and consumption, refused demand included, and operator values", async () => {
    const world = new World();
    const { store, limiter } = world.nodes[EU];
    store.setLimits('held', 'requests', { operator: 5000 });
    world.t = at(E - 2, 5000);
    await limiter.consume('old', 'requests', 3);
    world.t = at(E - 1, 5000);
    for (let i = 0; i < 35; i++) await limiter.consume('tenant-1', 'requests');
    world.t = at(E - 1, 7000);
    await limiter.consume('tenant-1', 'requests', 2);
    world.t = at(E, 500);
    await limiter.consume('tenant-1', 'requests', 7);

    world.t = at(E, 1000);
    const result = await world.pass(EU);
    expect(result).toMatchObject({ epoch: E, snapshot: 'written' });
    const snapshot = world.snapshots.read(EU, E);
    expect(snapshot).toMatchObject({
      region: EU,
      epoch: E,
      generatedAt: at(E, 1000),
      configHash: configHash(CONFIG),
    });
    expect(snapshot?.entries).toEqual(
      expect.arrayContaining([
        { entity: 'tenant-1', resource: 'requests', consumed: 32_000, demand: 37_000 },
        { entity: 'held', resource: 'requests', consumed: 0, demand: 0, operator: 5000 },
      ]),
    );
    expect(snapshot?.entries).toHaveLength(2);
    expect(snapshotOf(EU, E, snapshot?.entries ?? [])).toEqual({ ...snapshot, generatedAt: at(E, 1000) });
  });

  it('completes a repeated pass of the same epoch: the snapshot exists, nothing is written twice', async () => {
    const world = new World();
    plantShrink(world);
    const first = await world.pass(EU);
    expect(first).toMatchObject({ written: 1, snapshot: 'written' });
    world.t = at(E, 20_000);
    const second = await world.pass(EU);
    expect(second).toMatchObject({ epoch: E, written: 0, snapshot: 'exists' });
    expect(world.nodes[EU].store.counts.overrideWrites).toBe(1);
    expect(world.nodes[EU].store.heartbeat?.epoch).toBe(E);
    expect(world.snapshots.puts).toEqual([{ region: EU, epoch: E }]);
  });
});
