import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { PermanentError } from '../lib/failures';
import { SQS_MAX_MESSAGE_BYTES } from '../lib/queue-consumer';
import {
  claimSlot,
  type DispatchCounters,
  type JobClaims,
  type JobRecord,
  type JobRecords,
  type JobRecordState,
  type QueueSender,
  type RegionFailover,
  type Retry,
} from './dispatch';
import type { LeaseState, LeaseTable, LeaseWrite } from './leases';
import type { RegionStatus, RegionView, RegionViewSource, RunnerQueueMessage } from './model';
import type { RegionStatusReader } from './region-status';
import {
  DISPATCH_WINDOW_SEC,
  dispatchKey,
  jobClaimKey,
  jobKey,
  leaseKey,
  LEASES_PARTITION,
  queueUrlOf,
  runnerQueueName,
  TTL_ATTRIBUTE,
} from './tables';

/**
 * The dispatcher's ports over DynamoDB and SQS (layout: tables.ts). The region's state table (`pk`, `sk`)
 * holds claims, leases and dispatch counters; the runner-workflows global table (`workflowId`) the job
 * records. Additions to tables.ts's attributes: the claim item's `owner` (S, the SQS message id that holds
 * it) and `claimedAt` (N, epoch seconds); the lease item's `waiting` (M: lease key -> N), lease keys
 * `<job id>` and `<job id>:1` (the retry's runner); the job item's `firstRegion` (S, the region of the
 * job's first runner when its retry ran in another region).
 *
 * The router's tombstone: a `job:<id>` item with `completed` (BOOL true) and `completedAt`, written when a
 * `completed` came before a record existed. The dispatcher reads it as "the job is over" and never writes its
 * record over it (a live one: past its `expiresAt` it is no tombstone).
 */

const n = (value: number): AttributeValue => ({ N: String(value) });
const s = (value: string): AttributeValue => ({ S: value });
const key = (k: { readonly pk: string; readonly sk: string }) => ({ pk: s(k.pk), sk: s(k.sk) });

const isConditionFailure = (error: unknown) => error instanceof ConditionalCheckFailedException;

/** A stored item the dispatcher cannot read; names the attribute, never a value. */
export class RunnerItemError extends PermanentError {
  constructor(attribute: string, rule: string) {
    super('runner-item-unreadable', `${attribute}: ${rule}`);
    this.name = 'RunnerItemError';
  }
}

export class DynamodbJobClaims implements JobClaims {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  private keyOf(jobId: number, retry: Retry) {
    return key({ pk: jobClaimKey(jobId).pk, sk: claimSlot(retry) });
  }

  async claim(
    jobId: number,
    retry: Retry,
    owner: string,
    expiresAtSec: number,
    nowSec: number,
  ): Promise<boolean> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            ...this.keyOf(jobId, retry),
            owner: s(owner),
            claimedAt: n(nowSec),
            [TTL_ATTRIBUTE]: n(expiresAtSec),
          },
          // New, held by this message already (a redelivery), or expired (DynamoDB deletes late).
          ConditionExpression: 'attribute_not_exists(pk) OR #owner = :owner OR #ttl < :now',
          ExpressionAttributeNames: { '#owner': 'owner', '#ttl': TTL_ATTRIBUTE },
          ExpressionAttributeValues: { ':owner': s(owner), ':now': n(nowSec) },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async release(jobId: number, retry: Retry, owner: string): Promise<void> {
    try {
      await this.client.send(
        new DeleteItemCommand({
          TableName: this.tableName,
          Key: this.keyOf(jobId, retry),
          ConditionExpression: '#owner = :owner',
          ExpressionAttributeNames: { '#owner': 'owner' },
          ExpressionAttributeValues: { ':owner': s(owner) },
        }),
      );
    } catch (error) {
      // Another owner's claim (or none): not this message's to release.
      if (!isConditionFailure(error)) throw error;
    }
  }
}

export class DynamodbJobRecords implements JobRecords {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  async get(jobId: number): Promise<JobRecordState | undefined> {
    const { Item } = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: { workflowId: s(jobKey(jobId)) },
        ProjectionExpression: '#region, #type, #first, #completed, #ttl',
        ExpressionAttributeNames: {
          '#region': 'region',
          '#type': 'runnerType',
          '#first': 'firstRegion',
          '#completed': 'completed',
          '#ttl': TTL_ATTRIBUTE,
        },
      }),
    );
    // An expired record DynamoDB has not deleted yet is no record.
    const expiresAt = Number(Item?.[TTL_ATTRIBUTE]?.N);
    if (!Item || (Number.isFinite(expiresAt) && expiresAt * 1000 <= this.now())) return undefined;
    if (Item.completed?.BOOL === true) return { kind: 'over' };
    const region = Item.region?.S;
    if (region === undefined) throw new RunnerItemError('job.region', 'expected a string');
    const runnerType = Item.runnerType?.S;
    const firstRegion = Item.firstRegion?.S;
    return {
      kind: 'dispatched',
      region,
      ...(runnerType === undefined ? {} : { runnerType }),
      ...(firstRegion === undefined ? {} : { firstRegion }),
    };
  }

  /** Never over a live tombstone: a `completed` written meanwhile stays (answered `over`). */
  async put(record: JobRecord): Promise<'written' | 'over'> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            workflowId: s(jobKey(record.jobId)),
            region: s(record.region),
            runnerType: s(record.runnerType),
            taskArn: s(record.taskArn),
            repository: s(record.repository),
            organization: s(record.organization),
            runId: n(record.runId),
            dispatchedAt: n(record.dispatchedAt),
            ...(record.firstRegion === undefined ? {} : { firstRegion: s(record.firstRegion) }),
            [TTL_ATTRIBUTE]: n(record.expiresAt),
          },
          ConditionExpression: 'attribute_not_exists(#completed) OR #completed <> :true OR #ttl < :now',
          ExpressionAttributeNames: { '#completed': 'completed', '#ttl': TTL_ATTRIBUTE },
          ExpressionAttributeValues: {
            ':true': { BOOL: true },
            ':now': n(Math.floor(this.now() / 1000)),
          },
        }),
      );
      return 'written';
    } catch (error) {
      if (isConditionFailure(error)) return 'over';
      throw error;
    }
  }

  async delete(jobId: number): Promise<void> {
    await this.client.send(
      new DeleteItemCommand({ TableName: this.tableName, Key: { workflowId: s(jobKey(jobId)) } }),
    );
  }
}

/** A lease key: a job id, or `<job id>:1` for its retry's runner. */
const LEASE_KEY = /^\d{1,16}(:1)?$/;

/** A `M` of lease key -> epoch seconds, checked like input (an operator may have edited it). */
function expiries(item: Record<string, AttributeValue>, name: 'leases' | 'waiting'): Map<string, number> {
  const out = new Map<string, number>();
  const map = item[name]?.M;
  if (map === undefined) return out;
  for (const [job, value] of Object.entries(map)) {
    const expiry = Number(value.N);
    if (!LEASE_KEY.test(job))
      throw new RunnerItemError(name, 'expected lease keys (a job id, or <job id>:1)');
    if (value.N === undefined || !Number.isSafeInteger(expiry) || expiry < 0)
      throw new RunnerItemError(name, 'expected epoch seconds as values');
    out.set(job, expiry);
  }
  return out;
}

export function leaseStateOf(item: Record<string, AttributeValue>): LeaseState {
  const version = Number(item.version?.N);
  if (!Number.isSafeInteger(version) || version < 0)
    throw new RunnerItemError('version', 'expected a non-negative whole number');
  return { leases: expiries(item, 'leases'), waiting: expiries(item, 'waiting'), version };
}

const mapOf = (entries: ReadonlyMap<string, number>): AttributeValue => ({
  M: Object.fromEntries([...entries].map(([job, expiry]) => [job, n(expiry)])),
});

export class DynamodbLeaseTable implements LeaseTable {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
  ) {}

  async read(organization: string): Promise<LeaseState | undefined> {
    const { Item } = await this.client.send(
      new GetItemCommand({
        TableName: this.tableName,
        Key: key(leaseKey(organization)),
        ConsistentRead: true,
      }),
    );
    return Item ? leaseStateOf(Item) : undefined;
  }

  async write(organization: string, next: LeaseWrite, expectedVersion: number | undefined): Promise<boolean> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.tableName,
          Item: {
            ...key(leaseKey(organization)),
            leases: mapOf(next.leases),
            waiting: mapOf(next.waiting),
            version: n((expectedVersion ?? 0) + 1),
            [TTL_ATTRIBUTE]: n(next.expiresAt),
          },
          ConditionExpression: expectedVersion === undefined ? 'attribute_not_exists(pk)' : 'version = :read',
          ...(expectedVersion === undefined
            ? {}
            : { ExpressionAttributeValues: { ':read': n(expectedVersion) } }),
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async all(): Promise<readonly LeaseState[]> {
    const items: LeaseState[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': s(LEASES_PARTITION) },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      for (const item of page.Items ?? []) items.push(leaseStateOf(item));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }
}

/** Counter items outlive the error window by this much (for a look after an incident). */
const COUNTER_GRACE_SEC = 3_600;

export class DynamodbDispatchCounters implements DispatchCounters {
  constructor(
    private readonly client: DynamoDBClient,
    private readonly tableName: string,
    private readonly errorWindowSec: number,
    private readonly now: () => number = Date.now,
  ) {}

  async record(outcome: 'dispatched' | 'failed'): Promise<void> {
    const nowSec = Math.floor(this.now() / 1000);
    const windowStart = nowSec - (nowSec % DISPATCH_WINDOW_SEC);
    await this.client.send(
      new UpdateItemCommand({
        TableName: this.tableName,
        Key: key(dispatchKey(windowStart)),
        UpdateExpression: 'ADD #outcome :one SET #ttl = :ttl',
        ExpressionAttributeNames: { '#outcome': outcome, '#ttl': TTL_ATTRIBUTE },
        ExpressionAttributeValues: {
          ':one': n(1),
          ':ttl': n(windowStart + DISPATCH_WINDOW_SEC + this.errorWindowSec + COUNTER_GRACE_SEC),
        },
      }),
    );
  }
}

export interface SqsQueueSenderOptions {
  /** An SQS client of the region named (sends to another region's queues go through its own endpoint). */
  readonly sqs: (region: string) => SQSClient;
  /** The dispatcher's region: `send` goes to its queues. */
  readonly region: string;
  readonly account: string;
  readonly prefix: string;
}

export class SqsQueueSender implements QueueSender {
  constructor(private readonly options: SqsQueueSenderOptions) {}

  send(runnerType: string, message: RunnerQueueMessage, delaySec: number): Promise<void> {
    return this.sendToRegion(this.options.region, runnerType, message, delaySec);
  }

  async sendToRegion(
    region: string,
    runnerType: string,
    message: RunnerQueueMessage,
    delaySec: number,
  ): Promise<void> {
    const body = JSON.stringify(message);
    if (Buffer.byteLength(body, 'utf8') > SQS_MAX_MESSAGE_BYTES)
      throw new PermanentError('message-too-large', 'body: expected at most 256 KiB');
    const { account, prefix } = this.options;
    await this.options.sqs(region).send(
      new SendMessageCommand({
        QueueUrl: queueUrlOf(region, account, runnerQueueName(prefix, runnerType)),
        MessageBody: body,
        DelaySeconds: Math.max(0, Math.min(900, Math.floor(delaySec))),
        // As the router sends them: what a message is, readable without its body.
        MessageAttributes: {
          kind: { DataType: 'String', StringValue: message.kind },
          correlationId: {
            DataType: 'String',
            StringValue:
              message.kind === 'check-queued' ? message.dispatch.correlationId : message.correlationId,
          },
        },
      }),
    );
  }
}

export interface RegionFailoverOptions {
  /** The dispatcher's region: the one whose status is read. */
  readonly region: string;
  /** The region-status table (region-status.ts), read through the local replica. */
  readonly statuses: RegionStatusReader;
  /** Every region's view (region-views.ts, which keeps its own short cache). */
  readonly views: RegionViewSource;
  /** Epoch ms. */
  readonly now: () => number;
  /** How long a status read (or its failure) is kept, in ms. Default 5,000. */
  readonly cacheTtlMs?: number;
}

type StatusRead =
  { readonly at: number; readonly status: RegionStatus } | { readonly at: number; readonly failure: unknown };

/**
 * The dispatcher's failover port: its own region's effective status, one strongly consistent read of the
 * local replica of the region-status table kept `cacheTtlMs` (a failed read too, so an unreadable table
 * costs one call per container and period, not one per message); concurrent callers share a read. The
 * other regions' views are read only when this one takes no new jobs.
 */
export class RegionStatusFailover implements RegionFailover {
  private last: StatusRead | undefined;
  private inFlight: Promise<StatusRead> | undefined;

  constructor(private readonly options: RegionFailoverOptions) {}

  async status(): Promise<RegionStatus> {
    const ttl = this.options.cacheTtlMs ?? 5_000;
    const now = this.options.now();
    const cached = this.last;
    const read = cached && now - cached.at < ttl && now >= cached.at ? cached : await this.read();
    if ('failure' in read) throw read.failure;
    return read.status;
  }

  views(): Promise<ReadonlyMap<string, RegionView>> {
    return this.options.views.views();
  }

  private read(): Promise<StatusRead> {
    this.inFlight ??= (async (): Promise<StatusRead> => {
      const at = this.options.now();
      try {
        const records = await this.options.statuses.readStatuses([this.options.region]);
        // readStatuses answers every region asked; a missing one would be a bug there: read as unreadable.
        const record = records.get(this.options.region);
        if (!record) throw new RunnerItemError('region-status', 'expected a record of the region');
        return { at, status: record.status };
      } catch (failure) {
        return { at, failure };
      }
    })().then((read) => {
      this.last = read;
      this.inFlight = undefined;
      return read;
    });
    return this.inFlight;
  }
}
