import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import * as z from 'zod/mini';
import { GROUP } from '../crdt';
import { loadConfig } from '../lib/config';
import { boundedText } from '../lib/redact';
import { AntiEntropy } from './anti-entropy';
import { DynamodbCheckpointStore, DynamodbDocumentIndex } from './dynamodb-index';
import { DynamodbDocumentStore } from './dynamodb-store';
import { SyncReplica, type SyncMetrics } from './replica';
import { SnsPublisher } from './sns-publisher';
import { S3StateObjects, type StateObjects } from './state-objects';

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
  SYNC_DOCUMENTS_INDEX: z._default(
    z.string().check(z.minLength(1, "expected the state table's documents index")),
    'sync-documents',
  ),
  SYNC_SWEEP_PAGE_SIZE: z._default(
    z.coerce
      .number()
      .check(z.int(), z.gte(10), z.lte(10_000, 'expected documents per sweep page, 10 to 10000')),
    1000,
  ),
  SYNC_SETTLE_MS: z._default(
    z.coerce
      .number()
      .check(z.int(), z.gte(1000), z.lte(3_600_000, 'expected the settle time, 1000 to 3600000 ms')),
    60_000,
  ),
  SYNC_MERGE_CONCURRENCY: z._default(
    z.coerce.number().check(z.int(), z.gte(1), z.lte(10, 'expected documents merged at once, 1 to 10')),
    4,
  ),
  SYNC_BUCKETS: z._default(
    z
      .string()
      .check(
        z.refine(
          (text) =>
            text === '' ||
            text
              .split(',')
              .every((pair) => /^[A-Za-z0-9_.:-]{1,50}=[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(pair)),
          'expected region=bucket pairs, comma-separated',
        ),
      ),
    '',
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
  readonly antiEntropy: AntiEntropy;
  readonly objects: StateObjects;
  readonly sqs: SQSClient;
  readonly metrics: Metrics;
}

/** Merges, retries, lag and clashes as CloudWatch metrics (embedded metric format); clashes also logged. */
function syncMetrics(metrics: Metrics, logger: Logger): SyncMetrics {
  return {
    merged: (count) => metrics.addMetric('Merges', MetricUnit.Count, count),
    conflictRetried: (count) => metrics.addMetric('ConcurrencyRetries', MetricUnit.Count, count),
    contention: (count) => metrics.addMetric('Contention', MetricUnit.Count, count),
    lagMs: (ms, peer) => {
      // One metric per peer: p50 and p99 of replication lag are statistics of it.
      const single = metrics.singleMetric();
      single.addDimension('peer', peer);
      single.addMetric('ReplicationLagMs', MetricUnit.Milliseconds, ms);
    },
    diverged: (count, peer) => {
      const single = metrics.singleMetric();
      single.addDimension('peer', peer);
      single.addMetric('Divergence', MetricUnit.Count, count);
      metrics.addMetric('Divergence', MetricUnit.Count, count);
    },
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
    lineFailed: (count) => metrics.addMetric('LineFailures', MetricUnit.Count, count),
  };
}

const bucketsOf = (pairs: string): Map<string, string> =>
  new Map(pairs === '' ? [] : pairs.split(',').map((pair) => pair.split('=') as [string, string]));

export function createSyncContext(logger: Logger, env: NodeJS.ProcessEnv = process.env): SyncContext {
  const config = loadConfig(settings, env);
  const region = config.AWS_REGION;
  const metrics = new Metrics({
    namespace: 'Estate/Sync',
    serviceName: 'sync',
    defaultDimensions: { region },
  });
  const peers = config.SYNC_PEER_REGIONS.split(',');
  const dynamodb = new DynamoDBClient({ region });
  const s3 = new Map<string, S3Client>();
  const objects = new S3StateObjects(region, bucketsOf(config.SYNC_BUCKETS), (r) => {
    let client = s3.get(r);
    if (!client) s3.set(r, (client = new S3Client({ region: r })));
    return client;
  });
  const publisher = new SnsPublisher(new SNSClient({ region }), config.SYNC_TOPIC_ARN, objects);
  const counted = syncMetrics(metrics, logger);
  const replica = new SyncReplica({
    region,
    peers,
    store: new DynamodbDocumentStore(
      dynamodb,
      config.STATE_TABLE_NAME,
      Date.now,
      config.SYNC_DOCUMENTS_INDEX,
    ),
    publisher,
    now: Date.now,
    metrics: counted,
    maxClockSkewMs: config.SYNC_MAX_CLOCK_SKEW_MS,
    logger,
  });
  const antiEntropy = new AntiEntropy({
    replica,
    peers,
    maxClockSkewMs: config.SYNC_MAX_CLOCK_SKEW_MS,
    index: new DynamodbDocumentIndex(dynamodb, config.STATE_TABLE_NAME, config.SYNC_DOCUMENTS_INDEX),
    checkpoints: new DynamodbCheckpointStore(dynamodb, config.STATE_TABLE_NAME),
    publisher,
    now: Date.now,
    settleMs: config.SYNC_SETTLE_MS,
    pageSize: config.SYNC_SWEEP_PAGE_SIZE,
    metrics: counted,
  });
  return { config, replica, antiEntropy, objects, sqs: new SQSClient({ region }), metrics };
}
