import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import * as z from 'zod/mini';
import { loadConfig } from '../lib/config';
import { DynamodbDocumentStore } from './dynamodb-store';
import { SyncReplica, type SyncMetrics } from './replica';
import { SnsPublisher } from './sns-publisher';

const settings = z.object({
  AWS_REGION: z.string().check(z.minLength(1, 'expected the region the function runs in')),
  STATE_TABLE_NAME: z.string().check(z.minLength(1, "expected the region's state table")),
  SYNC_TOPIC_ARN: z.string().check(z.startsWith('arn:', "expected the region's sync topic ARN")),
  SYNC_DEAD_LETTER_QUEUE_URL: z
    .string()
    .check(z.minLength(1, "expected the URL of the inbox's dead-letter queue")),
});
export type SyncSettings = z.output<typeof settings>;

/** What the sync handlers share: settings, SDK clients (created once per container), the replica. */
export interface SyncContext {
  readonly config: SyncSettings;
  readonly replica: SyncReplica;
  readonly sqs: SQSClient;
  readonly metrics: Metrics;
}

/** Merges, optimistic-concurrency retries and lag as CloudWatch metrics (embedded metric format). */
function syncMetrics(metrics: Metrics): SyncMetrics {
  return {
    merged: (count) => metrics.addMetric('Merges', MetricUnit.Count, count),
    conflictRetried: (count) => metrics.addMetric('ConcurrencyRetries', MetricUnit.Count, count),
    lagMs: (ms) => metrics.addMetric('LagMs', MetricUnit.Milliseconds, ms),
    publishFailed: (count) => metrics.addMetric('PublishFailures', MetricUnit.Count, count),
  };
}

export function createSyncContext(env: NodeJS.ProcessEnv = process.env): SyncContext {
  const config = loadConfig(settings, env);
  const region = config.AWS_REGION;
  const metrics = new Metrics({
    namespace: 'Estate/Sync',
    serviceName: 'sync',
    defaultDimensions: { region },
  });
  const replica = new SyncReplica({
    region,
    store: new DynamodbDocumentStore(new DynamoDBClient({ region }), config.STATE_TABLE_NAME),
    publisher: new SnsPublisher(new SNSClient({ region }), config.SYNC_TOPIC_ARN),
    now: Date.now,
    metrics: syncMetrics(metrics),
  });
  return { config, replica, sqs: new SQSClient({ region }), metrics };
}
