import { Metrics } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, S3Client, type BucketLocationConstraint } from '@aws-sdk/client-s3';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SQSClient,
  type Message,
} from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { peerFilterPolicy } from '../../modules/sync-bus';
import {
  AntiEntropy,
  DynamodbCheckpointStore,
  DynamodbDocumentIndex,
  DynamodbDocumentStore,
  S3StateObjects,
  SnsPublisher,
  SyncReplica,
  decodeMessage,
  type ControlMessage,
  type Envelope,
  type SyncMessage,
} from '../../runtime/sync';
import { processInbox } from '../../runtime/sync/inbox/handler';
import type { SyncContext, SyncSettings } from '../../runtime/sync/lambda-context';
import { createStateTable, recordRequests, type RequestRecorder } from './dynamodb-recording';
import { recordingMetrics } from './sync-harness';

const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

/** A clock the test moves. */
export interface TestClock {
  now: () => number;
  advance(ms: number): number;
}

export function testClock(startMs: number): TestClock {
  let t = startMs;
  return { now: () => t, advance: (ms) => (t += ms) };
}

/**
 * One region of the sync service on the emulator, wired as `modules/sync-bus.ts` and
 * `runtime/sync/lambda-context.ts` wire it: its state table (with the `sync-documents` index), its topic,
 * its inbox (raw delivery from every peer's topic, filtered by `to`) and dead-letter queue, its bucket,
 * and the real store, index, checkpoint store, S3 state objects and SNS publisher around a SyncReplica.
 */
export interface EmulatedRegion {
  readonly name: string;
  readonly tableName: string;
  readonly topicArn: string;
  readonly inboxUrl: string;
  readonly deadLetterUrl: string;
  readonly bucket: string;
  readonly dynamodb: DynamoDBClient;
  readonly sns: SNSClient;
  readonly s3: S3Client;
  readonly sqs: SQSClient;
  /** Every DynamoDB request the region's client sent. */
  readonly requests: RequestRecorder;
  readonly store: DynamodbDocumentStore;
  readonly index: DynamodbDocumentIndex;
  readonly replica: SyncReplica;
  readonly antiEntropy: AntiEntropy;
  readonly ctx: SyncContext;
  readonly calls: ReturnType<typeof recordingMetrics>['calls'];
  /** Envelopes and control messages this region published (as handed to SNS). */
  readonly published: Array<Envelope | ControlMessage>;
  /** While true, publishing a delta fails (a crash between the save and the publish). */
  failDeltas: boolean;
}

export interface RegionOptions {
  readonly endpoint: string;
  /** Makes every resource name unique on the shared emulator. */
  readonly suffix: string;
  readonly clock: TestClock;
  readonly settleMs?: number;
  readonly pageSize?: number;
}

const clients = (endpoint: string, region: string) => ({
  dynamodb: new DynamoDBClient({ region, endpoint, credentials: CREDENTIALS }),
  sns: new SNSClient({ region, endpoint, credentials: CREDENTIALS }),
  sqs: new SQSClient({ region, endpoint, credentials: CREDENTIALS }),
  s3: new S3Client({ region, endpoint, credentials: CREDENTIALS, forcePathStyle: true }),
});

/** Regions `names`, each subscribed to every other's topic. */
export async function emulatedRegions(
  names: readonly string[],
  options: RegionOptions,
): Promise<EmulatedRegion[]> {
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  const { endpoint, suffix, clock } = options;
  const made = [];
  for (const name of names) {
    const c = clients(endpoint, name);
    const tableName = `state-${suffix}-${name}`;
    await createStateTable(c.dynamodb, tableName);
    const { TopicArn } = await c.sns.send(new CreateTopicCommand({ Name: `sync-${suffix}-${name}` }));
    const queue = async (queueName: string) => {
      const { QueueUrl } = await c.sqs.send(new CreateQueueCommand({ QueueName: queueName }));
      const { Attributes } = await c.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }),
      );
      return { url: QueueUrl as string, arn: Attributes?.QueueArn as string };
    };
    const inbox = await queue(`sync-inbox-${suffix}-${name}`);
    const deadLetters = await queue(`sync-inbox-dl-${suffix}-${name}`);
    const bucket = `sync-${suffix}-${name}`.toLowerCase();
    await c.s3.send(
      new CreateBucketCommand({
        Bucket: bucket,
        ...(name === 'us-east-1'
          ? {}
          : { CreateBucketConfiguration: { LocationConstraint: name as BucketLocationConstraint } }),
      }),
    );
    made.push({ name, c, tableName, topicArn: TopicArn as string, inbox, deadLetters, bucket });
  }
  for (const from of made)
    for (const to of made)
      if (from !== to)
        await from.c.sns.send(
          new SubscribeCommand({
            TopicArn: from.topicArn,
            Protocol: 'sqs',
            Endpoint: to.inbox.arn,
            Attributes: {
              RawMessageDelivery: 'true',
              FilterPolicyScope: 'MessageAttributes',
              FilterPolicy: JSON.stringify(peerFilterPolicy(to.name)),
            },
          }),
        );
  const buckets = new Map(made.map((m) => [m.name, m.bucket]));
  const s3ByRegion = new Map(made.map((m) => [m.name, m.c.s3]));
  return made.map((m) => {
    const peers = names.filter((n) => n !== m.name);
    const requests = recordRequests(m.c.dynamodb);
    const store = new DynamodbDocumentStore(m.c.dynamodb, m.tableName, clock.now);
    const index = new DynamodbDocumentIndex(m.c.dynamodb, m.tableName, 'sync-documents');
    const objects = new S3StateObjects(m.name, buckets, (r) => s3ByRegion.get(r) as S3Client);
    const sns = new SnsPublisher(m.c.sns, m.topicArn, objects);
    const { metrics, calls } = recordingMetrics();
    const published: Array<Envelope | ControlMessage> = [];
    const region = { failDeltas: false } as EmulatedRegion;
    const publisher = {
      publish: async (envelope: Envelope) => {
        if (region.failDeltas && envelope.kind === 'delta')
          throw new Error('the process died before publishing');
        await sns.publish(envelope);
        published.push(envelope);
      },
      publishControl: async (message: ControlMessage) => {
        await sns.publishControl(message);
        published.push(message);
      },
    };
    const replica = new SyncReplica({
      region: m.name,
      peers,
      store,
      publisher,
      now: clock.now,
      metrics,
      sleep: async () => undefined,
    });
    const antiEntropy = new AntiEntropy({
      replica,
      peers,
      maxClockSkewMs: 300_000,
      index,
      checkpoints: new DynamodbCheckpointStore(m.c.dynamodb, m.tableName),
      publisher,
      now: clock.now,
      settleMs: options.settleMs ?? 60_000,
      pageSize: options.pageSize ?? 1000,
      metrics,
    });
    const ctx: SyncContext = {
      config: {
        SYNC_INBOX_URL: m.inbox.url,
        SYNC_DEAD_LETTER_QUEUE_URL: m.deadLetters.url,
        SYNC_MAX_RECEIVE_COUNT: 5,
        SYNC_MERGE_CONCURRENCY: 4,
      } as SyncSettings,
      replica,
      antiEntropy,
      objects,
      sqs: m.c.sqs,
      metrics: new Metrics({ namespace: 'test', serviceName: 'sync' }),
    };
    return Object.assign(region, {
      name: m.name,
      tableName: m.tableName,
      topicArn: m.topicArn,
      inboxUrl: m.inbox.url,
      deadLetterUrl: m.deadLetters.url,
      bucket: m.bucket,
      dynamodb: m.c.dynamodb,
      sns: m.c.sns,
      s3: m.c.s3,
      sqs: m.c.sqs,
      requests,
      store,
      index,
      replica,
      antiEntropy,
      ctx,
      calls,
      published,
    });
  });
}

/** Every message waiting in a queue (received and deleted). */
export async function drainQueue(sqs: SQSClient, queueUrl: string): Promise<Message[]> {
  const all: Message[] = [];
  for (;;) {
    const { Messages } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
      }),
    );
    if (!Messages?.length) return all;
    all.push(...Messages);
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
      }),
    );
  }
}

/** A received SQS message as the event-source mapping hands it to the inbox function. */
export function sqsRecord(message: Message, region: string): SQSRecord {
  return {
    messageId: message.MessageId as string,
    receiptHandle: message.ReceiptHandle as string,
    body: message.Body as string,
    attributes: { ApproximateReceiveCount: message.Attributes?.ApproximateReceiveCount ?? '1' },
    messageAttributes: Object.fromEntries(
      Object.entries(message.MessageAttributes ?? {}).map(([name, value]) => [
        name,
        { dataType: value.DataType ?? 'String', stringValue: value.StringValue },
      ]),
    ),
    md5OfBody: message.MD5OfBody ?? '',
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:${region}:123456789012:inbox`,
    awsRegion: region,
  } as SQSRecord;
}

/** The SQS message's size as SQS counts it: body plus each attribute's name, type and value. */
export const sqsMessageBytes = (message: Message): number =>
  Buffer.byteLength(message.Body ?? '', 'utf8') +
  Object.entries(message.MessageAttributes ?? {}).reduce(
    (sum, [name, value]) =>
      sum +
      Buffer.byteLength(name) +
      (value.DataType ?? '').length +
      Buffer.byteLength(value.StringValue ?? ''),
    0,
  );

export interface Pumped {
  /** What the inbox processed, decoded, in order. */
  readonly messages: SyncMessage[];
  /** Message ids the inbox reported as batch item failures. */
  readonly failures: string[];
  /** Batches (inbox invocations). */
  readonly batches: number;
}

/**
 * Runs the region's inbox function (`processInbox`) over what its queue holds, batches of up to 10 as the
 * event-source mapping delivers them, until the queue is empty; deletes what was processed (as the mapping
 * does with partial batch responses).
 */
export async function pumpInbox(region: EmulatedRegion): Promise<Pumped> {
  const messages: SyncMessage[] = [];
  const failures: string[] = [];
  let batches = 0;
  for (;;) {
    const { Messages } = await region.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: region.inboxUrl,
        MaxNumberOfMessages: 10,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
      }),
    );
    if (!Messages?.length) return { messages, failures, batches };
    batches++;
    const event: SQSEvent = { Records: Messages.map((m) => sqsRecord(m, region.name)) };
    for (const m of Messages) messages.push(decodeMessage(m.Body as string));
    const { batchItemFailures } = await processInbox(region.ctx, event);
    const failed = new Set(batchItemFailures.map((f) => f.itemIdentifier));
    failures.push(...failed);
    const done = Messages.filter((m) => !failed.has(m.MessageId as string));
    if (done.length > 0)
      await region.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: region.inboxUrl,
          Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
        }),
      );
  }
}

/** Destroys every client of the regions (their sockets). */
export function closeRegions(regions: readonly EmulatedRegion[]): void {
  for (const region of regions) {
    region.dynamodb.destroy();
    region.sns.destroy();
    region.s3.destroy();
    region.sqs.destroy();
  }
}
