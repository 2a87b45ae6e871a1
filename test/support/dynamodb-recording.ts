import {
  BatchWriteItemCommand,
  CreateTableCommand,
  TransactWriteItemsCommand,
  type AttributeValue,
  type DynamoDBClient,
  type TransactWriteItemsCommandInput,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import pLimit from 'p-limit';

type Item = Record<string, AttributeValue>;

/**
 * Creates a region's state table as `modules/sync-service.ts` declares it: `pk`/`sk`, on-demand, and the
 * `sync-documents` index (hash `syncShard` S, range `changedAt` N, INCLUDE digest and version).
 */
export async function createStateTable(client: DynamoDBClient, tableName: string): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [
        { AttributeName: 'pk', AttributeType: 'S' },
        { AttributeName: 'sk', AttributeType: 'S' },
        { AttributeName: 'syncShard', AttributeType: 'S' },
        { AttributeName: 'changedAt', AttributeType: 'N' },
      ],
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      GlobalSecondaryIndexes: [
        {
          IndexName: 'sync-documents',
          KeySchema: [
            { AttributeName: 'syncShard', KeyType: 'HASH' },
            { AttributeName: 'changedAt', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['digest', 'version'] },
        },
      ],
    }),
  );
}

const utf8 = (text: string): number => Buffer.byteLength(text, 'utf8');

/** A number's size: 1 byte per two significant digits (leading and trailing zeroes trimmed), plus 1. */
function numberBytes(text: string): number {
  const digits = text
    .replace(/^[-+]/, '')
    .replace(/e.*$/i, '')
    .replace('.', '')
    .replace(/^0+/, '')
    .replace(/0+$/, '');
  return Math.ceil(Math.max(1, digits.length) / 2) + 1;
}

function valueBytes(value: AttributeValue): number {
  if (value.S !== undefined) return utf8(value.S);
  if (value.N !== undefined) return numberBytes(value.N);
  if (value.B !== undefined) return value.B.length;
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (value.SS) return value.SS.reduce((sum, s) => sum + utf8(s), 0);
  if (value.NS) return value.NS.reduce((sum, n) => sum + numberBytes(n), 0);
  if (value.L) return 3 + value.L.reduce((sum, v) => sum + 1 + valueBytes(v), 0);
  if (value.M)
    return 3 + Object.entries(value.M).reduce((sum, [k, v]) => sum + 1 + utf8(k) + valueBytes(v), 0);
  return 0;
}

/**
 * An item's size as DynamoDB counts it ("DynamoDB item sizes and formats"): the sum of its attribute
 * names' and values' lengths (strings in UTF-8 bytes; numbers ~1 byte per two significant digits + 1).
 */
export const itemBytes = (item: Item): number =>
  Object.entries(item).reduce((sum, [name, value]) => sum + utf8(name) + valueBytes(value), 0);

/** Write units of writing these items: per item ceil(size / 1 KB), doubled in a transaction. */
export const writeUnits = (sizes: readonly number[], transactional: boolean): number =>
  sizes.reduce((sum, bytes) => sum + Math.max(1, Math.ceil(bytes / 1024)), 0) * (transactional ? 2 : 1);

/**
 * What a transaction writes: each Put's item size. A Delete is counted by its key (DynamoDB bills the deleted
 * item's size, which the request does not show; the sync store deletes only when a set element goes).
 */
export function transactionItemSizes(input: TransactWriteItemsCommandInput): number[] {
  return (input.TransactItems ?? []).map((action) => {
    if (action.Put?.Item) return itemBytes(action.Put.Item);
    if (action.Delete?.Key) return itemBytes(action.Delete.Key);
    if (action.Update?.Key) return itemBytes(action.Update.Key);
    return 0;
  });
}

export interface RecordedRequest {
  readonly command: string;
  readonly input: Record<string, unknown>;
}

/** Every request a client sends, in order (a middleware: the request still goes out). */
export interface RequestRecorder {
  readonly requests: RecordedRequest[];
  /** Requests of one command (`TransactWriteItemsCommand`, ...). */
  of(command: string): RecordedRequest[];
  transactions(): TransactWriteItemsCommandInput[];
  /** Item keys named by the reads by key (GetItem, BatchGetItem, TransactGetItems). */
  keysRead(): number;
  clear(): void;
}

export function recordRequests(client: DynamoDBClient): RequestRecorder {
  const requests: RecordedRequest[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      requests.push({ command: context.commandName ?? '', input: args.input as Record<string, unknown> });
      return next(args);
    },
    { step: 'initialize', name: 'recordRequests' },
  );
  return {
    requests,
    of: (command) => requests.filter((request) => request.command === command),
    transactions: () =>
      requests
        .filter((request) => request.command === 'TransactWriteItemsCommand')
        .map((request) => request.input as unknown as TransactWriteItemsCommandInput),
    keysRead: () =>
      requests.reduce((sum, { command, input }) => {
        if (command === 'GetItemCommand') return sum + 1;
        if (command === 'TransactGetItemsCommand')
          return sum + ((input.TransactItems as unknown[]) ?? []).length;
        if (command !== 'BatchGetItemCommand') return sum;
        const tables = Object.values((input.RequestItems ?? {}) as Record<string, { Keys?: unknown[] }>);
        return sum + tables.reduce((n, table) => n + (table.Keys?.length ?? 0), 0);
      }, 0),
    clear: () => void requests.splice(0),
  };
}

/** A client that gathers transactions' writes for a bulk load, and the load. */
export interface BulkLoader {
  readonly client: DynamoDBClient;
  /** Writes everything gathered: BatchWriteItem requests of 25 items, 4 at a time. */
  flush(): Promise<{ readonly requests: number; readonly items: readonly Item[] }>;
}

/**
 * Loads test data into tables nobody else writes yet: a transaction sent through `client` is not sent but
 * gathered (its Puts and Deletes, without their conditions), and `flush` writes it all with BatchWriteItem
 * (25 items a request). Every other command goes out as is. The emulator copies a whole table on every
 * transaction, so a bulk load through transactions would take minutes; through batches it takes seconds.
 */
export function bulkLoader(target: DynamoDBClient): BulkLoader {
  const gathered = new Map<string, Map<string, WriteRequest>>();
  const keyOf = (item: Item) => `${item.pk?.S} ${item.sk?.S}`;
  const send = async (command: unknown) => {
    if (!(command instanceof TransactWriteItemsCommand))
      return target.send(command as Parameters<DynamoDBClient['send']>[0]);
    for (const action of command.input.TransactItems ?? []) {
      const put = action.Put;
      const del = action.Delete;
      const tableName = put?.TableName ?? del?.TableName;
      if (!tableName || (!put?.Item && !del?.Key))
        throw new Error('bulkLoader: only Put and Delete are loaded');
      const table = gathered.get(tableName) ?? new Map<string, WriteRequest>();
      if (put?.Item) table.set(keyOf(put.Item), { PutRequest: { Item: put.Item } });
      else table.set(keyOf(del?.Key as Item), { DeleteRequest: { Key: del?.Key as Item } });
      gathered.set(tableName, table);
    }
    return {};
  };
  const flush = async () => {
    const limit = pLimit(4);
    const sends: Array<Promise<void>> = [];
    let requests = 0;
    const items: Item[] = [];
    for (const [tableName, writes] of gathered) {
      const all = [...writes.values()];
      for (const write of all) if (write.PutRequest?.Item) items.push(write.PutRequest.Item);
      for (let i = 0; i < all.length; i += 25) {
        const batch = all.slice(i, i + 25);
        sends.push(
          limit(async () => {
            let pending: WriteRequest[] = batch;
            for (let round = 0; pending.length > 0; round++) {
              if (round > 10) throw new Error('BatchWriteItem kept leaving items unprocessed');
              requests++;
              const answer = await target.send(
                new BatchWriteItemCommand({ RequestItems: { [tableName]: pending } }),
              );
              pending = answer.UnprocessedItems?.[tableName] ?? [];
            }
          }),
        );
      }
    }
    gathered.clear();
    await Promise.all(sends);
    return { requests, items };
  };
  return { client: { send } as unknown as DynamoDBClient, flush };
}
