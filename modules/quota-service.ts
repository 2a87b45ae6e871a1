import type { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { Construct } from 'constructs';
import {
  AllocationConfigError,
  canonicalConfig,
  parseAllocationConfig,
  type AllocationConfig,
} from '../runtime/quota/config';
import { BundledFunction } from './bundled-function';
import { DynamodbTable } from './dynamodb-table';
import type { KmsKey } from './kms-key';
import { alarmNameOf, notifyingAlarm } from './lib/alarm';
import type { PolicyStatement } from './lib/policy';
import { fail, requireIntInRange, requireMatch } from './lib/validate';
import { Schedule } from './schedule';
import { SecureBucket } from './secure-bucket';

/** The partition of the limiter table's own items (the sync's heartbeat); entities never start with `#`. */
const HEARTBEAT_PARTITION = '#quota';

/** An EventBridge cron firing at the start of every window (windows divide an hour, so they align with it). */
function windowCron(windowSec: number): string {
  const minutes = windowSec / 60;
  if (minutes === 60) return 'cron(0 * * * ? *)';
  return minutes === 1 ? 'cron(* * * * ? *)' : `cron(0/${minutes} * * * ? *)`;
}

/** The service's alarms besides its function's (each named `<name>-<id in kebab case>`), and one per region below. */
const ALARM_IDS = ['NoPass', 'SnapshotsRefused'] as const;
type AlarmId = (typeof ALARM_IDS)[number] | `PeerUnknown-${string}`;
const peerUnknownAlarmId = (peer: string): AlarmId => `PeerUnknown-${peer}`;

/** Lambda's limit on a function's environment variables, all together. */
const MAX_ENVIRONMENT_BYTES = 4096;

export interface QuotaServiceProps {
  /** Name prefix, e.g. `dev-quota`: the table `<name>-limits`, the function and schedule `<name>-sync`. */
  readonly name: string;
  /** This region. */
  readonly region: string;
  readonly accountId: string;
  /** What every region allocates under; its regions are the estate's, this one included. */
  readonly allocation: AllocationConfig;
  /** The snapshot bucket of each region of `allocation` (this one is created here). */
  readonly snapshotBucketOf: (region: string) => string;
  /** The region's key (table, bucket, function); the same alias names every region's key. */
  readonly kmsKey: KmsKey;
  /** Alias (without `alias/`) of the regional keys that encrypt every region's snapshot bucket. */
  readonly regionalKeyAlias: string;
  /** Compute and report allocations, write no override. Default: false. */
  readonly shadow?: boolean;
  /** Refuse DeleteTable on the limiter table. Default: true. */
  readonly deletionProtection?: boolean;
  /** `prevent_destroy` on the limiter table. Default: true. */
  readonly preventDestroy?: boolean;
  /** Let `terraform destroy` empty the snapshot bucket. Default: false. */
  readonly forceDestroy?: boolean;
  /** Deny non-TLS requests to the snapshot bucket (off only on the emulator: plain HTTP). Default: true. */
  readonly tlsOnlyBucket?: boolean;
  /** Where the snapshot bucket lived before this construct owned it (construct ids below the stack). */
  readonly snapshotBucketMovedFrom?: readonly string[];
  readonly memoryMiB?: number;
  /** Timeout of the sync function, seconds; at most the sync window. Default: 30. */
  readonly timeoutSec?: number;
  readonly logRetentionDays?: number;
  readonly encryptEnvironment?: boolean;
  /** Topic (in this region) the alarms notify. */
  readonly alarmTopicArn: string;
}

/**
 * The per-region quota sync (ADR-127) of one region: its limiter table (token buckets, window counters,
 * overrides; TTL on), its snapshot bucket (`{region}/{epoch}.json`, versioned, encrypted, expiring), the
 * sync function on a schedule of one sync window, and alarms on a peer unknown for 3 windows and on
 * snapshots refused. The function writes only this region's table and its own snapshot keys and reads
 * every region's snapshot keys. Other handlers enforce quotas through `limiterAccess()`.
 */
export class QuotaService extends Construct {
  readonly table: DynamodbTable;
  readonly snapshots: SecureBucket;
  readonly sync: BundledFunction;
  readonly schedule: Schedule;
  readonly alarms: readonly CloudwatchMetricAlarm[];
  private readonly allocationJson: string;
  private readonly kmsKeyArn: string;
  private readonly region: string;

  /** Name of the sync function, from the service's `name`. */
  static functionName(name: string): string {
    return `${name}-sync`;
  }

  /** Names of the service's own alarms for the allocation's `regions` (its function's: `BundledFunction.alarmNamesOf`). */
  static alarmNames(name: string, regions: readonly string[]): string[] {
    return [...regions.map(peerUnknownAlarmId), ...ALARM_IDS].map((id) => alarmNameOf(name, id));
  }

  constructor(scope: Construct, id: string, props: QuotaServiceProps) {
    super(scope, id);
    requireMatch('QuotaService', 'name', props.name, /^[a-zA-Z0-9_-]{1,40}$/, '1-40 letters, digits, - or _');
    let allocation: AllocationConfig;
    try {
      allocation = parseAllocationConfig(props.allocation, 'allocation');
    } catch (error) {
      if (error instanceof AllocationConfigError) fail('QuotaService', error.field, '(see rule)', error.rule);
      throw error;
    }
    const regions = allocation.regions.map((r) => r.region);
    if (!regions.includes(props.region))
      fail('QuotaService', 'allocation.regions', regions, `a list including this region, ${props.region}`);
    // A pass must end inside its window's interval; one that does not is safe (the hot path falls back) but
    // wasted.
    const timeoutSec = requireIntInRange(
      'QuotaService',
      'timeoutSec',
      props.timeoutSec ?? allocation.windowSec - 10,
      10,
      allocation.windowSec - 10,
    );
    this.allocationJson = canonicalConfig(allocation);
    this.kmsKeyArn = props.kmsKey.arn;
    this.region = props.region;

    this.table = new DynamodbTable(this, 'Limits', {
      tableName: `${props.name}-limits`,
      partitionKey: { name: 'pk', type: 'S' },
      sortKey: { name: 'sk', type: 'S' },
      kmsKey: props.kmsKey,
      ttlAttribute: 'ttl',
      deletionProtection: props.deletionProtection,
      preventDestroy: props.preventDestroy,
    });
    this.snapshots = new SecureBucket(this, 'Snapshots', {
      bucketName: props.snapshotBucketOf(props.region),
      kmsKey: props.kmsKey,
      // The sync reads the previous epoch's snapshots only; two days leave room to investigate.
      expireAfterDays: 2,
      noncurrentVersionDays: 1,
      forceDestroy: props.forceDestroy,
      movedFrom: props.snapshotBucketMovedFrom,
      tlsOnly: props.tlsOnlyBucket,
    });

    const buckets = regions.map((r) => `${r}=${props.snapshotBucketOf(r)}`).join(',');
    const environment = {
      ...this.limiterEnvironment(),
      QUOTA_SNAPSHOT_BUCKETS: buckets,
      QUOTA_SHADOW: String(props.shadow ?? false),
    };
    const bytes = Object.entries(environment).reduce(
      (sum, [k, v]) => sum + k.length + Buffer.byteLength(v),
      0,
    );
    if (bytes > MAX_ENVIRONMENT_BYTES - 512)
      fail(
        'QuotaService',
        'allocation',
        `${bytes} bytes of environment`,
        `an allocation config that fits a function's environment (${MAX_ENVIRONMENT_BYTES} bytes in all)`,
      );
    const ownKeys = `${this.snapshots.arn}/${props.region}/*`;
    this.sync = new BundledFunction(this, 'Sync', {
      entry: 'runtime/quota/handler.ts',
      functionName: QuotaService.functionName(props.name),
      region: props.region,
      kmsKey: props.kmsKey,
      statements: [
        {
          sid: 'ReadLocalLimits',
          actions: ['dynamodb:Scan', 'dynamodb:GetItem'],
          resources: [this.table.arn],
        },
        { sid: 'WriteLocalOverrides', actions: ['dynamodb:UpdateItem'], resources: [this.table.arn] },
        {
          sid: 'RecordPassCompleted',
          actions: ['dynamodb:PutItem'],
          resources: [this.table.arn],
          conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [HEARTBEAT_PARTITION] } },
        },
        { sid: 'WriteOwnSnapshot', actions: ['s3:PutObject'], resources: [ownKeys] },
        {
          sid: 'ReadEverySnapshot',
          actions: ['s3:GetObject'],
          resources: regions.map((r) => `arn:aws:s3:::${props.snapshotBucketOf(r)}/${r}/*`),
        },
        {
          // Without ListBucket a missing snapshot reads as AccessDenied, not NoSuchKey.
          sid: 'TellMissingSnapshots',
          actions: ['s3:ListBucket'],
          resources: regions.map((r) => `arn:aws:s3:::${props.snapshotBucketOf(r)}`),
        },
        {
          sid: 'DecryptEverySnapshot',
          actions: ['kms:Decrypt'],
          resources: regions.map((r) => `arn:aws:kms:${r}:${props.accountId}:key/*`),
          conditions: {
            'ForAnyValue:StringEquals': { 'kms:ResourceAliases': [`alias/${props.regionalKeyAlias}`] },
            StringEquals: { 'kms:ViaService': regions.map((r) => `s3.${r}.amazonaws.com`) },
          },
        },
      ],
      environment,
      // Up to three peers' snapshots of up to 250,000 entries each are decoded at once.
      memoryMiB: props.memoryMiB ?? 1024,
      timeoutSec,
      // One pass at a time per region, and never a late retry: the next window's pass follows anyway.
      reservedConcurrency: 1,
      asyncRetries: { attempts: 0, maxEventAgeSec: 60 },
      logRetentionDays: props.logRetentionDays,
      encryptEnvironment: props.encryptEnvironment,
      alarmTopicArn: props.alarmTopicArn,
    });
    this.schedule = new Schedule(this, 'Schedule', {
      ruleName: `${props.name}-sync`,
      // At the start of every window (a rate would start whenever the rule was created).
      expression: windowCron(allocation.windowSec),
      target: this.sync,
      // A late pass is worth less than the next one, which runs a window later.
      maxRetries: 0,
    });

    const alarm = (
      alarmId: AlarmId,
      metricName: string,
      description: string,
      periods: number,
      peer?: string,
      when: { readonly comparison: string; readonly missing: string } = {
        comparison: 'GreaterThanOrEqualToThreshold',
        missing: 'notBreaching',
      },
    ) =>
      notifyingAlarm(this, alarmId, {
        prefix: props.name,
        topicArn: props.alarmTopicArn,
        alarmDescription: description,
        namespace: 'Estate/Quota',
        metricName,
        dimensions: { service: 'quota-sync', region: props.region, ...(peer ? { peer } : {}) },
        period: allocation.windowSec,
        evaluationPeriods: periods,
        datapointsToAlarm: periods,
        comparisonOperator: when.comparison,
        treatMissingData: when.missing,
      });
    this.alarms = [
      ...regions.map((peer) =>
        alarm(
          peerUnknownAlarmId(peer),
          'PeerUnknown',
          `The quota sync in ${props.region} has not known ${peer}'s demand for 3 windows: shares stay shrunk`,
          3,
          peer,
        ),
      ),
      alarm(
        'NoPass',
        'PassCompleted',
        `The quota sync in ${props.region} has completed no pass for 3 windows: its overrides expire to static config`,
        3,
        undefined,
        { comparison: 'LessThanThreshold', missing: 'breaching' },
      ),
      alarm(
        'SnapshotsRefused',
        'SnapshotDecodeFailures',
        `The quota sync in ${props.region} refused a snapshot it could not decode`,
        1,
      ),
    ];
  }

  /** What another function needs to enforce quotas with `createQuotaLimiter()`. */
  limiterAccess(): { readonly environment: Record<string, string>; readonly statements: PolicyStatement[] } {
    return {
      environment: this.limiterEnvironment(),
      statements: [
        {
          sid: 'ConsumeQuota',
          actions: ['dynamodb:GetItem', 'dynamodb:UpdateItem'],
          resources: [this.table.arn],
        },
        {
          // The table is encrypted with the region's key, whichever key the consuming function uses.
          sid: 'UseQuotaTableKey',
          actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey'],
          resources: [this.kmsKeyArn],
          conditions: { StringEquals: { 'kms:ViaService': `dynamodb.${this.region}.amazonaws.com` } },
        },
      ],
    };
  }

  private limiterEnvironment(): Record<string, string> {
    return { QUOTA_TABLE_NAME: this.table.name, QUOTA_CONFIG: this.allocationJson };
  }
}
