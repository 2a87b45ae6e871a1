import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetBucketEncryptionCommand, GetPublicAccessBlockCommand, S3Client } from '@aws-sdk/client-s3';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import {
  GetQueueAttributesCommand,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';

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
