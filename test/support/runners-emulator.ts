import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateTimeToLiveCommand,
  type AttributeValue,
  type KeySchemaElement,
} from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, S3Client, type BucketLocationConstraint } from '@aws-sdk/client-s3';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
  type Message,
} from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { bundleHandler } from '../../modules/bundled-function/bundle';
import { recordRegionStatus } from '../../runtime/health/region-status';
import type { HttpResponse } from '../../runtime/lib/http';
import { parseRunnerConfig, type RunnerConfig } from '../../runtime/runners/config';
import { runnerDeadLetterQueueName, runnerQueueName } from '../../runtime/runners/tables';
import {
  capturingOutput,
  emulatorEnv,
  loadBundleSource,
  withClock,
  withEnv,
  type LambdaHandler,
} from '../../scripts/lib/load-bundle';
import { sqsEvent } from './cloudtrail-events';
import { FakeGitHub } from './fake-github';

/*
 * The runner control plane of two regions on the emulator, as the estate's `local` environment lays it out
 * (`dynamodb.replication: per-region`: every global table is a table of the same name in each region, not
 * replicated), and its four functions as esbuild bundles them, each region's loaded as a container of its
 * own and invoked with the environment modules/runner-control-plane.ts gives it.
 *
 * What stands in: an ECS RunTask recorder (EcsRecorder, below) reached through the SDK's service-specific
 * endpoint variable AWS_ENDPOINT_URL_ECS, since moto 5.2 answers RunTask with a 500 in server mode for
 * Fargate and bridge tasks; and a fake GitHub (fake-github.ts) reached through GITHUB_API_URL.
 *
 * The functions name runner queues by URLs they build (`https://sqs.<region>.amazonaws.com/...`,
 * tables.ts); their SQS clients must send to their own endpoint (`useQueueUrlAsEndpoint: false`), or the
 * SDK would take the URL's host and leave the emulator.
 */

/** moto's account for credentials it did not issue. */
export const ACCOUNT = '123456789012';
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

/** The wall clock, kept before a bundle's clock replaces the process's `Date.now` (withClock). */
const wallNow: () => number = Date.now.bind(Date);

export type RunnerFunction = 'router' | 'dispatcher' | 'admin' | 'cache';

const ENTRIES: Readonly<Record<RunnerFunction, string>> = {
  router: 'runtime/runners/router/handler.ts',
  dispatcher: 'runtime/runners/dispatcher/handler.ts',
  admin: 'runtime/runners/admin/handler.ts',
  cache: 'runtime/runners/cache/handler.ts',
};

const sources = new Map<RunnerFunction, { readonly source: string; readonly filename: string }>();

/** A function's bundle (esbuild runs once per process), read once per test file. */
function bundleOf(fn: RunnerFunction): { readonly source: string; readonly filename: string } {
  let found = sources.get(fn);
  if (!found) {
    const bundle = bundleHandler(ENTRIES[fn]);
    found = { source: readFileSync(bundle.codePath, 'utf8'), filename: bundle.codePath };
    sources.set(fn, found);
  }
  return found;
}

// ------------------------------------------------------------------------------------------- ECS

/** One ECS call as it crossed the wire: the operation, the region it was signed for, its JSON input. */
export interface EcsCall {
  readonly operation: string;
  readonly region: string;
  readonly input: Readonly<Record<string, unknown>>;
  /** The task ARN a RunTask was answered with. */
  readonly taskArn?: string;
}

/** What a RunTask asked for, in the terms the tests check. */
export interface RunTaskRecord {
  readonly region: string;
  readonly cluster: string;
  readonly taskDefinition: string;
  readonly capacityProviderStrategy: unknown;
  readonly networkConfiguration: unknown;
  readonly containerName: string;
  /** The container override's environment, by name. */
  readonly environment: ReadonlyMap<string, string>;
  readonly tags: unknown;
  readonly startedBy: string;
  /** What the recorder answered. */
  readonly taskArn: string;
}

/** The region a SigV4 `authorization` header was signed for. */
export function signedRegion(headers: IncomingHttpHeaders): string {
  return /Credential=[^/]+\/\d{8}\/([a-z0-9-]+)\//.exec(String(headers.authorization ?? ''))?.[1] ?? '';
}

const field = (value: unknown, key: string): unknown =>
  typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;

/**
 * The ECS JSON API (awsJson1_1, `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<operation>`) played
 * just enough for RunTask, on a loopback port: every call is recorded with the region its signature names;
 * RunTask answers one task on the cluster named; every other operation (StopTask among them) is recorded
 * and refused, so a test sees that it was made.
 */
export class EcsRecorder {
  private constructor(
    readonly endpoint: string,
    private readonly server: Server,
    /** Every call, in the order it arrived. */
    readonly calls: readonly EcsCall[],
  ) {}

  static async start(): Promise<EcsRecorder> {
    const calls: EcsCall[] = [];
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const operation = String(request.headers['x-amz-target'] ?? '')
          .split('.')
          .pop() as string;
        const region = signedRegion(request.headers);
        let input: Record<string, unknown> = {};
        try {
          input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
        } catch {
          // recorded with no input
        }
        response.setHeader('content-type', 'application/x-amz-json-1.1');
        if (operation !== 'RunTask') {
          calls.push({ operation, region, input });
          response.statusCode = 400;
          response.end(
            JSON.stringify({ __type: 'InvalidParameterException', message: 'not played by the recorder' }),
          );
          return;
        }
        const cluster = String(input.cluster ?? 'default');
        const taskArn = `arn:aws:ecs:${region}:${ACCOUNT}:task/${cluster}/${randomBytes(16).toString('hex')}`;
        calls.push({ operation, region, input, taskArn });
        response.end(
          JSON.stringify({
            tasks: [
              {
                taskArn,
                clusterArn: `arn:aws:ecs:${region}:${ACCOUNT}:cluster/${cluster}`,
                lastStatus: 'PROVISIONING',
                desiredStatus: 'RUNNING',
                startedBy: input.startedBy,
              },
            ],
            failures: [],
          }),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return new EcsRecorder(`http://127.0.0.1:${port}`, server, calls);
  }

  /** Every RunTask, in order, with the task ARN it was answered with. */
  runTasks(): RunTaskRecord[] {
    return this.calls
      .filter((call) => call.operation === 'RunTask')
      .map((call) => {
        const overrides = field(field(call.input, 'overrides'), 'containerOverrides');
        const override = Array.isArray(overrides) ? (overrides[0] as unknown) : undefined;
        const given = field(override, 'environment');
        const environment = Array.isArray(given) ? (given as { name: string; value: string }[]) : [];
        return {
          region: call.region,
          cluster: String(call.input.cluster),
          taskDefinition: String(call.input.taskDefinition),
          capacityProviderStrategy: call.input.capacityProviderStrategy,
          networkConfiguration: call.input.networkConfiguration,
          containerName: String(field(override, 'name')),
          environment: new Map(environment.map((e) => [e.name, e.value])),
          tags: call.input.tags,
          startedBy: String(call.input.startedBy),
          taskArn: call.taskArn ?? '',
        };
      });
  }

  /** Operations other than RunTask that reached ECS (StopTask would be one). */
  otherOperations(): string[] {
    return this.calls.filter((call) => call.operation !== 'RunTask').map((call) => call.operation);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ------------------------------------------------------------------------------------- the plane

/** The tables of a region: the regional state table and the four global tables' replicas. */
export type TableName = 'state' | 'idempotency' | 'workflows' | 'cacheIndex' | 'regionStatus';

const TABLE_KEYS: Readonly<Record<TableName, readonly string[]>> = {
  state: ['pk', 'sk'],
  idempotency: ['key'],
  workflows: ['workflowId'],
  cacheIndex: ['cacheKey'],
  regionStatus: ['region'],
};

const TABLE_PURPOSES: Readonly<Record<TableName, string>> = {
  state: 'region-state',
  idempotency: 'idempotency-keys',
  workflows: 'runner-workflows',
  cacheIndex: 'artifact-cache-index',
  regionStatus: 'region-status',
};

export type Item = Record<string, AttributeValue>;

/** A JSON log line a bundle wrote (Powertools' logger); EMF metric lines are left out. */
export interface LogLine {
  readonly level?: string;
  readonly message: string;
  readonly [key: string]: unknown;
}

export function logLines(output: string): LogLine[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line): line is LogLine => typeof line.message === 'string');
}

export interface Invocation<T> {
  readonly result: T;
  readonly output: string;
  readonly logs: LogLine[];
}

/** An HTTP API answer, its JSON body parsed. */
export interface HttpAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly logs: LogLine[];
}

export interface WebhookAnswer extends HttpAnswer {
  readonly deliveryId: string;
}

export interface QueueCounts {
  readonly visible: number;
  readonly inFlight: number;
  readonly delayed: number;
}

/** The IAM identity API Gateway's IAM authoriser puts in `requestContext.authorizer.iam`. */
export interface IamCaller {
  readonly userArn: string;
  readonly userId: string;
  readonly accountId: string;
}

export const SUBNETS = ['subnet-0a1b2c3d4e5f60718', 'subnet-0f1e2d3c4b5a69788'] as const;
export const SECURITY_GROUP = 'sg-0a1b2c3d4e5f60718';
/** The health function's verdict lives this long (runtime/health/handler.ts, STATUS_TTL_SEC). */
const HEALTH_TTL_SEC = 300;
const MAX_RECEIVE_COUNT = 5;
const CACHE_EXPIRE_DAYS = 7;

export interface RunnersEmulatorOptions {
  readonly endpoint: string;
  /** Names every resource, as `resourceName(env, 'runners')` does: queues `<name>-<type>`, tables, buckets. */
  readonly name: string;
  /** The runner configuration document (runtime/runners/config.ts). */
  readonly document: Readonly<Record<string, unknown>>;
  /** Organisation login -> the GitHub App's installation id there. */
  readonly installations: Readonly<Record<string, number>>;
}

const count = (value: string | undefined): number => Number(value ?? 'NaN');

/**
 * One control plane of two (or more) regions on the emulator: its resources created with the SDK, its
 * functions' bundles invoked as Lambda would, with a clock of its own (`advance` moves it on for every
 * function at once, so a container's caches expire as they would with time).
 */
export class RunnersEmulator {
  readonly config: RunnerConfig;
  readonly regions: readonly string[];
  readonly webhookSecret = `whsec-${randomBytes(20).toString('hex')}`;
  /** The cache token key: 32 random bytes, base64 (44 bytes of text). */
  readonly cacheTokenKey = randomBytes(32).toString('base64');
  /** What the bundles wrote, one entry per invocation. */
  readonly outputs: string[] = [];
  /** What the functions answered, as JSON, one entry per invocation. */
  readonly answers: string[] = [];
  readonly tables: Readonly<Record<TableName, string>>;
  readonly secretIds: {
    readonly webhook: string;
    readonly githubApp: string;
    readonly cacheTokenKey: string;
  };
  /** The runners' ECS cluster: the same name in every region. */
  readonly cluster: string;
  readonly cacheUrl: string;
  readonly ec2CapacityProvider: string;
  private offsetMs = 0;
  /** The functions' clock (epoch ms): the wall clock moved on by `advance`. */
  readonly clock = (): number => wallNow() + this.offsetMs;
  private readonly containers = new Map<string, LambdaHandler>();
  private readonly queueUrls = new Map<string, string>();
  private readonly dynamodbClients = new Map<string, DynamoDBClient>();
  private readonly sqsClients = new Map<string, SQSClient>();

  private constructor(
    readonly options: RunnersEmulatorOptions,
    readonly github: FakeGitHub,
    readonly ecs: EcsRecorder,
  ) {
    this.config = parseRunnerConfig(options.document);
    this.regions = this.config.regions.map((r) => r.region);
    const { name } = options;
    this.tables = {
      state: `${name}-${TABLE_PURPOSES.state}`,
      idempotency: `${name}-${TABLE_PURPOSES.idempotency}`,
      workflows: `${name}-${TABLE_PURPOSES.workflows}`,
      cacheIndex: `${name}-${TABLE_PURPOSES.cacheIndex}`,
      regionStatus: `${name}-${TABLE_PURPOSES.regionStatus}`,
    };
    this.secretIds = {
      webhook: `${name}/github-webhook`,
      githubApp: `${name}/github-app`,
      cacheTokenKey: `${name}/cache-token-key`,
    };
    this.cluster = name;
    this.cacheUrl = `https://api.${name}.estate.test`;
    this.ec2CapacityProvider = `${name}-ec2`;
  }

  /** Creates the plane in every configured region, with a fake GitHub and an ECS recorder of its own. */
  static async create(options: RunnersEmulatorOptions): Promise<RunnersEmulator> {
    const made: { plane?: RunnersEmulator } = {};
    const github = await FakeGitHub.start({
      appId: 1_048_576 + Math.floor(Math.random() * 1_000_000),
      installations: options.installations,
      // GitHub judges the App's JWT by the time the functions live in.
      now: () => made.plane?.clock() ?? wallNow(),
    });
    const ecs = await EcsRecorder.start();
    const plane = new RunnersEmulator(options, github, ecs);
    made.plane = plane;
    await Promise.all(plane.regions.map((region) => plane.createRegion(region)));
    for (const region of plane.regions) await plane.reportHealthy(region);
    return plane;
  }

  get name(): string {
    return this.options.name;
  }

  get runnerTypes(): readonly string[] {
    return this.config.runnerTypes.map((t) => t.name);
  }

  /** Moves every function's clock on (a container's region views live 5 s, for one). */
  advance(ms: number): void {
    this.offsetMs += ms;
  }

  async close(): Promise<void> {
    await Promise.all([this.github.close(), this.ecs.close()]);
    for (const client of [...this.dynamodbClients.values(), ...this.sqsClients.values()]) client.destroy();
  }

  // --------------------------------------------------------------------------------- resources

  dynamodb(region: string): DynamoDBClient {
    let client = this.dynamodbClients.get(region);
    if (!client) {
      client = new DynamoDBClient({ region, endpoint: this.options.endpoint, credentials: CREDENTIALS });
      this.dynamodbClients.set(region, client);
    }
    return client;
  }

  sqs(region: string): SQSClient {
    let client = this.sqsClients.get(region);
    if (!client) {
      client = new SQSClient({ region, endpoint: this.options.endpoint, credentials: CREDENTIALS });
      this.sqsClients.set(region, client);
    }
    return client;
  }

  s3(region: string): S3Client {
    return new S3Client({ region, endpoint: this.options.endpoint, credentials: CREDENTIALS });
  }

  bucket(region: string): string {
    return `${this.name}-artifact-cache-${region}`.toLowerCase();
  }

  queueName(type: string): string {
    return runnerQueueName(this.name, type);
  }

  queueUrl(region: string, queueName: string): string {
    const url = this.queueUrls.get(`${region}/${queueName}`);
    if (!url) throw new Error(`no queue ${queueName} in ${region}`);
    return url;
  }

  queueArn(region: string, queueName: string): string {
    return `arn:aws:sqs:${region}:${ACCOUNT}:${queueName}`;
  }

  private async createRegion(region: string): Promise<void> {
    const dynamodb = this.dynamodb(region);
    for (const table of Object.keys(TABLE_KEYS) as TableName[]) {
      const keys = TABLE_KEYS[table];
      const schema: KeySchemaElement[] = keys.map((name, i) => ({
        AttributeName: name,
        KeyType: i === 0 ? 'HASH' : 'RANGE',
      }));
      await dynamodb.send(
        new CreateTableCommand({
          TableName: this.tables[table],
          KeySchema: schema,
          AttributeDefinitions: keys.map((name) => ({ AttributeName: name, AttributeType: 'S' })),
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
      await dynamodb.send(
        new UpdateTimeToLiveCommand({
          TableName: this.tables[table],
          TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
        }),
      );
    }

    const sqs = this.sqs(region);
    const deadLetters = runnerDeadLetterQueueName(this.name);
    const create = async (queueName: string, attributes: Record<string, string>) => {
      const { QueueUrl } = await sqs.send(
        new CreateQueueCommand({ QueueName: queueName, Attributes: attributes }),
      );
      this.queueUrls.set(`${region}/${queueName}`, QueueUrl as string);
    };
    await create(deadLetters, { MessageRetentionPeriod: String(14 * 86_400) });
    for (const type of this.runnerTypes)
      await create(this.queueName(type), {
        VisibilityTimeout: '360',
        MessageRetentionPeriod: String(4 * 86_400),
        RedrivePolicy: JSON.stringify({
          deadLetterTargetArn: this.queueArn(region, deadLetters),
          maxReceiveCount: MAX_RECEIVE_COUNT,
        }),
      });

    const secrets = new SecretsManagerClient({
      region,
      endpoint: this.options.endpoint,
      credentials: CREDENTIALS,
    });
    for (const [name, value] of [
      [this.secretIds.webhook, this.webhookSecret],
      [this.secretIds.githubApp, this.github.appSecret()],
      [this.secretIds.cacheTokenKey, this.cacheTokenKey],
    ] as const)
      await secrets.send(new CreateSecretCommand({ Name: name, SecretString: value }));
    secrets.destroy();

    const s3 = this.s3(region);
    await s3.send(
      new CreateBucketCommand({
        Bucket: this.bucket(region),
        CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint },
      }),
    );
    s3.destroy();
  }

  /**
   * The health function's verdict on `region`, healthy, written as it writes it (recordRegionStatus) into
   * every region's replica of the region-status table (the global table would replicate it).
   */
  async reportHealthy(region: string): Promise<void> {
    const verdict = {
      status: 'healthy' as const,
      region,
      checkedAt: new Date(this.clock()).toISOString(),
      failing: [],
      checks: [],
    };
    for (const replica of this.regions)
      await recordRegionStatus(this.dynamodb(replica), this.tables.regionStatus, verdict, HEALTH_TTL_SEC);
  }

  // -------------------------------------------------------------------------------- functions

  /** A function's environment, as modules/runner-control-plane.ts sets it, for the region it runs in. */
  environment(fn: RunnerFunction, region: string): Record<string, string> {
    const configJson = JSON.stringify(this.options.document);
    const shared = {
      RUNNERS_CONFIG: configJson,
      ACCOUNT_ID: ACCOUNT,
      RUNNER_QUEUE_PREFIX: this.name,
      STATE_TABLE: this.tables.state,
    };
    const lambda = {
      ...emulatorEnv(this.options.endpoint, region),
      AWS_LAMBDA_FUNCTION_NAME: `${this.name}-${fn}`,
      POWERTOOLS_LOG_LEVEL: 'INFO',
    };
    switch (fn) {
      case 'router':
        return {
          ...lambda,
          ...shared,
          WEBHOOK_SECRET_ID: this.secretIds.webhook,
          IDEMPOTENCY_TABLE: this.tables.idempotency,
          WORKFLOWS_TABLE: this.tables.workflows,
          REGION_STATUS_TABLE: this.tables.regionStatus,
        };
      case 'dispatcher':
        return {
          ...lambda,
          // RunTask goes to the recorder; every other call of the bundle to the emulator.
          AWS_ENDPOINT_URL_ECS: this.ecs.endpoint,
          ...shared,
          WORKFLOWS_TABLE: this.tables.workflows,
          REGION_STATUS_TABLE: this.tables.regionStatus,
          RUNNER_DEAD_LETTER_QUEUE_URL: this.queueUrl(region, runnerDeadLetterQueueName(this.name)),
          RUNNER_MAX_RECEIVE_COUNT: String(MAX_RECEIVE_COUNT),
          ECS_CLUSTER: this.cluster,
          TASK_DEFINITIONS: JSON.stringify(
            Object.fromEntries(this.runnerTypes.map((type) => [type, `${this.name}-${type}`])),
          ),
          RUNNER_SUBNETS: SUBNETS.join(','),
          RUNNER_SECURITY_GROUP: SECURITY_GROUP,
          ...(this.config.runnerTypes.some((t) => t.launch === 'ec2')
            ? { EC2_CAPACITY_PROVIDER: this.ec2CapacityProvider }
            : {}),
          GITHUB_APP_SECRET_ID: this.secretIds.githubApp,
          GITHUB_API_URL: this.github.url,
          RUNNER_CACHE_URL: this.cacheUrl,
          CACHE_TOKEN_SECRET_ID: this.secretIds.cacheTokenKey,
        };
      case 'admin':
        return { ...lambda, ...shared, REGION_STATUS_TABLE: this.tables.regionStatus };
      case 'cache':
        return {
          ...lambda,
          RUNNERS_CONFIG: configJson,
          CACHE_INDEX_TABLE: this.tables.cacheIndex,
          CACHE_BUCKETS: JSON.stringify(Object.fromEntries(this.regions.map((r) => [r, this.bucket(r)]))),
          CACHE_TOKEN_SECRET_ID: this.secretIds.cacheTokenKey,
          CACHE_EXPIRE_DAYS: String(CACHE_EXPIRE_DAYS),
        };
    }
  }

  /**
   * Invokes a region's function (its container made on first use, as Lambda makes one, under the
   * function's environment) with the plane's clock, collecting what it wrote.
   */
  async invoke<T>(fn: RunnerFunction, region: string, event: unknown): Promise<Invocation<T>> {
    const key = `${fn}:${region}`;
    const { result, output } = await capturingOutput(() =>
      withEnv(this.environment(fn, region), () =>
        withClock(this.clock, async () => {
          let handler = this.containers.get(key);
          if (!handler) {
            const { source, filename } = bundleOf(fn);
            handler = loadBundleSource(source, filename);
            this.containers.set(key, handler);
          }
          return (await handler(event, {})) as T;
        }),
      ),
    );
    this.outputs.push(output);
    this.answers.push(JSON.stringify(result ?? null));
    return { result, output, logs: logLines(output) };
  }

  private requestContext(region: string, routeKey: string, authorizer?: IamCaller) {
    const [method, path] = routeKey.split(' ');
    return {
      accountId: ACCOUNT,
      apiId: 'r7unn3rs01',
      domainName: `r7unn3rs01.execute-api.${region}.amazonaws.com`,
      domainPrefix: 'r7unn3rs01',
      http: {
        method,
        path,
        protocol: 'HTTP/1.1',
        sourceIp: '192.0.2.10',
        userAgent: 'GitHub-Hookshot/5c2e1b9',
      },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: new Date(this.clock()).toUTCString(),
      timeEpoch: this.clock(),
      ...(authorizer
        ? {
            authorizer: {
              iam: {
                accessKey: 'ASIAEMULATOR0000001',
                accountId: authorizer.accountId,
                callerId: authorizer.userId,
                cognitoIdentity: null,
                principalOrgId: null,
                userArn: authorizer.userArn,
                userId: authorizer.userId,
              },
            },
          }
        : {}),
    };
  }

  private async http(fn: RunnerFunction, region: string, event: unknown): Promise<HttpAnswer> {
    const { result, logs } = await this.invoke<HttpResponse>(fn, region, event);
    return { status: result.statusCode, body: JSON.parse(result.body) as Record<string, unknown>, logs };
  }

  /** A GitHub delivery to the region's `POST /webhook`, signed with the webhook secret unless told not to. */
  async webhook(
    region: string,
    body: string,
    options: { readonly deliveryId?: string; readonly event?: string; readonly secret?: string | null } = {},
  ): Promise<WebhookAnswer> {
    const deliveryId = options.deliveryId ?? randomUUID();
    const secret = options.secret === undefined ? this.webhookSecret : options.secret;
    const event = {
      version: '2.0',
      routeKey: 'POST /webhook',
      rawPath: '/webhook',
      rawQueryString: '',
      headers: {
        accept: '*/*',
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
        'user-agent': 'GitHub-Hookshot/5c2e1b9',
        'x-github-delivery': deliveryId,
        'x-github-event': options.event ?? 'workflow_job',
        'x-github-hook-id': '471100',
        'x-github-hook-installation-target-type': 'integration',
        ...(secret === null
          ? {}
          : { 'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}` }),
      },
      requestContext: this.requestContext(region, 'POST /webhook'),
      body,
      isBase64Encoded: false,
    };
    return { ...(await this.http('router', region, event)), deliveryId };
  }

  /** An admin API request (IAM-authorised at API Gateway: the caller is in the authoriser's context). */
  admin(
    region: string,
    routeKey: 'GET /admin/regions' | 'POST /admin/failover/{region}' | 'POST /admin/restore/{region}',
    options: { readonly target?: string; readonly reason?: string; readonly caller: IamCaller },
  ): Promise<HttpAnswer> {
    const path = routeKey.split(' ')[1]?.replace('{region}', options.target ?? '') ?? '';
    return this.http('admin', region, {
      version: '2.0',
      routeKey,
      rawPath: path,
      rawQueryString: '',
      headers: { 'content-type': 'application/json', host: `api.${this.name}.estate.test` },
      ...(options.target ? { pathParameters: { region: options.target } } : {}),
      requestContext: this.requestContext(region, routeKey, options.caller),
      ...(options.reason === undefined ? {} : { body: JSON.stringify({ reason: options.reason }) }),
      isBase64Encoded: false,
    });
  }

  /** `GET` or `PUT /cache/{hash}` with a runner's bearer token. */
  cache(
    region: string,
    method: 'GET' | 'PUT',
    hash: string,
    options: { readonly token?: string; readonly bytes?: number } = {},
  ): Promise<HttpAnswer> {
    const routeKey = `${method} /cache/{hash}`;
    return this.http('cache', region, {
      version: '2.0',
      routeKey,
      rawPath: `/cache/${hash}`,
      rawQueryString: '',
      headers: {
        'content-type': 'application/json',
        ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
      },
      pathParameters: { hash },
      requestContext: this.requestContext(region, routeKey),
      ...(options.bytes === undefined ? {} : { body: JSON.stringify({ bytes: options.bytes }) }),
      isBase64Encoded: false,
    });
  }

  /** The `s3:ObjectCreated:Put` notification of the region's cache bucket, as S3 invokes the function. */
  objectCreated(
    region: string,
    key: string,
    size: number,
    eTag: string,
  ): Promise<Invocation<{ recorded: number; refused: unknown[]; failed: unknown[] }>> {
    const bucket = this.bucket(region);
    return this.invoke('cache', region, {
      Records: [
        {
          eventVersion: '2.1',
          eventSource: 'aws:s3',
          awsRegion: region,
          eventTime: new Date(this.clock()).toISOString(),
          eventName: 'ObjectCreated:Put',
          userIdentity: { principalId: 'AWS:AROAEMULATOR00000001:runner' },
          requestParameters: { sourceIPAddress: '192.0.2.10' },
          responseElements: {
            'x-amz-request-id': 'C3D13FE58DE4C810',
            'x-amz-id-2': 'FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD',
          },
          s3: {
            s3SchemaVersion: '1.0',
            configurationId: 'CacheUploadNotification',
            bucket: {
              name: bucket,
              ownerIdentity: { principalId: 'A3NL1KOZZKExample' },
              arn: `arn:aws:s3:::${bucket}`,
            },
            object: {
              key: key.split('/').map(encodeURIComponent).join('/'),
              size,
              eTag,
              sequencer: '0055AED6DCD90281E5',
            },
          },
        },
      ],
    });
  }

  // ------------------------------------------------------------------------------------ queues

  /** Receives every message visible in a queue now (they stay in flight until deleted). */
  async receive(region: string, queueName: string, max = 100): Promise<Message[]> {
    const received: Message[] = [];
    while (received.length < max) {
      const { Messages } = await this.sqs(region).send(
        new ReceiveMessageCommand({
          QueueUrl: this.queueUrl(region, queueName),
          MaxNumberOfMessages: Math.min(10, max - received.length),
          MessageAttributeNames: ['All'],
          MessageSystemAttributeNames: ['All'],
          WaitTimeSeconds: 0,
        }),
      );
      if (!Messages || Messages.length === 0) break;
      received.push(...Messages);
    }
    return received;
  }

  async deleteMessages(region: string, queueName: string, messages: readonly Message[]): Promise<void> {
    for (let i = 0; i < messages.length; i += 10)
      await this.sqs(region).send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.queueUrl(region, queueName),
          Entries: messages.slice(i, i + 10).map((m, j) => ({
            Id: String(j),
            ReceiptHandle: m.ReceiptHandle as string,
          })),
        }),
      );
  }

  async counts(region: string, queueName: string): Promise<QueueCounts> {
    const { Attributes } = await this.sqs(region).send(
      new GetQueueAttributesCommand({
        QueueUrl: this.queueUrl(region, queueName),
        AttributeNames: [
          'ApproximateNumberOfMessages',
          'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed',
        ],
      }),
    );
    return {
      visible: count(Attributes?.ApproximateNumberOfMessages),
      inFlight: count(Attributes?.ApproximateNumberOfMessagesNotVisible),
      delayed: count(Attributes?.ApproximateNumberOfMessagesDelayed),
    };
  }

  /** Every runner queue and the dead-letter queue of the region, by name. */
  async allCounts(region: string): Promise<Record<string, QueueCounts>> {
    const names = [...this.runnerTypes.map((t) => this.queueName(t)), runnerDeadLetterQueueName(this.name)];
    return Object.fromEntries(
      await Promise.all(names.map(async (name) => [name, await this.counts(region, name)] as const)),
    );
  }

  /** Sends `count` messages no dispatcher reads (queue depth for the spillover metric). */
  async fill(region: string, queueName: string, total: number): Promise<void> {
    for (let sent = 0; sent < total; sent += 10)
      await this.sqs(region).send(
        new SendMessageBatchCommand({
          QueueUrl: this.queueUrl(region, queueName),
          Entries: Array.from({ length: Math.min(10, total - sent) }, (_, i) => ({
            Id: String(i),
            MessageBody: JSON.stringify({ filler: sent + i }),
          })),
        }),
      );
  }

  /** Takes `total` messages out of a queue. */
  async drop(region: string, queueName: string, total: number): Promise<void> {
    await this.deleteMessages(region, queueName, await this.receive(region, queueName, total));
  }

  /**
   * The region's dispatcher invoked with received messages, as the queue's event source mapping invokes it
   * (Lambda's SQS event: the messages' ids, receipt handles, attributes); the messages it processed are then
   * deleted, as the mapping deletes them.
   */
  async dispatch(
    region: string,
    queueName: string,
    messages: readonly Message[],
  ): Promise<Invocation<SQSBatchResponse>> {
    const event = sqsEvent(
      messages.map((m) => m.Body as string),
      {
        queueArn: this.queueArn(region, queueName),
        messageIds: messages.map((m) => m.MessageId as string),
      },
    );
    const lambdaEvent: SQSEvent = {
      Records: event.Records.map((record, i) => {
        const message = messages[i] as Message;
        return {
          ...record,
          receiptHandle: message.ReceiptHandle as string,
          attributes: {
            ...record.attributes,
            ApproximateReceiveCount: message.Attributes?.ApproximateReceiveCount ?? '1',
          },
          messageAttributes: Object.fromEntries(
            Object.entries(message.MessageAttributes ?? {}).map(([name, value]) => [
              name,
              {
                stringValue: value.StringValue,
                stringListValues: [],
                binaryListValues: [],
                dataType: value.DataType as string,
              },
            ]),
          ),
        };
      }),
    };
    const invocation = await this.invoke<SQSBatchResponse>('dispatcher', region, lambdaEvent);
    const failed = new Set(invocation.result.batchItemFailures.map((f) => f.itemIdentifier));
    await this.deleteMessages(
      region,
      queueName,
      messages.filter((m) => !failed.has(m.MessageId as string)),
    );
    return invocation;
  }

  /**
   * The region's dispatcher invoked with message bodies that are not taken from the queue (a delayed
   * message, looked at before its time comes), in Lambda's SQS event of the queue named.
   */
  dispatchBodies(
    region: string,
    queueName: string,
    bodies: readonly object[],
  ): Promise<Invocation<SQSBatchResponse>> {
    return this.invoke(
      'dispatcher',
      region,
      sqsEvent(bodies, { queueArn: this.queueArn(region, queueName) }),
    );
  }

  // ------------------------------------------------------------------------------------ tables

  /** An item of a region's replica, read strongly consistently; undefined when there is none. */
  async item(
    region: string,
    table: TableName,
    key: Readonly<Record<string, string>>,
  ): Promise<Item | undefined> {
    const { Item } = await this.dynamodb(region).send(
      new GetItemCommand({
        TableName: this.tables[table],
        Key: Object.fromEntries(Object.entries(key).map(([name, value]) => [name, { S: value }])),
        ConsistentRead: true,
      }),
    );
    return Item;
  }

  async put(region: string, table: TableName, item: Item): Promise<void> {
    await this.dynamodb(region).send(new PutItemCommand({ TableName: this.tables[table], Item: item }));
  }

  /**
   * What a global table's replication does for one item: the item as `from`'s replica holds it, written
   * into `to`'s. The emulator's per-region tables do not replicate.
   */
  async replicate(
    table: TableName,
    key: Readonly<Record<string, string>>,
    from: string,
    to: string,
  ): Promise<void> {
    const item = await this.item(from, table, key);
    if (!item) throw new Error(`nothing to replicate: no such item in ${from}`);
    await this.put(to, table, item);
  }
}
