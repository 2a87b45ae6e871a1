import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { KmsKey } from '../../modules/kms-key';
import { QuotaService } from '../../modules/quota-service';
import { SecureBucket } from '../../modules/secure-bucket';
import { canonicalConfig, type AllocationConfig } from '../../runtime/quota/config';
import { only, parse, resources, roleStatement, roleStatements } from '../support/synthesized';

const ACCOUNT = '222222222222';
const ALARMS = 'arn:aws:sns:eu-central-1:222222222222:dev-alarms';
const REGIONS = ['ap-southeast-1', 'eu-central-1', 'us-east-1'];
const ALLOCATION: AllocationConfig = {
  windowSec: 120,
  activationDelayMs: 2100,
  regions: REGIONS.map((region) => ({ region, weight: 1 })),
  resources: [{ name: 'requests', limit: 100_000, burstSec: 1, floors: [] }],
};
const bucketOf = (region: string) => `dev-snapshots-${ACCOUNT}-${region}`;

const service = (scope: Construct, props: Partial<ConstructorParameters<typeof QuotaService>[2]> = {}) =>
  new QuotaService(scope, 'Quota', {
    name: 'dev-quota',
    region: 'eu-central-1',
    accountId: ACCOUNT,
    allocation: ALLOCATION,
    snapshotBucketOf: bucketOf,
    kmsKey: new KmsKey(scope, 'Key', { aliasName: 'dev-estate', accountId: ACCOUNT, region: 'eu-central-1' }),
    regionalKeyAlias: 'dev-estate',
    alarmTopicArn: ALARMS,
    ...props,
  });

const statementsOf = roleStatements;
const statement = roleStatement;

describe('QuotaService', () => {
  const synthesized = Testing.synthScope((scope) => void service(scope));

  it('writes only its own table and its own snapshot keys, and reads every region’s snapshot keys', () => {
    expect(statement(synthesized, 'WriteOwnSnapshot')).toMatchObject({
      Action: ['s3:PutObject'],
      Resource: [expect.stringMatching(/\/eu-central-1\/\*$/)],
    });
    expect(statement(synthesized, 'ReadEverySnapshot').Resource).toEqual(
      REGIONS.map((r) => `arn:aws:s3:::${bucketOf(r)}/${r}/*`),
    );
    expect(statement(synthesized, 'WriteLocalOverrides')).toMatchObject({ Action: ['dynamodb:UpdateItem'] });
    // The heartbeat only: the table's own partition.
    expect(statement(synthesized, 'RecordPassCompleted')).toMatchObject({
      Action: ['dynamodb:PutItem'],
      Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['#quota'] } },
    });
    expect(statement(synthesized, 'DecryptEverySnapshot').Condition).toEqual({
      'ForAnyValue:StringEquals': { 'kms:ResourceAliases': ['alias/dev-estate'] },
      StringEquals: { 'kms:ViaService': REGIONS.map((r) => `s3.${r}.amazonaws.com`) },
    });
    const writes = statementsOf(synthesized).filter((st) =>
      (st.Action as string[]).some((a) => /^(dynamodb:(Put|Update|Delete)|s3:Put)/.test(a)),
    );
    for (const st of writes) expect(JSON.stringify(st.Resource)).not.toMatch(/us-east-1|ap-southeast-1/);
  });

  it('runs one pass at a time at the start of every window, never retried late, within the window', () => {
    expect(only(synthesized, 'aws_cloudwatch_event_rule').schedule_expression).toBe('cron(0/2 * * * ? *)');
    expect(only(synthesized, 'aws_cloudwatch_event_target').retry_policy).toMatchObject({
      maximum_retry_attempts: 0,
    });
    const fn = only(synthesized, 'aws_lambda_function');
    expect(fn).toMatchObject({ reserved_concurrent_executions: 1, timeout: 110, memory_size: 1024 });
    expect(only(synthesized, 'aws_lambda_function_event_invoke_config')).toMatchObject({
      maximum_retry_attempts: 0,
      maximum_event_age_in_seconds: 60,
    });
    expect((fn.environment as { variables: Record<string, string> }).variables).toMatchObject({
      QUOTA_CONFIG: canonicalConfig(ALLOCATION),
      QUOTA_SNAPSHOT_BUCKETS: REGIONS.map((r) => `${r}=${bucketOf(r)}`).join(','),
      QUOTA_SHADOW: 'false',
    });
  });

  it('keeps its limiter table (TTL on) and an expiring, versioned snapshot bucket', () => {
    const table = resources(synthesized, 'aws_dynamodb_table').find((t) => t.name === 'dev-quota-limits');
    expect(table).toMatchObject({
      ttl: { enabled: true, attribute_name: 'ttl' },
      hash_key: 'pk',
      range_key: 'sk',
    });
    expect(only(synthesized, 'aws_s3_bucket').bucket).toBe(bucketOf('eu-central-1'));
    expect(only(synthesized, 'aws_s3_bucket_versioning').versioning_configuration).toMatchObject({
      status: 'Enabled',
    });
  });

  it('alarms, on the alarm topic, on a peer unknown for 3 windows, no pass for 3 windows, and a refused snapshot', () => {
    const alarms = resources(synthesized, 'aws_cloudwatch_metric_alarm').filter((a) =>
      (a.alarm_name as string).startsWith('dev-quota-'),
    );
    const byName = new Map(alarms.map((a) => [a.alarm_name as string, a]));
    for (const region of REGIONS)
      expect(byName.get(`dev-quota-peer-unknown-${region}`)).toMatchObject({
        metric_name: 'PeerUnknown',
        namespace: 'Estate/Quota',
        dimensions: { service: 'quota-sync', region: 'eu-central-1', peer: region },
        period: 120,
        evaluation_periods: 3,
        treat_missing_data: 'notBreaching',
      });
    expect(byName.get('dev-quota-no-pass')).toMatchObject({
      metric_name: 'PassCompleted',
      comparison_operator: 'LessThanThreshold',
      treat_missing_data: 'breaching',
    });
    expect(byName.get('dev-quota-snapshots-refused')).toMatchObject({
      metric_name: 'SnapshotDecodeFailures',
    });
    for (const alarm of alarms) expect(alarm.alarm_actions).toEqual([ALARMS]);
  });

  it('keeps the bucket it took over from the regional stack: moved blocks from its old addresses', () => {
    const before = parse(
      Testing.synthScope(
        (scope) =>
          void new SecureBucket(scope, 'Snapshots', {
            bucketName: bucketOf('eu-central-1'),
            kmsKey: new KmsKey(scope, 'Key', { aliasName: 'k', accountId: ACCOUNT, region: 'eu-central-1' }),
          }),
      ),
    );
    const after = parse(
      Testing.synthScope((scope) => void service(scope, { snapshotBucketMovedFrom: ['Snapshots'] })),
    );
    const oldIds = Object.entries(before.resource ?? {})
      .filter(([type]) => type.startsWith('aws_s3_bucket'))
      .flatMap(([type, byId]) => Object.keys(byId as object).map((id) => `${type}.${id}`));
    const moved = (after as { moved?: { from: string; to: string }[] }).moved ?? [];
    expect(moved.map((m) => m.from).sort()).toEqual(oldIds.sort());
    for (const m of moved) expect(m.to).toMatch(/^aws_s3_bucket[a-z_]*\.Quota_Snapshots_/);
  });

  it.each<[string, Partial<ConstructorParameters<typeof QuotaService>[2]>, RegExp]>([
    [
      'a window that does not divide an hour',
      { allocation: { ...ALLOCATION, windowSec: 420 } },
      /allocation\.windowSec.*whole minutes that divide an hour/,
    ],
    [
      'a region outside the allocation',
      { region: 'sa-east-1' },
      /allocation\.regions.*including this region/,
    ],
    ['a timeout past the window', { timeoutSec: 115 }, /timeoutSec.*between 10 and 110/],
    [
      'floors above the limit',
      {
        allocation: {
          ...ALLOCATION,
          resources: [{ ...ALLOCATION.resources[0]!, floors: [{ region: 'eu-central-1', floor: 100_001 }] }],
        },
      },
      /allocation\.resources\[0\]\.floors.*at most the limit/,
    ],
  ])('refuses %s, naming the field', (_what, props, message) => {
    expect(() => Testing.synthScope((scope) => void service(scope, props))).toThrow(message);
  });
});
