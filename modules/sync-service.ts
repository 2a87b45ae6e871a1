import { Construct } from 'constructs';
import { BundledFunction } from './bundled-function';
import type { DynamodbTable } from './dynamodb-table';
import type { KmsKey } from './kms-key';
import { fail, requireIntInRange, requireMatch } from './lib/validate';
import { QueueTrigger, queueConsumerStatements } from './queue-trigger';
import { Schedule } from './schedule';
import type { SyncBus } from './sync-bus';

export interface SyncServiceProps {
  /** Name prefix of the service's functions and schedule, e.g. `dev-sync`: `<name>-inbox`, `<name>-anti-entropy`. */
  readonly name: string;
  /** This region. */
  readonly region: string;
  /** Every other region of the environment: the only origins whose messages merge here. */
  readonly peerRegions: readonly string[];
  /** The region's end of the sync bus: the topic deltas go to, the inbox and its dead-letter queue. */
  readonly bus: SyncBus;
  /** The region's state table, where documents live (`pk`/`sk`). */
  readonly stateTable: DynamodbTable;
  /** The region's key, for the functions' logs, queues and environment. */
  readonly kmsKey: KmsKey;
  /** How far ahead of this region's clock a peer's stamps may run before its messages are refused. Default: 300. */
  readonly maxClockSkewSec?: number;
  /** Minutes between anti-entropy passes (full state of every document to the peers). Default: 5. */
  readonly antiEntropyIntervalMin?: number;
  /** Memory of each function, MiB. Default: 256. */
  readonly memoryMiB?: number;
  /** Timeout of each function, seconds. Default: 10. */
  readonly timeoutSec?: number;
  /** Log retention of each function, days. Default: 365. */
  readonly logRetentionDays?: number;
  /** Encrypt the functions' environment with `kmsKey`. Default: true. */
  readonly encryptEnvironment?: boolean;
  /** Topic (in this region) the functions' alarms notify. */
  readonly alarmTopicArn: string;
  /** Create the inbox's event-source mapping enabled (off only on the emulator, which cannot run it). Default: true. */
  readonly inboxTriggerEnabled?: boolean;
}

/**
 * The cross-region sync service of one region: the inbox consumer (merges what peers publish; permanent
 * failures to the bus's dead-letter queue with their reason) on an SQS event-source mapping, and the
 * anti-entropy function on its schedule, each with the least privilege it needs. The bus is its own
 * construct: the regional stack adds both.
 */
export class SyncService extends Construct {
  readonly inbox: BundledFunction;
  readonly antiEntropy: BundledFunction;
  readonly trigger: QueueTrigger;
  readonly schedule: Schedule;

  constructor(scope: Construct, id: string, props: SyncServiceProps) {
    super(scope, id);
    requireMatch('SyncService', 'name', props.name, /^[a-zA-Z0-9_-]{1,40}$/, '1-40 letters, digits, - or _');
    if (props.peerRegions.length === 0 || props.peerRegions.includes(props.region))
      fail('SyncService', 'peerRegions', props.peerRegions, `at least one region other than ${props.region}`);
    const skewSec = requireIntInRange(
      'SyncService',
      'maxClockSkewSec',
      props.maxClockSkewSec ?? 300,
      1,
      3600,
    );
    const everyMin = requireIntInRange(
      'SyncService',
      'antiEntropyIntervalMin',
      props.antiEntropyIntervalMin ?? 5,
      1,
      1440,
    );
    const { bus, stateTable } = props;
    const timeoutSec = props.timeoutSec ?? 10;
    if (bus.visibilityTimeoutSec < 6 * timeoutSec)
      fail(
        'SyncService',
        'bus.visibilityTimeoutSec',
        bus.visibilityTimeoutSec,
        `at least 6 x the inbox function's timeout (${6 * timeoutSec} s), so a batch is not redelivered while it runs`,
      );

    const common = {
      region: props.region,
      kmsKey: props.kmsKey,
      environment: {
        STATE_TABLE_NAME: stateTable.name,
        SYNC_TOPIC_ARN: bus.topic.arn,
        SYNC_PEER_REGIONS: props.peerRegions.join(','),
        SYNC_INBOX_URL: bus.inbox.url,
        SYNC_DEAD_LETTER_QUEUE_URL: bus.deadLetterQueue.url,
        SYNC_MAX_RECEIVE_COUNT: String(bus.maxReceiveCount),
        SYNC_MAX_CLOCK_SKEW_MS: String(skewSec * 1000),
      },
      memoryMiB: props.memoryMiB,
      timeoutSec,
      logRetentionDays: props.logRetentionDays,
      encryptEnvironment: props.encryptEnvironment,
      alarmTopicArn: props.alarmTopicArn,
    };

    this.inbox = new BundledFunction(this, 'Inbox', {
      ...common,
      entry: 'runtime/sync/inbox/handler.ts',
      functionName: `${props.name}-inbox`,
      statements: [
        {
          sid: 'MergeIntoState',
          // DescribeTable: the table's creation time tells a restored table (see runtime/sync/folding.ts).
          actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DescribeTable'],
          resources: [stateTable.arn],
        },
        ...queueConsumerStatements('ConsumeInbox', bus.inbox, bus.deadLetterQueue),
      ],
    });
    this.trigger = new QueueTrigger(this, 'InboxTrigger', {
      queue: bus.inbox,
      consumer: this.inbox,
      enabled: props.inboxTriggerEnabled,
    });

    this.antiEntropy = new BundledFunction(this, 'AntiEntropy', {
      ...common,
      entry: 'runtime/sync/anti-entropy/handler.ts',
      functionName: `${props.name}-anti-entropy`,
      statements: [
        { sid: 'ReadState', actions: ['dynamodb:GetItem', 'dynamodb:Scan'], resources: [stateTable.arn] },
        { sid: 'PublishFullState', actions: ['sns:Publish'], resources: [bus.topic.arn] },
      ],
    });
    this.schedule = new Schedule(this, 'AntiEntropySchedule', {
      ruleName: `${props.name}-anti-entropy`,
      expression: everyMin === 1 ? 'rate(1 minute)' : `rate(${everyMin} minutes)`,
      target: this.antiEntropy,
    });
  }
}
