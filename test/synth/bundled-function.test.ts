import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group';
import { LambdaAlias } from '@cdktf/provider-aws/lib/lambda-alias';
import { LambdaFunction } from '@cdktf/provider-aws/lib/lambda-function';
import { LambdaFunctionEventInvokeConfig } from '@cdktf/provider-aws/lib/lambda-function-event-invoke-config';
import { LambdaProvisionedConcurrencyConfig } from '@cdktf/provider-aws/lib/lambda-provisioned-concurrency-config';
import { SqsQueue } from '@cdktf/provider-aws/lib/sqs-queue';
import { Fn, Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { unzipSync } from 'fflate';
import {
  BundledFunction,
  bundleHandler,
  bundleRunCount,
  handlerName,
  REPO_ROOT,
  type BundledFunctionProps,
} from '../../modules/bundled-function';
import { KmsKey } from '../../modules/kms-key';
import { only, policyOf, resources } from '../support/synthesized';

function fn(scope: Construct, patch: Partial<BundledFunctionProps> = {}): BundledFunction {
  const kmsKey = new KmsKey(scope, 'Key', {
    aliasName: 'k',
    accountId: '222222222222',
    region: 'eu-central-1',
  });
  return new BundledFunction(scope, 'Health', {
    entry: 'runtime/health/handler.ts',
    functionName: 'dev-health',
    region: 'eu-central-1',
    kmsKey,
    statements: [
      {
        actions: ['dynamodb:DescribeTable'],
        resources: ['arn:aws:dynamodb:eu-central-1:222222222222:table/t'],
      },
    ],
    environment: { STATE_TABLE_NAME: 't' },
    alarmTopicArn: 'arn:aws:sns:eu-central-1:222222222222:dev-alarms',
    ...patch,
  });
}

describe('BundledFunction', () => {
  const synthesized = Testing.synthScope((scope) =>
    fn(scope, { provisionedConcurrency: 2, logRetentionDays: 365 }),
  );

  it('runs the bundle on nodejs22.x arm64 with active tracing, published, env encrypted with the key', () => {
    expect(synthesized).toHaveResourceWithProperties(LambdaFunction, {
      function_name: 'dev-health',
      runtime: 'nodejs22.x',
      architectures: ['arm64'],
      handler: 'index.handler',
      publish: true,
      tracing_config: { mode: 'Active' },
      memory_size: 256,
      timeout: 10,
      environment: { variables: { STATE_TABLE_NAME: 't' } },
      kms_key_arn: '${aws_kms_key.Key_43586C89.arn}',
    });
    const lambda = only(synthesized, 'aws_lambda_function');
    expect(lambda.source_code_hash).toBe(bundleHandler('runtime/health/handler.ts').archiveSha256);
    expect(lambda.filename).toMatch(/^assets\/.+\/health\.zip$/);
  });

  it('points a live alias at the published version, with provisioned concurrency on it', () => {
    expect(synthesized).toHaveResourceWithProperties(LambdaAlias, {
      name: 'live',
      function_version: '${aws_lambda_function.Health_Function_7CD7C3B6.version}',
    });
    expect(synthesized).toHaveResourceWithProperties(LambdaProvisionedConcurrencyConfig, {
      qualifier: '${aws_lambda_alias.Health_Live_5BBF6C07.name}',
      provisioned_concurrent_executions: 2,
    });
  });

  it('has no provisioned concurrency when none is asked for', () => {
    const without = Testing.synthScope((scope) => fn(scope));
    expect(resources(without, 'aws_lambda_provisioned_concurrency_config')).toHaveLength(0);
  });

  it('keeps logs with retention under the key, and sends failed async invocations to an encrypted DLQ', () => {
    expect(synthesized).toHaveResourceWithProperties(CloudwatchLogGroup, {
      name: '/aws/lambda/dev-health',
      retention_in_days: 365,
      kms_key_id: '${aws_kms_key.Key_43586C89.arn}',
    });
    expect(synthesized).toHaveResourceWithProperties(SqsQueue, {
      name: 'dev-health-dlq',
      kms_master_key_id: '${aws_kms_key.Key_43586C89.arn}',
    });
    expect(synthesized).toHaveResourceWithProperties(LambdaFunctionEventInvokeConfig, {
      destination_config: { on_failure: { destination: '${aws_sqs_queue.Health_DeadLetters_ABC2C906.arn}' } },
    });
  });

  it('applies async retries and the failure queue to the live alias, which schedules invoke', () => {
    const config = only(synthesized, 'aws_lambda_function_event_invoke_config');
    expect(config.qualifier).toMatch(/^\$\{aws_lambda_alias\.Health_Live_\w+\.name\}$/);
    expect(config.maximum_retry_attempts).toBe(2);
  });

  it('creates the function only once its role may act (IAM first), and trusts Lambda for this account only', () => {
    expect(only(synthesized, 'aws_lambda_function').depends_on).toEqual(
      expect.arrayContaining([expect.stringMatching(/^aws_iam_role_policy\.Health_Policy_/)]),
    );
    expect(policyOf(only(synthesized, 'aws_iam_role'), 'assume_role_policy').Statement).toEqual([
      {
        Effect: 'Allow',
        Principal: { Service: 'lambda.amazonaws.com' },
        Action: 'sts:AssumeRole',
        Condition: { StringEquals: { 'aws:SourceAccount': '222222222222' } },
      },
    ]);
  });

  it("gives the role the caller's statements plus logging, tracing, DLQ and key use, nothing wider", () => {
    const statements = policyOf(only(synthesized, 'aws_iam_role_policy')).Statement;
    expect(statements.map((s) => s.Action)).toEqual([
      ['logs:CreateLogStream', 'logs:PutLogEvents'],
      ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'],
      ['sqs:SendMessage'],
      ['kms:Decrypt', 'kms:GenerateDataKey'],
      ['dynamodb:DescribeTable'],
    ]);
    expect(only(synthesized, 'aws_iam_role').name).toBe('dev-health-eu-central-1');
  });

  it('alarms on errors and throttles, notifying the alarm topic when they fire and clear', () => {
    const alarms = resources(synthesized, 'aws_cloudwatch_metric_alarm');
    expect(alarms.map((a) => [a.alarm_name, a.metric_name, a.namespace])).toEqual([
      ['dev-health-errors', 'Errors', 'AWS/Lambda'],
      ['dev-health-throttles', 'Throttles', 'AWS/Lambda'],
    ]);
    for (const alarm of alarms) {
      expect(alarm.alarm_actions).toEqual(['arn:aws:sns:eu-central-1:222222222222:dev-alarms']);
      expect(alarm.ok_actions).toEqual(['arn:aws:sns:eu-central-1:222222222222:dev-alarms']);
    }
  });

  it('leaves environment encryption off when asked (the emulator cannot store it)', () => {
    const plain = Testing.synthScope((scope) => fn(scope, { encryptEnvironment: false }));
    expect(only(plain, 'aws_lambda_function').kms_key_arn).toBeUndefined();
  });

  it("refuses an environment over Lambda's 4 KB, counting a value known only at apply as 256 bytes", () => {
    const environment = (variables: Record<string, string>) => () =>
      Testing.synthScope((scope) => fn(scope, { environment: variables }));
    expect(environment({ BIG: 'x'.repeat(4093) })).not.toThrow();
    expect(environment({ BIG: 'x'.repeat(4094) })).toThrow(
      /invalid environment: received .*4097 bytes.*expected at most 4096 bytes of names and values/,
    );
    // 15 values known only at apply (256 each) and 35 bytes of their names, then 254 bytes more: 4129.
    const unresolved = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`T${i}`, Fn.uuid()]));
    expect(environment({ ...unresolved, TEXT: 'x'.repeat(250) })).toThrow(/4129 bytes/);
    expect(environment({ ...unresolved, TEXT: 'x'.repeat(100) })).not.toThrow();
  });

  it.each([
    [{ functionName: 'bad name' }, 'BundledFunction: invalid functionName: received "bad name"'],
    [{ functionName: 'x'.repeat(60) }, "fits IAM's 64 characters"],
    [
      { memoryMiB: 64 },
      'BundledFunction: invalid memoryMiB: received 64; expected an integer between 128 and 10240',
    ],
    [{ timeoutSec: 901 }, 'BundledFunction: invalid timeoutSec: received 901'],
    [{ provisionedConcurrency: -1 }, 'BundledFunction: invalid provisionedConcurrency: received -1'],
    [{ logRetentionDays: 100 }, 'BundledFunction: invalid logRetentionDays: received 100'],
    [{ environment: { AWS_REGION: 'x' } }, 'BundledFunction: invalid environment key: received "AWS_REGION"'],
    [{ statements: [{ actions: ['dynamodb:*'], resources: ['arn:t'] }] }, 'grants "dynamodb:*"'],
    [{ entry: 'modules/kms-key.ts' }, 'expected runtime/<capability>/handler.ts'],
  ])('refuses %j', (patch, message) => {
    expect(() => Testing.synthScope((scope) => fn(scope, patch))).toThrow(message);
  });
});

describe('bundleHandler', () => {
  it('bundles a handler once per process however many functions use it', () => {
    bundleHandler('runtime/health/handler.ts');
    const before = bundleRunCount();
    Testing.synthScope((scope) => {
      fn(scope);
    });
    Testing.synthScope((scope) => {
      fn(scope);
    });
    expect(bundleRunCount()).toBe(before);
  });

  it('names handlers after their folder under runtime/', () => {
    expect(handlerName('runtime/health/handler.ts')).toBe('health');
    expect(handlerName('runtime/quota/sync/handler.ts')).toBe('quota-sync');
  });

  it('exports a handler from a zip holding only index.js, with the SDK left to the runtime', () => {
    const bundle = bundleHandler('runtime/health/handler.ts');
    const entries = unzipSync(readFileSync(bundle.archivePath));
    expect(Object.keys(entries)).toEqual(['index.js']);
    const code = Buffer.from(entries['index.js'] as Uint8Array).toString('utf8');
    expect(code).toContain('require("@aws-sdk/client-dynamodb")');
    expect(code).not.toContain('DynamoDBClient extends');
  });

  it('gives byte-identical archives for the same sources in separate processes', () => {
    const bundle = bundleHandler('runtime/health/handler.ts');
    const elsewhere = mkdtempSync(join(tmpdir(), 'bundle-'));
    const script = `const { bundleHandler } = require('./modules/bundled-function/bundle'); process.stdout.write(bundleHandler('runtime/health/handler.ts').archivePath);`;
    const otherPath = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], {
      cwd: REPO_ROOT,
      env: { ...process.env, ESTATE_BUNDLE_DIR: elsewhere },
      encoding: 'utf8',
    });
    expect(otherPath.startsWith(elsewhere)).toBe(true);
    expect(Buffer.compare(readFileSync(otherPath), readFileSync(bundle.archivePath))).toBe(0);
  });
});
