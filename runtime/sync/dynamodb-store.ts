import {
  ConditionalCheckFailedException,
  DescribeTableCommand,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { CrdtDecodeError, decodeDocument, GROUP, hlcFromWire, isCount, MAX_WALL_MS } from '../crdt';
import { PermanentError } from '../lib/failures';
import type { DocumentStore, StoredDocument } from './replica';

const PREFIX = 'doc#';
/** How long a process trusts the table's creation time it read. */
const CREATION_RECHECK_MS = 5 * 60 * 1000;
const SORT_KEY = 'crdt';

/** A stored item that does not decode: no message can merge into it until an operator repairs it. */
export class StoredDocumentError extends PermanentError {
  constructor(reason: string) {
    super('stored-document-unreadable', `the stored document does not decode: ${reason}`);
    this.name = 'StoredDocumentError';
  }
}

/** `heard` as stored: `{"<peer region>": wallMs}`. */
function heardFromItem(text: string | undefined): ReadonlyMap<string, number> | undefined {
  if (text === undefined) return undefined;
  const value = JSON.parse(text) as unknown;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new CrdtDecodeError('heard', 'expected an object of milliseconds by region');
  const heard = new Map<string, number>();
  for (const [region, at] of Object.entries(value)) {
    if (!GROUP.test(region) || !isCount(at, MAX_WALL_MS))
      throw new CrdtDecodeError('heard', 'expected an object of milliseconds by region');
    heard.set(region, at);
  }
  return heard;
}

function storedFromItem(item: Record<string, AttributeValue>): StoredDocument {
  try {
    const clock = item.clock?.S ? hlcFromWire(JSON.parse(item.clock.S) as unknown, 'clock') : undefined;
    const version = Number(item.version?.N ?? 0);
    if (!Number.isSafeInteger(version) || version < 1)
      throw new CrdtDecodeError('version', 'expected a positive integer');
    const regressedAt = item.regressedAt?.N === undefined ? undefined : Number(item.regressedAt.N);
    if (regressedAt !== undefined && !isCount(regressedAt, MAX_WALL_MS))
      throw new CrdtDecodeError('regressedAt', 'expected milliseconds');
    return {
      state: decodeDocument(item.state?.S),
      version,
      clock,
      heard: heardFromItem(item.heard?.S),
      regressedAt,
    };
  } catch (error) {
    if (error instanceof CrdtDecodeError) throw new StoredDocumentError(`${error.path}: ${error.reason}`);
    if (error instanceof SyntaxError) throw new StoredDocumentError('clock or heard: not valid JSON');
    throw error;
  }
}

/**
 * Documents in the region's state table, one item each (`pk` = `doc#<document>`, `sk` = `crdt`) with the
 * encoded state, a version, the region's clock, when each peer's full state last merged and when the
 * state was last found to have gone back. Saves are conditional on the
 * version read, so concurrent writers in the region never overwrite each other.
 */
export class DynamodbDocumentStore implements DocumentStore {
  private created: { readonly at: number; readonly checkedMs: number } | undefined;

  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * When the table was created, read every few minutes (a restore replaces the table). When it cannot be
   * read, it is taken to be now, which only holds folding back.
   */
  async tableCreatedAt(): Promise<number> {
    const nowMs = this.now();
    if (this.created && nowMs - this.created.checkedMs < CREATION_RECHECK_MS) return this.created.at;
    let at: number;
    try {
      const { Table } = await this.client.send(new DescribeTableCommand({ TableName: this.tableName }));
      at = Table?.CreationDateTime?.getTime() ?? nowMs;
    } catch {
      at = nowMs;
    }
    this.created = { at, checkedMs: nowMs };
    return at;
  }

  async load(document: string): Promise<StoredDocument | undefined> {
    const found = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: this.key(document), ConsistentRead: true }),
    );
    return found.Item ? storedFromItem(found.Item) : undefined;
  }

  async save(document: string, next: StoredDocument, expected: number, encoded: string): Promise<boolean> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            ...this.key(document),
            state: { S: encoded },
            version: { N: String(next.version) },
            ...(next.clock
              ? { clock: { S: JSON.stringify([next.clock.wallMs, next.clock.logical, next.clock.replica]) } }
              : {}),
            ...(next.heard?.size ? { heard: { S: JSON.stringify(Object.fromEntries(next.heard)) } } : {}),
            ...(next.regressedAt === undefined ? {} : { regressedAt: { N: String(next.regressedAt) } }),
          },
          ConditionExpression: expected === 0 ? 'attribute_not_exists(pk)' : 'version = :expected',
          ...(expected === 0 ? {} : { ExpressionAttributeValues: { ':expected': { N: String(expected) } } }),
        }),
      );
      return true;
    } catch (error) {
      if (
        error instanceof ConditionalCheckFailedException ||
        (error as Error).name === 'ConditionalCheckFailedException'
      )
        return false;
      throw error;
    }
  }

  async documents(): Promise<string[]> {
    const documents: string[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        new ScanCommand({
          TableName: this.tableName,
          ProjectionExpression: 'pk',
          FilterExpression: 'begins_with(pk, :prefix) AND sk = :sk',
          ExpressionAttributeValues: { ':prefix': { S: PREFIX }, ':sk': { S: SORT_KEY } },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) if (item.pk?.S) documents.push(item.pk.S.slice(PREFIX.length));
      start = page.LastEvaluatedKey;
    } while (start);
    return documents.sort();
  }

  private key(document: string) {
    return { pk: { S: `${PREFIX}${document}` }, sk: { S: SORT_KEY } };
  }
}
