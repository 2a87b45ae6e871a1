import {
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  ScanCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { decodeMap, encodeMap } from '../crdt';
import type { DocumentStore, StoredDocument } from './replica';

const PREFIX = 'doc#';
const SORT_KEY = 'crdt';

/**
 * Documents in the region's state table, one item each (`pk` = `doc#<document>`, `sk` = `crdt`) with the
 * encoded state, a version and the region's clock. Saves are conditional on the version read, so
 * concurrent writers in the region never overwrite each other.
 */
export class DynamodbDocumentStore implements DocumentStore {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async load(document: string): Promise<StoredDocument | undefined> {
    const found = await this.client.send(
      new GetItemCommand({ TableName: this.tableName, Key: this.key(document), ConsistentRead: true }),
    );
    const item = found.Item;
    if (!item) return undefined;
    const clock = item.clock?.S ? (JSON.parse(item.clock.S) as StoredDocument['clock']) : undefined;
    return { state: decodeMap(item.state?.S), version: Number(item.version?.N ?? 0), clock };
  }

  async save(document: string, next: StoredDocument, expected: number): Promise<boolean> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            ...this.key(document),
            state: { S: encodeMap(next.state) },
            version: { N: String(next.version) },
            ...(next.clock ? { clock: { S: JSON.stringify(next.clock) } } : {}),
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
