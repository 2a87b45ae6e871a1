import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { validateEnvironment } from '../../environments';
import { prod } from '../../environments/prod';
import { DynamodbTable, type GlobalSecondaryIndex } from '../../modules/dynamodb-table';
import { KmsKey } from '../../modules/kms-key';
import { peerFilterPolicy, SyncBus, type SyncBusProps } from '../../modules/sync-bus';
import { SyncService, type SyncServiceProps } from '../../modules/sync-service';
import { only, policyOf, resources, type Block } from '../support/synthesized';

/** A reference to `type.<id starting with prefix>.attr`, whatever hash cdktf gave the id. */
const ref = (type: string, prefix: string, attr: string) =>
  expect.stringMatching(new RegExp(`^\\$\\{${type}\\.${prefix}_[0-9A-F]{8}\\.${attr}\\}$`));

const ACCOUNT = '222222222222';
const REGION = 'eu-central-1';
const PEERS = ['us-east-1', 'ap-southeast-1'];
const ALARMS = 'arn:aws:sns:eu-central-1:222222222222:dev-alarms';
const bucketOf = (region: string) => `dev-snapshots-${ACCOUNT}-${region}`;

const keyOf = (scope: Construct) =>
  new KmsKey(scope, 'Key', { aliasName: 'dev-estate', accountId: ACCOUNT, region: REGION });

const busOf = (scope: Construct, kmsKey: KmsKey, props: Partial<SyncBusProps> = {}) =>
  new SyncBus(scope, 'Bus', {
    name: 'dev-sync',
    region: REGION,
    peerRegions: PEERS,
    accountId: ACCOUNT,
    kmsKey,
    ...props,
  });

interface Setup {
  readonly service?: Partial<SyncServiceProps>;
  readonly bus?: Partial<SyncBusProps>;
  readonly indexes?: readonly GlobalSecondaryIndex[];
}

function service(scope: Construct, setup: Setup = {}): SyncService {
  const kmsKey = keyOf(scope);
  const stateTable = new DynamodbTable(scope, 'State', {
    tableName: 'dev-region-state',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
    kmsKey,
    globalSecondaryIndexes: setup.indexes ?? [SyncService.DOCUMENTS_INDEX],
  });
  return new SyncService(scope, 'Sync', {
    name: 'dev-sync',
    region: REGION,
    peerRegions: PEERS,
    bus: busOf(scope, kmsKey, setup.bus),
    stateTable,
    kmsKey,
    stateBucketOf: bucketOf,
    environmentName: 'dev',
    alarmTopicArn: ALARMS,
    ...setup.service,
  });
}

const synth = (setup: Setup = {}) => Testing.synthScope((scope) => void service(scope, setup));

const fn = (synthesized: string, name: string): Block => {
  const found = resources(synthesized, 'aws_lambda_function').find((f) => f.function_name === name);
  if (!found) throw new Error(`no function ${name}`);
  return found;
};
const variablesOf = (synthesized: string, name: string) =>
  (fn(synthesized, name).environment as { variables: Record<string, string> }).variables;

/** The statements of the role of one function (its policy names the function's construct). */
const statementsOf = (synthesized: string, construct: 'Inbox' | 'AntiEntropy'): Block[] => {
  const policy = resources(synthesized, 'aws_iam_role_policy').find((p) =>
    String(p.role).includes(`Sync_${construct}_Role_`),
  );
  if (!policy) throw new Error(`no role policy for ${construct}`);
  return policyOf(policy).Statement;
};
const statement = (statements: Block[], sid: string): Block => {
  const found = statements.find((s) => s.Sid === sid);
  if (!found) throw new Error(`no statement ${sid}`);
  return found;
};

const TABLE_ARN = ref('aws_dynamodb_table', 'State_Table', 'arn');

describe('SyncBus', () => {
  const synthesized = Testing.synthScope((scope) => void busOf(scope, keyOf(scope)));

  it("gives every peer's subscription a redrive policy to this region's undelivered queue", () => {
    const subscriptions = resources(synthesized, 'aws_sns_topic_subscription');
    expect(subscriptions).toHaveLength(2);
    for (const subscription of subscriptions) {
      expect(JSON.parse(subscription.redrive_policy as string)).toEqual({
        deadLetterTargetArn: ref('aws_sqs_queue', 'Bus_Undelivered', 'arn'),
      });
      // The queue policy letting SNS send exists before SNS may use it.
      expect(subscription.depends_on).toEqual([
        expect.stringMatching(/^aws_sqs_queue_policy\.Bus_UndeliveredPolicy_/),
      ]);
    }
  });

  it('keeps undelivered messages 14 days, encrypted with the region key, sent only by its own topic', () => {
    const queue = resources(synthesized, 'aws_sqs_queue').find((q) => q.name === 'dev-sync-undelivered');
    expect(queue).toMatchObject({
      kms_master_key_id: ref('aws_kms_key', 'Key', 'arn'),
      message_retention_seconds: 14 * 24 * 3600,
    });
    const policy = resources(synthesized, 'aws_sqs_queue_policy').find((p) =>
      String(p.queue_url).includes('Bus_Undelivered_'),
    );
    expect(policyOf(policy ?? {}).Statement).toEqual([
      {
        Sid: 'OwnTopicRedrives',
        Effect: 'Allow',
        Principal: { Service: 'sns.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: ref('aws_sqs_queue', 'Bus_Undelivered', 'arn'),
        Condition: { ArnEquals: { 'aws:SourceArn': ref('aws_sns_topic', 'Bus_Topic', 'arn') } },
      },
    ]);
  });

  it("filters each subscription on message attributes: the peer's own pulls and what is addressed to no one", () => {
    const byPeer = new Map(
      resources(synthesized, 'aws_sns_topic_subscription').map((s) => [String(s.endpoint).split(':')[3], s]),
    );
    for (const peer of PEERS) {
      const subscription = byPeer.get(peer);
      expect(subscription?.filter_policy_scope).toBe('MessageAttributes');
      expect(JSON.parse(subscription?.filter_policy as string)).toEqual({
        $or: [{ to: [peer] }, { to: [{ exists: false }] }],
      });
    }
  });

  it('lets a message without `to` reach every peer, and a pull only the peer it names', () => {
    // SNS semantics of the policy: `$or` of branches; a branch matches when `to` equals one of its strings, or
    // when `exists: false` and the message has attributes but no `to`.
    const matches = (policy: Record<string, unknown>, attributes: Record<string, string>) =>
      (policy.$or as Array<{ to: Array<string | { exists: boolean }> }>).some((branch) =>
        branch.to.some((value) =>
          typeof value === 'string'
            ? attributes.to === value
            : !value.exists && Object.keys(attributes).length > 0 && !('to' in attributes),
        ),
      );
    const delta = { origin: 'eu-central-1', kind: 'delta' };
    const pull = { origin: 'eu-central-1', kind: 'pull', to: 'us-east-1' };
    expect(matches(peerFilterPolicy('us-east-1'), delta)).toBe(true);
    expect(matches(peerFilterPolicy('ap-southeast-1'), delta)).toBe(true);
    expect(matches(peerFilterPolicy('us-east-1'), pull)).toBe(true);
    expect(matches(peerFilterPolicy('ap-southeast-1'), pull)).toBe(false);
  });

  it('defaults the inbox visibility timeout to 6 x a 10 s consumer + a 1 s window', () => {
    const inbox = resources(synthesized, 'aws_sqs_queue').find((q) => q.name === 'dev-sync-inbox');
    expect(inbox?.visibility_timeout_seconds).toBe(61);
  });

  it('refuses a name whose queue names would pass SQS’s 80 characters', () => {
    expect(() =>
      Testing.synthScope((scope) => void busOf(scope, keyOf(scope), { name: 'n'.repeat(62) })),
    ).toThrow(
      'SyncBus: invalid name: received "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"; expected 1-61',
    );
  });
});

describe('SyncService', () => {
  const synthesized = synth();
  const inboxStatements = statementsOf(synthesized, 'Inbox');
  const antiEntropyStatements = statementsOf(synthesized, 'AntiEntropy');

  it('tells both functions the same settings: table, index, sweep, settle, buckets, merge concurrency', () => {
    const expected = {
      STATE_TABLE_NAME: ref('aws_dynamodb_table', 'State_Table', 'name'),
      SYNC_TOPIC_ARN: ref('aws_sns_topic', 'Bus_Topic', 'arn'),
      SYNC_PEER_REGIONS: 'us-east-1,ap-southeast-1',
      SYNC_INBOX_URL: ref('aws_sqs_queue', 'Bus_Inbox', 'url'),
      SYNC_DEAD_LETTER_QUEUE_URL: ref('aws_sqs_queue', 'Bus_DeadLetters', 'url'),
      SYNC_MAX_RECEIVE_COUNT: '5',
      SYNC_MAX_CLOCK_SKEW_MS: '300000',
      SYNC_DOCUMENTS_INDEX: 'sync-documents',
      SYNC_SWEEP_PAGE_SIZE: '1000',
      SYNC_SETTLE_MS: '60000',
      SYNC_BUCKETS: [
        'ap-southeast-1=dev-snapshots-222222222222-ap-southeast-1',
        'eu-central-1=dev-snapshots-222222222222-eu-central-1',
        'us-east-1=dev-snapshots-222222222222-us-east-1',
      ].join(','),
      SYNC_MERGE_CONCURRENCY: '4',
    };
    expect(variablesOf(synthesized, 'dev-sync-inbox')).toEqual(expected);
    expect(variablesOf(synthesized, 'dev-sync-anti-entropy')).toEqual(expected);
  });

  it('passes configured values through, the settle time in milliseconds', () => {
    const configured = synth({
      service: { sweepPageSize: 250, settleSec: 90, mergeConcurrency: 7, maxClockSkewSec: 120 },
    });
    expect(variablesOf(configured, 'dev-sync-anti-entropy')).toMatchObject({
      SYNC_SWEEP_PAGE_SIZE: '250',
      SYNC_SETTLE_MS: '90000',
      SYNC_MERGE_CONCURRENCY: '7',
      SYNC_MAX_CLOCK_SKEW_MS: '120000',
    });
  });

  it('gives anti-entropy its own timeout and memory, the inbox the lambda defaults', () => {
    expect(fn(synthesized, 'dev-sync-anti-entropy')).toMatchObject({ timeout: 120, memory_size: 256 });
    expect(fn(synthesized, 'dev-sync-inbox')).toMatchObject({ timeout: 10, memory_size: 256 });
    const configured = synth({
      service: { antiEntropyTimeoutSec: 300, antiEntropyMemoryMiB: 1024, timeoutSec: 20, memoryMiB: 512 },
      bus: { visibilityTimeoutSec: 121 },
    });
    expect(fn(configured, 'dev-sync-anti-entropy')).toMatchObject({ timeout: 300, memory_size: 1024 });
    expect(fn(configured, 'dev-sync-inbox')).toMatchObject({ timeout: 20, memory_size: 512 });
  });

  it('caps the inbox mapping at the configured concurrency, with its batching window', () => {
    const mapping = (s: string) => only(s, 'aws_lambda_event_source_mapping');
    expect(mapping(synthesized)).toMatchObject({
      scaling_config: { maximum_concurrency: 5 },
      maximum_batching_window_in_seconds: 1,
      function_response_types: ['ReportBatchItemFailures'],
    });
    const configured = synth({
      service: { inboxMaxConcurrency: 40, inboxBatchingWindowSec: 5 },
      bus: { visibilityTimeoutSec: 65 },
    });
    expect(mapping(configured)).toMatchObject({
      scaling_config: { maximum_concurrency: 40 },
      maximum_batching_window_in_seconds: 5,
    });
    // The emulator's disabled mapping sets no scaling (the emulator cannot read it back).
    const disabled = mapping(synth({ service: { inboxTriggerEnabled: false } }));
    expect(disabled.enabled).toBe(false);
    expect(disabled).not.toHaveProperty('scaling_config');
  });

  describe('the inbox role', () => {
    it('reads and commits documents on the state table: the item actions TransactWriteItems is authorised by', () => {
      expect(statement(inboxStatements, 'MergeIntoState')).toEqual({
        Sid: 'MergeIntoState',
        Effect: 'Allow',
        Action: [
          'dynamodb:GetItem',
          'dynamodb:BatchGetItem',
          'dynamodb:Query',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:ConditionCheckItem',
          'dynamodb:DescribeTable',
        ],
        Resource: [TABLE_ARN],
      });
    });

    it("publishes to its own region's topic only", () => {
      expect(statement(inboxStatements, 'PublishToPeers')).toMatchObject({
        Action: ['sns:Publish'],
        Resource: [ref('aws_sns_topic', 'Bus_Topic', 'arn')],
      });
    });

    it("writes state objects under sync/ in its own bucket and reads them under sync/ in every region's", () => {
      expect(statement(inboxStatements, 'WriteOwnStateObjects')).toMatchObject({
        Action: ['s3:PutObject'],
        Resource: [`arn:aws:s3:::${bucketOf(REGION)}/sync/*`],
      });
      expect(statement(inboxStatements, 'ReadEveryStateObject')).toMatchObject({
        Action: ['s3:GetObject'],
        Resource: [REGION, ...PEERS].map((r) => `arn:aws:s3:::${bucketOf(r)}/sync/*`),
      });
      expect(statement(inboxStatements, 'TellMissingStateObjects')).toMatchObject({
        Action: ['s3:ListBucket'],
        Resource: [REGION, ...PEERS].map((r) => `arn:aws:s3:::${bucketOf(r)}`),
      });
      const writes = inboxStatements.filter((s) =>
        (s.Action as string[]).some((a) => a.startsWith('s3:Put')),
      );
      for (const s of writes) expect(JSON.stringify(s.Resource)).not.toMatch(/us-east-1|ap-southeast-1/);
    });

    it("decrypts peers' objects only through S3 with their regional key, and encrypts its own with its key", () => {
      expect(statement(inboxStatements, 'DecryptPeerStateObjects')).toEqual({
        Sid: 'DecryptPeerStateObjects',
        Effect: 'Allow',
        Action: ['kms:Decrypt'],
        Resource: PEERS.map((r) => `arn:aws:kms:${r}:${ACCOUNT}:key/*`),
        Condition: {
          'ForAnyValue:StringEquals': { 'kms:ResourceAliases': ['alias/dev-estate'] },
          StringEquals: { 'kms:ViaService': PEERS.map((r) => `s3.${r}.amazonaws.com`) },
        },
      });
      expect(statement(inboxStatements, 'EncryptOwnStateObjects')).toEqual({
        Sid: 'EncryptOwnStateObjects',
        Effect: 'Allow',
        Action: ['kms:GenerateDataKey'],
        Resource: [ref('aws_kms_key', 'Key', 'arn')],
        Condition: { StringEquals: { 'kms:ViaService': 's3.eu-central-1.amazonaws.com' } },
      });
    });
  });

  describe('the anti-entropy role', () => {
    it('queries and scans the documents index only, never the table', () => {
      const indexArn = expect.stringMatching(
        /^\$\{aws_dynamodb_table\.State_Table_[0-9A-F]{8}\.arn\}\/index\/sync-documents$/,
      );
      expect(statement(antiEntropyStatements, 'ListDocuments')).toEqual({
        Sid: 'ListDocuments',
        Effect: 'Allow',
        Action: ['dynamodb:Query', 'dynamodb:Scan'],
        Resource: [indexArn],
      });
      const onTable = antiEntropyStatements.filter((s) =>
        (s.Resource as string[]).some((r) => /^\$\{aws_dynamodb_table\.[^}]+\.arn\}$/.test(r)),
      );
      expect(onTable.flatMap((s) => s.Action as string[])).not.toContain('dynamodb:Scan');
    });

    it('reads and writes its checkpoint item only, and publishes digests to its topic', () => {
      expect(statement(antiEntropyStatements, 'KeepCheckpoint')).toEqual({
        Sid: 'KeepCheckpoint',
        Effect: 'Allow',
        Action: ['dynamodb:GetItem', 'dynamodb:PutItem'],
        Resource: [TABLE_ARN],
        Condition: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['sync-anti-entropy'] } },
      });
      expect(statement(antiEntropyStatements, 'PublishDigests')).toMatchObject({
        Action: ['sns:Publish'],
        Resource: [ref('aws_sns_topic', 'Bus_Topic', 'arn')],
      });
      const actions = antiEntropyStatements.flatMap((s) => s.Action as string[]);
      expect(actions.filter((a) => a.startsWith('s3:') || a.startsWith('sqs:ReceiveMessage'))).toEqual([]);
    });
  });

  describe('alarms', () => {
    const alarms = resources(synthesized, 'aws_cloudwatch_metric_alarm');
    const alarm = (name: string): Block => {
      const found = alarms.find((a) => a.alarm_name === name);
      if (!found) throw new Error(`no alarm ${name}`);
      return found;
    };
    const customDimensions = { service: 'sync', region: REGION };

    it("notify the environment's alarm topic both ways, each with a description an operator can act on", () => {
      expect(alarms.length).toBeGreaterThanOrEqual(15);
      for (const a of alarms) {
        expect(a.alarm_actions).toEqual([ALARMS]);
        expect(a.ok_actions).toEqual([ALARMS]);
        expect(typeof a.alarm_description).toBe('string');
        expect((a.alarm_description as string).length).toBeLessThanOrEqual(1024);
      }
      expect(new Set(alarms.map((a) => a.alarm_name)).size).toBe(alarms.length);
    });

    it('watch the depth of the inbox dead-letter queue and the age of the inbox’s oldest message', () => {
      expect(alarm('dev-sync-inbox-dead-letters')).toMatchObject({
        namespace: 'AWS/SQS',
        metric_name: 'ApproximateNumberOfMessagesVisible',
        dimensions: { QueueName: 'dev-sync-inbox-dead-letters' },
        statistic: 'Maximum',
        threshold: 1,
        comparison_operator: 'GreaterThanOrEqualToThreshold',
        period: 300,
      });
      expect(alarm('dev-sync-inbox-dead-letters').alarm_description).toContain(
        'npm run redrive -- dev eu-central-1',
      );
      expect(alarm('dev-sync-inbox-oldest-message')).toMatchObject({
        namespace: 'AWS/SQS',
        metric_name: 'ApproximateAgeOfOldestMessage',
        dimensions: { QueueName: 'dev-sync-inbox' },
        statistic: 'Maximum',
        threshold: 900,
        comparison_operator: 'GreaterThanOrEqualToThreshold',
      });
    });

    it('watch the undelivered queue and the topic’s failed notifications', () => {
      expect(alarm('dev-sync-undelivered')).toMatchObject({
        namespace: 'AWS/SQS',
        metric_name: 'ApproximateNumberOfMessagesVisible',
        dimensions: { QueueName: 'dev-sync-undelivered' },
        statistic: 'Maximum',
        threshold: 1,
      });
      expect(alarm('dev-sync-notifications-failed')).toMatchObject({
        namespace: 'AWS/SNS',
        metric_name: 'NumberOfNotificationsFailed',
        dimensions: { TopicName: 'dev-sync' },
        statistic: 'Sum',
        threshold: 1,
      });
    });

    it.each([
      ['dev-sync-publish-failures', 'PublishFailures'],
      ['dev-sync-contention', 'Contention'],
      ['dev-sync-dead-lettered', 'DeadLettered'],
      ['dev-sync-anti-entropy-failures', 'AntiEntropyFailures'],
    ])('%s fires on one %s in 5 minutes (Estate/Sync, service and region)', (name, metric) => {
      expect(alarm(name)).toMatchObject({
        namespace: 'Estate/Sync',
        metric_name: metric,
        dimensions: customDimensions,
        statistic: 'Sum',
        threshold: 1,
        period: 300,
        evaluation_periods: 1,
        comparison_operator: 'GreaterThanOrEqualToThreshold',
        treat_missing_data: 'notBreaching',
      });
    });

    it('tell dead-lettered records apart from function errors: partial batch responses succeed', () => {
      expect(alarm('dev-sync-dead-lettered').alarm_description).toMatch(/partial batch response/);
      expect(alarm('dev-sync-dead-lettered').alarm_description).toContain(
        'npm run redrive -- dev eu-central-1',
      );
    });

    it('fire on divergence only after 3 consecutive 5-minute periods', () => {
      expect(alarm('dev-sync-divergence')).toMatchObject({
        namespace: 'Estate/Sync',
        metric_name: 'Divergence',
        dimensions: customDimensions,
        statistic: 'Sum',
        threshold: 1,
        period: 300,
        evaluation_periods: 3,
        datapoints_to_alarm: 3,
      });
    });

    it('watch the p99 replication lag from each peer', () => {
      for (const peer of PEERS) {
        const lag = alarm(`dev-sync-replication-lag-${peer}`);
        expect(lag).toMatchObject({
          namespace: 'Estate/Sync',
          metric_name: 'ReplicationLagMs',
          dimensions: { ...customDimensions, peer },
          extended_statistic: 'p99',
          threshold: 60_000,
          period: 300,
          comparison_operator: 'GreaterThanOrEqualToThreshold',
        });
        expect(lag).not.toHaveProperty('statistic');
      }
    });
  });

  describe('refuses', () => {
    it.each<[string, Setup, string]>([
      [
        'a bus whose visibility timeout is below 6 x the inbox timeout + the window',
        { bus: { visibilityTimeoutSec: 60 } },
        "SyncService: invalid bus.visibilityTimeoutSec: received 60; expected at least 6 x the inbox function's timeout + the batching window (6 x 10 + 1 = 61 s)",
      ],
      [
        'a batching window the bus did not leave room for',
        { service: { inboxBatchingWindowSec: 5 } },
        "SyncService: invalid bus.visibilityTimeoutSec: received 61; expected at least 6 x the inbox function's timeout + the batching window (6 x 10 + 5 = 65 s)",
      ],
      [
        'a concurrency cap Lambda refuses (1)',
        { service: { inboxMaxConcurrency: 1 } },
        'SyncService: invalid inboxMaxConcurrency: received 1; expected an integer between 2 and 1000',
      ],
      [
        'a concurrency cap Lambda refuses (1001)',
        { service: { inboxMaxConcurrency: 1001 } },
        'SyncService: invalid inboxMaxConcurrency: received 1001',
      ],
      [
        'a fractional concurrency cap',
        { service: { inboxMaxConcurrency: 2.5 } },
        'SyncService: invalid inboxMaxConcurrency: received 2.5',
      ],
      [
        'an anti-entropy timeout beyond Lambda’s 900 s',
        { service: { antiEntropyTimeoutSec: 901 } },
        'SyncService: invalid antiEntropyTimeoutSec: received 901; expected an integer between 10 and 900',
      ],
      [
        'a sweep page below 10 documents',
        { service: { sweepPageSize: 9 } },
        'SyncService: invalid sweepPageSize: received 9; expected an integer between 10 and 10000',
      ],
      [
        'a settle time beyond an hour',
        { service: { settleSec: 3601 } },
        'SyncService: invalid settleSec: received 3601; expected an integer between 10 and 3600',
      ],
      [
        'a merge concurrency of 0',
        { service: { mergeConcurrency: 0 } },
        'SyncService: invalid mergeConcurrency: received 0; expected an integer between 1 and 10',
      ],
      [
        'a state table without the documents index',
        { indexes: [] },
        'SyncService: invalid stateTable.globalSecondaryIndexes: received []; expected the sync-documents index',
      ],
      [
        'a documents index of other keys',
        { indexes: [{ ...SyncService.DOCUMENTS_INDEX, sortKey: { name: 'changedAt', type: 'S' } }] },
        'SyncService: invalid stateTable.globalSecondaryIndexes: received ["sync-documents"]',
      ],
      [
        'a bucket name S3 refuses',
        { service: { stateBucketOf: (r) => `Bad_${r}` } },
        'SyncService: invalid stateBucketOf(eu-central-1): received "Bad_eu-central-1"',
      ],
      [
        'a peer listed twice',
        { service: { peerRegions: ['us-east-1', 'us-east-1'] } },
        'SyncService: invalid peerRegions: received ["us-east-1","us-east-1"]',
      ],
      [
        'this region as its own peer',
        { service: { peerRegions: ['eu-central-1'] } },
        'at least one region other than eu-central-1',
      ],
      [
        'a clock skew of 0',
        { service: { maxClockSkewSec: 0 } },
        'SyncService: invalid maxClockSkewSec: received 0',
      ],
      [
        'an anti-entropy interval that is not a number',
        { service: { antiEntropyIntervalMin: Number.NaN } },
        'SyncService: invalid antiEntropyIntervalMin: received NaN',
      ],
    ])('%s', (_why, setup, message) => {
      expect(() => synth(setup)).toThrow(message);
    });

    it('accepts a bus exactly at 6 x the timeout + the window', () => {
      expect(() =>
        synth({ service: { timeoutSec: 20, inboxBatchingWindowSec: 3 }, bus: { visibilityTimeoutSec: 123 } }),
      ).not.toThrow();
      expect(SyncService.inboxVisibilityTimeoutSec(20, 3)).toBe(123);
    });
  });
});

describe('the sync block of an environment', () => {
  it('defaults the new settings', () => {
    const env = validateEnvironment('prod', prod);
    expect(env.sync).toEqual({
      maxClockSkewSec: 300,
      antiEntropyIntervalMin: 5,
      inboxMaxConcurrency: 5,
      mergeConcurrency: 4,
      inboxTimeoutSec: 120,
      inboxMemoryMiB: 512,
      antiEntropyTimeoutSec: 120,
      antiEntropyMemoryMiB: 256,
      sweepPageSize: 1000,
      settleSec: 60,
    });
  });

  it('refuses every setting out of range at once, naming each field', () => {
    const bad = {
      inboxMaxConcurrency: 1,
      mergeConcurrency: 11,
      inboxTimeoutSec: 901,
      antiEntropyTimeoutSec: 9,
      sweepPageSize: 10_001,
      settleSec: 1.5,
    };
    let message = '';
    try {
      validateEnvironment('prod', { ...prod, sync: bad });
    } catch (error) {
      message = (error as Error).message;
    }
    for (const field of Object.keys(bad)) expect(message).toContain(`sync.${field}`);
    expect(message).toContain('expected an integer inbox maximum concurrency between 2 and 1000');
  });
});
