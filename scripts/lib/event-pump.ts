import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SQSClient,
  type Message,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { encodeDocument, readField } from '../../runtime/crdt';
import { DynamodbDocumentStore, SnsPublisher, SyncReplica } from '../../runtime/sync';
import { resourceName } from '../../stacks/names';
import { invokeDeployed, regionalStackOf, type LocalEstate } from './local-estate';

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };

/** What the local event pump needs of one deployed region. */
export interface SyncRegion {
  readonly region: string;
  readonly stackDir: string;
  readonly inboxUrl: string;
  readonly deadLetterUrl: string;
  readonly topicArn: string;
  /** The other regions of the estate. */
  readonly peers: readonly string[];
  readonly stateTable: string;
  readonly inboxFunction: string;
  readonly antiEntropyFunction: string;
}

/** The sync endpoints of every region of a deployed local estate. */
export function syncRegionsOf(estate: LocalEstate): SyncRegion[] {
  return estate.environment.regions.map((region) => {
    const stack = regionalStackOf(estate, region);
    return {
      region,
      stackDir: stack.dir,
      inboxUrl: stack.outputs.sync_inbox_url as string,
      deadLetterUrl: stack.outputs.sync_dead_letter_url as string,
      peers: estate.environment.regions.filter((r) => r !== region),
      topicArn: stack.outputs.sync_topic_arn as string,
      stateTable: stack.outputs.state_table as string,
      inboxFunction: resourceName(estate.environment, 'sync-inbox'),
      antiEntropyFunction: resourceName(estate.environment, 'sync-anti-entropy'),
    };
  });
}

/** A writer: another handler's use of the sync API, in its own container (its own clients, its own epoch). */
export function writer(endpoint: string, region: SyncRegion): SyncReplica {
  return new SyncReplica({
    region: region.region,
    peers: region.peers,
    store: new DynamodbDocumentStore(
      new DynamoDBClient({ region: region.region, endpoint, credentials }),
      region.stateTable,
    ),
    publisher: new SnsPublisher(
      new SNSClient({ region: region.region, endpoint, credentials }),
      region.topicArn,
    ),
    now: Date.now,
  });
}

export async function receiveAll(endpoint: string, region: SyncRegion): Promise<Message[]> {
  const sqs = new SQSClient({ region: region.region, endpoint, credentials });
  const messages: Message[] = [];
  for (;;) {
    const batch = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: region.inboxUrl,
        MaxNumberOfMessages: 10,
        VisibilityTimeout: 30,
        WaitTimeSeconds: 0,
      }),
    );
    if (!batch.Messages?.length) return messages;
    messages.push(...batch.Messages);
  }
}

const toEvent = (messages: readonly Message[], region: string, duplicate = false): SQSEvent => ({
  Records: messages.flatMap((m, i) =>
    Array.from({ length: duplicate ? 2 : 1 }, (_, copy) => ({
      messageId: `${m.MessageId ?? i}${copy ? '-again' : ''}`,
      receiptHandle: m.ReceiptHandle ?? '',
      body: m.Body ?? '',
      attributes: {} as SQSEvent['Records'][number]['attributes'],
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: `arn:aws:sqs:${region}:123456789012:inbox`,
      awsRegion: region,
    })),
  ),
});

/**
 * Stands in for the SQS event-source mapping, which the emulator does not run: hands messages to the
 * deployed inbox bundle in batches of 10, deletes what it acknowledged, and makes its reported failures
 * visible again. Returns the failures it saw.
 */
export async function deliver(
  endpoint: string,
  region: SyncRegion,
  messages: readonly Message[],
  options: PumpOptions = {},
): Promise<number> {
  const sqs = new SQSClient({ region: region.region, endpoint, credentials });
  let failures = 0;
  for (let i = 0; i < messages.length; i += 10) {
    const batch = messages.slice(i, i + 10);
    const { response } = await invokeDeployed(
      endpoint,
      region.region,
      region.stackDir,
      region.inboxFunction,
      toEvent(batch, region.region, options.duplicate),
      options.overrides,
    );
    const failed = new Set(
      (response as SQSBatchResponse).batchItemFailures.map((f) => f.itemIdentifier.replace(/-again$/, '')),
    );
    failures += failed.size;
    const acked = batch.filter((m) => !failed.has(m.MessageId ?? ''));
    if (acked.length > 0) {
      await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: region.inboxUrl,
          Entries: acked.map((m, n) => ({ Id: String(n), ReceiptHandle: m.ReceiptHandle ?? '' })),
        }),
      );
    }
    const retry = batch.filter((m) => failed.has(m.MessageId ?? ''));
    if (retry.length > 0) {
      await sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: region.inboxUrl,
          Entries: retry.map((m, n) => ({
            Id: String(n),
            ReceiptHandle: m.ReceiptHandle ?? '',
            VisibilityTimeout: 0,
          })),
        }),
      );
    }
  }
  return failures;
}

export interface PumpOptions {
  /** Hand every message to the consumer twice. */
  readonly duplicate?: boolean;
  /** Settings over the deployed consumer's (e.g. a shorter `SYNC_SETTLE_MS`). */
  readonly overrides?: Readonly<Record<string, string>>;
}

/** Drains a region's inbox through the deployed consumer until it is empty. */
export async function pump(endpoint: string, region: SyncRegion, options: PumpOptions = {}): Promise<void> {
  for (let round = 0; round < 50; round++) {
    const messages = await receiveAll(endpoint, region);
    if (messages.length === 0) return;
    await deliver(endpoint, region, messages, options);
  }
  throw new Error(`inbox of ${region.region} did not drain`);
}

/** A document as a region holds it, canonically encoded, and the value of one counter field. */
export async function documentIn(endpoint: string, region: SyncRegion, document: string, counter = 'count') {
  const state = await writer(endpoint, region).read(document);
  const field = state.get(counter);
  return { encoded: encodeDocument(state), count: field ? (readField(field) as number) : 0 };
}
