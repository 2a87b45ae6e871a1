import {
  ConditionalCheckFailedException,
  GetItemCommand,
  paginateScan,
  PutItemCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { PermanentError, RetryableError } from '../lib/failures';
import { CONSUMPTION_WINDOWS, DEMAND_WINDOWS } from './bucket';
import { MAX_LIMIT } from './config';
import { HEARTBEAT_HISTORY, nextHeartbeat, type Heartbeat, type SyncOverride } from './enforcement';
import type { PassRecord } from './store';
import type { BucketWrite, LimiterItem, LimiterStore, OverrideResult } from './store';

/** The table's own items live under this partition key; entities never start with `#`. */
const HEARTBEAT_KEY = { pk: { S: '#quota' }, sk: { S: 'heartbeat' } };

/** A stored item the limiter cannot read: an operator wrote a value outside its type. */
export class LimiterItemError extends PermanentError {
  constructor(readonly attribute: string) {
    super(
      'quota-item-unreadable',
      `limiter item attribute ${attribute}: expected a non-negative safe integer`,
    );
    this.name = 'LimiterItemError';
  }
}

function count(
  item: Record<string, AttributeValue>,
  name: string,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const text = item[name]?.N;
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0 || value > max) throw new LimiterItemError(name);
  return value;
}

function counts(item: Record<string, AttributeValue>, name: string, length: number): number[] | undefined {
  const list = item[name]?.L;
  if (list === undefined) return undefined;
  if (list.length > length) throw new LimiterItemError(name);
  return list.map((entry, i) => {
    const value = Number(entry.N);
    if (entry.N === undefined || !Number.isSafeInteger(value) || value < 0)
      throw new LimiterItemError(`${name}[${i}]`);
    return value;
  });
}

/** Reads an item; `op` and `st` are an operator's, so they are checked like input. */
export function itemFromDynamodb(item: Record<string, AttributeValue>): LimiterItem {
  const entity = item.pk?.S ?? '';
  const resource = item.sk?.S ?? '';
  const epoch = count(item, 'se');
  const prior = count(item, 'sp', MAX_LIMIT);
  const share = count(item, 'ss', MAX_LIMIT);
  const tokens = count(item, 'tk');
  const refilledAt = count(item, 'ta');
  const rate = count(item, 'rr', MAX_LIMIT);
  const window = count(item, 'w');
  const demand = counts(item, 'dm', DEMAND_WINDOWS);
  const consumed = counts(item, 'cn', CONSUMPTION_WINDOWS);
  return {
    entity,
    resource,
    operator: count(item, 'op', MAX_LIMIT),
    static: count(item, 'st', MAX_LIMIT),
    sync:
      epoch !== undefined && prior !== undefined && share !== undefined ? { epoch, prior, share } : undefined,
    bucket:
      tokens !== undefined && refilledAt !== undefined
        ? { tokens, refilledAt, ...(rate !== undefined ? { rate } : {}) }
        : undefined,
    counters: window !== undefined && demand && consumed ? { window, demand, consumed } : undefined,
    version: count(item, 'v'),
  };
}

const n = (value: number): AttributeValue => ({ N: String(value) });
const list = (values: readonly number[]): AttributeValue => ({ L: values.map(n) });

/**
 * The region's limiter table (`pk` = entity, `sk` = resource): one item per entity and resource holding its
 * token bucket and window counters (written by the hot path, conditional on `v`), the sync's override
 * (`se`/`sp`/`ss`, conditional on no operator value `op`) and an operator's values (`op`, `st`).
 */
export class DynamodbLimiterStore implements LimiterStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    /** Parallel scan segments. */
    private readonly scanSegments = 4,
  ) {}

  async read(entity: string, resource: string): Promise<LimiterItem | undefined> {
    const { Item } = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { pk: { S: entity }, sk: { S: resource } },
        ConsistentRead: true,
      }),
    );
    return Item ? itemFromDynamodb(Item) : undefined;
  }

  async writeBucket(write: BucketWrite): Promise<boolean> {
    const conditions = [write.expectedVersion === undefined ? 'attribute_not_exists(v)' : 'v = :expected'];
    const values: Record<string, AttributeValue> = {
      ':tk': n(write.bucket.tokens),
      ':ta': n(write.bucket.refilledAt),
      ':lt': { S: write.trip },
      ':v': n((write.expectedVersion ?? 0) + 1),
      ':w': n(write.counters.window),
      ':dm': list(write.counters.demand),
      ':cn': list(write.counters.consumed),
    };
    if (write.expectedVersion !== undefined) values[':expected'] = n(write.expectedVersion);
    let update = 'SET tk = :tk, ta = :ta, v = :v, w = :w, dm = :dm, cn = :cn, lt = :lt';
    if (write.bucket.rate !== undefined) {
      update += ', rr = :rr';
      values[':rr'] = n(write.bucket.rate);
    }
    if (write.expiresAtSec !== undefined) {
      // Only an item with no limit on it may expire: an operator's or the sync's value must never vanish.
      conditions.push('attribute_not_exists(op)', 'attribute_not_exists(st)', 'attribute_not_exists(se)');
      update += ', #ttl = :ttl';
      values[':ttl'] = n(write.expiresAtSec);
    } else {
      // An item that holds a limit never expires, whoever added the limit and however.
      update += ' REMOVE #ttl';
    }
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: write.entity }, sk: { S: write.resource } },
          UpdateExpression: update,
          ConditionExpression: conditions.join(' AND '),
          ExpressionAttributeValues: values,
          ExpressionAttributeNames: { '#ttl': 'ttl' },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return true;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      // The SDK retried a write that had landed (its response was lost): this trip's own write is there.
      return error.Item?.lt?.S === write.trip;
    }
  }

  async writeOverride(
    entity: string,
    resource: string,
    override: SyncOverride,
    expectedEpoch: number | undefined,
  ): Promise<OverrideResult> {
    const values: Record<string, AttributeValue> = {
      ':se': n(override.epoch),
      ':sp': n(override.prior),
      ':ss': n(override.share),
    };
    if (expectedEpoch !== undefined) values[':read'] = n(expectedEpoch);
    const unchanged = expectedEpoch === undefined ? 'attribute_not_exists(se)' : 'se = :read';
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: entity }, sk: { S: resource } },
          // An override is a limit: the item must no longer expire.
          UpdateExpression: 'SET se = :se, sp = :sp, ss = :ss REMOVE #ttl',
          ConditionExpression: unchanged,
          ExpressionAttributeNames: { '#ttl': 'ttl' },
          ExpressionAttributeValues: values,
        }),
      );
      return 'written';
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      return 'changed';
    }
  }

  async releaseOverride(
    entity: string,
    resource: string,
    expectedEpoch: number,
    expiresAtSec: number,
  ): Promise<OverrideResult> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: entity }, sk: { S: resource } },
          UpdateExpression: 'SET #ttl = :ttl REMOVE se, sp, ss',
          ConditionExpression: 'se = :read AND attribute_not_exists(op) AND attribute_not_exists(st)',
          ExpressionAttributeNames: { '#ttl': 'ttl' },
          ExpressionAttributeValues: { ':read': n(expectedEpoch), ':ttl': n(expiresAtSec) },
        }),
      );
      return 'written';
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      return 'changed';
    }
  }

  async readHeartbeat(): Promise<Heartbeat | undefined> {
    const { Item } = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: HEARTBEAT_KEY, ConsistentRead: true }),
    );
    const epoch = Item ? count(Item, 'e') : undefined;
    if (!Item || epoch === undefined) return undefined;
    const caps = new Map<string, number>();
    for (const [resource, value] of Object.entries(Item.caps?.M ?? {})) {
      const cap = Number(value.N);
      if (!Number.isSafeInteger(cap) || cap < 0) throw new LimiterItemError(`caps.${resource}`);
      caps.set(resource, cap);
    }
    return {
      epoch,
      completed: counts(Item, 'done', HEARTBEAT_HISTORY) ?? [epoch],
      partial: counts(Item, 'pt', HEARTBEAT_HISTORY) ?? [],
      staticCaps: caps,
    };
  }

  async writeHeartbeat(
    epoch: number,
    previous: Heartbeat | undefined,
    pass: PassRecord,
    at: number,
  ): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const next = nextHeartbeat(previous, epoch, pass);
      const caps: Record<string, AttributeValue> = {};
      for (const [resource, cap] of next.staticCaps) caps[resource] = n(cap);
      try {
        await this.client.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: {
              ...HEARTBEAT_KEY,
              e: n(next.epoch),
              done: list(next.completed),
              pt: list(next.partial),
              caps: { M: caps },
              at: n(at),
            },
            // Written on the heartbeat read, so two passes never lose each other's epochs.
            ConditionExpression: previous ? 'e = :read' : 'attribute_not_exists(e)',
            ...(previous ? { ExpressionAttributeValues: { ':read': n(previous.epoch) } } : {}),
          }),
        );
        return;
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
        previous = await this.readHeartbeat();
      }
    }
    throw new RetryableError(
      'quota-heartbeat-contended',
      'another pass of the region kept writing the heartbeat',
    );
  }

  /**
   * Every entity item, strongly consistent (a pass must see the overrides the last pass wrote), read in
   * `segments` parallel segments so a large table fits a pass.
   */
  async *scan(onUnreadable: (error: LimiterItemError) => void = () => undefined): AsyncIterable<LimiterItem> {
    const segments = this.scanSegments;
    const pages = Array.from({ length: segments }, (_, segment) =>
      paginateScan(
        { client: this.client },
        { TableName: this.tableName, ConsistentRead: true, Segment: segment, TotalSegments: segments },
      )[Symbol.asyncIterator](),
    );
    // Keep one page request in flight per segment; hand out items as pages arrive.
    const pending = new Map(pages.map((iterator, i) => [i, iterator.next().then((page) => ({ i, page }))]));
    while (pending.size > 0) {
      const { i, page } = await Promise.race(pending.values());
      if (page.done) {
        pending.delete(i);
        continue;
      }
      pending.set(
        i,
        (pages[i] as (typeof pages)[number]).next().then((next) => ({ i, page: next })),
      );
      for (const item of page.value.Items ?? []) {
        if (item.pk?.S?.startsWith('#')) continue;
        try {
          yield itemFromDynamodb(item);
        } catch (error) {
          if (!(error instanceof LimiterItemError)) throw error;
          onUnreadable(error);
        }
      }
    }
  }
}
