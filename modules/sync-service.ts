import type {
  CloudwatchMetricAlarm,
  CloudwatchMetricAlarmConfig,
} from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { Construct } from 'constructs';
import { BundledFunction } from './bundled-function';
import type { DynamodbTable, GlobalSecondaryIndex } from './dynamodb-table';
import type { KmsKey } from './kms-key';
import { alarmNameOf, notifyingAlarm } from './lib/alarm';
import type { PolicyStatement } from './lib/policy';
import { fail, requireIntInRange, requireMatch } from './lib/validate';
import { QueueTrigger, queueConsumerStatements } from './queue-trigger';
import { Schedule } from './schedule';
import { SyncBus } from './sync-bus';

/** Deliveries of one batch the inbox's visibility timeout covers: a batch is never redelivered while it runs. */
const VISIBILITY_TIMEOUTS_PER_RUN = 6;
/** Where the anti-entropy keeps its checkpoint: one item of the state table, under this partition key. */
const CHECKPOINT_PARTITION = 'sync-anti-entropy';
/** Prefix of the state objects (full states too large for a message) in each region's bucket. */
const STATE_OBJECT_PREFIX = 'sync/';
/** Replication lag (p99, ms) past which a peer counts as behind. */
const REPLICATION_LAG_ALARM_MS = 60_000;
/** Age (s) of the inbox's oldest message past which the inbox counts as stuck. */
const INBOX_AGE_ALARM_SEC = 900;
/** S3's bucket names: 3-63 of lowercase letters, digits, `.`, `-`, starting and ending with a letter or digit. */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** The service's alarms besides its functions' (each named `<name>-<id in kebab case>`), and one per peer below. */
const ALARM_IDS = [
  'InboxDeadLetters',
  'InboxOldestMessage',
  'Undelivered',
  'NotificationsFailed',
  'PublishFailures',
  'Contention',
  'DeadLettered',
  'AntiEntropyFailures',
  'Divergence',
] as const;
type AlarmId = (typeof ALARM_IDS)[number] | `ReplicationLag-${string}`;
const replicationLagAlarmId = (peer: string): AlarmId => `ReplicationLag-${peer}`;

/** The `sync-documents` index: one entry per document head, so documents are listed without their parts. */
const DOCUMENTS_INDEX: GlobalSecondaryIndex = {
  indexName: 'sync-documents',
  partitionKey: { name: 'syncShard', type: 'S' },
  sortKey: { name: 'changedAt', type: 'N' },
  // The sync writes these (and the keys) on a document's head item only: the index is sparse.
  projection: { include: ['digest', 'version'] },
};

export interface SyncServiceProps {
  /** Name prefix of the service's functions, schedule and alarms, e.g. `dev-sync`: `<name>-inbox`, `<name>-anti-entropy`. */
  readonly name: string;
  /** This region. */
  readonly region: string;
  /** Every other region of the environment: the only origins whose messages merge here. */
  readonly peerRegions: readonly string[];
  /** The region's end of the sync bus: the topic deltas go to, the inbox, its dead-letter and redrive queues. */
  readonly bus: SyncBus;
  /**
   * The region's state table, where documents live (`pk`/`sk`), with the documents index
   * (`SyncService.DOCUMENTS_INDEX` among its `globalSecondaryIndexes`).
   */
  readonly stateTable: DynamodbTable;
  /**
   * The region's key, for the functions' logs, queues and environment and this region's state objects; the
   * same alias (`kmsKey.aliasName`) names the key of every region, which encrypts that region's bucket.
   */
  readonly kmsKey: KmsKey;
  /**
   * The bucket of each region of the environment (this one's included) where full states too large for a
   * message travel, under `sync/` (the quota service's snapshot buckets).
   */
  readonly stateBucketOf: (region: string) => string;
  /** How far ahead of this region's clock a peer's stamps may run before its messages are refused. Default: 300. */
  readonly maxClockSkewSec?: number;
  /** Minutes between anti-entropy passes (1-1440). Default: 5. */
  readonly antiEntropyIntervalMin?: number;
  /** Memory of the inbox function, MiB. Default: 256. */
  readonly memoryMiB?: number;
  /** Timeout of the inbox function, seconds; with the batching window it sets the inbox's visibility timeout. Default: 10. */
  readonly timeoutSec?: number;
  /** Seconds the inbox's event-source mapping gathers a batch (0-300). Default: 1. */
  readonly inboxBatchingWindowSec?: number;
  /** Inbox invocations at once (2-1000): bounds a burst of peers' messages against the state table. Default: 5. */
  readonly inboxMaxConcurrency?: number;
  /** Documents the inbox merges in parallel per batch (1-10). Default: 4. */
  readonly mergeConcurrency?: number;
  /** Timeout of the anti-entropy function, seconds (10-900). Default: 120. */
  readonly antiEntropyTimeoutSec?: number;
  /** Memory of the anti-entropy function, MiB. Default: 256. */
  readonly antiEntropyMemoryMiB?: number;
  /** Documents per pass of anti-entropy's incremental sweep (10-10,000). Default: 1000. */
  readonly sweepPageSize?: number;
  /** Seconds a document must be quiet before its digest is compared with a peer's (10-3600). Default: 60. */
  readonly settleSec?: number;
  /** Log retention of each function, days. Default: 365. */
  readonly logRetentionDays?: number;
  /** Encrypt the functions' environment with `kmsKey`. Default: true. */
  readonly encryptEnvironment?: boolean;
  /** Topic (in this region) the functions' and the service's alarms notify. */
  readonly alarmTopicArn: string;
  /** Environment name, as the operator's commands in alarm descriptions take it (`npm run redrive -- <env> <region>`). Default: `<env>`. */
  readonly environmentName?: string;
  /** Create the inbox's event-source mapping enabled (off only on the emulator, which cannot run it). Default: true. */
  readonly inboxTriggerEnabled?: boolean;
}

/**
 * The cross-region sync service of one region: the inbox consumer (merges what peers publish, answers their
 * pulls; permanent failures to the bus's dead-letter queue with their reason) on an SQS event-source mapping
 * with a concurrency cap, and the anti-entropy function on its schedule (digests of what changed and of one
 * page of a sweep, read from the state table's sparse documents index), each with the least privilege it
 * needs, and alarms on dead letters, a stuck inbox, undelivered messages, publish failures, contention,
 * divergence and replication lag. The bus is its own construct: the regional stack adds both.
 */
export class SyncService extends Construct {
  /** The state table's index the sync lists documents by; the stack gives it to the state table. */
  static readonly DOCUMENTS_INDEX: GlobalSecondaryIndex = DOCUMENTS_INDEX;

  readonly inbox: BundledFunction;
  readonly antiEntropy: BundledFunction;
  readonly trigger: QueueTrigger;
  readonly schedule: Schedule;
  readonly alarms: readonly CloudwatchMetricAlarm[];

  /** Names of the service's functions, from its `name`. */
  static functionNames(name: string): { readonly inbox: string; readonly antiEntropy: string } {
    return { inbox: `${name}-inbox`, antiEntropy: `${name}-anti-entropy` };
  }

  /** Names of the service's own alarms (its functions' come from `BundledFunction.alarmNamesOf`). */
  static alarmNames(name: string, peerRegions: readonly string[]): string[] {
    return [...ALARM_IDS, ...peerRegions.map(replicationLagAlarmId)].map((id) => alarmNameOf(name, id));
  }

  /**
   * The inbox's visibility timeout for a consumer of `timeoutSec` polled with a batching window of
   * `batchingWindowSec`: 6 x the timeout + the window (a record waits in the window after it was received).
   */
  static inboxVisibilityTimeoutSec(timeoutSec: number, batchingWindowSec: number): number {
    return VISIBILITY_TIMEOUTS_PER_RUN * timeoutSec + batchingWindowSec;
  }

  constructor(scope: Construct, id: string, props: SyncServiceProps) {
    super(scope, id);
    requireMatch('SyncService', 'name', props.name, /^[a-zA-Z0-9_-]{1,40}$/, '1-40 letters, digits, - or _');
    if (
      props.peerRegions.length === 0 ||
      props.peerRegions.includes(props.region) ||
      new Set(props.peerRegions).size !== props.peerRegions.length
    )
      fail(
        'SyncService',
        'peerRegions',
        props.peerRegions,
        `at least one region other than ${props.region}, each once`,
      );
    const int = (prop: string, value: number, min: number, max: number) =>
      requireIntInRange('SyncService', prop, value, min, max);
    const skewSec = int('maxClockSkewSec', props.maxClockSkewSec ?? 300, 1, 3600);
    const everyMin = int('antiEntropyIntervalMin', props.antiEntropyIntervalMin ?? 5, 1, 1440);
    const timeoutSec = int('timeoutSec', props.timeoutSec ?? 10, 1, 900);
    const windowSec = int('inboxBatchingWindowSec', props.inboxBatchingWindowSec ?? 1, 0, 300);
    const maxConcurrency = int('inboxMaxConcurrency', props.inboxMaxConcurrency ?? 5, 2, 1000);
    const mergeConcurrency = int('mergeConcurrency', props.mergeConcurrency ?? 4, 1, 10);
    const antiEntropyTimeoutSec = int('antiEntropyTimeoutSec', props.antiEntropyTimeoutSec ?? 120, 10, 900);
    const sweepPageSize = int('sweepPageSize', props.sweepPageSize ?? 1000, 10, 10_000);
    const settleSec = int('settleSec', props.settleSec ?? 60, 10, 3600);
    const { bus, stateTable, kmsKey, region } = props;

    const visibilitySec = SyncService.inboxVisibilityTimeoutSec(timeoutSec, windowSec);
    if (bus.visibilityTimeoutSec < visibilitySec)
      fail(
        'SyncService',
        'bus.visibilityTimeoutSec',
        bus.visibilityTimeoutSec,
        `at least 6 x the inbox function's timeout + the batching window (6 x ${timeoutSec} + ${windowSec} = ${visibilitySec} s), so a batch is not redelivered while it runs`,
      );
    const index = stateTable.globalSecondaryIndexes.find((i) => i.indexName === DOCUMENTS_INDEX.indexName);
    if (!index || JSON.stringify(index) !== JSON.stringify(DOCUMENTS_INDEX))
      fail(
        'SyncService',
        'stateTable.globalSecondaryIndexes',
        stateTable.globalSecondaryIndexes.map((i) => i.indexName),
        `the ${DOCUMENTS_INDEX.indexName} index as SyncService.DOCUMENTS_INDEX defines it (hash syncShard S, range changedAt N, INCLUDE digest and version)`,
      );

    const regions = [region, ...props.peerRegions];
    const buckets = new Map(regions.map((r) => [r, props.stateBucketOf(r)] as const));
    for (const [r, bucket] of buckets) {
      if (!BUCKET_NAME.test(bucket) || bucket.includes('..'))
        fail('SyncService', `stateBucketOf(${r})`, bucket, 'an S3 bucket name: 3-63 of a-z 0-9 . -');
    }
    const bucketArn = (r: string) => `arn:aws:s3:::${buckets.get(r) as string}`;
    const account = kmsKey.accountId;

    const common = {
      region,
      kmsKey,
      environment: {
        STATE_TABLE_NAME: stateTable.name,
        SYNC_TOPIC_ARN: bus.topic.arn,
        SYNC_PEER_REGIONS: props.peerRegions.join(','),
        SYNC_INBOX_URL: bus.inbox.url,
        SYNC_DEAD_LETTER_QUEUE_URL: bus.deadLetterQueue.url,
        SYNC_MAX_RECEIVE_COUNT: String(bus.maxReceiveCount),
        SYNC_MAX_CLOCK_SKEW_MS: String(skewSec * 1000),
        SYNC_DOCUMENTS_INDEX: DOCUMENTS_INDEX.indexName,
        SYNC_SWEEP_PAGE_SIZE: String(sweepPageSize),
        SYNC_SETTLE_MS: String(settleSec * 1000),
        SYNC_BUCKETS: [...regions]
          .sort()
          .map((r) => `${r}=${buckets.get(r) as string}`)
          .join(','),
        SYNC_MERGE_CONCURRENCY: String(mergeConcurrency),
      },
      logRetentionDays: props.logRetentionDays,
      encryptEnvironment: props.encryptEnvironment,
      alarmTopicArn: props.alarmTopicArn,
    };

    const inboxStatements: PolicyStatement[] = [
      {
        sid: 'MergeIntoState',
        // Commits are TransactWriteItems, which IAM authorises as the Put, Update, Delete and ConditionCheck
        // of each item; a writer that lost a race joins the document's line with an UpdateItem
        // (runtime/sync/dynamodb-store.ts). DescribeTable: the table's creation time tells a restored table
        // (runtime/sync/folding.ts).
        actions: [
          'dynamodb:GetItem',
          'dynamodb:BatchGetItem',
          'dynamodb:Query',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:ConditionCheckItem',
          'dynamodb:DescribeTable',
        ],
        resources: [stateTable.arn],
      },
      ...queueConsumerStatements('ConsumeInbox', bus.inbox, bus.deadLetterQueue),
      // Answers peers' pulls with full states, and pulls from peers.
      { sid: 'PublishToPeers', actions: ['sns:Publish'], resources: [bus.topic.arn] },
      {
        sid: 'WriteOwnStateObjects',
        actions: ['s3:PutObject'],
        resources: [`${bucketArn(region)}/${STATE_OBJECT_PREFIX}*`],
      },
      {
        sid: 'ReadEveryStateObject',
        actions: ['s3:GetObject'],
        resources: regions.map((r) => `${bucketArn(r)}/${STATE_OBJECT_PREFIX}*`),
      },
      {
        // Without ListBucket a state object that expired reads as AccessDenied (retried), not NoSuchKey.
        sid: 'TellMissingStateObjects',
        actions: ['s3:ListBucket'],
        resources: regions.map(bucketArn),
      },
      {
        // S3 encrypts this region's objects with this region's key (the bucket's default).
        sid: 'EncryptOwnStateObjects',
        actions: ['kms:GenerateDataKey'],
        resources: [kmsKey.arn],
        conditions: { StringEquals: { 'kms:ViaService': `s3.${region}.amazonaws.com` } },
      },
      {
        sid: 'DecryptPeerStateObjects',
        actions: ['kms:Decrypt'],
        resources: props.peerRegions.map((r) => `arn:aws:kms:${r}:${account}:key/*`),
        conditions: {
          'ForAnyValue:StringEquals': { 'kms:ResourceAliases': [`alias/${kmsKey.aliasName}`] },
          StringEquals: { 'kms:ViaService': props.peerRegions.map((r) => `s3.${r}.amazonaws.com`) },
        },
      },
    ];
    this.inbox = new BundledFunction(this, 'Inbox', {
      ...common,
      entry: 'runtime/sync/inbox/handler.ts',
      functionName: SyncService.functionNames(props.name).inbox,
      statements: inboxStatements,
      memoryMiB: props.memoryMiB,
      timeoutSec,
    });
    this.trigger = new QueueTrigger(this, 'InboxTrigger', {
      queue: bus.inbox,
      consumer: this.inbox,
      batchingWindowSec: windowSec,
      maximumConcurrency: maxConcurrency,
      enabled: props.inboxTriggerEnabled,
    });

    this.antiEntropy = new BundledFunction(this, 'AntiEntropy', {
      ...common,
      entry: 'runtime/sync/anti-entropy/handler.ts',
      functionName: SyncService.functionNames(props.name).antiEntropy,
      statements: [
        {
          // The index only: a pass never reads documents' items, and never scans the table.
          sid: 'ListDocuments',
          actions: ['dynamodb:Query', 'dynamodb:Scan'],
          resources: [stateTable.indexArn(DOCUMENTS_INDEX.indexName)],
        },
        {
          sid: 'KeepCheckpoint',
          actions: ['dynamodb:GetItem', 'dynamodb:PutItem'],
          resources: [stateTable.arn],
          conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [CHECKPOINT_PARTITION] } },
        },
        { sid: 'PublishDigests', actions: ['sns:Publish'], resources: [bus.topic.arn] },
      ],
      memoryMiB: props.antiEntropyMemoryMiB,
      timeoutSec: antiEntropyTimeoutSec,
    });
    this.schedule = new Schedule(this, 'AntiEntropySchedule', {
      ruleName: `${props.name}-anti-entropy`,
      expression: everyMin === 1 ? 'rate(1 minute)' : `rate(${everyMin} minutes)`,
      target: this.antiEntropy,
    });

    this.alarms = this.createAlarms(props, settleSec, everyMin);
  }

  private createAlarms(
    props: SyncServiceProps,
    settleSec: number,
    everyMin: number,
  ): CloudwatchMetricAlarm[] {
    const { bus, region, name } = props;
    const env = props.environmentName ?? '<env>';
    const deadLetters = SyncBus.deadLetterQueueName(bus.name);
    const undelivered = SyncBus.undeliveredQueueName(bus.name);
    const alarm = (alarmId: AlarmId, description: string, settings: Partial<CloudwatchMetricAlarmConfig>) =>
      notifyingAlarm(this, alarmId, {
        prefix: name,
        topicArn: props.alarmTopicArn,
        alarmDescription: description,
        ...settings,
      });
    const queueDepth = (queueName: string) => ({
      namespace: 'AWS/SQS',
      metricName: 'ApproximateNumberOfMessagesVisible',
      dimensions: { QueueName: queueName },
      statistic: 'Maximum',
    });
    const custom = (metricName: string, peer?: string) => ({
      namespace: 'Estate/Sync',
      metricName,
      dimensions: { service: 'sync', region, ...(peer ? { peer } : {}) },
    });
    const repairs = `anti-entropy compares digests every ${everyMin} min once a document was quiet ${settleSec} s`;
    return [
      alarm(
        'InboxDeadLetters',
        `Sync messages in ${region} were dead-lettered (${deadLetters}): they did not merge. Each carries a reasonCode and reason naming the rule it broke. Fix the cause, then run \`npm run redrive -- ${env} ${region}\`, which moves them back to the inbox and counts them by reason.`,
        queueDepth(deadLetters),
      ),
      alarm(
        'InboxOldestMessage',
        `The sync inbox in ${region} holds a message older than ${INBOX_AGE_ALARM_SEC / 60} minutes: the inbox function is failing, throttled or not polling (its event-source mapping disabled). Check the function's errors and throttles, and that the mapping of ${name}-inbox is enabled.`,
        {
          namespace: 'AWS/SQS',
          metricName: 'ApproximateAgeOfOldestMessage',
          dimensions: { QueueName: SyncBus.inboxName(bus.name) },
          statistic: 'Maximum',
          threshold: INBOX_AGE_ALARM_SEC,
        },
      ),
      alarm(
        'Undelivered',
        `SNS could not deliver messages of ${region}'s sync topic to a peer's inbox after its retries and moved them to ${undelivered}: a peer's inbox, its queue policy or its key policy is missing or refuses this topic. Fix delivery; ${repairs} and pulls what differs. Then inspect and purge the queue.`,
        queueDepth(undelivered),
      ),
      alarm(
        'NotificationsFailed',
        `Deliveries of ${region}'s sync topic to a peer's inbox failed (each goes to ${undelivered} after SNS's retries). Check the peers' inboxes, their queue policies and their keys.`,
        {
          namespace: 'AWS/SNS',
          metricName: 'NumberOfNotificationsFailed',
          dimensions: { TopicName: bus.name },
        },
      ),
      alarm(
        'PublishFailures',
        `The sync in ${region} failed to publish a change to its topic (the change is stored; peers learn it from anti-entropy). Check the functions' logs for the error, the topic and its key policy.`,
        custom('PublishFailures'),
      ),
      alarm(
        'Contention',
        `Sync writes in ${region} kept losing conditional writes of one document to concurrent writers after their retries. Find the hot document in the logs; spread its writes or lower the inbox's maximum concurrency (sync.inboxMaxConcurrency).`,
        custom('Contention'),
      ),
      alarm(
        'DeadLettered',
        `The sync inbox in ${region} dead-lettered records (a partial batch response, which counts as a successful invocation, so the function's error alarm stays quiet). Read the reasons, fix, then run \`npm run redrive -- ${env} ${region}\`.`,
        custom('DeadLettered'),
      ),
      alarm(
        'AntiEntropyFailures',
        `Anti-entropy in ${region} could not publish the digests of some documents in a pass (the next pass tries again). Check ${name}-anti-entropy's logs and the topic.`,
        custom('AntiEntropyFailures'),
      ),
      alarm(
        'Divergence',
        `Documents in ${region} differed from a peer's for 3 consecutive 5-minute periods although ${repairs} and pulls them: merges are failing or being refused. Check the dead-letter queue, FieldsRefused and TypeClashes, and the per-peer Divergence metric.`,
        { ...custom('Divergence'), evaluationPeriods: 3, datapointsToAlarm: 3 },
      ),
      ...props.peerRegions.map((peer) =>
        alarm(
          replicationLagAlarmId(peer),
          `Changes from ${peer} took more than ${REPLICATION_LAG_ALARM_MS / 1000} s (p99 over 5 minutes) to merge in ${region}: ${peer}'s topic, this inbox or its function is slow or backed up. Check the inbox's oldest message, its throttles, and clock skew between the regions.`,
          {
            ...custom('ReplicationLagMs', peer),
            statistic: undefined,
            extendedStatistic: 'p99',
            threshold: REPLICATION_LAG_ALARM_MS,
          },
        ),
      ),
    ];
  }
}
