import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { KmsKey } from '../../modules/kms-key';
import { SecretsReplicator } from '../../modules/secrets-replicator';
import { TRIGGERING_CALLS } from '../../runtime/secrets/events';
import { only, resources, roleStatement, roleStatements, type Block } from '../support/synthesized';

const ACCOUNT = '222222222222';
const ALARMS = 'arn:aws:sns:eu-central-1:222222222222:dev-alarms';
const DOCUMENT = {
  destinations: [
    {
      name: 'dr',
      region: 'us-east-1',
      filters: { 'app/prod/*': 's/eu-central-1/us-east-1/g', 'db/orders': '' },
      names: { 'app/prod/*': 'app/dr/*' },
      kmsKeyId: 'alias/replicas',
      deletePolicy: 'propagate',
    },
    {
      name: 'other-account',
      region: 'eu-west-1',
      roleArn: 'arn:aws:iam::333333333333:role/secrets-replicas',
      externalId: 'estate-dev',
      filters: { 'app/prod/*': '' },
    },
  ],
};

const replicator = (
  scope: Construct,
  props: Partial<ConstructorParameters<typeof SecretsReplicator>[2]> = {},
) =>
  new SecretsReplicator(scope, 'Secrets', {
    name: 'dev-secrets',
    configSecretName: 'dev/secrets-replicator/config',
    region: 'eu-central-1',
    accountId: ACCOUNT,
    document: DOCUMENT,
    kmsKey: new KmsKey(scope, 'Key', { aliasName: 'dev-estate', accountId: ACCOUNT, region: 'eu-central-1' }),
    alarmTopicArn: ALARMS,
    ...props,
  });

const statementsOf = roleStatements;
const statement = roleStatement;

describe('SecretsReplicator', () => {
  const synthesized = Testing.synthScope((scope) => void replicator(scope));

  it('reads only the values its filters select, in its own region (the metadata of any to route them)', () => {
    expect(statement(synthesized, 'ReadSources')).toMatchObject({
      Action: ['secretsmanager:GetSecretValue'],
      Resource: [
        `arn:aws:secretsmanager:eu-central-1:${ACCOUNT}:secret:app/prod/*`,
        `arn:aws:secretsmanager:eu-central-1:${ACCOUNT}:secret:db/orders-??????`,
        `arn:aws:secretsmanager:eu-central-1:${ACCOUNT}:secret:db/orders`,
      ],
    });
    expect(statement(synthesized, 'DescribeSources')).toMatchObject({
      Action: ['secretsmanager:DescribeSecret'],
      Resource: [`arn:aws:secretsmanager:eu-central-1:${ACCOUNT}:secret:*`],
    });
    expect(statement(synthesized, 'ListSecrets').Resource).toEqual(['*']);
  });

  it('writes only the names its mappings and filters produce, in the destination region, deleting only replicas', () => {
    const writes = statement(synthesized, 'WriteReplicas0');
    expect(writes.Resource).toEqual(
      expect.arrayContaining([
        `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:app/dr/*`,
        `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:db/orders-??????`,
        // A replica not created yet is authorized against its bare name.
        `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:db/orders`,
      ]),
    );
    expect(writes.Action).not.toContain('secretsmanager:DeleteSecret');
    expect(statement(synthesized, 'DeleteOnlyReplicas0')).toMatchObject({
      Action: ['secretsmanager:DeleteSecret'],
      Condition: { Null: { 'secretsmanager:ResourceTag/estate:replica-of': 'false' } },
    });
    expect(statement(synthesized, 'EncryptReplicas0').Condition).toEqual({
      'ForAnyValue:StringEquals': { 'kms:ResourceAliases': ['alias/replicas'] },
      StringEquals: { 'kms:ViaService': 'secretsmanager.us-east-1.amazonaws.com' },
    });
    // The other account is reached through its role only: no direct grant there.
    expect(statement(synthesized, 'AssumeDestinationRoles').Resource).toEqual([
      'arn:aws:iam::333333333333:role/secrets-replicas',
    ]);
    expect(JSON.stringify(statementsOf(synthesized))).not.toContain(':eu-west-1:');
  });

  it('feeds one queue from the CloudTrail rule and the resync schedule, admitting only those rules', () => {
    const rules = resources(synthesized, 'aws_cloudwatch_event_rule');
    const changes = rules.find((r) => r.name === 'dev-secrets-changes') as Block;
    expect(JSON.parse(changes.event_pattern as string)).toEqual({
      source: ['aws.secretsmanager'],
      'detail-type': ['AWS API Call via CloudTrail'],
      detail: { eventSource: ['secretsmanager.amazonaws.com'], eventName: [...TRIGGERING_CALLS] },
    });
    expect(rules.find((r) => r.name === 'dev-secrets-resync')?.schedule_expression).toBe('rate(1 day)');
    const targets = resources(synthesized, 'aws_cloudwatch_event_target');
    expect(targets.map((t) => t.arn)).toEqual([
      expect.stringMatching(/aws_sqs_queue\.Secrets_Queue_\w+\.arn/),
      expect.stringMatching(/aws_sqs_queue\.Secrets_Queue_\w+\.arn/),
    ]);
    // Events EventBridge cannot deliver wait in the dead-letter queue; both queues admit only the two rules.
    expect(targets.map((t) => (t.dead_letter_config as { arn: string }).arn)).toEqual([
      expect.stringMatching(/aws_sqs_queue\.Secrets_DeadLetters_\w+\.arn/),
      expect.stringMatching(/aws_sqs_queue\.Secrets_DeadLetters_\w+\.arn/),
    ]);
    for (const policy of resources(synthesized, 'aws_sqs_queue_policy'))
      expect(
        JSON.parse(policy.policy as string).Statement[0].Condition.ArnEquals['aws:SourceArn'],
      ).toHaveLength(2);
    const queue = resources(synthesized, 'aws_sqs_queue').find(
      (q) => q.name === 'dev-secrets-replication',
    ) as Block;
    expect(queue.visibility_timeout_seconds).toBe(6 * 300);
    expect(JSON.parse(queue.redrive_policy as string)).toMatchObject({ maxReceiveCount: 5 });
    expect(only(synthesized, 'aws_lambda_event_source_mapping')).toMatchObject({
      batch_size: 1,
      scaling_config: { maximum_concurrency: 5 },
      function_response_types: ['ReportBatchItemFailures'],
    });
  });

  it('writes its document into the config secret and names its own role to the function', () => {
    expect(
      JSON.parse(only(synthesized, 'aws_secretsmanager_secret_version').secret_string as string),
    ).toEqual(DOCUMENT);
    const fn = only(synthesized, 'aws_lambda_function') as Block;
    const variables = (fn.environment as { variables: Record<string, string> }).variables;
    expect(variables.SECRETS_REPLICATOR_ROLE_ARN).toBe(
      `arn:aws:iam::${ACCOUNT}:role/dev-secrets-replicator-eu-central-1`,
    );
    expect(only(synthesized, 'aws_iam_role').name).toBe('dev-secrets-replicator-eu-central-1');
    expect(variables.SECRETS_CONFIG_SECRET).toBe('dev/secrets-replicator/config');
  });

  it('alarms on dead-lettered changes, destination failures and a refused configuration', () => {
    const names = resources(synthesized, 'aws_cloudwatch_metric_alarm').map((a) => a.alarm_name);
    expect(names).toEqual(
      expect.arrayContaining([
        'dev-secrets-dead-lettered',
        'dev-secrets-destination-failures',
        'dev-secrets-config-refused',
      ]),
    );
  });

  it('refuses an invalid document at synth, naming the field', () => {
    expect(() =>
      Testing.synthScope(
        (scope) =>
          void replicator(scope, { document: { destinations: [{ region: 'moon-1', filters: {} }] } }),
      ),
    ).toThrow(/destinations\[0\].*region/);
  });
});
