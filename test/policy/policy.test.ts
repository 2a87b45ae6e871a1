import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEnvironments, validateEnvironment } from '../../environments';
import { prod } from '../../environments/prod';
import { synthesize } from '../../scripts/lib/synth';
import type { Block, TerraformJson } from '../support/synthesized';
import { checkStack, RULES, type StackDocument } from './rules';

const environments = [
  ...Object.values(loadEnvironments({})),
  validateEnvironment('prod', { ...prod, regions: ['eu-central-1', 'us-east-1', 'ap-southeast-1'] }),
];
const documents: StackDocument[] = environments.flatMap((env) =>
  synthesize([env], mkdtempSync(join(tmpdir(), `policy-${env.name}-`))).map((stack) => ({
    name: env.regions.length > 2 ? `${stack.name} (3 regions)` : stack.name,
    json: JSON.parse(readFileSync(join(stack.dir, 'cdk.tf.json'), 'utf8')) as TerraformJson,
    local: env.name === 'local',
    production: env.name === 'prod',
  })),
);

describe('policy rules over every synthesized stack', () => {
  it.each(documents.map((d) => [d.name, d] as const))('%s has no violations', (_name, document) => {
    expect(checkStack(document)).toEqual([]);
  });
});

/** A stack of the given resources, to show each rule flags what it must. */
const fixture = (
  resource: Record<string, Record<string, Block>>,
  options: Partial<StackDocument> = {},
): StackDocument => ({
  name: 'fixture',
  json: { resource },
  local: false,
  production: true,
  ...options,
});

const goodBucket = {
  aws_s3_bucket: { b: { bucket: 'b' } },
  aws_s3_bucket_public_access_block: {
    p: {
      bucket: '${aws_s3_bucket.b.id}',
      block_public_acls: true,
      block_public_policy: true,
      ignore_public_acls: true,
      restrict_public_buckets: true,
    },
  },
  aws_s3_bucket_server_side_encryption_configuration: {
    e: {
      bucket: '${aws_s3_bucket.b.id}',
      rule: [
        { apply_server_side_encryption_by_default: { sse_algorithm: 'aws:kms', kms_master_key_id: 'k' } },
      ],
    },
  },
  aws_s3_bucket_versioning: {
    v: { bucket: '${aws_s3_bucket.b.id}', versioning_configuration: { status: 'Enabled' } },
  },
  aws_s3_bucket_policy: {
    t: {
      bucket: '${aws_s3_bucket.b.id}',
      policy: JSON.stringify({
        Statement: [{ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }],
      }),
    },
  },
};
const goodFunction = {
  aws_lambda_function: { f: { function_name: 'fn', tracing_config: { mode: 'Active' } } },
  aws_lambda_function_event_invoke_config: {
    c: {
      function_name: '${aws_lambda_function.f.function_name}',
      destination_config: { on_failure: { destination: '${aws_sqs_queue.d.arn}' } },
    },
  },
  aws_cloudwatch_log_group: { l: { name: '/aws/lambda/fn', retention_in_days: 365, kms_key_id: 'k' } },
  aws_sqs_queue: { d: { kms_master_key_id: 'k' } },
};
const role = (statement: object) => ({
  aws_iam_role_policy: { p: { policy: JSON.stringify({ Statement: [statement] }) } },
});

const fixtures: Record<string, StackDocument> = {
  's3-public-access-block': fixture({
    ...goodBucket,
    aws_s3_bucket_public_access_block: { p: { bucket: '${aws_s3_bucket.b.id}', block_public_acls: true } },
  }),
  's3-sse-kms': fixture({
    ...goodBucket,
    aws_s3_bucket_server_side_encryption_configuration: {
      e: {
        bucket: '${aws_s3_bucket.b.id}',
        rule: [{ apply_server_side_encryption_by_default: { sse_algorithm: 'AES256' } }],
      },
    },
  }),
  's3-versioning': fixture({
    ...goodBucket,
    aws_s3_bucket_versioning: {
      v: { bucket: '${aws_s3_bucket.b.id}', versioning_configuration: { status: 'Suspended' } },
    },
  }),
  's3-tls-only': fixture({ ...goodBucket, aws_s3_bucket_policy: {} }),
  'dynamodb-pitr': fixture({
    aws_dynamodb_table: {
      t: {
        point_in_time_recovery: { enabled: true },
        server_side_encryption: { enabled: true, kms_key_arn: 'k' },
        lifecycle: { prevent_destroy: true },
      },
    },
    aws_dynamodb_table_replica: {
      r: { deletion_protection_enabled: true, lifecycle: { prevent_destroy: true } },
    },
  }),
  'dynamodb-cmk': fixture({
    aws_dynamodb_table: {
      t: {
        point_in_time_recovery: { enabled: true },
        server_side_encryption: { enabled: true },
        lifecycle: { prevent_destroy: true },
      },
    },
  }),
  'sqs-encryption': fixture({ aws_sqs_queue: { q: { redrive_policy: '{}' } } }),
  'sqs-redrive': fixture({ aws_sqs_queue: { q: { kms_master_key_id: 'k' } } }),
  'sns-encryption': fixture({ aws_sns_topic: { t: { name: 't' } } }),
  'lambda-tracing': fixture({
    ...goodFunction,
    aws_lambda_function: { f: { function_name: 'fn', tracing_config: { mode: 'PassThrough' } } },
  }),
  'lambda-async-dlq': fixture({
    ...goodFunction,
    aws_lambda_function_event_invoke_config: {},
    aws_sqs_queue: {},
  }),
  'lambda-log-retention': fixture({
    ...goodFunction,
    aws_cloudwatch_log_group: { l: { name: '/aws/lambda/fn', retention_in_days: 30, kms_key_id: 'k' } },
  }),
  'ecr-immutable-scanned': fixture({
    aws_ecr_repository: {
      r: { image_tag_mutability: 'MUTABLE', image_scanning_configuration: { scan_on_push: true } },
    },
  }),
  'iam-least-privilege': fixture(role({ Effect: 'Allow', Action: ['s3:PutObject'], Resource: '*' })),
  'lambda-permission-source-arn': fixture({
    aws_lambda_permission: { p: { principal: 'apigateway.amazonaws.com' } },
  }),
  'provider-account-guard': {
    name: 'fixture',
    json: {
      provider: {
        aws: [
          {
            region: 'eu-central-1',
            allowed_account_ids: ['222222222222'],
            assume_role: [{ role_arn: 'arn:aws:iam::222222222222:role/estate-deploy' }],
          },
        ],
      },
    },
    local: false,
    production: false,
  },
  'dynamodb-replica-protection': fixture({
    aws_dynamodb_table_replica: {
      r: { global_table_arn: 'arn', point_in_time_recovery: true, lifecycle: { prevent_destroy: true } },
    },
  }),
  'prevent-destroy': fixture({ aws_route53_zone: { z: { name: 'dev.example.com' } } }),
  'service-trust-confused-deputy': fixture({
    aws_iam_role: {
      r: {
        assume_role_policy: JSON.stringify({
          Statement: [
            { Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
          ],
        }),
      },
    },
  }),
  'alarm-actions': fixture({ aws_cloudwatch_metric_alarm: { a: { alarm_name: 'a' } } }),
  'one-owner-per-name': fixture({
    // The defect the review found: the bus's dead-letter queue and a function's failure queue, one name.
    aws_sqs_queue: {
      bus: { name: 'dev-sync-inbox-dlq', kms_master_key_id: 'k', redrive_policy: '{}' },
      fn: { name: 'dev-sync-inbox-dlq', kms_master_key_id: 'k', redrive_policy: '{}' },
    },
  }),
};

describe('each policy rule', () => {
  it('has a fixture', () => {
    expect(Object.keys(fixtures).sort()).toEqual(RULES.map((r) => r.id).sort());
  });

  it.each(RULES.map((r) => [r.id, r] as const))(
    '%s flags its fixture, and only its own rule fires there',
    (id, r) => {
      const document = fixtures[id];
      if (!document) throw new Error(`no fixture for ${id}`);
      expect(r.check(document).length).toBeGreaterThan(0);
      expect([...new Set(checkStack(document).map((v) => v.rule))]).toEqual([id]);
    },
  );

  it.each([
    [
      'a wildcard action',
      role({ Effect: 'Allow', Action: 'dynamodb:*', Resource: 'arn:t' }),
      'expected named actions, found "dynamodb:*"',
    ],
    ['admin', role({ Effect: 'Allow', Action: '*', Resource: '*' }), 'expected named actions, found "*"'],
  ])('iam-least-privilege flags %s', (_what, resources, message) => {
    expect(checkStack(fixture(resources)).map((v) => v.message)).toContain(message);
  });

  it('lets a Deny statement use wildcards, and unscopable actions use *', () => {
    expect(checkStack(fixture(role({ Effect: 'Deny', Action: 's3:*', Resource: '*' })))).toEqual([]);
    expect(
      checkStack(fixture(role({ Effect: 'Allow', Action: ['xray:PutTraceSegments'], Resource: '*' }))),
    ).toEqual([]);
  });
});
