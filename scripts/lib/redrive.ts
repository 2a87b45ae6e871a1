import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
  type Message,
} from '@aws-sdk/client-sqs';
import type { AwsRegion, EnvironmentConfig } from '../../environments';
import { SecretsReplicator } from '../../modules/secrets-replicator';
import { SyncBus } from '../../modules/sync-bus';
import { resourceName } from '../../stacks/names';

/** What a redrive moved, by the reason code its dead-letter copy carried. */
export interface RedriveResult {
  readonly moved: number;
  readonly byReason: ReadonlyMap<string, number>;
}

/** Messages moved there by the queue's own redrive policy carry no reason. */
export const NO_REASON = '(none: moved by the queue redrive policy)';

/** SendMessageBatch's cap on the sum of its messages' sizes (AWS may allow more; this always fits). */
const BATCH_PAYLOAD_BYTES = 262_144;

/** Messages grouped in order into batches of at most 10 whose bodies sum to at most the payload cap. */
function batchesOf(messages: readonly Message[]): Message[][] {
  const batches: Message[][] = [];
  let current: Message[] = [];
  let bytes = 0;
  for (const message of messages) {
    const size = Buffer.byteLength(message.Body ?? '', 'utf8');
    if (current.length === 10 || (current.length > 0 && bytes + size > BATCH_PAYLOAD_BYTES)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(message);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

async function depthOf(sqs: SQSClient, queue: string): Promise<number> {
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queue, AttributeNames: ['ApproximateNumberOfMessages'] }),
  );
  return Number(Attributes?.ApproximateNumberOfMessages ?? 0);
}

/**
 * Moves the messages of a dead-letter queue back to the queue they came from, after a fix: each body is
 * sent unchanged (the reason attributes stay behind) and deleted from the dead-letter queue only once the
 * send succeeded, so a failure midway loses nothing (a message may then be delivered twice, which the
 * consumers merge idempotently). Moves at most what the queue held when it started (messages dead-lettered
 * again while it runs wait for the next redrive) and at most `max`; stops when the queue is empty.
 */
export async function redrive(
  sqs: SQSClient,
  from: string,
  to: string,
  options: { max?: number; waitSeconds?: number } = {},
): Promise<RedriveResult> {
  const max = Math.min(options.max ?? Number.POSITIVE_INFINITY, await depthOf(sqs, from));
  const byReason = new Map<string, number>();
  let moved = 0;
  while (moved < max) {
    const received = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: from,
        MaxNumberOfMessages: Math.min(10, max - moved),
        MessageAttributeNames: ['All'],
        VisibilityTimeout: 60,
        WaitTimeSeconds: options.waitSeconds ?? 1,
      }),
    );
    const messages = received.Messages ?? [];
    if (messages.length === 0) break;
    for (const batch of batchesOf(messages)) {
      const sent = await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: to,
          Entries: batch.map((m, i) => ({ Id: String(i), MessageBody: m.Body ?? '' })),
        }),
      );
      const ok = new Set((sent.Successful ?? []).map((entry) => Number(entry.Id)));
      const done = batch.filter((_, i) => ok.has(i));
      if (done.length > 0) {
        const deleted = await sqs.send(
          new DeleteMessageBatchCommand({
            QueueUrl: from,
            Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
          }),
        );
        if (deleted.Failed?.length)
          throw new Error(
            `${deleted.Failed.length} message(s) were sent but not deleted from the dead-letter queue; they will be sent again by the next redrive`,
          );
      }
      for (const message of done) {
        const reason = message.MessageAttributes?.reasonCode?.StringValue ?? NO_REASON;
        byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
      }
      moved += done.length;
      if (done.length < batch.length)
        throw new Error(`sending ${batch.length - done.length} message(s) failed; they stay dead-lettered`);
    }
  }
  return { moved, byReason };
}

/** Dead-letter queues the redrive command knows, by capability: where each one's messages go back to. */
export const REDRIVE_QUEUES: Readonly<
  Record<string, (env: EnvironmentConfig) => { from: string; to: string }>
> = {
  sync: (env) => ({
    from: SyncBus.deadLetterQueueName(resourceName(env, 'sync')),
    to: SyncBus.inboxName(resourceName(env, 'sync')),
  }),
  secrets: (env) => ({
    from: SecretsReplicator.deadLetterQueueName(resourceName(env, 'secrets')),
    to: SecretsReplicator.queueName(resourceName(env, 'secrets')),
  }),
};

/** An SQS client for the environment's region: the emulator for `local`, the default credentials elsewhere. */
export function sqsClientFor(env: EnvironmentConfig, region: AwsRegion): SQSClient {
  return env.emulator
    ? new SQSClient({
        region,
        endpoint: env.emulator.endpoint,
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      })
    : new SQSClient({ region });
}

export async function queueUrl(sqs: SQSClient, name: string): Promise<string> {
  const found = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
  if (!found.QueueUrl) throw new Error(`no queue named ${name}`);
  return found.QueueUrl;
}
