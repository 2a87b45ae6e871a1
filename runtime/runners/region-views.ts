import {
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { describeError } from '../lib/redact';
import { regionSettings, type RunnerConfig } from './config';
import {
  SPILL_METRICS,
  type RegionMetrics,
  type RegionStatus,
  type RegionView,
  type RegionViewSource,
  type SpillMetric,
} from './model';
import { RegionStatusTable, type RegionStatusReader } from './region-status';
import { DISPATCH_PARTITION, LEASES_PARTITION, queueUrlOf, runnerQueueName, SPILL_KEY } from './tables';

/**
 * Every configured region as the router sees it, read from AWS itself rather than from CloudWatch (so the
 * emulator lanes can drive it):
 *
 * - status: the region-status global table through the local replica (region-status.ts);
 * - queueDepth: the jobs waiting for the region: `ApproximateNumberOfMessages` (visible: jobs not taken yet)
 *   over the region's runner queues, one per runner type, plus the unexpired `waiting` entries of the
 *   region's lease items (jobs that found their organisation at its cap and were re-sent with a delay).
 *   `ApproximateNumberOfMessagesDelayed` is not counted: every dispatch sends a `check-queued` message
 *   delayed 600 s to the same queue (and approval waits are re-sent delayed 900 s), so it grows with the
 *   dispatch rate, not with the work waiting. A runner queue that does not exist yet (a new runner type
 *   rolled out region by region) counts 0, and `onRegionUnreadable` hears of it (`queue <type>:
 *   QueueDoesNotExist, counted as 0`); the region itself stays readable;
 * - inUse: the unexpired leases in the region's `runner-leases` partition (strongly consistent, every page;
 *   the same read gives the waiting jobs above);
 * - capacity: from the configuration;
 * - dispatched / failed: the region's per-minute counters whose window started at most `errorWindowSec`
 *   ago (`sk >= now - errorWindowSec`, compared as strings: epoch seconds have 10 digits from 2001 to 2286,
 *   so the string order is the number order for as long as this code runs);
 * - spilling: the region's `runner-spill`/`state` item (the hysteresis state).
 *
 * Regions are read in parallel, each within `timeoutMs`. When the statuses or a region's reads fail or time
 * out, `onRegionUnreadable` hears why (an error name, never a message), and the region keeps what was last
 * read of it for `staleForMs` (default 60 s): its last status when the status could not be read, its last
 * metrics and triggers when its own reads failed. A throttled status table or one slow answer therefore
 * does not put every region `out` at once. Past that bound (or with nothing read before), the region is
 * `out` with zero metrics and no triggers. A stale status is never better than the one last read: a region
 * last seen `draining` (or `out`) stays so, then turns `out`; it never becomes eligible because its status
 * could not be read. Views are cached for `cacheTtlMs` per container; `readings()` reads afresh (the admin
 * API).
 */

export interface DynamodbRegionViewsOptions {
  readonly config: RunnerConfig;
  /** The region the function runs in: its replica of the region-status table is the one read. */
  readonly localRegion: string;
  /** The account of every runner queue. */
  readonly accountId: string;
  /** Runner queues are named `<queuePrefix>-<runner type>` in every region. */
  readonly queuePrefix: string;
  /** The region-status global table's name. */
  readonly regionStatusTable: string;
  /** The regional state table's name, the same in every region. */
  readonly stateTable: string;
  /** A DynamoDB client of the region named (created once per region by the caller). */
  readonly dynamodb: (region: string) => DynamoDBClient;
  /** An SQS client of the region named. */
  readonly sqs: (region: string) => SQSClient;
  /** Epoch milliseconds. */
  readonly now: () => number;
  /** Told of each region that could not be read; `reason` is bounded and names no value. Default: nothing. */
  readonly onRegionUnreadable?: (region: string, reason: string) => void;
  /** Budget of one region's reads, in ms. Default 1,500. */
  readonly timeoutMs?: number;
  /** How long `views()` answers from its cache, in ms. Default 5,000. */
  readonly cacheTtlMs?: number;
  /**
   * How long a region that cannot be read keeps what was last read of it, in ms. Default 60,000. Past it,
   * the region is `out`.
   */
  readonly staleForMs?: number;
  /** Statuses from elsewhere (tests). Default: the region-status table through `dynamodb(localRegion)`. */
  readonly statuses?: RegionStatusReader;
}

/** One region as read, with why it could not be (the admin API shows both). */
export interface RegionReading {
  readonly view: RegionView;
  /**
   * Set when the region (or its status) could not be read now. Its view is then what was last read (see
   * `lastGoodAt`) or, with nothing recent enough, `out` with zero metrics and no triggers.
   */
  readonly unreadable?: string;
  /** Set when the view holds parts last read earlier: when they were read (epoch ms, the oldest part). */
  readonly lastGoodAt?: number;
  /** Runner types whose queue does not exist in the region (yet): each counted as depth 0. */
  readonly missingQueues?: readonly string[];
}

const ZERO: RegionMetrics = { queueDepth: 0, inUse: 0, capacity: 0, dispatched: 0, failed: 0 };
const REASON_CHARS = 200;

class ReadTimeout extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/** Bounded and value-free: a timeout says so, other errors give their name (and HTTP status) only. */
const failureOf = (error: unknown): string =>
  (error instanceof ReadTimeout ? `no answer within ${error.ms} ms` : describeError(error)).slice(
    0,
    REASON_CHARS,
  );

/** The stored spill state and how to ask for it unchanged. */
interface SpillState {
  readonly spilling: ReadonlySet<SpillMetric>;
  /** No item yet. */
  readonly exists: boolean;
  /** The stored `version` attribute as it was. */
  readonly version?: AttributeValue;
}

interface RegionRead {
  readonly metrics: RegionMetrics;
  readonly spill: SpillState;
  /** Runner types whose queue does not exist in the region. */
  readonly missingQueues: readonly string[];
}

/** Something last read of a region, and when (epoch ms). */
interface LastGood<T> {
  readonly at: number;
  readonly value: T;
}

interface Snapshot {
  readonly at: number;
  readonly readings: Map<string, RegionReading>;
}

async function withTimeout<T>(ms: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new ReadTimeout(ms));
    }, ms);
  });
  try {
    return await Promise.race([run(controller.signal), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A stored count: a non-negative safe integer, else 0 (a damaged counter never trips a metric). */
function count(value: AttributeValue | undefined): number {
  const n = Number(value?.N);
  return value?.N !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

const sameSet = (a: ReadonlySet<SpillMetric>, b: ReadonlySet<SpillMetric>) =>
  a.size === b.size && [...a].every((m) => b.has(m));

function spillFrom(item: Record<string, AttributeValue> | undefined): SpillState {
  if (!item) return { spilling: new Set(), exists: false };
  const stored = new Set((item.spilling?.L ?? []).map((entry) => entry.S));
  return {
    spilling: new Set(SPILL_METRICS.filter((metric) => stored.has(metric))),
    exists: true,
    ...(item.version ? { version: item.version } : {}),
  };
}

/** A write's condition, in the shape every write and condition check of the SDK takes. */
interface Condition {
  readonly ConditionExpression: string;
  readonly ExpressionAttributeNames: Record<string, string>;
  readonly ExpressionAttributeValues?: Record<string, AttributeValue>;
}

function unchangedSince(state: SpillState): Condition {
  if (!state.exists)
    return { ConditionExpression: 'attribute_not_exists(#pk)', ExpressionAttributeNames: { '#pk': 'pk' } };
  if (state.version === undefined)
    return {
      ConditionExpression: 'attribute_exists(#pk) AND attribute_not_exists(#version)',
      ExpressionAttributeNames: { '#pk': 'pk', '#version': 'version' },
    };
  return {
    ConditionExpression: '#version = :version',
    ExpressionAttributeNames: { '#version': 'version' },
    ExpressionAttributeValues: { ':version': state.version },
  };
}

export class DynamodbRegionViews implements RegionViewSource {
  private readonly timeoutMs: number;
  private readonly cacheTtlMs: number;
  private readonly staleForMs: number;
  private readonly statuses: RegionStatusReader;
  private readonly regions: readonly string[];
  private snapshot: Snapshot | undefined;
  private inFlight: Promise<Snapshot> | undefined;
  /** The spill state last read or written per region: what `saveSpilling` conditions on. */
  private readonly spill = new Map<string, SpillState>();
  /** Per region, the status last read and its own reads last done (kept for `staleForMs`). */
  private readonly lastStatus = new Map<string, LastGood<RegionStatus>>();
  private readonly lastRead = new Map<string, LastGood<RegionRead>>();

  constructor(private readonly options: DynamodbRegionViewsOptions) {
    this.timeoutMs = options.timeoutMs ?? 1_500;
    this.cacheTtlMs = options.cacheTtlMs ?? 5_000;
    this.staleForMs = options.staleForMs ?? 60_000;
    this.regions = options.config.regions.map((r) => r.region);
    this.statuses =
      options.statuses ??
      new RegionStatusTable({
        client: options.dynamodb(options.localRegion),
        tableName: options.regionStatusTable,
        regions: this.regions,
        now: options.now,
      });
  }

  /** Every configured region, from the cache when it is younger than `cacheTtlMs`. */
  async views(): Promise<ReadonlyMap<string, RegionView>> {
    const cached = this.snapshot;
    const snapshot = cached && this.options.now() - cached.at < this.cacheTtlMs ? cached : await this.read();
    return new Map([...snapshot.readings].map(([region, reading]) => [region, reading.view]));
  }

  /** Every configured region read afresh (the cache is refreshed too). */
  async readings(): Promise<ReadonlyMap<string, RegionReading>> {
    return new Map((await this.read()).readings);
  }

  /**
   * Keeps the region's triggers, on condition that the stored ones are those last read here and are
   * `previous`: a lost race (another router saved first) is dropped, and the next view reads afresh.
   * Other failures reject: the caller may log and go on (the state is only hysteresis).
   */
  async saveSpilling(
    region: string,
    previous: ReadonlySet<SpillMetric>,
    next: ReadonlySet<SpillMetric>,
  ): Promise<void> {
    if (sameSet(previous, next) || !this.regions.includes(region)) return;
    const client = this.options.dynamodb(region);
    const read =
      this.spill.get(region) ??
      spillFrom(
        (
          await client.send(
            new GetItemCommand({
              TableName: this.options.stateTable,
              Key: { pk: { S: SPILL_KEY.pk }, sk: { S: SPILL_KEY.sk } },
              ConsistentRead: true,
            }),
          )
        ).Item,
      );
    if (!sameSet(read.spilling, previous)) return this.lostRace(region);
    const version = Number(read.version?.N);
    const nextVersion = (Number.isSafeInteger(version) && version >= 0 ? version : 0) + 1;
    const ordered = SPILL_METRICS.filter((metric) => next.has(metric));
    try {
      await client.send(
        new PutItemCommand({
          TableName: this.options.stateTable,
          Item: {
            pk: { S: SPILL_KEY.pk },
            sk: { S: SPILL_KEY.sk },
            spilling: { L: ordered.map((metric) => ({ S: metric })) },
            version: { N: String(nextVersion) },
            updatedAt: { N: String(this.options.now()) },
          },
          ...unchangedSince(read),
        }),
      );
    } catch (error) {
      if (error instanceof Error && error.name === 'ConditionalCheckFailedException')
        return this.lostRace(region);
      throw error;
    }
    const saved: SpillState = {
      spilling: new Set(ordered),
      exists: true,
      version: { N: String(nextVersion) },
    };
    this.spill.set(region, saved);
    const last = this.lastRead.get(region);
    if (last) this.lastRead.set(region, { ...last, value: { ...last.value, spill: saved } });
    const reading = this.snapshot?.readings.get(region);
    if (reading)
      this.snapshot?.readings.set(region, {
        ...reading,
        view: { ...reading.view, spilling: saved.spilling },
      });
  }

  private lostRace(region: string): void {
    this.spill.delete(region);
    this.snapshot = undefined;
  }

  /** One read of every region; concurrent callers share it. */
  private read(): Promise<Snapshot> {
    this.inFlight ??= this.readAll().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async readAll(): Promise<Snapshot> {
    const at = this.options.now();
    const [statuses, ...regionReads] = await Promise.allSettled([
      withTimeout(this.timeoutMs, () => this.statuses.readStatuses(this.regions)),
      ...this.regions.map((region) =>
        withTimeout(this.timeoutMs, (signal) => this.readRegion(region, signal)),
      ),
    ]);
    const readings = new Map<string, RegionReading>();
    this.regions.forEach((region, index) => {
      const read = regionReads[index];
      const record = statuses?.status === 'fulfilled' ? statuses.value.get(region) : undefined;
      if (record) this.lastStatus.set(region, { at, value: record.status });
      if (read?.status === 'fulfilled') {
        this.spill.set(region, read.value.spill);
        this.lastRead.set(region, { at, value: read.value });
        for (const type of read.value.missingQueues)
          this.unreadable(region, `queue ${type}: QueueDoesNotExist, counted as 0`);
      } else this.spill.delete(region);
      const missingQueues = read?.status === 'fulfilled' ? read.value.missingQueues : [];
      const missing = missingQueues.length > 0 ? { missingQueues } : {};
      if (record && read?.status === 'fulfilled') {
        readings.set(region, { view: viewOf(record.status, read.value), ...missing });
        return;
      }
      const reason = record
        ? failureOf(read?.status === 'rejected' ? read.reason : new ReadTimeout(this.timeoutMs))
        : statuses?.status === 'rejected'
          ? `region-status: ${failureOf(statuses.reason)}`
          : 'region-status: no record';
      this.unreadable(region, reason);
      // What is missing now, from the last good read within the bound; a part read now is used as read.
      const status = record ? { at, value: record.status } : this.recent(this.lastStatus.get(region), at);
      const regionRead =
        read?.status === 'fulfilled' ? { at, value: read.value } : this.recent(this.lastRead.get(region), at);
      if (status && regionRead)
        readings.set(region, {
          view: viewOf(status.value, regionRead.value),
          unreadable: reason,
          lastGoodAt: Math.min(status.at, regionRead.at),
          ...missing,
        });
      else
        readings.set(region, {
          view: { status: 'out', metrics: ZERO, spilling: new Set() },
          unreadable: reason,
          ...missing,
        });
    });
    const snapshot = { at, readings };
    this.snapshot = snapshot;
    return snapshot;
  }

  /** What was last read, when it is recent enough to stand in for a read that failed. */
  private recent<T>(last: LastGood<T> | undefined, now: number): LastGood<T> | undefined {
    return last && now - last.at <= this.staleForMs ? last : undefined;
  }

  private unreadable(region: string, reason: string): void {
    try {
      this.options.onRegionUnreadable?.(region, reason);
    } catch {
      // A callback that fails must not take routing down with it.
    }
  }

  private async readRegion(region: string, abortSignal: AbortSignal): Promise<RegionRead> {
    const nowSec = Math.floor(this.options.now() / 1000);
    const [queues, leases, dispatch, spill] = await Promise.all([
      this.queueDepth(region, abortSignal),
      this.leaseCounts(region, nowSec, abortSignal),
      this.dispatchCounts(region, nowSec, abortSignal),
      this.spillState(region, abortSignal),
    ]);
    const capacity = regionSettings(this.options.config, region)?.capacity ?? 0;
    return {
      metrics: { queueDepth: queues.depth + leases.waiting, inUse: leases.inUse, capacity, ...dispatch },
      spill,
      missingQueues: queues.missing,
    };
  }

  /**
   * Visible messages in the region's runner queues (delayed ones are not work waiting: see the module's
   * comment); a queue that does not exist counts 0 and is named in `missing`.
   */
  private async queueDepth(
    region: string,
    abortSignal: AbortSignal,
  ): Promise<{ depth: number; missing: string[] }> {
    const client = this.options.sqs(region);
    const missing: string[] = [];
    const depths = await Promise.all(
      this.options.config.runnerTypes.map(async (type) => {
        let answer;
        try {
          answer = await client.send(
            new GetQueueAttributesCommand({
              QueueUrl: queueUrlOf(
                region,
                this.options.accountId,
                runnerQueueName(this.options.queuePrefix, type.name),
              ),
              AttributeNames: ['ApproximateNumberOfMessages'],
            }),
            { abortSignal },
          );
        } catch (error) {
          if (!isQueueMissing(error)) throw error;
          missing.push(type.name);
          return 0;
        }
        const visible = Number(answer.Attributes?.ApproximateNumberOfMessages);
        if (!isDepth(visible)) throw new QueueDepthUnreadable();
        return visible;
      }),
    );
    return { depth: depths.reduce((sum, depth) => sum + depth, 0), missing };
  }

  private async query(
    region: string,
    keyCondition: string,
    values: Record<string, AttributeValue>,
    abortSignal: AbortSignal,
  ): Promise<Record<string, AttributeValue>[]> {
    const client = this.options.dynamodb(region);
    const items: Record<string, AttributeValue>[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await client.send(
        new QueryCommand({
          TableName: this.options.stateTable,
          KeyConditionExpression: keyCondition,
          ExpressionAttributeNames: keyCondition.includes('#sk')
            ? { '#pk': 'pk', '#sk': 'sk' }
            : { '#pk': 'pk' },
          ExpressionAttributeValues: values,
          ConsistentRead: true,
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
        { abortSignal },
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  /**
   * From the region's lease items (leases.ts): `inUse`, the leases whose expiry (epoch seconds) is still
   * ahead (an expired one holds no runner); `waiting`, the wait records not lapsed yet (job id -> when the
   * record lapses, epoch seconds): jobs that wait for a slot. A value that is not a whole number counts as
   * expired.
   */
  private async leaseCounts(
    region: string,
    nowSec: number,
    abortSignal: AbortSignal,
  ): Promise<{ inUse: number; waiting: number }> {
    const items = await this.query(region, '#pk = :pk', { ':pk': { S: LEASES_PARTITION } }, abortSignal);
    const unexpired = (entries: Record<string, AttributeValue> | undefined) =>
      Object.values(entries ?? {}).filter((expiry) => count(expiry) > nowSec).length;
    let inUse = 0;
    let waiting = 0;
    for (const item of items) {
      inUse += unexpired(item.leases?.M);
      waiting += unexpired(item.waiting?.M);
    }
    return { inUse, waiting };
  }

  private async dispatchCounts(
    region: string,
    nowSec: number,
    abortSignal: AbortSignal,
  ): Promise<Pick<RegionMetrics, 'dispatched' | 'failed'>> {
    const from = nowSec - this.options.config.errorWindowSec;
    const items = await this.query(
      region,
      '#pk = :pk AND #sk >= :from',
      { ':pk': { S: DISPATCH_PARTITION }, ':from': { S: String(from) } },
      abortSignal,
    );
    let dispatched = 0;
    let failed = 0;
    for (const item of items) {
      // Belt and braces over the string comparison: only whole-number windows inside the window count.
      const start = Number(item.sk?.S);
      if (!Number.isSafeInteger(start) || start < from) continue;
      dispatched += count(item.dispatched);
      failed += count(item.failed);
    }
    return { dispatched, failed };
  }

  private async spillState(region: string, abortSignal: AbortSignal): Promise<SpillState> {
    const answer = await this.options.dynamodb(region).send(
      new GetItemCommand({
        TableName: this.options.stateTable,
        Key: { pk: { S: SPILL_KEY.pk }, sk: { S: SPILL_KEY.sk } },
        ConsistentRead: true,
      }),
      { abortSignal },
    );
    return spillFrom(answer.Item);
  }
}

class QueueDepthUnreadable extends Error {
  constructor() {
    super('ApproximateNumberOfMessages: expected a non-negative whole number');
    this.name = 'QueueDepthUnreadable';
  }
}

const isDepth = (n: number) => Number.isSafeInteger(n) && n >= 0;

/** SQS names a missing queue `QueueDoesNotExist` (JSON protocol) or by its query-protocol code. */
const isQueueMissing = (error: unknown) =>
  error instanceof Error &&
  (error.name === 'QueueDoesNotExist' || error.name === 'AWS.SimpleQueueService.NonExistentQueue');

function viewOf(status: RegionStatus, read: RegionRead): RegionView {
  return { status, metrics: read.metrics, spilling: read.spill.spilling };
}
