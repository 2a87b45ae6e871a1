import { CloudwatchEventRule } from '@cdktf/provider-aws/lib/cloudwatch-event-rule';
import { CloudwatchEventTarget } from '@cdktf/provider-aws/lib/cloudwatch-event-target';
import type { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret';
import { SecretsmanagerSecretVersion } from '@cdktf/provider-aws/lib/secretsmanager-secret-version';
import { SqsQueue } from '@cdktf/provider-aws/lib/sqs-queue';
import { SqsQueuePolicy } from '@cdktf/provider-aws/lib/sqs-queue-policy';
import { Construct } from 'constructs';
import {
  parseReplicatorConfig,
  ReplicatorConfigError,
  type ReplicatorConfig,
} from '../runtime/secrets/config';
import { TRIGGERING_CALLS } from '../runtime/secrets/events';
import { ARN_SUFFIX_WILDCARD, iamScopeOf } from '../runtime/secrets/iam-scope';
import { REPLICA_OF } from '../runtime/secrets/replica-tags';
import { BundledFunction } from './bundled-function';
import type { KmsKey } from './kms-key';
import { alarmNameOf, notifyingAlarm, type NotifyingAlarmProps } from './lib/alarm';
import type { PolicyStatement } from './lib/policy';
import { fail, requireIntInRange, requireMatch } from './lib/validate';
import { QueueTrigger, queueConsumerStatements } from './queue-trigger';

export interface SecretsReplicatorProps {
  /**
   * Name prefix, e.g. `dev-secrets`: function `<name>-replicator`, queue `<name>-replication` and its
   * dead-letter queue, rules `<name>-changes` and `<name>-resync`.
   */
  readonly name: string;
  /** Name of the config secret the replicator reads (created here, holding `document`). */
  readonly configSecretName: string;
  /** This region: the replicator's sources are this region's secrets. */
  readonly region: string;
  readonly accountId: string;
  /** The replicator's configuration (runtime/secrets/config.ts), validated here as the function will. */
  readonly document: unknown;
  /** The region's key: queues, config secret, function environment and logs. */
  readonly kmsKey: KmsKey;
  /** When the full resync runs (`rate(...)` or `cron(...)`). Default: daily. */
  readonly resyncSchedule?: string;
  /** Destinations replicated at once, for one secret. Default: 8. */
  readonly parallelism?: number;
  /** Deliveries of a message before it is dead-lettered. Default: 5. */
  readonly maxReceiveCount?: number;
  readonly memoryMiB?: number;
  /** Timeout of the function, seconds (a resync runs in one invocation). Default: 300. */
  readonly timeoutSec?: number;
  readonly logRetentionDays?: number;
  readonly encryptEnvironment?: boolean;
  /** Create the queue's event-source mapping enabled (off only on the emulator). Default: true. */
  readonly triggerEnabled?: boolean;
  /** Ignore drift of the queue's redrive policy (the emulator echoes it reformatted). Default: false. */
  readonly ignoreRedrivePolicyDrift?: boolean;
  /** Topic (in this region) the alarms notify. */
  readonly alarmTopicArn: string;
}

/** The replicator's alarms besides its function's (each named `<name>-<id in kebab case>`). */
const ALARM_IDS = ['DeadLettered', 'DestinationFailures', 'ConfigRefused'] as const;
type AlarmId = (typeof ALARM_IDS)[number];

const SECRETS_ACTIONS_READ = ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'];
const SECRETS_ACTIONS_WRITE = [
  'secretsmanager:CreateSecret',
  'secretsmanager:PutSecretValue',
  'secretsmanager:UpdateSecret',
  'secretsmanager:UpdateSecretVersionStage',
  'secretsmanager:TagResource',
  'secretsmanager:UntagResource',
  'secretsmanager:RestoreSecret',
];

const secretArn = (region: string, account: string, name: string) =>
  `arn:aws:secretsmanager:${region}:${account}:secret:${name}`;

/**
 * Each exact name's pattern (`name-??????`, its ARN with Secrets Manager's suffix) and the bare name too: a
 * call naming a secret that does not exist yet (DescribeSecret before CreateSecret) is authorized against
 * `secret:<name>`, which the suffixed pattern does not match.
 */
function withBareNames(patterns: readonly string[]): string[] {
  return patterns.flatMap((p) =>
    p.endsWith(ARN_SUFFIX_WILDCARD) ? [p, p.slice(0, -ARN_SUFFIX_WILDCARD.length)] : [p],
  );
}

/** A KMS key given as id, key ARN, alias name or alias ARN -> the IAM resource and condition that match it. */
function keyGrant(
  kmsKeyId: string,
  region: string,
  account: string,
): Pick<PolicyStatement, 'resources' | 'conditions'> {
  const alias = /^(?:arn:[a-z-]+:kms:[a-z0-9-]+:\d{12}:)?(alias\/.+)$/.exec(kmsKeyId)?.[1];
  if (alias)
    return {
      resources: [`arn:aws:kms:${region}:${account}:key/*`],
      conditions: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': [alias] } },
    };
  return {
    resources: [kmsKeyId.startsWith('arn:') ? kmsKeyId : `arn:aws:kms:${region}:${account}:key/${kmsKeyId}`],
  };
}

/**
 * The secrets replicator of one region (runtime/secrets): CloudTrail-recorded Secrets Manager calls of this
 * region (an EventBridge rule) and a scheduled resync feed a queue (encrypted, with a dead-letter queue the
 * redrive command knows), consumed by one function that replicates to every configured destination in
 * parallel. Its configuration lives in a config secret written from `document`; the function's IAM is
 * derived from it: read the source names its filters select, write the destination names they map to, in
 * the destinations' regions, assume the destinations' roles, use their keys. Deleting is allowed only on
 * secrets tagged as replicas.
 *
 * CloudTrail delivers API-call events to EventBridge only where a trail records management events (an
 * organisation trail, typically); without one, only the resync replicates.
 */
export class SecretsReplicator extends Construct {
  readonly config: ReplicatorConfig;
  readonly configSecret: SecretsmanagerSecret;
  readonly queue: SqsQueue;
  readonly deadLetterQueue: SqsQueue;
  readonly function: BundledFunction;
  readonly trigger: QueueTrigger;
  readonly changes: CloudwatchEventRule;
  readonly resync: CloudwatchEventRule;
  readonly alarms: readonly CloudwatchMetricAlarm[];

  static queueName(name: string): string {
    return `${name}-replication`;
  }

  static deadLetterQueueName(name: string): string {
    return `${name}-replication-dead-letters`;
  }

  /** Name of the replicator function, from its `name`. */
  static functionName(name: string): string {
    return `${name}-replicator`;
  }

  /** Names of the replicator's own alarms (its function's come from `BundledFunction.alarmNamesOf`). */
  static alarmNames(name: string): string[] {
    return ALARM_IDS.map((id) => alarmNameOf(name, id));
  }

  constructor(scope: Construct, id: string, props: SecretsReplicatorProps) {
    super(scope, id);
    requireMatch(
      'SecretsReplicator',
      'name',
      props.name,
      /^[a-zA-Z0-9_-]{1,40}$/,
      '1-40 letters, digits, - or _',
    );
    requireMatch(
      'SecretsReplicator',
      'configSecretName',
      props.configSecretName,
      /^[a-zA-Z0-9/_+=.@-]{1,256}$/,
      'a Secrets Manager name',
    );
    const documentJson = JSON.stringify(props.document ?? null);
    try {
      this.config = parseReplicatorConfig(documentJson);
    } catch (error) {
      if (error instanceof ReplicatorConfigError)
        fail('SecretsReplicator', 'document', '(see issues)', error.issues.join('; '));
      throw error;
    }
    const resyncSchedule = props.resyncSchedule ?? 'rate(1 day)';
    requireMatch(
      'SecretsReplicator',
      'resyncSchedule',
      resyncSchedule,
      /^(rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)|cron\(.+\))$/,
      'rate(...) or cron(...)',
    );
    const timeoutSec = requireIntInRange('SecretsReplicator', 'timeoutSec', props.timeoutSec ?? 300, 10, 900);
    const maxReceiveCount = requireIntInRange(
      'SecretsReplicator',
      'maxReceiveCount',
      props.maxReceiveCount ?? 5,
      1,
      100,
    );
    const parallelism = requireIntInRange('SecretsReplicator', 'parallelism', props.parallelism ?? 8, 1, 64);
    const { region, accountId: account } = props;

    this.configSecret = new SecretsmanagerSecret(this, 'ConfigSecret', {
      name: props.configSecretName,
      description: `Configuration of the secrets replicator in ${region}`,
      kmsKeyId: props.kmsKey.arn,
      recoveryWindowInDays: 7,
    });
    new SecretsmanagerSecretVersion(this, 'ConfigVersion', {
      secretId: this.configSecret.id,
      secretString: documentJson,
    });

    this.deadLetterQueue = new SqsQueue(this, 'DeadLetters', {
      name: SecretsReplicator.deadLetterQueueName(props.name),
      kmsMasterKeyId: props.kmsKey.arn,
      messageRetentionSeconds: 14 * 86_400,
    });
    this.queue = new SqsQueue(this, 'Queue', {
      name: SecretsReplicator.queueName(props.name),
      kmsMasterKeyId: props.kmsKey.arn,
      visibilityTimeoutSeconds: 6 * timeoutSec,
      messageRetentionSeconds: 4 * 86_400,
      redrivePolicy: JSON.stringify({ deadLetterTargetArn: this.deadLetterQueue.arn, maxReceiveCount }),
      ...(props.ignoreRedrivePolicyDrift ? { lifecycle: { ignoreChanges: ['redrive_policy'] } } : {}),
    });

    this.changes = new CloudwatchEventRule(this, 'Changes', {
      name: `${props.name}-changes`,
      description: 'Secrets Manager calls (recorded by CloudTrail) that change a secret of this region',
      eventPattern: JSON.stringify({
        source: ['aws.secretsmanager'],
        'detail-type': ['AWS API Call via CloudTrail'],
        detail: { eventSource: ['secretsmanager.amazonaws.com'], eventName: [...TRIGGERING_CALLS] },
      }),
    });
    this.resync = new CloudwatchEventRule(this, 'Resync', {
      name: `${props.name}-resync`,
      description: 'Full resync of the secrets replicator: repairs drift and whatever events were lost',
      scheduleExpression: resyncSchedule,
    });
    for (const [ruleId, rule] of [
      ['ChangesTarget', this.changes],
      ['ResyncTarget', this.resync],
    ] as const)
      new CloudwatchEventTarget(this, ruleId, {
        rule: rule.name,
        arn: this.queue.arn,
        retryPolicy: { maximumRetryAttempts: 185, maximumEventAgeInSeconds: 86_400 },
        // An event EventBridge cannot deliver (a key or policy being changed) waits there to be redriven.
        deadLetterConfig: { arn: this.deadLetterQueue.arn },
      });
    // Both queues admit exactly the two rules (the dead-letter queue: events they could not deliver).
    for (const [policyId, queue] of [
      ['QueuePolicy', this.queue],
      ['DeadLetterQueuePolicy', this.deadLetterQueue],
    ] as const)
      new SqsQueuePolicy(this, policyId, {
        queueUrl: queue.url,
        policy: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'EventBridgeRulesSend',
              Effect: 'Allow',
              Principal: { Service: 'events.amazonaws.com' },
              Action: 'sqs:SendMessage',
              Resource: queue.arn,
              Condition: { ArnEquals: { 'aws:SourceArn': [this.changes.arn, this.resync.arn] } },
            },
          ],
        }),
      });

    const functionName = SecretsReplicator.functionName(props.name);
    this.function = new BundledFunction(this, 'Function', {
      entry: 'runtime/secrets/handler.ts',
      functionName,
      region,
      kmsKey: props.kmsKey,
      statements: [...this.queueStatements(props.kmsKey), ...this.secretStatements(region, account)],
      environment: {
        SECRETS_CONFIG_SECRET: props.configSecretName,
        SECRETS_REPLICATOR_ROLE_ARN: BundledFunction.roleArnOf(account, functionName, region),
        SECRETS_QUEUE_URL: this.queue.url,
        SECRETS_DEAD_LETTER_QUEUE_URL: this.deadLetterQueue.url,
        SECRETS_MAX_RECEIVE_COUNT: String(maxReceiveCount),
        SECRETS_PARALLELISM: String(parallelism),
      },
      memoryMiB: props.memoryMiB ?? 512,
      timeoutSec,
      logRetentionDays: props.logRetentionDays,
      encryptEnvironment: props.encryptEnvironment,
      alarmTopicArn: props.alarmTopicArn,
    });
    // One message at a time per invocation: two changes of one secret never race inside a batch.
    this.trigger = new QueueTrigger(this, 'Trigger', {
      queue: this.queue,
      consumer: this.function,
      batchSize: 1,
      batchingWindowSec: 0,
      // Secrets Manager takes about 50 writes a second per account and region.
      maximumConcurrency: 5,
      enabled: props.triggerEnabled,
    });

    const alarm = (alarmId: AlarmId, alarmDescription: string, metric: Partial<NotifyingAlarmProps>) =>
      notifyingAlarm(this, alarmId, {
        prefix: props.name,
        topicArn: props.alarmTopicArn,
        alarmDescription,
        ...metric,
      });
    this.alarms = [
      alarm(
        'DeadLettered',
        `Secrets replication in ${region} dead-lettered a change: redrive it once fixed`,
        {
          namespace: 'AWS/SQS',
          metricName: 'ApproximateNumberOfMessagesVisible',
          dimensions: { QueueName: this.deadLetterQueue.name },
          statistic: 'Maximum',
        },
      ),
      alarm('DestinationFailures', `Secrets replication in ${region} failed for a destination (retried)`, {
        namespace: 'Estate/Secrets',
        metricName: 'DestinationFailures',
        dimensions: { service: 'secrets-replicator', region },
      }),
      alarm('ConfigRefused', `The secrets replicator in ${region} refused its config secret's new version`, {
        namespace: 'Estate/Secrets',
        metricName: 'ConfigRefused',
        dimensions: { service: 'secrets-replicator', region },
      }),
    ];
  }

  private queueStatements(kmsKey: KmsKey): PolicyStatement[] {
    return [
      ...queueConsumerStatements('ConsumeQueue', this.queue, this.deadLetterQueue),
      {
        sid: 'ReadConfig',
        actions: SECRETS_ACTIONS_READ,
        resources: [this.configSecret.arn],
      },
      {
        sid: 'UseRegionalKeyForQueuesAndConfig',
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: [kmsKey.arn],
      },
    ];
  }

  private secretStatements(region: string, account: string): PolicyStatement[] {
    const scope = iamScopeOf(this.config);
    const statements: PolicyStatement[] = [
      // ListSecrets has no resource-level permissions.
      { sid: 'ListSecrets', actions: ['secretsmanager:ListSecrets'], resources: ['*'] },
      {
        // Metadata only (name, tags, versions, deletion): whether a destination takes a secret is decided
        // from it, and tag rules need the tags of secrets their globs may not name.
        sid: 'DescribeSources',
        actions: ['secretsmanager:DescribeSecret'],
        resources: [secretArn(region, account, '*')],
      },
      {
        sid: 'ReadSources',
        actions: ['secretsmanager:GetSecretValue'],
        resources: withBareNames(scope.sourceNames).map((name) => secretArn(region, account, name)),
      },
      {
        // Sources encrypted with a customer managed key of this account, read through Secrets Manager.
        sid: 'DecryptSources',
        actions: ['kms:Decrypt'],
        resources: [`arn:aws:kms:${region}:${account}:key/*`],
        conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${region}.amazonaws.com` } },
      },
    ];
    const roles = [...new Set(scope.destinations.flatMap((d) => (d.roleArn ? [d.roleArn] : [])))];
    if (roles.length > 0)
      statements.push({ sid: 'AssumeDestinationRoles', actions: ['sts:AssumeRole'], resources: roles });
    scope.destinations
      .filter((d) => !d.roleArn)
      .forEach((destination, index) => {
        const replicas = withBareNames(destination.names).map((name) =>
          secretArn(destination.region, account, name),
        );
        statements.push(
          {
            sid: `WriteReplicas${index}`,
            actions: [...SECRETS_ACTIONS_READ, ...SECRETS_ACTIONS_WRITE],
            resources: replicas,
          },
          {
            sid: `DeleteOnlyReplicas${index}`,
            actions: ['secretsmanager:DeleteSecret'],
            resources: replicas,
            conditions: { Null: { [`secretsmanager:ResourceTag/${REPLICA_OF}`]: 'false' } },
          },
        );
        if (destination.kmsKeyId)
          statements.push({
            sid: `EncryptReplicas${index}`,
            actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
            ...keyGrant(destination.kmsKeyId, destination.region, account),
            conditions: {
              ...keyGrant(destination.kmsKeyId, destination.region, account).conditions,
              StringEquals: { 'kms:ViaService': `secretsmanager.${destination.region}.amazonaws.com` },
            },
          });
      });
    return statements;
  }
}
