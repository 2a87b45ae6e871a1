import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  discoverTriggers,
  parseFunctionArn,
  type StackTriggers,
} from '../../scripts/lib/local-runtime/discover';
import { localEnvironment, synthesize } from '../../scripts/lib/synth';

/*
 * Discovery on the real synthesized `local` regional stack, with a state written here the way the AWS provider
 * reads the resources back from the emulator (ARNs, queue URLs, API ids; an event-source mapping's function
 * read back as the version the alias pointed at, not the alias).
 */

const ACCOUNT = '123456789012';
const EMULATOR = 'http://127.0.0.1:4566';
type Block = Record<string, unknown>;
type Config = { resource: Record<string, Record<string, Block>>; provider: { aws: Block[] } };

let outdir: string;
let config: Config;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'local-runtime-discover-'));
  const stacks = synthesize([localEnvironment(EMULATOR)], outdir);
  const regional = stacks.find((stack) => stack.name === 'local-eu-central-1');
  if (!regional) throw new Error('no local-eu-central-1 stack');
  config = JSON.parse(readFileSync(join(regional.dir, 'cdk.tf.json'), 'utf8')) as Config;
}, 180_000);

afterAll(() => rmSync(outdir, { recursive: true, force: true }));

/** A state as `terraform apply` onto the emulator leaves it, for the resources discovery reads. */
function appliedState(region: string): unknown {
  const values = new Map<string, unknown>();
  const ref = (type: string, name: string, attr: string) => `\${${type}.${name}.${attr}}`;
  const blocks = (type: string) => Object.entries(config.resource[type] ?? {});
  for (const [name, block] of blocks('aws_sqs_queue')) {
    const queue = block.name as string;
    values.set(ref('aws_sqs_queue', name, 'arn'), `arn:aws:sqs:${region}:${ACCOUNT}:${queue}`);
    values.set(ref('aws_sqs_queue', name, 'url'), `${EMULATOR}/${ACCOUNT}/${queue}`);
  }
  for (const [name, block] of blocks('aws_lambda_function')) {
    const arn = `arn:aws:lambda:${region}:${ACCOUNT}:function:${block.function_name as string}`;
    values.set(ref('aws_lambda_function', name, 'function_name'), block.function_name);
    values.set(ref('aws_lambda_function', name, 'arn'), arn);
    values.set(ref('aws_lambda_function', name, 'version'), '1');
  }
  for (const [name, block] of blocks('aws_lambda_alias')) {
    const fn = values.get(block.function_name as string) as string;
    const arn = `arn:aws:lambda:${region}:${ACCOUNT}:function:${fn}:${block.name as string}`;
    values.set(ref('aws_lambda_alias', name, 'arn'), arn);
    values.set(ref('aws_lambda_alias', name, 'name'), block.name);
    values.set(ref('aws_lambda_alias', name, 'function_name'), fn);
    values.set(
      ref('aws_lambda_alias', name, 'invoke_arn'),
      `arn:aws:apigateway:${region}:lambda:path/2015-03-31/functions/${arn}/invocations`,
    );
  }
  for (const [name, block] of blocks('aws_cloudwatch_event_rule'))
    values.set(ref('aws_cloudwatch_event_rule', name, 'name'), block.name);
  for (const [name] of blocks('aws_apigatewayv2_api'))
    values.set(ref('aws_apigatewayv2_api', name, 'id'), 'api0001');
  blocks('aws_apigatewayv2_integration').forEach(([name], i) =>
    values.set(ref('aws_apigatewayv2_integration', name, 'id'), `int${i}`),
  );
  const resolve = (value: unknown): unknown => {
    if (typeof value === 'string')
      return value.replace(/\$\{[^}]+\}/g, (whole) => {
        const found = values.get(whole);
        return typeof found === 'string' ? found : whole;
      });
    if (Array.isArray(value)) return value.map(resolve);
    if (typeof value === 'object' && value !== null)
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v)]));
    return value;
  };
  const attributesOf = (type: string, name: string, block: Block): Block => {
    const meta = new Set(['//', 'depends_on', 'lifecycle']);
    const attributes = resolve(
      Object.fromEntries(Object.entries(block).filter(([k]) => !meta.has(k))),
    ) as Block;
    switch (type) {
      case 'aws_sqs_queue':
        return {
          ...attributes,
          arn: values.get(ref(type, name, 'arn')),
          url: values.get(ref(type, name, 'url')),
          id: values.get(ref(type, name, 'url')),
          redrive_policy: attributes.redrive_policy ?? '',
          visibility_timeout_seconds: attributes.visibility_timeout_seconds ?? 30,
          fifo_queue: false,
        };
      case 'aws_lambda_function':
        return { ...attributes, arn: values.get(ref(type, name, 'arn')), version: '1', environment: [] };
      case 'aws_lambda_alias':
        return { ...attributes, arn: values.get(ref(type, name, 'arn')), function_version: '1' };
      case 'aws_lambda_event_source_mapping':
        // The provider reads the alias back as the version it points at (the reason for ignore_changes).
        return {
          ...attributes,
          function_name: (attributes.function_name as string).replace(/:live$/, ':1'),
          scaling_config: [],
        };
      case 'aws_cloudwatch_event_rule':
        return {
          ...attributes,
          arn: `arn:aws:events:${region}:${ACCOUNT}:rule/${block.name as string}`,
          event_pattern: attributes.event_pattern ?? null,
          state: 'ENABLED',
        };
      case 'aws_cloudwatch_event_target':
        return {
          ...attributes,
          input: '',
          input_path: '',
          input_transformer: [],
          dead_letter_config: attributes.dead_letter_config ? [attributes.dead_letter_config] : [],
          retry_policy: [attributes.retry_policy],
        };
      case 'aws_apigatewayv2_api':
        return { ...attributes, id: 'api0001' };
      case 'aws_apigatewayv2_integration':
        return { ...attributes, id: values.get(ref(type, name, 'id')) };
      default:
        return attributes;
    }
  };
  return {
    version: 4,
    resources: Object.entries(config.resource).flatMap(([type, byName]) =>
      Object.entries(byName).map(([name, block]) => ({
        mode: 'managed',
        type,
        name,
        provider: 'provider["registry.terraform.io/hashicorp/aws"]',
        instances: [{ schema_version: 0, attributes: attributesOf(type, name, block) }],
      })),
    ),
  };
}

const dlq = (name: string) => `arn:aws:sqs:eu-central-1:${ACCOUNT}:${name}`;

describe('discoverTriggers on the synthesized local regional stack', () => {
  let triggers: StackTriggers;
  beforeAll(() => {
    triggers = discoverTriggers('local-eu-central-1', config, appliedState('eu-central-1'));
  });

  it('finds the region, the account and every function with its archive, handler and timeout', () => {
    expect(triggers.region).toBe('eu-central-1');
    expect(triggers.account).toBe(ACCOUNT);
    expect(triggers.applied).toBe(true);
    expect(triggers.functions.map((fn) => fn.functionName).sort()).toEqual([
      'local-health',
      'local-quota-sync',
      'local-runners-admin',
      'local-runners-cache',
      'local-runners-dispatcher',
      'local-runners-reaper',
      'local-runners-redelivery',
      'local-runners-router',
      'local-secrets-replicator',
      'local-sync-anti-entropy',
      'local-sync-inbox',
    ]);
    const health = triggers.functions.find((fn) => fn.functionName === 'local-health');
    expect(health).toMatchObject({
      handler: 'index.handler',
      runtime: 'nodejs22.x',
      timeoutSec: 10,
      arn: `arn:aws:lambda:eu-central-1:${ACCOUNT}:function:local-health`,
    });
    expect(health?.filename).toMatch(/^assets\/.+\/health\.zip$/);
    expect(triggers.functions.find((fn) => fn.functionName === 'local-quota-sync')?.reservedConcurrency).toBe(
      1,
    );
    expect(triggers.aliases).toHaveLength(11);
    expect(triggers.skipped).toEqual([]);
  });

  it('resolves the five SQS event-source mappings to their queue URL, redrive policy and alias', () => {
    const mappings = triggers.mappings.map((m) => ({
      queue: m.queue.name,
      url: m.queue.url,
      visibility: m.queue.visibilityTimeoutSec,
      redrive: m.queue.redrivePolicy,
      target: m.target,
      batchSize: m.batchSize,
      window: m.maximumBatchingWindowSec,
      partial: m.reportBatchItemFailures,
      enabled: m.enabled,
    }));
    const runnerQueue = (kind: string) => ({
      queue: `local-runners-${kind}`,
      url: `${EMULATOR}/${ACCOUNT}/local-runners-${kind}`,
      visibility: 360,
      redrive: { deadLetterTargetArn: dlq('local-runners-dead-letter'), maxReceiveCount: 5 },
      target: { functionName: 'local-runners-dispatcher', qualifier: 'live' },
      batchSize: 5,
      window: 0,
      partial: true,
      enabled: false,
    });
    expect(mappings.sort((a, b) => a.queue.localeCompare(b.queue))).toEqual([
      runnerQueue('docker'),
      runnerQueue('on-demand'),
      runnerQueue('standard'),
      {
        queue: 'local-secrets-replication',
        url: `${EMULATOR}/${ACCOUNT}/local-secrets-replication`,
        visibility: 1800,
        redrive: { deadLetterTargetArn: dlq('local-secrets-replication-dead-letters'), maxReceiveCount: 5 },
        target: { functionName: 'local-secrets-replicator', qualifier: 'live' },
        batchSize: 1,
        window: 0,
        partial: true,
        enabled: false,
      },
      {
        queue: 'local-sync-inbox',
        url: `${EMULATOR}/${ACCOUNT}/local-sync-inbox`,
        visibility: 721,
        redrive: { deadLetterTargetArn: dlq('local-sync-inbox-dead-letters'), maxReceiveCount: 5 },
        target: { functionName: 'local-sync-inbox', qualifier: 'live' },
        batchSize: 10,
        window: 1,
        partial: true,
        enabled: false,
      },
    ]);
    for (const mapping of triggers.mappings)
      expect(mapping.queue.arn).toBe(`arn:aws:sqs:eu-central-1:${ACCOUNT}:${mapping.queue.name}`);
  });

  it('finds the seven rules: schedules and the CloudTrail pattern, each with its targets', () => {
    const rules = triggers.rules.map((rule) => ({
      name: rule.name,
      schedule: rule.scheduleExpression,
      pattern: rule.eventPattern !== undefined,
      targets: rule.targets.map((target) =>
        target.destination.kind === 'function'
          ? `function ${target.destination.function.functionName}:${target.destination.function.qualifier}`
          : target.destination.kind === 'queue'
            ? `queue ${target.destination.queue.name} (dead letters ${target.deadLetterArn})`
            : target.destination.kind,
      ),
    }));
    const fn = (name: string) => [`function ${name}:live`];
    const secretsQueue = [
      `queue local-secrets-replication (dead letters ${dlq('local-secrets-replication-dead-letters')})`,
    ];
    expect(rules.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      {
        name: 'local-health-report',
        schedule: 'rate(1 minute)',
        pattern: false,
        targets: fn('local-health'),
      },
      {
        name: 'local-quota-sync',
        schedule: 'cron(* * * * ? *)',
        pattern: false,
        targets: fn('local-quota-sync'),
      },
      {
        name: 'local-runners-reaper',
        schedule: 'rate(5 minutes)',
        pattern: false,
        targets: fn('local-runners-reaper'),
      },
      {
        name: 'local-runners-redelivery',
        schedule: 'rate(5 minutes)',
        pattern: false,
        targets: fn('local-runners-redelivery'),
      },
      { name: 'local-secrets-changes', schedule: undefined, pattern: true, targets: secretsQueue },
      { name: 'local-secrets-resync', schedule: 'rate(1 day)', pattern: false, targets: secretsQueue },
      {
        name: 'local-sync-anti-entropy',
        schedule: 'rate(5 minutes)',
        pattern: false,
        targets: fn('local-sync-anti-entropy'),
      },
    ]);
    const changes = triggers.rules.find((rule) => rule.name === 'local-secrets-changes');
    expect(changes?.arn).toBe(`arn:aws:events:eu-central-1:${ACCOUNT}:rule/local-secrets-changes`);
    expect(changes?.eventPattern).toMatchObject({
      source: ['aws.secretsmanager'],
      'detail-type': ['AWS API Call via CloudTrail'],
      detail: { eventSource: ['secretsmanager.amazonaws.com'] },
    });
    expect((changes?.eventPattern?.detail as { eventName: string[] }).eventName).toEqual(
      expect.arrayContaining(['CreateSecret', 'PutSecretValue', 'DeleteSecret', 'TagResource']),
    );
  });

  it('finds the HTTP API with its seven routes, their authorisation and the alias each integration invokes', () => {
    expect(triggers.apis).toHaveLength(1);
    const [api] = triggers.apis;
    expect(api).toMatchObject({
      name: 'local-api',
      id: 'api0001',
      stageName: '$default',
      region: 'eu-central-1',
    });
    const routes = api?.routes.map(
      (route) =>
        `${route.routeKey} ${route.authorizationType} -> ${route.integration.function.functionName}:${route.integration.function.qualifier} (${route.integration.payloadFormatVersion}, ${route.integration.timeoutMs} ms)`,
    );
    expect(routes?.sort()).toEqual([
      'GET /admin/regions AWS_IAM -> local-runners-admin:live (2.0, 10000 ms)',
      'GET /cache/{hash} NONE -> local-runners-cache:live (2.0, 10000 ms)',
      'GET /health NONE -> local-health:live (2.0, 10000 ms)',
      'POST /admin/failover/{region} AWS_IAM -> local-runners-admin:live (2.0, 10000 ms)',
      'POST /admin/restore/{region} AWS_IAM -> local-runners-admin:live (2.0, 10000 ms)',
      'POST /webhook NONE -> local-runners-router:live (2.0, 10000 ms)',
      'PUT /cache/{hash} NONE -> local-runners-cache:live (2.0, 10000 ms)',
    ]);
  });

  it("reads each function's asynchronous settings (retries, on-failure destination)", () => {
    const health = triggers.asyncConfigs.find((config) => config.target.functionName === 'local-health');
    expect(health).toEqual(
      expect.objectContaining({
        target: { functionName: 'local-health', qualifier: 'live' },
        maximumRetryAttempts: 2,
        onFailureArn: dlq('local-health-dlq'),
      }),
    );
    expect(triggers.asyncConfigs).toHaveLength(11);
  });

  it('still lists every trigger of an unapplied stack, without queue URLs or API ids', () => {
    const unapplied = discoverTriggers('local-eu-central-1', config);
    expect(unapplied.applied).toBe(false);
    expect(unapplied.mappings).toHaveLength(5);
    expect(unapplied.mappings.every((mapping) => mapping.queue.url === undefined)).toBe(true);
    expect(unapplied.rules).toHaveLength(7);
    expect(unapplied.apis[0]?.routes).toHaveLength(7);
    expect(unapplied.apis[0]?.id).toBe('aws_apigatewayv2_api.Api_F1A3B7F9');
  });
});

describe('discoverTriggers on hand-written Terraform JSON', () => {
  const provider = {
    aws: [{ region: 'eu-west-1' }, { alias: 'virginia', region: 'us-east-1' }],
  };
  const fn = (name: string, extra: Block = {}) => ({
    function_name: name,
    handler: 'app.main',
    filename: `${name}.zip`,
    runtime: 'nodejs22.x',
    role: 'arn:aws:iam::111122223333:role/r',
    ...extra,
  });

  it('resolves targets named by literal ARNs, invoke ARNs and names, and reads regions from provider aliases', () => {
    const triggers = discoverTriggers('hand', {
      provider,
      resource: {
        aws_lambda_function: {
          Worker: fn('worker', { timeout: 30 }),
          Far: fn('far', { provider: 'aws.virginia' }),
          FromS3: { ...fn('s3'), filename: undefined, s3_bucket: 'b', s3_key: 'k' },
          Python: fn('py', { runtime: 'python3.12' }),
        },
        aws_sqs_queue: { Jobs: { name: 'jobs', visibility_timeout_seconds: 180 } },
        aws_lambda_event_source_mapping: {
          Literal: {
            event_source_arn: 'arn:aws:sqs:eu-west-1:123456789012:jobs',
            function_name: 'arn:aws:lambda:eu-west-1:123456789012:function:worker:blue',
            scaling_config: { maximum_concurrency: 3 },
          },
          Stream: {
            event_source_arn: 'arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/x',
            function_name: 'worker',
          },
        },
        aws_cloudwatch_event_rule: {
          Nightly: { name: 'nightly', schedule_expression: 'cron(0 3 * * ? *)', state: 'DISABLED' },
          Orders: { name: 'orders', event_pattern: '{"source":["shop"]}', event_bus_name: 'shop-bus' },
        },
        aws_cloudwatch_event_target: {
          ToWorker: {
            rule: 'nightly',
            arn: 'arn:aws:lambda:eu-west-1:123456789012:function:worker',
            input: '{"mode":"full"}',
          },
          ToTopic: {
            rule: '${aws_cloudwatch_event_rule.Orders.name}',
            arn: 'arn:aws:sns:eu-west-1:123456789012:orders',
            input_transformer: { input_paths: { id: '$.detail.id' }, input_template: '{"order":"<id>"}' },
          },
        },
        aws_apigatewayv2_api: { Socket: { name: 'socket', protocol_type: 'WEBSOCKET' } },
      },
    });
    expect(triggers.region).toBe('eu-west-1');
    expect(triggers.functions.map((f) => [f.functionName, f.region, f.timeoutSec])).toEqual([
      ['worker', 'eu-west-1', 30],
      ['far', 'us-east-1', 3],
    ]);
    expect(triggers.mappings).toHaveLength(1);
    expect(triggers.mappings[0]).toMatchObject({
      queue: { name: 'jobs', visibilityTimeoutSec: 180 },
      target: { functionName: 'worker', qualifier: 'blue' },
      batchSize: 10,
      maximumBatchingWindowSec: 0,
      reportBatchItemFailures: false,
      maximumConcurrency: 3,
      enabled: true,
    });
    const [nightly, orders] = triggers.rules;
    expect(nightly).toMatchObject({ name: 'nightly', enabled: false, eventBusName: 'default' });
    expect(nightly?.targets[0]).toMatchObject({
      destination: { kind: 'function', function: { functionName: 'worker' } },
      input: '{"mode":"full"}',
    });
    expect(orders).toMatchObject({
      eventBusName: 'shop-bus',
      arn: 'arn:aws:events:eu-west-1:123456789012:rule/shop-bus/orders',
    });
    expect(orders?.targets[0]).toMatchObject({
      destination: { kind: 'topic', topicArn: 'arn:aws:sns:eu-west-1:123456789012:orders' },
      inputTransformer: { inputPaths: { id: '$.detail.id' }, inputTemplate: '{"order":"<id>"}' },
    });
    expect(triggers.skipped).toEqual([
      expect.stringMatching(/FromS3: not deployed from a local archive/),
      expect.stringMatching(/Python: a python3.12 function/),
      expect.stringMatching(/Stream: its source \(dynamodb\) is not an SQS queue/),
      expect.stringMatching(/Socket: a WEBSOCKET API/),
    ]);
  });

  it('refuses a stack without a default provider region, naming the stack', () => {
    expect(() =>
      discoverTriggers('odd', { provider: { aws: [{ alias: 'x', region: 'us-east-1' }] } }),
    ).toThrow(/odd: provider.aws: expected a default AWS provider/);
  });

  it('refuses a malformed redrive policy or event pattern, naming the resource and field', () => {
    expect(() =>
      discoverTriggers('bad', {
        provider,
        resource: { aws_sqs_queue: { Q: { name: 'q', redrive_policy: '{"maxReceiveCount":0}' } } },
      }),
    ).toThrow(/aws_sqs_queue\.Q: redrive_policy: expected deadLetterTargetArn and a maxReceiveCount >= 1/);
    expect(() =>
      discoverTriggers('bad', {
        provider,
        resource: { aws_cloudwatch_event_rule: { R: { name: 'r', event_pattern: '{not json' } } },
      }),
    ).toThrow(/aws_cloudwatch_event_rule\.R: event_pattern: expected JSON/);
  });
});

describe('parseFunctionArn', () => {
  it('reads function ARNs, qualified ARNs and API Gateway invoke ARNs', () => {
    expect(parseFunctionArn('arn:aws:lambda:eu-west-1:123456789012:function:f')).toEqual({
      functionName: 'f',
    });
    expect(parseFunctionArn('arn:aws:lambda:eu-west-1:123456789012:function:f:live')).toEqual({
      functionName: 'f',
      qualifier: 'live',
    });
    expect(
      parseFunctionArn(
        'arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:f:7/invocations',
      ),
    ).toEqual({ functionName: 'f', qualifier: '7' });
    expect(parseFunctionArn('f')).toBeUndefined();
  });
});
