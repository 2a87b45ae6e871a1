import {
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand, QueueDoesNotExist, type SQSClient } from '@aws-sdk/client-sqs';
import { isDeepStrictEqual } from 'node:util';
import { parseRunnerConfig, regionSettings } from '../../runtime/runners/config';
import type { SpillMetric } from '../../runtime/runners/model';
import type { RegionStatusReader, RegionStatusRecord } from '../../runtime/runners/region-status';
import { DynamodbRegionViews, type DynamodbRegionViewsOptions } from '../../runtime/runners/region-views';

type Item = Record<string, AttributeValue>;
/** A copy made in this realm (structuredClone's objects have another realm's prototypes under jest). */
const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
interface Sent {
  readonly command: string;
  readonly signal?: AbortSignal;
}

/**
 * One region's state table in memory (`pk`, `sk`): Query on `#pk = :pk` and `#pk = :pk AND #sk >= :from`
 * (strings compared as DynamoDB does, by code unit), one item a page; GetItem; PutItem honouring
 * `attribute_exists(#a)`, `attribute_not_exists(#a)` and `#a = :v` joined by AND.
 */
class FakeStateTable {
  readonly items = new Map<string, Item>();
  readonly sent: Sent[] = [];
  beforeWrite: (() => void) | undefined;
  /** Makes every call wait for its abort signal (a region that does not answer). */
  hang = false;

  readonly client = {
    send: async (command: unknown, options?: { abortSignal?: AbortSignal }) => this.send(command, options),
  } as unknown as DynamoDBClient;

  put(item: Item) {
    this.items.set(`${item.pk?.S}|${item.sk?.S}`, clone(item));
  }

  private async send(command: unknown, options?: { abortSignal?: AbortSignal }): Promise<unknown> {
    const signal = options?.abortSignal;
    this.sent.push({ command: (command as object).constructor.name, ...(signal ? { signal } : {}) });
    if (this.hang)
      return new Promise((_, reject) =>
        signal?.addEventListener('abort', () => reject(new Error('aborted'))),
      );
    await Promise.resolve();
    if (command instanceof QueryCommand) {
      const {
        KeyConditionExpression,
        ExpressionAttributeValues: values = {},
        ExclusiveStartKey,
      } = command.input;
      expect(command.input.ConsistentRead).toBe(true);
      const pk = values[':pk']?.S;
      const from = KeyConditionExpression === '#pk = :pk AND #sk >= :from' ? values[':from']?.S : undefined;
      if (KeyConditionExpression !== '#pk = :pk' && from === undefined)
        throw new Error('fake: unsupported query');
      const matches = [...this.items.values()]
        .filter((item) => item.pk?.S === pk && (from === undefined || (item.sk?.S ?? '') >= from))
        .sort((a, b) => ((a.sk?.S ?? '') < (b.sk?.S ?? '') ? -1 : 1));
      const index = ExclusiveStartKey
        ? matches.findIndex((item) => item.sk?.S === ExclusiveStartKey.sk?.S) + 1
        : 0;
      const page = matches.slice(index, index + 1);
      const last = page[0];
      return {
        Items: page.map((item) => clone(item)),
        ...(last && index + 1 < matches.length ? { LastEvaluatedKey: { pk: last.pk, sk: last.sk } } : {}),
      };
    }
    if (command instanceof GetItemCommand) {
      const key = command.input.Key ?? {};
      const item = this.items.get(`${key.pk?.S}|${key.sk?.S}`);
      return item ? { Item: clone(item) } : {};
    }
    if (command instanceof PutItemCommand) {
      this.beforeWrite?.();
      const item = command.input.Item ?? {};
      const stored = this.items.get(`${item.pk?.S}|${item.sk?.S}`);
      const names = command.input.ExpressionAttributeNames ?? {};
      const values = command.input.ExpressionAttributeValues ?? {};
      const name = (token: string) => names[token] ?? token;
      const holds = (command.input.ConditionExpression ?? '').split(' AND ').every((atom) => {
        const exists = /^attribute_exists\((#\w+)\)$/.exec(atom);
        if (exists) return stored?.[name(exists[1] ?? '')] !== undefined;
        const absent = /^attribute_not_exists\((#\w+)\)$/.exec(atom);
        if (absent) return stored?.[name(absent[1] ?? '')] === undefined;
        const equals = /^(#\w+) = (:\w+)$/.exec(atom);
        if (equals) return isDeepStrictEqual(stored?.[name(equals[1] ?? '')], values[equals[2] ?? '']);
        throw new Error(`fake: unsupported condition ${atom}`);
      });
      if (!holds) throw new ConditionalCheckFailedException({ message: 'conditional', $metadata: {} });
      this.put(item);
      return {};
    }
    throw new Error('fake: unexpected command');
  }
}

/**
 * A region's queues: visible and delayed depth by URL, each answered only when asked for (as SQS does); a
 * URL not listed does not exist; `errors` makes a URL's read fail with that error.
 */
class FakeQueues {
  readonly depths = new Map<string, string>();
  readonly delayed = new Map<string, string>();
  readonly errors = new Map<string, Error>();
  readonly client = {
    send: async (command: unknown) => {
      await Promise.resolve();
      if (!(command instanceof GetQueueAttributesCommand)) throw new Error('fake: unexpected command');
      const asked = new Set(command.input.AttributeNames ?? []);
      const queueUrl = command.input.QueueUrl ?? '';
      const error = this.errors.get(queueUrl);
      if (error) throw error;
      const depth = this.depths.get(queueUrl);
      if (depth === undefined)
        throw new QueueDoesNotExist({
          message: 'queue https://sqs... of 123456789012 missing',
          $metadata: {},
        });
      return {
        Attributes: {
          ...(asked.has('ApproximateNumberOfMessages') ? { ApproximateNumberOfMessages: depth } : {}),
          ...(asked.has('ApproximateNumberOfMessagesDelayed')
            ? { ApproximateNumberOfMessagesDelayed: this.delayed.get(queueUrl) ?? '0' }
            : {}),
        },
      };
    },
  } as unknown as SQSClient;
}

const NOW_MS = 1_900_000_000_000;
const NOW_SEC = NOW_MS / 1000;
const ACCOUNT = '123456789012';
const config = parseRunnerConfig({
  regions: [
    { region: 'eu-central-1', priority: 1, capacity: 50 },
    { region: 'us-east-1', priority: 2, capacity: 20 },
  ],
  runnerTypes: [
    { name: 'standard', labels: ['self-hosted', 'linux'] },
    {
      name: 'docker',
      labels: ['self-hosted', 'linux', 'docker'],
      launch: 'ec2',
      runnerGroup: 'docker-trusted',
    },
  ],
  errorWindowSec: 300,
});
const url = (region: string, type: string) =>
  `https://sqs.${region}.amazonaws.com/${ACCOUNT}/dev-runners-${type}`;

const record = (region: string, status: RegionStatusRecord['status'] = 'active'): RegionStatusRecord => ({
  region,
  status,
  health: { state: status === 'out' ? 'unhealthy' : 'healthy', failing: [] },
  operator: { status: status === 'draining' ? 'draining' : 'active', audit: [], version: 0 },
});

function setup(overrides: Partial<DynamodbRegionViewsOptions> = {}) {
  let now = NOW_MS;
  const tables = new Map([
    ['eu-central-1', new FakeStateTable()],
    ['us-east-1', new FakeStateTable()],
  ]);
  const queues = new Map([
    ['eu-central-1', new FakeQueues()],
    ['us-east-1', new FakeQueues()],
  ]);
  for (const [region, fake] of queues) {
    fake.depths.set(url(region, 'standard'), '0');
    fake.depths.set(url(region, 'docker'), '0');
  }
  const records = new Map(config.regions.map((r) => [r.region, record(r.region)]));
  const statusReads: string[][] = [];
  let statusFailure: Error | undefined;
  const statuses: RegionStatusReader = {
    readStatuses: async (regions) => {
      statusReads.push([...regions]);
      if (statusFailure) throw statusFailure;
      return new Map(records);
    },
  };
  const unreadable: [string, string][] = [];
  const views = new DynamodbRegionViews({
    config,
    localRegion: 'eu-central-1',
    accountId: ACCOUNT,
    queuePrefix: 'dev-runners',
    regionStatusTable: 'dev-region-status',
    stateTable: 'dev-region-state',
    dynamodb: (region) => tables.get(region)?.client ?? new FakeStateTable().client,
    sqs: (region) => queues.get(region)?.client ?? new FakeQueues().client,
    now: () => now,
    onRegionUnreadable: (region, reason) => unreadable.push([region, reason]),
    statuses,
    ...overrides,
  });
  const table = (region: string) => tables.get(region) as FakeStateTable;
  const queue = (region: string) => queues.get(region) as FakeQueues;
  return {
    views,
    table,
    queue,
    records,
    statusReads,
    unreadable,
    advance: (ms: number) => (now += ms),
    failStatuses: (error: Error | undefined) => (statusFailure = error),
  };
}

const throttled = () =>
  Object.assign(new Error('arn:aws:dynamodb:eu-central-1:123456789012:table/x'), {
    name: 'ProvisionedThroughputExceededException',
  });

const expiryMap = (expiries: Record<string, number | string>): AttributeValue => ({
  M: Object.fromEntries(Object.entries(expiries).map(([job, at]) => [job, { N: String(at) }])),
});
/** A lease item (leases.ts): `leases` and `waiting`, key -> expiry in epoch seconds. */
const leases = (
  org: string,
  expiries: Record<string, number | string>,
  waiting?: Record<string, number | string>,
): Item => ({
  pk: { S: 'runner-leases' },
  sk: { S: org },
  leases: expiryMap(expiries),
  ...(waiting ? { waiting: expiryMap(waiting) } : {}),
  version: { N: '1' },
});
const counter = (windowStartSec: number, dispatched: number, failed: number): Item => ({
  pk: { S: 'runner-dispatch' },
  sk: { S: String(windowStartSec) },
  dispatched: { N: String(dispatched) },
  failed: { N: String(failed) },
  expiresAt: { N: String(windowStartSec + 3600) },
});
const spill = (metrics: SpillMetric[], version: number): Item => ({
  pk: { S: 'runner-spill' },
  sk: { S: 'state' },
  spilling: { L: metrics.map((m) => ({ S: m })) },
  version: { N: String(version) },
  updatedAt: { N: '1' },
});

describe('DynamodbRegionViews.views', () => {
  it("sums each region's queues, counts its unexpired leases over every page, and takes capacity from config", async () => {
    const { views, table, queue } = setup();
    queue('us-east-1').depths.set(url('us-east-1', 'standard'), '3');
    queue('us-east-1').depths.set(url('us-east-1', 'docker'), '4');
    table('us-east-1').put(leases('acme', { '1': NOW_SEC + 60, '2': NOW_SEC + 1, '3': NOW_SEC }));
    table('us-east-1').put(leases('globex', { '4': NOW_SEC + 600, '5': NOW_SEC - 600 }));
    table('us-east-1').put(leases('initech', { '6': NOW_SEC + 600 }));
    const view = (await views.views()).get('us-east-1');
    expect(view?.metrics).toEqual({ queueDepth: 7, inUse: 4, capacity: 20, dispatched: 0, failed: 0 });
    // One item a page: three pages of leases, every one read.
    expect(table('us-east-1').sent.filter((s) => s.command === 'QueryCommand').length).toBeGreaterThanOrEqual(
      3,
    );
  });

  it('sums the dispatch counters of windows that started at most errorWindowSec ago, the boundary included', async () => {
    const { views, table } = setup();
    const from = NOW_SEC - 300;
    table('eu-central-1').put(counter(from - 60, 1000, 1000));
    table('eu-central-1').put(counter(from - 1, 1000, 1000));
    table('eu-central-1').put(counter(from, 10, 1));
    table('eu-central-1').put(counter(NOW_SEC - 60, 20, 2));
    table('eu-central-1').put(counter(NOW_SEC, 5, 0));
    const view = (await views.views()).get('eu-central-1');
    expect(view?.metrics).toMatchObject({ dispatched: 35, failed: 3 });
    expect(String(from)).toHaveLength(10);
  });

  it('skips counters that are not whole numbers rather than trip the error rate on them', async () => {
    const { views, table } = setup();
    table('eu-central-1').put({ ...counter(NOW_SEC - 60, 10, 2), failed: { N: '1e400' } });
    table('eu-central-1').put({ ...counter(NOW_SEC - 120, 4, 1), dispatched: { S: '4' } });
    expect((await views.views()).get('eu-central-1')?.metrics).toMatchObject({ dispatched: 10, failed: 1 });
  });

  it('passes each region’s effective status and stored triggers through', async () => {
    const { views, table, records } = setup();
    records.set('us-east-1', record('us-east-1', 'draining'));
    table('eu-central-1').put(spill(['concurrency', 'queue-depth'], 4));
    const all = await views.views();
    expect(all.get('us-east-1')?.status).toBe('draining');
    expect([...(all.get('eu-central-1')?.spilling ?? [])]).toEqual(['queue-depth', 'concurrency']);
  });

  it('reports a region whose reads fail as out with zero metrics, telling the callback why without the message', async () => {
    const { views, queue, table, unreadable } = setup();
    queue('us-east-1').errors.set(
      url('us-east-1', 'docker'),
      Object.assign(new Error('denied to arn:aws:iam::123456789012:role/x'), { name: 'AccessDenied' }),
    );
    table('us-east-1').put(spill(['error-rate'], 1));
    const all = await views.views();
    expect(all.get('us-east-1')).toEqual({
      status: 'out',
      metrics: { queueDepth: 0, inUse: 0, capacity: 0, dispatched: 0, failed: 0 },
      spilling: new Set(),
    });
    expect(all.get('eu-central-1')?.status).toBe('active');
    expect(unreadable).toEqual([['us-east-1', 'AccessDenied']]);
    expect(JSON.stringify(unreadable)).not.toContain('123456789012');
  });

  it('counts visible messages and unexpired wait records as the queue depth, never delayed messages', async () => {
    const { views, queue, table } = setup();
    queue('eu-central-1').depths.set(url('eu-central-1', 'standard'), '2');
    queue('eu-central-1').depths.set(url('eu-central-1', 'docker'), '1');
    // An idle region at ~10 dispatches a minute: 100 check-queued looks (600 s) and approval waits (900 s)
    // sit delayed in its queues. They are not jobs waiting for the region.
    queue('eu-central-1').delayed.set(url('eu-central-1', 'standard'), '100');
    queue('eu-central-1').delayed.set(url('eu-central-1', 'docker'), '50');
    table('eu-central-1').put(
      leases('acme', { '1': NOW_SEC + 60 }, { '7': NOW_SEC + 900, '8': NOW_SEC, '9': NOW_SEC - 5 }),
    );
    table('eu-central-1').put(leases('globex', {}, { '10:1': NOW_SEC + 1, '11': '1e400', '12': 'x' }));
    table('eu-central-1').put(leases('initech', { '13': NOW_SEC + 60 }));
    const view = (await views.views()).get('eu-central-1');
    // 3 visible + 2 wait records still standing (7, 10:1); lapsed and damaged ones do not count.
    expect(view?.metrics).toMatchObject({ queueDepth: 5, inUse: 2 });
  });

  it('stays under the spill threshold while idle whatever its dispatch rate', async () => {
    const { views, queue } = setup();
    queue('us-east-1').delayed.set(url('us-east-1', 'standard'), '120');
    expect((await views.views()).get('us-east-1')?.metrics.queueDepth).toBe(0);
    expect(regionSettings(config, 'us-east-1')?.spillover.queueDepth).toBeLessThan(120);
  });

  it('refuses a visible count that is not a whole number', async () => {
    const { views, queue, unreadable } = setup();
    queue('eu-central-1').depths.set(url('eu-central-1', 'docker'), '-1');
    expect((await views.views()).get('eu-central-1')?.status).toBe('out');
    expect(unreadable).toEqual([['eu-central-1', 'QueueDepthUnreadable']]);
  });

  it('counts a runner queue that does not exist yet in a region as 0, the region staying readable, and says so', async () => {
    const { views, queue, table, unreadable } = setup();
    queue('us-east-1').depths.delete(url('us-east-1', 'docker'));
    queue('us-east-1').depths.set(url('us-east-1', 'standard'), '4');
    table('us-east-1').put(leases('acme', {}, { '5': NOW_SEC + 900 }));
    const all = await views.views();
    expect(all.get('us-east-1')).toMatchObject({
      status: 'active',
      metrics: { queueDepth: 5, capacity: 20 },
    });
    expect(unreadable).toEqual([['us-east-1', 'queue docker: QueueDoesNotExist, counted as 0']]);
    const readings = await views.readings();
    expect(readings.get('us-east-1')).toMatchObject({ missingQueues: ['docker'] });
    expect(readings.get('us-east-1')?.unreadable).toBeUndefined();
    expect(readings.get('eu-central-1')?.missingQueues).toBeUndefined();
  });

  it('gives up on a region that does not answer within the timeout, aborting its calls', async () => {
    const { views, table, unreadable } = setup({ timeoutMs: 20 });
    table('us-east-1').hang = true;
    const started = Date.now();
    const all = await views.views();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(all.get('us-east-1')?.status).toBe('out');
    expect(all.get('eu-central-1')?.status).toBe('active');
    expect(unreadable).toEqual([['us-east-1', 'no answer within 20 ms']]);
    expect(table('us-east-1').sent.every((s) => s.signal?.aborted)).toBe(true);
  });

  it('reports every region out when the statuses cannot be read and nothing was read before', async () => {
    const failing: RegionStatusReader = {
      readStatuses: async () => {
        throw throttled();
      },
    };
    const { views, unreadable } = setup({ statuses: failing });
    const all = await views.views();
    expect([...all.values()].map((v) => v.status)).toEqual(['out', 'out']);
    expect(unreadable).toEqual([
      ['eu-central-1', 'region-status: ProvisionedThroughputExceededException'],
      ['us-east-1', 'region-status: ProvisionedThroughputExceededException'],
    ]);
  });

  it("keeps each region's last status for 60 s when the statuses cannot be read, then makes it out", async () => {
    const { views, records, queue, unreadable, advance, failStatuses } = setup({ cacheTtlMs: 0 });
    records.set('us-east-1', record('us-east-1', 'draining'));
    await views.views();
    failStatuses(throttled());
    advance(30_000);
    queue('eu-central-1').depths.set(url('eu-central-1', 'standard'), '9');
    const stale = await views.views();
    // The status is the last one read; the metrics are read now.
    expect(stale.get('eu-central-1')).toMatchObject({ status: 'active', metrics: { queueDepth: 9 } });
    expect(stale.get('us-east-1')?.status).toBe('draining');
    expect(unreadable).toEqual([
      ['eu-central-1', 'region-status: ProvisionedThroughputExceededException'],
      ['us-east-1', 'region-status: ProvisionedThroughputExceededException'],
    ]);
    expect((await views.readings()).get('eu-central-1')).toMatchObject({
      unreadable: 'region-status: ProvisionedThroughputExceededException',
      lastGoodAt: NOW_MS,
    });
    advance(30_000); // exactly 60 s after the last good read: still kept
    expect((await views.views()).get('us-east-1')?.status).toBe('draining');
    advance(1);
    const expired = await views.views();
    expect([...expired.values()].map((v) => v.status)).toEqual(['out', 'out']);
    expect(expired.get('eu-central-1')?.metrics).toEqual({
      queueDepth: 0,
      inUse: 0,
      capacity: 0,
      dispatched: 0,
      failed: 0,
    });
    // Read again: every region as read.
    failStatuses(undefined);
    expect([...(await views.views()).values()].map((v) => v.status)).toEqual(['active', 'draining']);
  });

  it('never makes a region last seen draining or out eligible because its status could not be read', async () => {
    const { views, records, advance, failStatuses } = setup({ cacheTtlMs: 0, staleForMs: 10_000 });
    records.set('eu-central-1', record('eu-central-1', 'out'));
    records.set('us-east-1', record('us-east-1', 'draining'));
    await views.views();
    failStatuses(throttled());
    for (const step of [1, 5_000, 4_999, 1, 1, 60_000]) {
      advance(step);
      const all = await views.views();
      expect(all.get('eu-central-1')?.status).toBe('out');
      expect(['draining', 'out']).toContain(all.get('us-east-1')?.status);
    }
  });

  it("keeps a region's last metrics and triggers when its own reads fail, with its status read now", async () => {
    const { views, table, records, queue, unreadable, advance } = setup({ cacheTtlMs: 0, timeoutMs: 20 });
    queue('us-east-1').depths.set(url('us-east-1', 'standard'), '150');
    table('us-east-1').put(spill(['queue-depth'], 2));
    await views.views();
    table('us-east-1').hang = true;
    advance(59_000);
    const stale = await views.views();
    expect(stale.get('us-east-1')).toEqual({
      status: 'active',
      metrics: { queueDepth: 150, inUse: 0, capacity: 20, dispatched: 0, failed: 0 },
      spilling: new Set(['queue-depth']),
    });
    expect(unreadable).toEqual([['us-east-1', 'no answer within 20 ms']]);
    // A status read now wins over the metrics' age: a drain shows at once.
    records.set('us-east-1', record('us-east-1', 'draining'));
    expect((await views.views()).get('us-east-1')?.status).toBe('draining');
    advance(1_001);
    expect((await views.views()).get('us-east-1')).toMatchObject({ status: 'out', spilling: new Set() });
  });

  it('answers from its cache within the TTL, reads again after it, and shares a read in flight', async () => {
    const { views, statusReads, advance } = setup({ cacheTtlMs: 5_000 });
    await Promise.all([views.views(), views.views()]);
    expect(statusReads).toHaveLength(1);
    advance(4_999);
    await views.views();
    expect(statusReads).toHaveLength(1);
    advance(1);
    await views.views();
    expect(statusReads).toHaveLength(2);
  });

  it('reads afresh for readings() whatever the cache holds', async () => {
    const { views, statusReads, queue } = setup();
    await views.views();
    queue('eu-central-1').depths.set(url('eu-central-1', 'standard'), '12');
    const readings = await views.readings();
    expect(statusReads).toHaveLength(2);
    expect(readings.get('eu-central-1')?.view.metrics.queueDepth).toBe(12);
    expect((await views.views()).get('eu-central-1')?.metrics.queueDepth).toBe(12);
  });
});

describe('DynamodbRegionViews.saveSpilling', () => {
  it('creates the spill item only while there is none, and updates the cached view', async () => {
    const { views, table, statusReads } = setup();
    await views.views();
    await views.saveSpilling('us-east-1', new Set(), new Set(['error-rate', 'queue-depth']));
    expect(table('us-east-1').items.get('runner-spill|state')).toEqual({
      pk: { S: 'runner-spill' },
      sk: { S: 'state' },
      spilling: { L: [{ S: 'queue-depth' }, { S: 'error-rate' }] },
      version: { N: '1' },
      updatedAt: { N: String(NOW_MS) },
    });
    expect([...((await views.views()).get('us-east-1')?.spilling ?? [])]).toEqual([
      'queue-depth',
      'error-rate',
    ]);
    expect(statusReads).toHaveLength(1);
  });

  it('writes over the version read, then over its own write', async () => {
    const { views, table } = setup();
    table('eu-central-1').put(spill(['concurrency'], 6));
    await views.views();
    await views.saveSpilling('eu-central-1', new Set(['concurrency']), new Set());
    await views.saveSpilling('eu-central-1', new Set(), new Set(['queue-depth']));
    expect(table('eu-central-1').items.get('runner-spill|state')).toMatchObject({
      spilling: { L: [{ S: 'queue-depth' }] },
      version: { N: '8' },
    });
  });

  it('drops a lost race silently and reads afresh on the next view', async () => {
    const { views, table, statusReads } = setup();
    table('eu-central-1').put(spill([], 2));
    await views.views();
    table('eu-central-1').beforeWrite = () => table('eu-central-1').put(spill(['error-rate'], 3));
    await expect(
      views.saveSpilling('eu-central-1', new Set(), new Set(['queue-depth'])),
    ).resolves.toBeUndefined();
    expect(table('eu-central-1').items.get('runner-spill|state')?.version).toEqual({ N: '3' });
    expect([...((await views.views()).get('eu-central-1')?.spilling ?? [])]).toEqual(['error-rate']);
    expect(statusReads).toHaveLength(2);
  });

  it('writes nothing when the stored triggers are not those the router evaluated, or nothing changed', async () => {
    const { views, table } = setup();
    table('eu-central-1').put(spill(['concurrency'], 2));
    await views.views();
    await views.saveSpilling('eu-central-1', new Set(), new Set(['queue-depth']));
    await views.saveSpilling('eu-central-1', new Set(['concurrency']), new Set(['concurrency']));
    expect(table('eu-central-1').sent.filter((s) => s.command === 'PutItemCommand')).toEqual([]);
  });

  it('keeps what it saved as the last good triggers of a region whose next read fails', async () => {
    const { views, table, advance } = setup({ cacheTtlMs: 0, timeoutMs: 20 });
    await views.views();
    await views.saveSpilling('us-east-1', new Set(), new Set(['concurrency']));
    table('us-east-1').hang = true;
    advance(1_000);
    expect([...((await views.views()).get('us-east-1')?.spilling ?? [])]).toEqual(['concurrency']);
  });

  it('reads the spill item first when no view read it yet', async () => {
    const { views, table } = setup();
    table('us-east-1').put(spill(['queue-depth'], 9));
    await views.saveSpilling('us-east-1', new Set(['queue-depth']), new Set());
    expect(table('us-east-1').sent.map((s) => s.command)).toEqual(['GetItemCommand', 'PutItemCommand']);
    expect(table('us-east-1').items.get('runner-spill|state')?.version).toEqual({ N: '10' });
  });
});
