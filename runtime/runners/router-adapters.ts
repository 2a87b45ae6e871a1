import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { RunnerQueueMessage, RunPlacement } from './model';
import type { DeliveryLedger, JobLookup, JobRecord, PlacementStore, QueueSender } from './router';
import { deliveryKey, jobKey, queueUrlOf, runnerQueueName, TTL_ATTRIBUTE } from './tables';

/**
 * The router's ports on AWS: DynamoDB for the idempotency and runner-workflows global tables, SQS for the
 * runner queues. Clients are made lazily, one per region (`RegionalClients`); table names are the same in
 * every region (global tables), so a region's replica is reached through a client of that region.
 *
 * Reads are strongly consistent: in a global table that means "in this replica", which is what the claims
 * and placements rely on (see router.ts for the cross-region window). Items past their `expiresAt` that
 * DynamoDB's TTL has not deleted yet count as absent, and a conditional write may replace them.
 */

/** One client per region, made on first use. */
export class RegionalClients<C> {
  private readonly clients = new Map<string, C>();

  constructor(private readonly create: (region: string) => C) {}

  of(region: string): C {
    let client = this.clients.get(region);
    if (!client) {
      client = this.create(region);
      this.clients.set(region, client);
    }
    return client;
  }
}

const isNamed = (error: unknown, name: string): boolean => error instanceof Error && error.name === name;

const nowSec = (now: () => number): number => Math.floor(now() / 1000);

/** `attribute_not_exists(key)` or expired: the condition of every "write if absent". */
function absentOrExpired(keyAttribute: string, now: () => number) {
  return {
    ConditionExpression: 'attribute_not_exists(#key) OR #expires < :now',
    ExpressionAttributeNames: { '#key': keyAttribute, '#expires': TTL_ATTRIBUTE },
    ExpressionAttributeValues: { ':now': { N: String(nowSec(now)) } },
  };
}

const numberOf = (value: AttributeValue | undefined): number | undefined => {
  if (value?.N === undefined) return undefined;
  const n = Number(value.N);
  return Number.isSafeInteger(n) ? n : undefined;
};

const live = (item: Record<string, AttributeValue> | undefined, now: () => number) => {
  if (!item) return undefined;
  const expires = numberOf(item[TTL_ATTRIBUTE]);
  return expires !== undefined && expires < nowSec(now) ? undefined : item;
};

/** Delivery claims in each region's replica of the idempotency table (`key` = `delivery:<id>`). */
export class DynamodbDeliveryLedger implements DeliveryLedger {
  constructor(
    private readonly options: {
      readonly dynamodb: (region: string) => DynamoDBClient;
      readonly tableName: string;
      /** The router's region, recorded in the claim (and the only claims it releases). */
      readonly localRegion: string;
      readonly now: () => number;
    },
  ) {}

  async claim(region: string, deliveryId: string, ttlSec: number): Promise<boolean> {
    const { dynamodb, tableName, localRegion, now } = this.options;
    try {
      await dynamodb(region).send(
        new PutItemCommand({
          TableName: tableName,
          Item: {
            key: { S: deliveryKey(deliveryId) },
            region: { S: localRegion },
            receivedAt: { N: String(now()) },
            [TTL_ATTRIBUTE]: { N: String(nowSec(now) + ttlSec) },
          },
          ...absentOrExpired('key', now),
        }),
      );
      return true;
    } catch (error) {
      if (isNamed(error, 'ConditionalCheckFailedException')) return false;
      throw error;
    }
  }

  /** Deletes this router's claim; a claim another router's write replaced is left alone. */
  async release(region: string, deliveryId: string): Promise<void> {
    const { dynamodb, tableName, localRegion } = this.options;
    try {
      await dynamodb(region).send(
        new DeleteItemCommand({
          TableName: tableName,
          Key: { key: { S: deliveryKey(deliveryId) } },
          ConditionExpression: '#region = :region',
          ExpressionAttributeNames: { '#region': 'region' },
          ExpressionAttributeValues: { ':region': { S: localRegion } },
        }),
      );
    } catch (error) {
      if (!isNamed(error, 'ConditionalCheckFailedException')) throw error;
    }
  }
}

/** Run placements in this region's replica of runner-workflows (`workflowId` = `run:...`). */
export class DynamodbPlacementStore implements PlacementStore {
  constructor(
    private readonly options: {
      readonly dynamodb: DynamoDBClient;
      readonly tableName: string;
      readonly now: () => number;
    },
  ) {}

  async get(key: string): Promise<RunPlacement | undefined> {
    const { dynamodb, tableName, now } = this.options;
    const out = await dynamodb.send(
      new GetItemCommand({ TableName: tableName, Key: { workflowId: { S: key } }, ConsistentRead: true }),
    );
    const item = live(out.Item, now);
    const region = item?.region?.S;
    const placedAt = numberOf(item?.placedAt);
    return region !== undefined && placedAt !== undefined ? { region, placedAt } : undefined;
  }

  async placeIfAbsent(key: string, region: string, ttlSec: number): Promise<RunPlacement> {
    const { dynamodb, tableName, now } = this.options;
    const placement: RunPlacement = { region, placedAt: now() };
    try {
      await dynamodb.send(
        new PutItemCommand({
          TableName: tableName,
          Item: {
            workflowId: { S: key },
            region: { S: region },
            placedAt: { N: String(placement.placedAt) },
            [TTL_ATTRIBUTE]: { N: String(nowSec(now) + ttlSec) },
          },
          ...absentOrExpired('workflowId', now),
        }),
      );
      return placement;
    } catch (error) {
      if (!isNamed(error, 'ConditionalCheckFailedException')) throw error;
    }
    // Placed by another router first; an unreadable winner (expired since, or malformed) leaves ours.
    return (await this.get(key)) ?? placement;
  }
}

/** The dispatcher's job records in this region's replica of runner-workflows (`workflowId` = `job:<id>`). */
export class DynamodbJobLookup implements JobLookup {
  constructor(
    private readonly options: {
      readonly dynamodb: DynamoDBClient;
      readonly tableName: string;
      readonly now: () => number;
    },
  ) {}

  async get(jobId: number): Promise<JobRecord | undefined> {
    const { dynamodb, tableName, now } = this.options;
    const out = await dynamodb.send(
      new GetItemCommand({
        TableName: tableName,
        Key: { workflowId: { S: jobKey(jobId) } },
        ConsistentRead: true,
      }),
    );
    const item = live(out.Item, now);
    const region = item?.region?.S;
    const runnerType = item?.runnerType?.S;
    return region !== undefined && runnerType !== undefined ? { region, runnerType } : undefined;
  }
}

/** Runner queues: `<prefix>-<runner type>` in each region, in one account. */
export class SqsQueueSender implements QueueSender {
  constructor(
    private readonly options: {
      readonly sqs: (region: string) => SQSClient;
      readonly accountId: string;
      readonly queuePrefix: string;
    },
  ) {}

  async send(region: string, runnerType: string, message: RunnerQueueMessage): Promise<void> {
    const { sqs, accountId, queuePrefix } = this.options;
    const correlationId =
      message.kind === 'check-queued' ? message.dispatch.correlationId : message.correlationId;
    await sqs(region).send(
      new SendMessageCommand({
        QueueUrl: queueUrlOf(region, accountId, runnerQueueName(queuePrefix, runnerType)),
        MessageBody: JSON.stringify(message),
        MessageAttributes: {
          kind: { DataType: 'String', StringValue: message.kind },
          correlationId: { DataType: 'String', StringValue: correlationId },
        },
      }),
    );
  }
}
