import {
  ConditionalCheckFailedException,
  GetItemCommand,
  paginateScan,
  PutItemCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { PermanentError } from '../lib/failures';
import { CONSUMPTION_WINDOWS, DEMAND_WINDOWS } from './bucket';
import { MAX_LIMIT } from './config';
import { HEARTBEAT_HISTORY, nextHeartbeat, type Heartbeat, type SyncOverride } from './enforcement';
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
    bucket: tokens !== undefined && refilledAt !== undefined ? { tokens, refilledAt } : undefined,
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
      ':v': n((write.expectedVersion ?? 0) + 1),
      ':w': n(write.counters.window),
      ':dm': list(write.counters.demand),
      ':cn': list(write.counters.consumed),
    };
    if (write.expectedVersion !== undefined) values[':expected'] = n(write.expectedVersion);
    let set = 'SET tk = :tk, ta = :ta, v = :v, w = :w, dm = :dm, cn = :cn';
    if (write.expiresAtSec !== undefined) {
      // Only an item with no limit on it may expire: an operator's or the sync's value must never vanish.
      conditions.push('attribute_not_exists(op)', 'attribute_not_exists(st)', 'attribute_not_exists(se)');
      set += ', #ttl = :ttl';
      values[':ttl'] = n(write.expiresAtSec);
    }
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: write.entity }, sk: { S: write.resource } },
          UpdateExpression: set,
          ConditionExpression: conditions.join(' AND '),
          ExpressionAttributeValues: values,
          ...(write.expiresAtSec !== undefined ? { ExpressionAttributeNames: { '#ttl': 'ttl' } } : {}),
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async writeOverride(entity: string, resource: string, override: SyncOverride): Promise<OverrideResult> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.tableName,
          Key: { pk: { S: entity }, sk: { S: resource } },
          // An override is a limit: the item must no longer expire.
          UpdateExpression: 'SET se = :se, sp = :sp, ss = :ss REMOVE #ttl',
          ConditionExpression: 'attribute_not_exists(op) AND (attribute_not_exists(se) OR se <= :se)',
          ExpressionAttributeNames: { '#ttl': 'ttl' },
          ExpressionAttributeValues: {
            ':se': n(override.epoch),
            ':sp': n(override.prior),
            ':ss': n(override.share),
          },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return 'written';
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      return error.Item?.op !== undefined ? 'operator-held' : 'newer-exists';
    }
  }

  async readHeartbeat(): Promise<Heartbeat | undefined> {
    const { Item } = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: HEARTBEAT_KEY, ConsistentRead: true }),
    );
    const epoch = Item ? count(Item, 'e') : undefined;
    if (!Item || epoch === undefined) return undefined;
    return { epoch, completed: counts(Item, 'done', HEARTBEAT_HISTORY) ?? [epoch] };
  }

  async writeHeartbeat(epoch: number, previous: Heartbeat | undefined, at: number): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (previous && previous.epoch >= epoch && previous.completed.includes(epoch)) return;
      const next = nextHeartbeat(previous, epoch);
      try {
        await this.client.send(
          new PutItemCommand({
            TableName: this.tableName,
            Item: { ...HEARTBEAT_KEY, e: n(next.epoch), done: list(next.completed), at: n(at) },
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
    throw new Error('the heartbeat stayed contended: another pass of the region keeps writing it');
  }

  async *scan(onUnreadable: (error: LimiterItemError) => void = () => undefined): AsyncIterable<LimiterItem> {
    for await (const page of paginateScan({ client: this.client }, { TableName: this.tableName })) {
      for (const item of page.Items ?? []) {
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
