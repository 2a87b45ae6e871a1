import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetBucketEncryptionCommand, GetPublicAccessBlockCommand, S3Client } from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  SQSClient,
  type Message,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';

/** SDK clients for one region of the emulator. */
export function emulatorClients(endpoint: string, region: string) {
  const config = {
    region,
    endpoint,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    forcePathStyle: true,
  };
  return {
    sns: new SNSClient(config),
    sqs: new SQSClient(config),
    s3: new S3Client(config),
    dynamodb: new DynamoDBClient(config),
  };
}

/** Bodies of every message waiting in a queue (drains it). */
export async function drain(sqs: SQSClient, queueUrl: string): Promise<string[]> {
  const bodies: string[] = [];
  for (;;) {
    const received = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
    );
    const messages = received.Messages ?? [];
    if (messages.length === 0) return bodies;
    bodies.push(...messages.map((m) => m.Body ?? ''));
  }
}

export async function purge(sqs: SQSClient, queueUrl: string): Promise<void> {
  await sqs.send(new PurgeQueueCommand({ QueueUrl: queueUrl }));
}

export async function publish(sns: SNSClient, topicArn: string, message: string): Promise<void> {
  await sns.send(new PublishCommand({ TopicArn: topicArn, Message: message }));
}

/** The topic ARNs an inbox's policy admits, read back from the queue. */
export async function admittedTopics(sqs: SQSClient, queueUrl: string): Promise<string[]> {
  const attributes = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['Policy'] }),
  );
  const policy = JSON.parse(attributes.Attributes?.Policy ?? '{}') as {
    Statement?: Array<{
      Effect: string;
      Principal?: { Service?: string };
      Condition?: { ArnEquals?: Record<string, string | string[]> };
    }>;
  };
  return (policy.Statement ?? [])
    .filter((s) => s.Effect === 'Allow' && s.Principal?.Service === 'sns.amazonaws.com')
    .flatMap((s) => {
      const arns = s.Condition?.ArnEquals?.['aws:SourceArn'] ?? [];
      return Array.isArray(arns) ? arns : [arns];
    })
    .sort();
}

/** A bucket's default encryption and public-access block, as S3 reports them. */
export async function bucketProtection(s3: S3Client, bucket: string) {
  const encryption = await s3.send(new GetBucketEncryptionCommand({ Bucket: bucket }));
  const block = await s3.send(new GetPublicAccessBlockCommand({ Bucket: bucket }));
  const rule = encryption.ServerSideEncryptionConfiguration?.Rules?.[0]?.ApplyServerSideEncryptionByDefault;
  return {
    algorithm: rule?.SSEAlgorithm,
    kmsKey: rule?.KMSMasterKeyID,
    publicAccessBlock: block.PublicAccessBlockConfiguration,
  };
}

/**
 * What an event-source mapping does with received messages: hands them to the function (`invoke`, the
 * deployed bundle) as Lambda's SQS event, then deletes those it did not report as failed.
 */
export async function consumeWith(
  sqs: SQSClient,
  queueUrl: string,
  region: string,
  messages: readonly Message[],
  invoke: (event: SQSEvent) => Promise<unknown>,
): Promise<SQSBatchResponse> {
  const queueArn = (
    await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))
  ).Attributes?.QueueArn as string;
  const now = String(Date.now());
  const event: SQSEvent = {
    Records: messages.map((m) => ({
      messageId: m.MessageId ?? '',
      receiptHandle: m.ReceiptHandle ?? '',
      body: m.Body ?? '',
      attributes: {
        ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount ?? '1',
        SentTimestamp: now,
        SenderId: 'AIDAEXAMPLESENDER',
        ApproximateFirstReceiveTimestamp: now,
      },
      messageAttributes: {},
      md5OfBody: m.MD5OfBody ?? '',
      eventSource: 'aws:sqs',
      eventSourceARN: queueArn,
      awsRegion: region,
    })),
  };
  const answer = (await invoke(event)) as SQSBatchResponse;
  const failed = new Set(answer.batchItemFailures.map((f) => f.itemIdentifier));
  const done = messages.filter((m) => !failed.has(m.MessageId ?? ''));
  if (done.length > 0)
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: done.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
      }),
    );
  return answer;
}
