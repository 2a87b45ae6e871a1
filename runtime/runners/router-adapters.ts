import {
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { RunnerQueueMessage, RunPlacement } from './model';
import type {
  ClaimLedger,
  ClaimRequest,
  ClaimResult,
  JobEntry,
  JobLookup,
  MarkResult,
  PlacementStore,
  QueueSender,
} from './router';
import { jobKey, queueUrlOf, runnerQueueName, TTL_ATTRIBUTE } from './tables';

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

/** The claim item's `state` (tables.ts). */
const PENDING = 'pending';
const DONE = 'done';

/**
 * Claims in each region's replica of the idempotency table (`key` = `delivery:<id>` or
 * `job:<id>:<action>:<attempt>:<status>`), in two phases (router.ts): a conditional put writes the claim
 * `pending` when there is none, when it expired, or when it is `pending` past its owner's lease (a
 * takeover); on a condition failure the item found (ReturnValuesOnConditionCheckFailure, no read) says
 * `done` or `pending` (none returned: `pending`, so the delivery answers 409 and can be redelivered).
 * Marking done and releasing are conditional on the owner.
 */
export class DynamodbClaimLedger implements ClaimLedger {
  constructor(
    private readonly options: {
      readonly dynamodb: (region: string) => DynamoDBClient;
      readonly tableName: string;
      /** The router's region, recorded in the claim. */
      readonly localRegion: string;
      readonly now: () => number;
    },
  ) {}

  private item(request: ClaimRequest, state: typeof PENDING | typeof DONE): Record<string, AttributeValue> {
    const { localRegion, now } = this.options;
    return {
      key: { S: request.key },
      state: { S: state },
      owner: { S: request.owner },
      region: { S: localRegion },
      deliveryId: { S: request.deliveryId },
      receivedAt: { N: String(request.receivedAt) },
      ...(state === PENDING
        ? { pendingUntil: { N: String(request.pendingUntil) } }
        : { doneAt: { N: String(now()) } }),
      [TTL_ATTRIBUTE]: { N: String(nowSec(now) + request.ttlSec) },
    };
  }

  async claim(region: string, request: ClaimRequest): Promise<ClaimResult> {
    const { dynamodb, tableName, now } = this.options;
    try {
      const out = await dynamodb(region).send(
        new PutItemCommand({
          TableName: tableName,
          Item: this.item(request, PENDING),
          ConditionExpression:
            'attribute_not_exists(#key) OR #expires < :nowSec OR (#state = :pending AND #until < :nowMs)',
          ExpressionAttributeNames: {
            '#key': 'key',
            '#expires': TTL_ATTRIBUTE,
            '#state': 'state',
            '#until': 'pendingUntil',
          },
          ExpressionAttributeValues: {
            ':nowSec': { N: String(nowSec(now)) },
            ':nowMs': { N: String(now()) },
            ':pending': { S: PENDING },
          },
          ReturnValues: 'ALL_OLD',
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      // Replaced a live pending claim's item: its owner's lease had passed (an expired item is no claim).
      const old = live(out.Attributes, now);
      return old?.state?.S === PENDING ? 'taken-over' : 'claimed';
    } catch (error) {
      if (!isNamed(error, 'ConditionalCheckFailedException')) throw error;
      const found = (error as { Item?: Record<string, AttributeValue> }).Item;
      // No item returned: nothing says it was handled, so it is taken as in flight (409, redeliverable).
      if (!found) return 'pending';
      // Pending within its lease; anything else (done, or an item without state, written before the two
      // phases) was handled.
      const until = numberOf(found.pendingUntil);
      return found.state?.S === PENDING && until !== undefined && until >= now() ? 'pending' : 'done';
    }
  }

  async finish(region: string, request: ClaimRequest): Promise<boolean> {
    const { dynamodb, tableName } = this.options;
    try {
      await dynamodb(region).send(
        new PutItemCommand({
          TableName: tableName,
          Item: this.item(request, DONE),
          ...ownedBy(request.owner),
        }),
      );
      return true;
    } catch (error) {
      if (isNamed(error, 'ConditionalCheckFailedException')) return false;
      throw error;
    }
  }

  /** Deletes the owner's claim; a claim another router's write replaced is left alone. */
  async release(region: string, key: string, owner: string): Promise<void> {
    const { dynamodb, tableName } = this.options;
    try {
      await dynamodb(region).send(
        new DeleteItemCommand({ TableName: tableName, Key: { key: { S: key } }, ...ownedBy(owner) }),
      );
    } catch (error) {
      if (!isNamed(error, 'ConditionalCheckFailedException')) throw error;
    }
  }
}

const ownedBy = (owner: string) => ({
  ConditionExpression: '#owner = :owner',
  ExpressionAttributeNames: { '#owner': 'owner' },
  ExpressionAttributeValues: { ':owner': { S: owner } },
});

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

/** A `job:<id>` item read: a dispatcher's record, the router's tombstone, or neither. */
function jobEntryOf(item: Record<string, AttributeValue> | undefined): JobEntry {
  if (!item) return { kind: 'absent' };
  if (item.completed?.BOOL === true) return { kind: 'tombstone' };
  const region = item.region?.S;
  const runnerType = item.runnerType?.S;
  return region !== undefined && runnerType !== undefined
    ? { kind: 'record', record: { region, runnerType } }
    : { kind: 'unreadable' };
}

/**
 * The job items in this region's replica of runner-workflows (`workflowId` = `job:<id>`): the dispatcher's
 * records, and the router's tombstones of jobs that completed before a record was written (tables.ts).
 */
export class DynamodbJobLookup implements JobLookup {
  constructor(
    private readonly options: {
      readonly dynamodb: DynamoDBClient;
      readonly tableName: string;
      readonly now: () => number;
    },
  ) {}

  async get(jobId: number): Promise<JobEntry> {
    const { dynamodb, tableName, now } = this.options;
    const out = await dynamodb.send(
      new GetItemCommand({
        TableName: tableName,
        Key: { workflowId: { S: jobKey(jobId) } },
        ConsistentRead: true,
      }),
    );
    return jobEntryOf(live(out.Item, now));
  }

  async markCompleted(jobId: number, ttlSec: number): Promise<MarkResult> {
    const { dynamodb, tableName, now } = this.options;
    try {
      await dynamodb.send(
        new PutItemCommand({
          TableName: tableName,
          Item: {
            workflowId: { S: jobKey(jobId) },
            completed: { BOOL: true },
            completedAt: { N: String(now()) },
            [TTL_ATTRIBUTE]: { N: String(nowSec(now) + ttlSec) },
          },
          ...absentOrExpired('workflowId', now),
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
      return { kind: 'marked' };
    } catch (error) {
      if (!isNamed(error, 'ConditionalCheckFailedException')) throw error;
      const returned = (error as { Item?: Record<string, AttributeValue> }).Item;
      const found = jobEntryOf(returned ? live(returned, now) : undefined);
      if (found.kind !== 'absent') return found;
    }
    // The item that failed the condition was not returned: read it (strongly consistent, this replica).
    const entry = await this.get(jobId);
    return entry.kind === 'absent' ? { kind: 'unreadable' } : entry;
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
