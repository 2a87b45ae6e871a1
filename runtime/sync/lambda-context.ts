import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import * as z from 'zod/mini';
import { GROUP } from '../crdt';
import { loadConfig } from '../lib/config';
import { boundedText } from '../lib/redact';
import { DynamodbDocumentStore } from './dynamodb-store';
import { SyncReplica, type SyncMetrics } from './replica';
import { SnsPublisher } from './sns-publisher';

const regionList = z
  .string()
  .check(
    z.refine(
      (text) =>
        text.split(',').every((region) => GROUP.test(region)) &&
        new Set(text.split(',')).size === text.split(',').length,
      'expected the peer regions, comma-separated, each once',
    ),
  );

const settings = z.object({
  AWS_REGION: z.string().check(z.minLength(1, 'expected the region the function runs in')),
  STATE_TABLE_NAME: z.string().check(z.minLength(1, "expected the region's state table")),
  SYNC_TOPIC_ARN: z.string().check(z.startsWith('arn:', "expected the region's sync topic ARN")),
  SYNC_PEER_REGIONS: regionList,
  SYNC_INBOX_URL: z.string().check(z.minLength(1, "expected the URL of the region's sync inbox")),
  SYNC_DEAD_LETTER_QUEUE_URL: z
    .string()
    .check(z.minLength(1, "expected the URL of the inbox's dead-letter queue")),
  SYNC_MAX_RECEIVE_COUNT: z._default(
    z.coerce
      .number()
      .check(z.int(), z.gte(1), z.lte(1000, "expected the inbox's maxReceiveCount, 1 to 1000")),
    5,
  ),
  SYNC_MAX_CLOCK_SKEW_MS: z._default(
    z.coerce
      .number()
      .check(z.int(), z.gte(1000), z.lte(3_600_000, 'expected the allowed clock skew, 1000 to 3600000 ms')),
    300_000,
  ),
});
export type SyncSettings = z.output<typeof settings>;

/** What the sync handlers share: settings, SDK clients (created once per container), the replica. */
export interface SyncContext {
  readonly config: SyncSettings;
  readonly replica: SyncReplica;
  readonly sqs: SQSClient;
  readonly metrics: Metrics;
}

/** Merges, retries, lag and clashes as CloudWatch metrics (embedded metric format); clashes also logged. */
function syncMetrics(metrics: Metrics, logger: Logger): SyncMetrics {
  return {
    merged: (count) => metrics.addMetric('Merges', MetricUnit.Count, count),
    conflictRetried: (count) => metrics.addMetric('ConcurrencyRetries', MetricUnit.Count, count),
    lagMs: (ms) => metrics.addMetric('LagMs', MetricUnit.Milliseconds, ms),
    publishFailed: (count) => metrics.addMetric('PublishFailures', MetricUnit.Count, count),
    typeClash: (document, field, types) => {
      metrics.addMetric('TypeClashes', MetricUnit.Count, 1);
      logger.warn('type clash: regions created a field as different types; it reads as the earliest', {
        document: boundedText(document, 120),
        field: boundedText(field, 120),
        types,
      });
    },
    fieldsRefused: (document, count, rule) => {
      metrics.addMetric('FieldsRefused', MetricUnit.Count, count);
      logger.warn('fields kept their local state: merging them would break a limit', {
        document: boundedText(document, 120),
        count,
        rule,
      });
    },
    antiEntropyFailed: (count) => metrics.addMetric('AntiEntropyFailures', MetricUnit.Count, count),
  };
}

export function createSyncContext(logger: Logger, env: NodeJS.ProcessEnv = process.env): SyncContext {
  const config = loadConfig(settings, env);
  const region = config.AWS_REGION;
  const metrics = new Metrics({
    namespace: 'Estate/Sync',
    serviceName: 'sync',
    defaultDimensions: { region },
  });
  const replica = new SyncReplica({
    region,
    peers: config.SYNC_PEER_REGIONS.split(','),
    store: new DynamodbDocumentStore(new DynamoDBClient({ region }), config.STATE_TABLE_NAME),
    publisher: new SnsPublisher(new SNSClient({ region }), config.SYNC_TOPIC_ARN),
    now: Date.now,
    metrics: syncMetrics(metrics, logger),
    maxClockSkewMs: config.SYNC_MAX_CLOCK_SKEW_MS,
  });
  return { config, replica, sqs: new SQSClient({ region }), metrics };
}
