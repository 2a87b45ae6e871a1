import {
  BatchGetItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import pLimit from 'p-limit';
import type { Checkpoint, CheckpointStore, DocumentIndex, IndexedDocument } from './anti-entropy';
import { DOCUMENT_SHARDS, documentKey, documentOfKey, heardFromItem } from './dynamodb-store';

type Item = Record<string, AttributeValue>;

const indexed = (item: Item): IndexedDocument | undefined => {
  const document = documentOfKey(item.pk?.S ?? '');
  const digest = item.digest?.S;
  const changedAt = Number(item.changedAt?.N);
  if (document === undefined || digest === undefined || !Number.isSafeInteger(changedAt)) return undefined;
  let heard: ReadonlyMap<string, number> | undefined;
  try {
    heard = heardFromItem(item.heard?.S);
  } catch {
    heard = undefined; // unreadable: as if never heard (a whole-state record is written again)
  }
  return { document, digest, changedAt, ...(heard ? { heard } : {}) };
};

/** A sweep cursor: the index's last evaluated key, as the checkpoint keeps it. */
function cursorKey(cursor: string | undefined): Item | undefined {
  if (cursor === undefined) return undefined;
  try {
    const value = JSON.parse(cursor) as Record<string, unknown>;
    const s = (name: string) => (value[name] as { S?: unknown } | undefined)?.S;
    const n = (value.changedAt as { N?: unknown } | undefined)?.N;
    if (
      typeof s('pk') === 'string' &&
      typeof s('sk') === 'string' &&
      typeof s('syncShard') === 'string' &&
      typeof n === 'string'
    )
      return value as Item;
  } catch {
    // a cursor that does not read restarts the sweep
  }
  return undefined;
}

/**
 * The `sync-documents` index of the region's state table: one entry per document head (hash `syncShard`,
 * range `changedAt`, with the digest), so documents are listed without reading their parts.
 */
export class DynamodbDocumentIndex implements DocumentIndex {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly indexName: string,
  ) {}

  async changedBetween(fromMs: number, toMs: number): Promise<IndexedDocument[]> {
    const limit = pLimit(4);
    const shards = Array.from({ length: DOCUMENT_SHARDS }, (_, i) => `s${i}`);
    const lists = await Promise.all(shards.map((shard) => limit(() => this.changedIn(shard, fromMs, toMs))));
    return lists.flat();
  }

  async page(cursor: string | undefined, limit: number) {
    const documents: IndexedDocument[] = [];
    let start = cursorKey(cursor);
    do {
      const page = await this.client.send(
        new ScanCommand({
          TableName: this.tableName,
          IndexName: this.indexName,
          Limit: limit - documents.length,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) {
        const entry = indexed(item);
        if (entry) documents.push(entry);
      }
      start = page.LastEvaluatedKey;
    } while (start && documents.length < limit);
    return { documents, cursor: start ? JSON.stringify(start) : undefined };
  }

  async heads(documents: readonly string[]): Promise<Map<string, IndexedDocument>> {
    const heads = new Map<string, IndexedDocument>();
    // BatchGetItem refuses a request that names a key twice (ValidationException): a message may.
    const unique = [...new Set(documents)];
    for (let i = 0; i < unique.length; i += 100) {
      let keys: Item[] = unique.slice(i, i + 100).map((d) => ({ ...documentKey(d), sk: { S: 'h' } }));
      for (let round = 0; keys.length > 0 && round < 8; round++) {
        if (round > 0) await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * 2 ** round));
        const answer = await this.client.send(
          new BatchGetItemCommand({
            RequestItems: {
              [this.tableName]: { Keys: keys, ProjectionExpression: 'pk, digest, changedAt, heard' },
            },
          }),
        );
        for (const item of answer.Responses?.[this.tableName] ?? []) {
          const entry = indexed(item);
          if (entry) heads.set(entry.document, entry);
        }
        keys = (answer.UnprocessedKeys?.[this.tableName]?.Keys as Item[] | undefined) ?? [];
      }
      if (keys.length > 0) throw new Error('BatchGetItem kept leaving heads unprocessed');
    }
    return heads;
  }

  private async changedIn(shard: string, fromMs: number, toMs: number): Promise<IndexedDocument[]> {
    const documents: IndexedDocument[] = [];
    let start: Item | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: this.indexName,
          KeyConditionExpression: 'syncShard = :shard AND changedAt BETWEEN :from AND :to',
          ExpressionAttributeValues: {
            ':shard': { S: shard },
            ':from': { N: String(fromMs + 1) },
            ':to': { N: String(toMs) },
          },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) {
        const entry = indexed(item);
        if (entry) documents.push(entry);
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return documents;
  }
}

const CHECKPOINT_KEY = { pk: { S: 'sync-anti-entropy' }, sk: { S: 'checkpoint' } };

/** The anti-entropy's checkpoint: one item of the state table, written conditionally on its version. */
export class DynamodbCheckpointStore implements CheckpointStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async load(): Promise<Checkpoint | undefined> {
    const { Item } = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: CHECKPOINT_KEY, ConsistentRead: true }),
    );
    if (!Item) return undefined;
    const version = Number(Item.version?.N);
    const changedThrough = Number(Item.changedThrough?.N);
    const sweeps = Number(Item.sweeps?.N ?? 0);
    // A checkpoint that does not read starts over (a pass announces a little more, nothing is lost).
    if (![version, changedThrough, sweeps].every(Number.isSafeInteger)) return undefined;
    return { version, changedThrough, sweeps, cursor: Item.cursor?.S };
  }

  async save(next: Checkpoint, expected: number): Promise<boolean> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            ...CHECKPOINT_KEY,
            version: { N: String(next.version) },
            changedThrough: { N: String(next.changedThrough) },
            sweeps: { N: String(next.sweeps) },
            ...(next.cursor === undefined ? {} : { cursor: { S: next.cursor } }),
          },
          ConditionExpression: expected === 0 ? 'attribute_not_exists(pk)' : 'version = :expected',
          ...(expected === 0 ? {} : { ExpressionAttributeValues: { ':expected': { N: String(expected) } } }),
        }),
      );
      return true;
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }
}
