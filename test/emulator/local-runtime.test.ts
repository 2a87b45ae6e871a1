import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  CreateSecretCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import {
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { SignatureV4 } from '@smithy/signature-v4';
import { strToU8, zipSync } from 'fflate';
import { startLocalRuntime, type LocalRuntime, type RuntimeLog } from '../../scripts/lib/local-runtime';
import { Sha256 } from '../../scripts/lib/local-runtime/sigv4';
import { readStackTriggers } from '../../scripts/lib/local-runtime/stack-files';
import { apply, init, prepareTerraform } from '../../scripts/lib/terraform';
import { EMULATOR_LANE_ENDPOINT, laneEndpoint } from '../support/moto-lane';

/*
 * The local runtime on a small stack applied with the real Terraform CLI onto the lane's emulator: a queue
 * with a dead-letter queue and an event-source mapping, a schedule, a Secrets Manager pattern rule, an HTTP
 * API with an open and an IAM-authorised route, all wired to one function whose handler reports what it got
 * to a `notes` queue. The runtime must find all of it in the stack's files and run the function on Node 22.
 */

const run = promisify(execFile);
const endpoint = laneEndpoint(EMULATOR_LANE_ENDPOINT);
const REGION = 'eu-west-3';
const id = `lr${randomBytes(3).toString('hex')}`;
const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };
const sqs = new SQSClient({ region: REGION, endpoint, credentials });

const HANDLER = `
const { SQSClient, SendMessageCommand } = require('@aws-sdk/client-sqs');
const sqs = new SQSClient({});
const note = (body) =>
  sqs.send(new SendMessageCommand({ QueueUrl: process.env.NOTES_QUEUE_URL, MessageBody: JSON.stringify(body) }));
exports.handler = async (event, context) => {
  if (Array.isArray(event.Records)) {
    const batchItemFailures = [];
    for (const record of event.Records) {
      if (record.body === 'poison') batchItemFailures.push({ itemIdentifier: record.messageId });
      else await note({ kind: 'consumed', body: record.body, source: record.eventSourceARN });
    }
    return { batchItemFailures };
  }
  if (event['detail-type'] === 'Scheduled Event') {
    await note({ kind: 'scheduled', resources: event.resources });
    return null;
  }
  if (event.version === '2.0') {
    return {
      statusCode: 200,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        routeKey: event.routeKey,
        pathParameters: event.pathParameters ?? null,
        caller: (event.requestContext.authorizer && event.requestContext.authorizer.iam.userArn) || null,
        node: process.version,
        marker: process.env.MARKER,
        invoked: context.invokedFunctionArn,
      }),
    };
  }
  throw new Error('unexpected event');
};
`;

const SECRETS_PATTERN = {
  source: ['aws.secretsmanager'],
  'detail-type': ['AWS API Call via CloudTrail'],
  detail: { eventSource: ['secretsmanager.amazonaws.com'], eventName: ['CreateSecret', 'PutSecretValue'] },
};

function stackJson(name: string, archiveSha: string): unknown {
  const api = '${aws_apigatewayv2_api.Api.id}';
  const target = 'integrations/${aws_apigatewayv2_integration.Fn.id}';
  return {
    terraform: {
      required_providers: { aws: { source: 'aws', version: '5.100.0' } },
      backend: { local: { path: `terraform.${name}.tfstate` } },
    },
    provider: {
      aws: [
        {
          region: REGION,
          access_key: 'test',
          secret_key: 'test',
          skip_credentials_validation: true,
          skip_metadata_api_check: 'true',
          skip_region_validation: true,
          endpoints: [
            Object.fromEntries(
              ['apigatewayv2', 'events', 'iam', 'lambda', 'sqs', 'sts'].map((s) => [s, endpoint]),
            ),
          ],
        },
      ],
    },
    resource: {
      aws_iam_role: {
        Role: {
          name: `${id}-role`,
          assume_role_policy: JSON.stringify({
            Version: '2012-10-17',
            Statement: [
              { Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' },
            ],
          }),
        },
      },
      aws_sqs_queue: {
        DeadLetters: { name: `${id}-dlq` },
        Work: {
          name: `${id}-work`,
          visibility_timeout_seconds: 30,
          redrive_policy: '{"deadLetterTargetArn":"${aws_sqs_queue.DeadLetters.arn}","maxReceiveCount":2}',
        },
        Notes: { name: `${id}-notes` },
        Changes: { name: `${id}-changes` },
      },
      aws_lambda_function: {
        Fn: {
          function_name: `${id}-fn`,
          handler: 'index.handler',
          runtime: 'nodejs22.x',
          filename: 'fn.zip',
          source_code_hash: archiveSha,
          role: '${aws_iam_role.Role.arn}',
          timeout: 10,
          publish: true,
          environment: {
            variables: { NOTES_QUEUE_URL: '${aws_sqs_queue.Notes.url}', MARKER: 'set-by-terraform' },
          },
        },
      },
      aws_lambda_alias: {
        Live: {
          name: 'live',
          function_name: '${aws_lambda_function.Fn.function_name}',
          function_version: '${aws_lambda_function.Fn.version}',
        },
      },
      aws_lambda_event_source_mapping: {
        Work: {
          event_source_arn: '${aws_sqs_queue.Work.arn}',
          function_name: '${aws_lambda_alias.Live.arn}',
          batch_size: 10,
          maximum_batching_window_in_seconds: 0,
          function_response_types: ['ReportBatchItemFailures'],
          enabled: false,
          lifecycle: { ignore_changes: ['function_name'] },
        },
      },
      aws_cloudwatch_event_rule: {
        Tick: { name: `${id}-tick`, schedule_expression: 'rate(1 minute)' },
        Changes: { name: `${id}-changes`, event_pattern: JSON.stringify(SECRETS_PATTERN) },
      },
      aws_cloudwatch_event_target: {
        Tick: { rule: '${aws_cloudwatch_event_rule.Tick.name}', arn: '${aws_lambda_alias.Live.arn}' },
        Changes: { rule: '${aws_cloudwatch_event_rule.Changes.name}', arn: '${aws_sqs_queue.Changes.arn}' },
      },
      aws_apigatewayv2_api: { Api: { name: `${id}-api`, protocol_type: 'HTTP' } },
      aws_apigatewayv2_integration: {
        Fn: {
          api_id: api,
          integration_type: 'AWS_PROXY',
          integration_uri: '${aws_lambda_alias.Live.invoke_arn}',
          payload_format_version: '2.0',
        },
      },
      aws_apigatewayv2_route: {
        Health: { api_id: api, route_key: 'GET /health', target },
        Admin: { api_id: api, route_key: 'POST /admin/{action}', authorization_type: 'AWS_IAM', target },
      },
      aws_apigatewayv2_stage: { Default: { api_id: api, name: '$default', auto_deploy: true } },
    },
  };
}

/** Every message of a queue received so far (the bodies, parsed), deleting what it reads. */
async function drain(queueUrl: string): Promise<unknown[]> {
  const bodies: unknown[] = [];
  for (;;) {
    const batch = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10 }));
    if (!batch.Messages?.length) return bodies;
    for (const message of batch.Messages) {
      bodies.push(JSON.parse(message.Body as string));
      await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }));
    }
  }
}

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const stackName = `local-runtime-${id}`;
let dir: string;
let runtime: LocalRuntime;
const logs: RuntimeLog[] = [];
const notes: Array<Record<string, unknown>> = [];
let queueUrl: (name: string) => string;

/** Notes the function sent so far, of one kind. */
async function notesOf(kind: string): Promise<Array<Record<string, unknown>>> {
  notes.push(...((await drain(queueUrl('Notes'))) as Array<Record<string, unknown>>));
  return notes.filter((note) => note.kind === kind);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'local-runtime-stack-'));
  const archive = Buffer.from(zipSync({ 'index.js': strToU8(HANDLER) }, { mtime: new Date('2020-01-01') }));
  writeFileSync(join(dir, 'fn.zip'), archive);
  const sha = createHash('sha256').update(archive).digest('base64');
  writeFileSync(join(dir, 'cdk.tf.json'), JSON.stringify(stackJson(stackName, sha), null, 2));
  const cli = prepareTerraform();
  await init(cli, dir);
  await apply(cli, dir);
  const triggers = readStackTriggers({ name: stackName, dir });
  queueUrl = (name) =>
    triggers.queues.find((queue) => queue.address === `aws_sqs_queue.${name}`)?.url as string;
  runtime = await startLocalRuntime({
    endpoint,
    stacks: [{ name: stackName, dir }],
    speed: 60,
    retryVisibilitySec: 1,
    onLog: (entry) => logs.push(entry),
  });
}, 600_000);

afterAll(async () => {
  await runtime?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the local runtime on a stack applied onto the emulator', () => {
  it('discovers the mapping, the two rules and the two routes from the stack it was given', () => {
    const [stack] = runtime.triggers;
    expect(
      stack?.mappings.map((m) => [m.queue.name, m.target, m.queue.redrivePolicy?.maxReceiveCount]),
    ).toEqual([[`${id}-work`, { functionName: `${id}-fn`, qualifier: 'live' }, 2]]);
    expect(stack?.rules.map((rule) => rule.name).sort()).toEqual([`${id}-changes`, `${id}-tick`]);
    expect(
      stack?.apis[0]?.routes.map((route) => `${route.routeKey} ${route.authorizationType}`).sort(),
    ).toEqual(['GET /health NONE', 'POST /admin/{action} AWS_IAM']);
    expect(runtime.httpEndpoints.get(REGION)).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(runtime.nodeVersion).toMatch(/^v22\./);
  });

  it('consumes a message through the mapped function, which runs with the environment the emulator stores', async () => {
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl('Work'), MessageBody: 'hello' }));
    const consumed = await eventually('the message to be consumed', async () =>
      (await notesOf('consumed')).find((note) => note.body === 'hello'),
    );
    expect(consumed.source).toBe(`arn:aws:sqs:${REGION}:123456789012:${id}-work`);
  });

  it('dead-letters a message the function keeps reporting failed, after maxReceiveCount receives', async () => {
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl('Work'), MessageBody: 'poison' }));
    const dead = await eventually('the poison message in the dead-letter queue', async () => {
      const batch = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: queueUrl('DeadLetters'),
          MessageSystemAttributeNames: ['All'],
        }),
      );
      return batch.Messages?.find((message) => message.Body === 'poison');
    });
    // Received twice from the work queue (both reported failed), moved on the third receive.
    expect(Number(dead.Attributes?.ApproximateReceiveCount)).toBeGreaterThanOrEqual(2);
    const failedBatches = logs.filter((entry) => entry.kind === 'batch' && entry.failed > 0);
    expect(failedBatches.length).toBeGreaterThanOrEqual(2);
    expect((await notesOf('consumed')).some((note) => note.body === 'poison')).toBe(false);
  });

  it('answers GET /health through curl with the function behind its alias', async () => {
    const url = runtime.httpEndpoints.get(REGION) as string;
    const { stdout } = await run('curl', ['-s', '-w', '\\n%{http_code}', `${url}/health`]);
    const [body, status] = stdout.split('\n');
    expect(status).toBe('200');
    expect(JSON.parse(body as string)).toMatchObject({
      routeKey: 'GET /health',
      caller: null,
      node: expect.stringMatching(/^v22\./),
      marker: 'set-by-terraform',
      invoked: `arn:aws:lambda:${REGION}:123456789012:function:${id}-fn:live`,
    });
  });

  it('serves the IAM route to `curl --aws-sigv4` and to an SDK-signed request, and refuses an unsigned one', async () => {
    const url = runtime.httpEndpoints.get(REGION) as string;
    const curl = (...extra: string[]) =>
      run('curl', [
        '-s',
        '-w',
        '\\n%{http_code}',
        ...extra,
        '-X',
        'POST',
        '-d',
        '{}',
        `${url}/admin/drain`,
      ]).then(({ stdout }) => stdout.split('\n'));
    const [body, status] = await curl('--aws-sigv4', `aws:amz:${REGION}:execute-api`, '--user', 'test:test');
    expect(status).toBe('200');
    expect(JSON.parse(body as string)).toMatchObject({
      routeKey: 'POST /admin/{action}',
      pathParameters: { action: 'drain' },
      caller: expect.stringMatching(/^arn:aws:(iam|sts)::123456789012:/),
    });
    expect(await curl()).toEqual(['{"message":"Forbidden"}', '403']);
    expect((await curl('--aws-sigv4', `aws:amz:us-east-1:execute-api`, '--user', 'test:test'))[1]).toBe(
      '403',
    );

    const target = new URL(`${url}/admin/restore`);
    const signer = new SignatureV4({
      credentials,
      region: REGION,
      service: 'execute-api',
      sha256: Sha256,
    });
    const signed = await signer.sign({
      method: 'POST',
      protocol: 'http:',
      hostname: target.hostname,
      port: Number(target.port),
      path: target.pathname,
      query: {},
      headers: { host: target.host, 'content-type': 'application/json' },
      body: '{"reason":"drill"}',
    });
    const response = await fetch(target, {
      method: 'POST',
      headers: signed.headers as Record<string, string>,
      body: '{"reason":"drill"}',
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ pathParameters: { action: 'restore' } });
  });

  it('fires the schedule, sped up 60 times (rate(1 minute) every second)', async () => {
    const ticks = await eventually('two scheduled invocations', async () => {
      const found = await notesOf('scheduled');
      return found.length >= 2 ? found : undefined;
    });
    expect(ticks[0]?.resources).toEqual([`arn:aws:events:${REGION}:123456789012:rule/${id}-tick`]);
  });

  it("turns a PutSecretValue made through the proxy into the CloudTrail event the pattern rule's queue receives", async () => {
    const secrets = new SecretsManagerClient({
      region: REGION,
      endpoint: runtime.secretsEndpoint,
      credentials,
    });
    const created = await secrets.send(
      new CreateSecretCommand({ Name: `${id}/db`, SecretString: 'first-value' }),
    );
    await secrets.send(new PutSecretValueCommand({ SecretId: `${id}/db`, SecretString: 'second-value' }));
    const events = await eventually('both CloudTrail events on the rule target', async () => {
      const found = (await drainChanges()).filter((event) => event.source === 'aws.secretsmanager');
      return found.length >= 2 ? found : undefined;
    });
    const put = events.find(
      (event) => (event.detail as { eventName: string }).eventName === 'PutSecretValue',
    );
    expect(put).toMatchObject({
      'detail-type': 'AWS API Call via CloudTrail',
      region: REGION,
      account: '123456789012',
      detail: {
        eventSource: 'secretsmanager.amazonaws.com',
        requestParameters: { secretId: `${id}/db` },
        responseElements: { arn: created.ARN },
      },
    });
    expect(JSON.stringify(events)).not.toMatch(/first-value|second-value/);
    expect(runtime.status().patterns).toEqual([{ rule: `${id}-changes`, region: REGION, matched: 2 }]);
  });

  it('reports invocations per function for a status view', () => {
    const status = runtime.status();
    const fn = status.functions.find((f) => f.functionName === `${id}-fn`);
    expect(fn?.invocations).toBeGreaterThanOrEqual(6);
    expect(status.schedules[0]).toMatchObject({ rule: `${id}-tick`, expression: 'rate(1 minute)' });
    expect(status.schedules[0]?.fired).toBeGreaterThanOrEqual(2);
    expect(status.queues[0]).toMatchObject({ queue: `${id}-work` });
    expect(status.queues[0]?.acknowledged).toBeGreaterThanOrEqual(1);
    expect(status.secretsEvents).toBe(2);
  });
});

const changes: Array<Record<string, unknown>> = [];
async function drainChanges(): Promise<Array<Record<string, unknown>>> {
  changes.push(...((await drain(queueUrl('Changes'))) as Array<Record<string, unknown>>));
  return changes;
}
