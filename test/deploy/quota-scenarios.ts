import { DeleteItemCommand, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { allocationConfigOf } from '../../environments/quota';
import { allocate } from '../../runtime/quota/allocate';
import { epochOf, epochStart, type AllocationConfig } from '../../runtime/quota/config';
import { DynamodbLimiterStore, itemFromDynamodb } from '../../runtime/quota/dynamodb-store';
import { demandPerSecond } from '../../runtime/quota/enforcement';
import { QuotaLimiter } from '../../runtime/quota/limiter';
import { decodeSnapshot } from '../../runtime/quota/snapshot';
import { snapshotKey } from '../../runtime/quota/snapshot-store';
import type { LimiterItem } from '../../runtime/quota/store';
import type { PassResult } from '../../runtime/quota/sync';
import { capturingOutput, withClock } from '../../scripts/lib/load-bundle';
import { invokeDeployed, regionalStackOf, type LocalEstate } from '../../scripts/lib/local-estate';
import { emulatorClients } from './topology';

interface QuotaRegion {
  readonly region: string;
  readonly stackDir: string;
  readonly table: string;
  readonly bucket: string;
  readonly functionName: string;
}

function quotaRegionsOf(estate: LocalEstate): QuotaRegion[] {
  return estate.environment.regions.map((region) => {
    const stack = regionalStackOf(estate, region);
    return {
      region,
      stackDir: stack.dir,
      table: stack.outputs.quota_table as string,
      bucket: stack.outputs.quota_snapshot_bucket as string,
      functionName: stack.outputs.quota_sync_function as string,
    };
  });
}

/** Units per second each region demands of each entity in one window. */
type Demand = Readonly<Record<string, Readonly<Record<string, number>>>>;

/**
 * The quota sync on the deployed estate (three regions): the bundled sync handler of each region invoked as
 * its schedule would, once per window, at a moment the test sets; demand driven through the limiter (the
 * hot path) against each region's table. Six and more cycles of changing demand.
 */
export function quotaScenarios(endpoint: string, estateOf: () => LocalEstate): void {
  let regions: QuotaRegion[];
  let config: AllocationConfig;
  let limit: number;
  /** Far from now, so nothing else (no real schedule) can run in these windows. */
  let E0: number;
  const results = new Map<string, PassResult>();
  const clients = (region: string) => emulatorClients(endpoint, region);
  const names = () => regions.map((r) => r.region);

  beforeAll(() => {
    const estate = estateOf();
    regions = quotaRegionsOf(estate);
    config = allocationConfigOf(estate.environment);
    limit = config.resources[0]?.limit ?? 0;
    E0 = epochOf(config, Date.now()) + 10_000;
  });

  const limiter = (region: QuotaRegion, now: () => number) =>
    new QuotaLimiter({
      store: new DynamodbLimiterStore(clients(region.region).dynamodb, region.table),
      config,
      region: region.region,
      now,
    });

  /** Demand in window `E0 + k`: ten requests per region and entity, a lease apart, from a fresh container. */
  async function demand(k: number, demands: Demand): Promise<void> {
    for (const region of regions) {
      for (const [entity, byRegion] of Object.entries(demands)) {
        const perSecond = byRegion[region.region] ?? 0;
        if (perSecond === 0) continue;
        let t = epochStart(config, E0 + k) + 4000;
        const quota = limiter(region, () => t);
        for (let i = 0; i < 10; i++, t += 200)
          await quota.consume(entity, 'requests', (perSecond * config.windowSec) / 10);
      }
    }
  }

  /** Every region's pass (but `skip`'s) in window `E0 + k`, 3 s into it; returns what each logged. */
  async function passes(k: number, skip: readonly string[] = []): Promise<Map<string, string>> {
    const outputs = new Map<string, string>();
    for (const region of regions) {
      if (skip.includes(region.region)) continue;
      const at = epochStart(config, E0 + k) + 3000;
      const { result, output } = await capturingOutput(() =>
        withClock(
          () => at,
          async () =>
            (await invokeDeployed(endpoint, region.region, region.stackDir, region.functionName, {}))
              .response,
        ),
      );
      results.set(region.region, result as PassResult);
      outputs.set(region.region, output);
    }
    return outputs;
  }

  const item = async (region: QuotaRegion, entity: string): Promise<LimiterItem | undefined> => {
    const { Item } = await clients(region.region).dynamodb.send(
      new GetItemCommand({
        TableName: region.table,
        Key: { pk: { S: entity }, sk: { S: 'requests' } },
        ConsistentRead: true,
      }),
    );
    return Item ? itemFromDynamodb(Item) : undefined;
  };

  /** What allocate() gives from every region's snapshot of `epoch` (a region without one: unknown). */
  async function expectedShares(epoch: number, entity: string, unknown: readonly string[] = []) {
    const demands = await Promise.all(
      regions.map(async (region) => {
        if (unknown.includes(region.region)) return { region: region.region, demand: 'unknown' as const };
        const object = await clients(region.region).s3.send(
          new GetObjectCommand({ Bucket: region.bucket, Key: snapshotKey(region.region, epoch) }),
        );
        const snapshot = decodeSnapshot(await (object.Body?.transformToByteArray() ?? new Uint8Array()));
        const entry = snapshot.entries.find((e) => e.entity === entity && e.resource === 'requests');
        return {
          region: region.region,
          demand: Math.min(limit, demandPerSecond(entry?.demand ?? 0, config.windowSec)),
        };
      }),
    );
    return allocate(limit, demands);
  }

  const byRegion = (eu: number, us: number, ap: number) => ({
    'eu-central-1': eu,
    'us-east-1': us,
    'ap-southeast-1': ap,
  });
  const HEAVY_IN_EU: Demand = { 'tenant-a': byRegion(80, 10, 10), 'tenant-b': byRegion(10, 10, 10) };
  const HEAVY_IN_US: Demand = { 'tenant-a': byRegion(10, 80, 10), 'tenant-b': byRegion(10, 10, 10) };
  const OPERATOR_LIMIT = 5000;

  it('runs in every region of the estate: a table, a snapshot bucket and the sync function each', () => {
    expect(names().sort()).toEqual(['ap-southeast-1', 'eu-central-1', 'us-east-1']);
    for (const region of regions) {
      expect(region.table).toBe('local-quota-limits');
      expect(region.bucket).toContain(`snapshots-123456789012-${region.region}`);
    }
  });

  it('computes the same allocation in every region from the same snapshots, and writes only what the triggers call for', async () => {
    // An operator's value for tenant-b in ap-southeast-1: it must survive every cycle.
    const ap = regions.find((r) => r.region === 'ap-southeast-1') as QuotaRegion;
    await clients(ap.region).dynamodb.send(
      new UpdateItemCommand({
        TableName: ap.table,
        Key: { pk: { S: 'tenant-b' }, sk: { S: 'requests' } },
        UpdateExpression: 'SET op = :op REMOVE #ttl',
        ExpressionAttributeNames: { '#ttl': 'ttl' },
        ExpressionAttributeValues: { ':op': { N: String(OPERATOR_LIMIT) } },
      }),
    );
    const written: Record<number, number> = {};
    for (let k = 0; k <= 4; k++) {
      await passes(k);
      await demand(k, HEAVY_IN_EU);
      written[k] = [...results.values()].reduce((sum, r) => sum + r.written, 0);
      expect([...results.values()].every((r) => r.epoch === E0 + k && r.snapshot === 'written')).toBe(true);
      // From the third pass on, each computes from snapshots that carry the demand.
      if (k >= 2) {
        const expected = await expectedShares(E0 + k - 1, 'tenant-a');
        for (const region of regions) {
          const override = (await item(region, 'tenant-a'))?.sync;
          expect(override?.share).toBe(expected[region.region]);
        }
        expect(Object.values(expected).reduce((a, b) => a + b, 0)).toBe(limit);
        expect(expected['eu-central-1']).toBeGreaterThan(expected['us-east-1'] ?? 0);
      }
      expect((await item(ap, 'tenant-b'))?.operator).toBe(OPERATOR_LIMIT);
      expect((await item(ap, 'tenant-b'))?.sync).toBeUndefined();
    }
    // The first allocation from real demand writes; the same demand again writes nothing.
    expect(written[2]).toBeGreaterThan(0);
    expect(written[4]).toBe(0);
  });

  it('follows demand that moved, keeping the operator value', async () => {
    for (let k = 5; k <= 7; k++) {
      await passes(k);
      await demand(k, HEAVY_IN_US);
    }
    const expected = await expectedShares(E0 + 6, 'tenant-a');
    expect(expected['us-east-1']).toBeGreaterThan(expected['eu-central-1'] ?? 0);
    for (const region of regions)
      expect((await item(region, 'tenant-a'))?.sync?.share).toBe(expected[region.region]);
    const ap = regions.find((r) => r.region === 'ap-southeast-1') as QuotaRegion;
    expect((await item(ap, 'tenant-b'))?.operator).toBe(OPERATOR_LIMIT);
  });

  it("treats a region that stops publishing as unknown: the others' shares shrink, then recover", async () => {
    // ap-southeast-1's sync misses windows 8 and 9; from window 9 the others read no snapshot of it.
    await passes(8, ['ap-southeast-1']);
    await demand(8, HEAVY_IN_US);
    await passes(9, ['ap-southeast-1']);
    await demand(9, HEAVY_IN_US);
    const safe = await expectedShares(E0 + 8, 'tenant-a', ['ap-southeast-1']);
    const all = await expectedShares(E0 + 7, 'tenant-a');
    for (const name of ['eu-central-1', 'us-east-1']) {
      expect(results.get(name)?.peersUnknown).toBe(1);
      const region = regions.find((r) => r.region === name) as QuotaRegion;
      expect((await item(region, 'tenant-a'))?.sync?.share).toBe(safe[name]);
    }
    // Safe: neither takes more than when it knew ap-southeast-1's demand, and together they leave it at least
    // its share with every demand unknown, whatever it enforces on its own.
    for (const name of ['eu-central-1', 'us-east-1']) expect(safe[name]).toBeLessThanOrEqual(all[name] ?? 0);
    expect(limit - (safe['eu-central-1'] ?? 0) - (safe['us-east-1'] ?? 0)).toBeGreaterThanOrEqual(
      Math.floor(limit / 3),
    );
    // It comes back: its pass in window 10 publishes, and the others know it again in window 11.
    await passes(10);
    await demand(10, HEAVY_IN_US);
    await passes(11);
    for (const result of results.values()) expect(result.peersUnknown).toBe(0);
    const recovered = await expectedShares(E0 + 10, 'tenant-a');
    for (const region of regions) {
      const share = (await item(region, 'tenant-a'))?.sync?.share ?? 0;
      const target = recovered[region.region] ?? 0;
      // A shrink is written at once; a grow of 15% or less may be held back.
      expect(share === target || (share < target && target - share <= 0.15 * share)).toBe(true);
    }
  });

  it('refuses a corrupt snapshot with a metric and a log line, and carries on', async () => {
    const us = regions.find((r) => r.region === 'us-east-1') as QuotaRegion;
    await clients(us.region).s3.send(
      new PutObjectCommand({ Bucket: us.bucket, Key: snapshotKey(us.region, E0 + 11), Body: '{"schema":1,' }),
    );
    const outputs = await passes(12);
    expect(results.get('eu-central-1')?.peersUnknown).toBe(1);
    const output = outputs.get('eu-central-1') ?? '';
    expect(output).toContain('"SnapshotDecodeFailures"');
    expect(output).toContain('peer snapshot refused');
    expect(output).not.toContain('tenant-a');
  });

  it("admits within the region's allocation and refuses beyond it, then falls back to static when the sync dies", async () => {
    const eu = regions.find((r) => r.region === 'eu-central-1') as QuotaRegion;
    const share = (await item(eu, 'tenant-a'))?.sync?.share ?? 0;
    expect(share).toBeGreaterThan(0);
    // A window on, the override is in force and the bucket full: its capacity is one second of the share.
    let t = epochStart(config, E0 + 13) + 10_000;
    const quota = limiter(eu, () => t);
    const capacity = Math.floor(share / 1000);
    const first = await quota.consume('tenant-a', 'requests', capacity);
    expect(first).toMatchObject({ admitted: true, limit: share, source: 'sync' });
    expect((await quota.consume('tenant-a', 'requests', 1)).admitted).toBe(false);
    // No pass for three windows after the last: the override expires and static config applies.
    t = epochStart(config, E0 + 16) + 1000;
    const expired = await limiter(eu, () => t).consume('tenant-a', 'requests', 1);
    expect(expired.source).toBe('static');
    await clients(eu.region).dynamodb.send(
      new DeleteItemCommand({ TableName: eu.table, Key: { pk: { S: 'tenant-a' }, sk: { S: 'requests' } } }),
    );
  });
}
