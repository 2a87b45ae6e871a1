import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, request as forward, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CreateRoleCommand,
  CreateUserCommand,
  CreateAccessKeyCommand,
  IAMClient,
  PutRolePolicyCommand,
  PutUserPolicyCommand,
} from '@aws-sdk/client-iam';
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  ListSecretVersionIdsCommand,
  PutSecretValueCommand,
  UpdateSecretVersionStageCommand,
  ResourceNotFoundException,
  RestoreSecretCommand,
  SecretsManagerClient,
  TagResourceCommand,
  type DescribeSecretCommandOutput,
} from '@aws-sdk/client-secrets-manager';
import { CreateQueueCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import type { SQSBatchResponse } from 'aws-lambda';
import { bundleHandler } from '../../modules/bundled-function/bundle';
import { findLeaks } from '../../runtime/lib/leak-check';
import { ORPHANED_AT, REPLICA_OF } from '../../runtime/secrets/replica-tags';
import {
  capturingOutput,
  emulatorEnv,
  loadBundleSource,
  withClock,
  withEnv,
  type LambdaHandler,
} from '../../scripts/lib/load-bundle';
import { startMoto, type MotoServer } from '../../scripts/lib/moto';
import {
  scheduledEvent,
  resyncRequest,
  secretsManagerCall,
  sqsEvent,
  type CallerIdentity,
  type CallOptions,
  type SecretRef,
  type SecretsManagerCall,
} from '../support/cloudtrail-events';
import { EMULATOR_LANE_ENDPOINT, laneEndpoint } from '../support/moto-lane';

/*
 * The secrets replicator's bundle (as Lambda runs it) against the emulator: Secrets Manager in several
 * regions of two accounts (STS AssumeRole switches account), invoked with the SQS events its queue would
 * deliver, whose bodies are the CloudTrail-recorded EventBridge events the emulator itself never emits.
 *
 * Every test works in regions of its own (the emulator lane's moto is shared by the lane's files, and a
 * resync looks at every secret of its region); the two tests that need IAM enforced run on a moto of their
 * own, with authentication switched on only while the handler runs.
 */

jest.setTimeout(60_000);

/** moto's account for credentials it did not issue ("test"), and for IAM users it created there. */
const ACCOUNT_A = '123456789012';
/** The second account: entered through STS AssumeRole (moto switches to the role's account). */
const ACCOUNT_B = '444455556666';
const DESTINATION_ROLE = `arn:aws:iam::${ACCOUNT_B}:role/estate-secrets-writer`;
const EXTERNAL_ID = 'estate-secrets-7d1c';
const DAY_MS = 86_400_000;

interface Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}
const TEST_CREDENTIALS: Credentials = { accessKeyId: 'test', secretAccessKey: 'test' };

// One esbuild bundle for the file; each replicator loads it afresh (a container of its own).
const bundle = bundleHandler('runtime/secrets/handler.ts');
const bundleSource = readFileSync(bundle.codePath, 'utf8');

/** An emulator as the test (an administrator of both accounts) sees it. */
class Emulator {
  private readonly sessions = new Map<string, Promise<Credentials>>();

  constructor(readonly endpoint: string) {}

  /** Account A: any credentials (moto's default account). Another account: a session of a role there (with
   * authentication off, moto lets anyone assume any role, existing or not). */
  private credentials(account: string): Promise<Credentials> {
    if (account === ACCOUNT_A) return Promise.resolve(TEST_CREDENTIALS);
    let session = this.sessions.get(account);
    if (!session) {
      const sts = new STSClient({
        region: 'us-east-1',
        endpoint: this.endpoint,
        credentials: TEST_CREDENTIALS,
      });
      session = sts
        .send(
          new AssumeRoleCommand({
            RoleArn: `arn:aws:iam::${account}:role/estate-test-admin`,
            RoleSessionName: 'secrets-replicator-test',
          }),
        )
        .then(({ Credentials: c }) => ({
          accessKeyId: c?.AccessKeyId ?? '',
          secretAccessKey: c?.SecretAccessKey ?? '',
          sessionToken: c?.SessionToken ?? '',
        }));
      this.sessions.set(account, session);
    }
    return session;
  }

  async secrets(region: string, account = ACCOUNT_A): Promise<SecretsManagerClient> {
    return new SecretsManagerClient({
      region,
      endpoint: this.endpoint,
      credentials: await this.credentials(account),
      maxAttempts: 1,
    });
  }

  async iam(account = ACCOUNT_A): Promise<IAMClient> {
    return new IAMClient({
      region: 'us-east-1',
      endpoint: this.endpoint,
      credentials: await this.credentials(account),
    });
  }

  sqs(region: string): SQSClient {
    return new SQSClient({ region, endpoint: this.endpoint, credentials: TEST_CREDENTIALS });
  }
}

type Value = string | Uint8Array;
const payload = (value: Value) =>
  typeof value === 'string' ? { SecretString: value } : { SecretBinary: value };

/** A user's write: a new secret. */
async function userCreates(client: SecretsManagerClient, name: string, value: Value): Promise<SecretRef> {
  const created = await client.send(new CreateSecretCommand({ Name: name, ...payload(value) }));
  return { arn: created.ARN as string, name };
}

/** A user's write: a new current version. Returns its id. */
/**
 * A user's write, made as rotation makes one: the new version put aside, then AWSCURRENT moved to it. (A
 * plain PutSecretValue is the same write in AWS; moto keeps its own record of the current version, which
 * UpdateSecretVersionStage does not move, so a plain put after the replicator's compare-and-swap would leave
 * two versions labelled AWSCURRENT there.)
 */
async function userPuts(client: SecretsManagerClient, secretId: string, value: Value): Promise<string> {
  const put = await client.send(
    new PutSecretValueCommand({ SecretId: secretId, VersionStages: ['USER_PENDING'], ...payload(value) }),
  );
  const described = await client.send(new DescribeSecretCommand({ SecretId: secretId }));
  const current = Object.entries(described.VersionIdsToStages ?? {}).find(([, stages]) =>
    stages.includes('AWSCURRENT'),
  )?.[0];
  await client.send(
    new UpdateSecretVersionStageCommand({
      SecretId: secretId,
      VersionStage: 'AWSCURRENT',
      MoveToVersionId: put.VersionId,
      ...(current ? { RemoveFromVersionId: current } : {}),
    }),
  );
  return put.VersionId as string;
}

/**
 * The value of the version labelled AWSCURRENT. (Asked by label: moto's GetSecretValue without one answers
 * the version last written, even after UpdateSecretVersionStage moved the label elsewhere.)
 */
async function currentValue(client: SecretsManagerClient, secretId: string): Promise<Value | undefined> {
  try {
    const found = await client.send(
      new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' }),
    );
    return found.SecretString ?? found.SecretBinary;
  } catch (error) {
    if (error instanceof ResourceNotFoundException) return undefined;
    throw error;
  }
}

async function described(
  client: SecretsManagerClient,
  secretId: string,
): Promise<DescribeSecretCommandOutput | undefined> {
  try {
    return await client.send(new DescribeSecretCommand({ SecretId: secretId }));
  } catch (error) {
    if (error instanceof ResourceNotFoundException) return undefined;
    throw error;
  }
}

/** Every version a secret holds (moto keeps them all): each write the replicator made adds one. */
async function versionIds(client: SecretsManagerClient, secretId: string): Promise<string[]> {
  const listed = await client.send(
    new ListSecretVersionIdsCommand({ SecretId: secretId, IncludeDeprecated: true }),
  );
  return (listed.Versions ?? []).map((v) => v.VersionId as string).sort();
}

const tagsOf = (secret: DescribeSecretCommandOutput | undefined): Record<string, string> =>
  Object.fromEntries((secret?.Tags ?? []).map((t) => [t.Key as string, t.Value as string]));

/** Everything a write could change of a secret: its versions, their labels, its tags. */
async function stateOf(client: SecretsManagerClient, secretId: string): Promise<unknown> {
  const secret = await described(client, secretId);
  return {
    versions: await versionIds(client, secretId),
    stages: secret?.VersionIdsToStages,
    tags: tagsOf(secret),
  };
}

/** A JSON log line the bundle wrote (Powertools' logger); EMF metric lines are left out. */
interface LogLine {
  readonly level?: string;
  readonly message: string;
  readonly [key: string]: unknown;
}

function logLines(output: string): LogLine[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine)
    .filter((line) => typeof line.message === 'string');
}

interface DestinationResultLog {
  readonly destination: string;
  readonly outcome: string;
  readonly target?: string;
  readonly reason?: string;
}

/** What the handler logged of the one secret it worked on (none when it ignored the event). */
function reportOf(delivery: Delivery): LogLine | undefined {
  return delivery.logs.find((l) => l.message === 'secret replicated');
}

/** The per-destination outcomes the handler logged for one secret. */
function outcomesOf(delivery: Delivery): Record<string, string> {
  const results = (reportOf(delivery)?.results ?? []) as DestinationResultLog[];
  return Object.fromEntries(results.map((r) => [r.destination, r.outcome]));
}

interface Delivery {
  readonly response?: SQSBatchResponse;
  /** What the handler threw, if it threw. */
  readonly thrown?: unknown;
  readonly output: string;
  readonly logs: LogLine[];
  readonly messageIds: string[];
}

interface ReplicatorSpec {
  readonly emulator: Emulator;
  readonly region: string;
  /** Names the config secret and the queues. */
  readonly name: string;
  /** The config document (runtime/secrets/config.ts). */
  readonly config: object;
  /** Where the function's SDK clients go (AWS_ENDPOINT_URL). Default: the emulator's endpoint. */
  readonly handlerEndpoint?: string;
  /** The function's credentials. Default: credentials moto does not check (its auth is off). */
  readonly credentials?: Credentials;
  readonly configCheckMs?: number;
  readonly maxReceiveCount?: number;
  /** Runs around each invocation (switches moto's authentication on). */
  readonly around?: <T>(invoke: () => Promise<T>) => Promise<T>;
}

/** One region's replicator: its bundle loaded afresh, its queues, its config secret. */
class Replicator {
  readonly roleArn: string;
  private readonly handler: LambdaHandler = loadBundleSource(bundleSource, bundle.codePath);
  /** The moment the current invocation runs at (undefined: now). */
  private nowMs: number | undefined;
  /**
   * The handler's clock (withClock). One function for the container's life: the handler keeps the
   * `Date.now` it found when its container was created (`now: Date.now`), so a clock set per invocation
   * would be ignored by a container made earlier.
   */
  private readonly clock = () => this.nowMs ?? Date.now();

  private constructor(
    readonly spec: ReplicatorSpec,
    readonly configSecret: SecretRef,
    readonly queueArn: string,
    private readonly queueUrl: string,
    readonly deadLetterQueueUrl: string,
  ) {
    this.roleArn = `arn:aws:iam::${ACCOUNT_A}:role/estate-secrets-replicator-${spec.region}`;
  }

  static async start(spec: ReplicatorSpec): Promise<Replicator> {
    const sqs = spec.emulator.sqs(spec.region);
    const queue = async (name: string) =>
      (await sqs.send(new CreateQueueCommand({ QueueName: name }))).QueueUrl as string;
    const queueName = `${spec.name}-secrets`;
    const queueUrl = await queue(queueName);
    const deadLetterQueueUrl = await queue(`${spec.name}-secrets-dlq`);
    const client = await spec.emulator.secrets(spec.region);
    const configSecret = await userCreates(
      client,
      `estate/secrets-replicator/${spec.name}`,
      JSON.stringify(spec.config),
    );
    return new Replicator(
      spec,
      configSecret,
      `arn:aws:sqs:${spec.region}:${ACCOUNT_A}:${queueName}`,
      queueUrl,
      deadLetterQueueUrl,
    );
  }

  get region(): string {
    return this.spec.region;
  }

  private environment(): Record<string, string> {
    const credentials = this.spec.credentials ?? TEST_CREDENTIALS;
    return {
      ...emulatorEnv(this.spec.handlerEndpoint ?? this.spec.emulator.endpoint, this.spec.region),
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      SECRETS_CONFIG_SECRET: this.configSecret.name,
      SECRETS_REPLICATOR_ROLE_ARN: this.roleArn,
      SECRETS_QUEUE_URL: this.queueUrl,
      SECRETS_DEAD_LETTER_QUEUE_URL: this.deadLetterQueueUrl,
      SECRETS_MAX_RECEIVE_COUNT: String(this.spec.maxReceiveCount ?? 3),
      SECRETS_CONFIG_CHECK_MS: String(this.spec.configCheckMs ?? 0),
      POWERTOOLS_LOG_LEVEL: 'INFO',
    };
  }

  /** Invokes the handler with one SQS event carrying `bodies` (at `nowMs`, when given). */
  async deliver(
    bodies: readonly (object | string)[],
    options: {
      readonly receiveCount?: number;
      readonly messageIds?: readonly string[];
      readonly nowMs?: number;
    } = {},
  ): Promise<Delivery> {
    const event = sqsEvent(bodies, {
      queueArn: this.queueArn,
      ...(options.receiveCount ? { receiveCount: options.receiveCount } : {}),
      ...(options.messageIds ? { messageIds: options.messageIds } : {}),
    });
    const around = this.spec.around ?? (<T>(invoke: () => Promise<T>) => invoke());
    this.nowMs = options.nowMs;
    let captured: { result: Pick<Delivery, 'response' | 'thrown'>; output: string };
    try {
      captured = await capturingOutput(() =>
        withEnv(this.environment(), () =>
          around(() =>
            withClock(this.clock, async () => {
              try {
                return { response: (await this.handler(event, {})) as SQSBatchResponse };
              } catch (thrown) {
                return { thrown };
              }
            }),
          ),
        ),
      );
    } finally {
      this.nowMs = undefined;
    }
    const { result, output } = captured;
    return { ...result, output, logs: logLines(output), messageIds: event.Records.map((r) => r.messageId) };
  }

  /** Delivers `bodies` and expects every record to succeed. */
  async deliverOk(
    bodies: readonly (object | string)[],
    options: { readonly nowMs?: number } = {},
  ): Promise<Delivery> {
    const delivery = await this.deliver(bodies, options);
    expect(delivery.thrown).toBeUndefined();
    expect(delivery.response).toEqual({ batchItemFailures: [] });
    return delivery;
  }

  /** The CloudTrail event of a user's call, delivered; expects it to succeed. */
  change(call: SecretsManagerCall, secret: SecretRef, options: CallOptions = {}): Promise<Delivery> {
    return this.deliverOk([secretsManagerCall(call, secret, options)]);
  }

  /** How CloudTrail names this function's calls: its role's session (Lambda names it after the function). */
  session(options: { readonly sessionContext?: boolean } = {}): CallerIdentity {
    return {
      type: 'AssumedRole',
      roleArn: this.roleArn,
      sessionName: `estate-secrets-replicator-${this.region}`,
      ...options,
    };
  }

  /** The schedule's event: a full resync. */
  resync(options: { readonly nowMs?: number } = {}): Promise<Delivery> {
    return this.deliverOk([scheduledEvent(this.region, ACCOUNT_A)], options);
  }
}

/** A Secrets Manager call as it crosses the wire: its operation and the region it was signed for. */
interface WireCall {
  readonly operation: string;
  readonly region: string;
}

function wireCallOf(headers: IncomingHttpHeaders): WireCall {
  const target = String(headers['x-amz-target'] ?? '');
  const scope = /Credential=[^/]+\/\d{8}\/([a-z0-9-]+)\//.exec(String(headers.authorization ?? ''));
  return { operation: target.split('.').pop() ?? '', region: scope?.[1] ?? '' };
}

/**
 * A loopback proxy in front of moto that answers the calls `throttle` picks with Secrets Manager's
 * ThrottlingException (moto never throttles) and forwards everything else unchanged, signatures included.
 */
async function throttlingProxy(
  target: string,
  throttle: (call: WireCall) => boolean,
): Promise<{ readonly endpoint: string; readonly throttled: WireCall[]; close(): Promise<void> }> {
  const upstream = new URL(target);
  const throttled: WireCall[] = [];
  const server = createServer((req, res) => {
    const call = wireCallOf(req.headers);
    if (call.operation && throttle(call)) {
      throttled.push(call);
      req.resume();
      res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' }));
      return;
    }
    const out = forward(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    throttled,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * moto enforces IAM when its authentication is on (moto-api/reset-auth: the body is the number of requests
 * still let through unauthenticated; `inf` switches it off). With it on, every request must be signed with
 * credentials moto issued.
 */
async function setAuthentication(endpoint: string, on: boolean): Promise<void> {
  const answer = await fetch(`${endpoint}/moto-api/reset-auth`, { method: 'POST', body: on ? '0' : 'inf' });
  if (!answer.ok) throw new Error(`moto reset-auth answered ${answer.status}`);
}

const policy = (...statements: object[]) => JSON.stringify({ Version: '2012-10-17', Statement: statements });

/** moto evaluates no resource ARNs for Secrets Manager (it checks every action against "*"). */
const ALLOW_ALL_SECRETS = { Effect: 'Allow', Action: 'secretsmanager:*', Resource: '*' };
const DENY_SECRET_WRITES = {
  Effect: 'Deny',
  Action: [
    'secretsmanager:CreateSecret',
    'secretsmanager:PutSecretValue',
    'secretsmanager:UpdateSecret',
    'secretsmanager:UpdateSecretVersionStage',
    'secretsmanager:TagResource',
    'secretsmanager:UntagResource',
    'secretsmanager:DeleteSecret',
    'secretsmanager:RestoreSecret',
  ],
  Resource: '*',
};

/**
 * Account A's replicator as an IAM user (moto authenticates IAM users' keys and STS sessions only; a
 * Lambda role's own credentials cannot be had), and account B's destination role, which trusts account A
 * and, until `fix`, denies every write.
 */
async function enforcedIdentities(
  emulator: Emulator,
): Promise<{ replicator: Credentials; deny(): Promise<void>; fix(): Promise<void> }> {
  const iamA = await emulator.iam(ACCOUNT_A);
  await iamA.send(new CreateUserCommand({ UserName: 'estate-secrets-replicator' }));
  await iamA.send(
    new PutUserPolicyCommand({
      UserName: 'estate-secrets-replicator',
      PolicyName: 'replicate',
      PolicyDocument: policy(ALLOW_ALL_SECRETS, {
        Effect: 'Allow',
        Action: ['sts:AssumeRole', 'sqs:SendMessage', 'sqs:ChangeMessageVisibility'],
        Resource: '*',
      }),
    }),
  );
  const key = await iamA.send(new CreateAccessKeyCommand({ UserName: 'estate-secrets-replicator' }));
  const iamB = await emulator.iam(ACCOUNT_B);
  const roleName = DESTINATION_ROLE.split('/').pop() as string;
  await iamB.send(
    new CreateRoleCommand({
      RoleName: roleName,
      AssumeRolePolicyDocument: policy({
        Effect: 'Allow',
        Principal: { AWS: `arn:aws:iam::${ACCOUNT_A}:root` },
        Action: 'sts:AssumeRole',
        Condition: { StringEquals: { 'sts:ExternalId': EXTERNAL_ID } },
      }),
    }),
  );
  const grant = (...statements: object[]) =>
    iamB.send(
      new PutRolePolicyCommand({
        RoleName: roleName,
        PolicyName: 'replicas',
        PolicyDocument: policy(...statements),
      }),
    );
  const deny = () => grant(ALLOW_ALL_SECRETS, DENY_SECRET_WRITES).then(() => undefined);
  await deny();
  return {
    replicator: {
      accessKeyId: key.AccessKey?.AccessKeyId as string,
      secretAccessKey: key.AccessKey?.SecretAccessKey as string,
    },
    deny,
    fix: () => grant(ALLOW_ALL_SECRETS).then(() => undefined),
  };
}

const lane = new Emulator(laneEndpoint(EMULATOR_LANE_ENDPOINT));

describe('the secrets replicator (bundled handler) against the emulator', () => {
  it('replicates what its filters select to three regions and a second account: sed, JSON path steps, renames, binary byte for byte', async () => {
    const replicator = await Replicator.start({
      emulator: lane,
      region: 'us-west-2',
      name: 't1',
      config: {
        exclude: ['t1/app/prod/*-local'],
        destinations: [
          {
            name: 'dr-east',
            region: 'us-east-2',
            filters: { 't1/app/prod/*': 's/us-west-2/us-east-2/g' },
            names: { 't1/app/prod/*': 't1/app/dr/*' },
          },
          {
            name: 'partner-eu',
            region: 'eu-west-1',
            roleArn: DESTINATION_ROLE,
            externalId: EXTERNAL_ID,
            filters: [
              {
                match: 't1/app/prod/*',
                transform: [
                  { path: '$.db.host', sed: 's/usw2/euw1/' },
                  { path: '$.region', value: 'eu-west-1' },
                ],
              },
            ],
          },
          {
            name: 'apse',
            region: 'ap-southeast-2',
            filters: { 't1/app/prod/**': 's/us-west-2/ap-southeast-2/g' },
          },
        ],
      },
    });
    const source = await lane.secrets('us-west-2');
    const east = await lane.secrets('us-east-2');
    const partner = await lane.secrets('eu-west-1', ACCOUNT_B);
    const apse = await lane.secrets('ap-southeast-2');

    const document = { db: { host: 'db.usw2.internal', region: 'us-west-2' }, region: 'us-west-2' };
    const db = await userCreates(source, 't1/app/prod/db', JSON.stringify(document, null, 2));
    const bytes = new Uint8Array([...Array.from({ length: 256 }, (_, i) => i), ...randomBytes(64)]);
    const cert = await userCreates(source, 't1/app/prod/cert', bytes);
    const test = await userCreates(source, 't1/app/test/db', 'us-west-2');
    const local = await userCreates(source, 't1/app/prod/db-local', 'us-west-2');

    const created = await replicator.change('CreateSecret', db);
    expect(outcomesOf(created)).toEqual({ 'dr-east': 'created', 'partner-eu': 'created', apse: 'created' });
    expect(await currentValue(east, 't1/app/dr/db')).toBe(
      JSON.stringify({ db: { host: 'db.usw2.internal', region: 'us-east-2' }, region: 'us-east-2' }, null, 2),
    );
    // Path steps write the document back with JSON.stringify: formatting is normalised.
    expect(await currentValue(partner, 't1/app/prod/db')).toBe(
      JSON.stringify({ db: { host: 'db.euw1.internal', region: 'us-west-2' }, region: 'eu-west-1' }),
    );
    expect(await currentValue(apse, 't1/app/prod/db')).toBe(
      JSON.stringify(
        { db: { host: 'db.usw2.internal', region: 'ap-southeast-2' }, region: 'ap-southeast-2' },
        null,
        2,
      ),
    );
    // The second account's replica is there, and only there (the role switched the account).
    expect(await described(await lane.secrets('eu-west-1', ACCOUNT_A), 't1/app/prod/db')).toBeUndefined();
    expect(tagsOf(await described(partner, 't1/app/prod/db'))[REPLICA_OF]).toBe(db.arn);
    expect(await described(east, 't1/app/prod/db')).toBeUndefined(); // renamed, not copied under its name

    await replicator.change('CreateSecret', cert, { requestSecretId: cert.name });
    for (const [client, name] of [
      [east, 't1/app/dr/cert'],
      [partner, 't1/app/prod/cert'],
      [apse, 't1/app/prod/cert'],
    ] as const) {
      const copied = await currentValue(client, name);
      expect(copied).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(copied as Uint8Array).equals(Buffer.from(bytes))).toBe(true);
    }

    // Left out: by the filters (no rule matches), and by the excludes.
    // Their values are not even read: the function may read only what a destination takes.
    for (const leftOut of [test, local])
      expect(reportOf(await replicator.change('CreateSecret', leftOut))).toMatchObject({
        action: 'skipped',
        reason: 'no destination takes it',
        results: [],
      });
    for (const [client, name] of [
      [east, 't1/app/dr/db-local'],
      [east, 't1/app/test/db'],
      [partner, 't1/app/test/db'],
      [partner, 't1/app/prod/db-local'],
      [apse, 't1/app/test/db'],
      [apse, 't1/app/prod/db-local'],
    ] as const)
      expect(await described(client, name)).toBeUndefined();

    // A new value travels as one new version per destination; a tag change (TagResource answers nothing:
    // the secret is in requestParameters only) writes nothing where the replicas are up to date.
    const before = await Promise.all([
      versionIds(east, 't1/app/dr/db'),
      versionIds(partner, 't1/app/prod/db'),
    ]);
    await userPuts(source, db.arn, JSON.stringify({ ...document, db: { ...document.db, port: 5432 } }));
    await replicator.change('PutSecretValue', db);
    const after = await Promise.all([
      versionIds(east, 't1/app/dr/db'),
      versionIds(partner, 't1/app/prod/db'),
    ]);
    expect(after.map((ids) => ids.length)).toEqual(before.map((ids) => ids.length + 1));
    expect(JSON.parse((await currentValue(partner, 't1/app/prod/db')) as string)).toEqual({
      db: { host: 'db.euw1.internal', region: 'us-west-2', port: 5432 },
      region: 'eu-west-1',
    });
    await source.send(
      new TagResourceCommand({ SecretId: db.arn, Tags: [{ Key: 'team', Value: 'payments' }] }),
    );
    const tagged = await replicator.change('TagResource', db, { tagKeys: ['team'] });
    expect(outcomesOf(tagged)).toEqual({
      'dr-east': 'up-to-date',
      'partner-eu': 'up-to-date',
      apse: 'up-to-date',
    });
    expect(
      await Promise.all([versionIds(east, 't1/app/dr/db'), versionIds(partner, 't1/app/prod/db')]),
    ).toEqual(after);

    // Neither a call that failed (CloudTrail records it with an error code) nor a read is a trigger: the
    // replicas stay as they are although the source has moved on.
    const replicas = await Promise.all([stateOf(east, 't1/app/dr/db'), stateOf(partner, 't1/app/prod/db')]);
    await userPuts(source, db.arn, JSON.stringify({ ...document, db: { ...document.db, port: 6543 } }));
    const ignored = await replicator.deliverOk([
      secretsManagerCall('PutSecretValue', db, { errorCode: 'AccessDeniedException' }),
      secretsManagerCall('GetSecretValue', db),
    ]);
    expect(reportOf(ignored)).toBeUndefined();
    expect(await Promise.all([stateOf(east, 't1/app/dr/db'), stateOf(partner, 't1/app/prod/db')])).toEqual(
      replicas,
    );
  });

  it('applies each delete policy: propagate schedules the replica for deletion, ignore keeps it, propagateAfterDays marks it and a resync past the grace period deletes it', async () => {
    const replicator = await Replicator.start({
      emulator: lane,
      region: 'ca-central-1',
      name: 't2',
      config: {
        destinations: [
          { name: 'propagate', region: 'eu-north-1', filters: { 't2/**': '' }, deletePolicy: 'propagate' },
          { name: 'ignore', region: 'eu-west-2', filters: { 't2/**': '' }, deletePolicy: 'ignore' },
          {
            name: 'grace',
            region: 'ap-northeast-1',
            roleArn: DESTINATION_ROLE,
            filters: { 't2/**': '' },
            deletePolicy: { propagateAfterDays: 3 },
          },
        ],
      },
    });
    const source = await lane.secrets('ca-central-1');
    const propagate = await lane.secrets('eu-north-1');
    const ignore = await lane.secrets('eu-west-2');
    const grace = await lane.secrets('ap-northeast-1', ACCOUNT_B);
    const secret = await userCreates(source, 't2/app/db', 'v1');
    await replicator.change('CreateSecret', secret);

    const deletedAt = Date.now();
    await source.send(new DeleteSecretCommand({ SecretId: secret.arn, RecoveryWindowInDays: 10 }));
    // DeleteSecret's record carries the ARN as `aRN` (AWS's sample).
    const deleted = await replicator.change('DeleteSecret', secret, { recoveryWindowInDays: 10 });
    expect(reportOf(deleted)).toMatchObject({ action: 'retired' });
    expect(outcomesOf(deleted)).toEqual({ propagate: 'deleted', ignore: 'kept', grace: 'delete-pending' });
    const scheduled = await described(propagate, 't2/app/db');
    // Scheduled with the origin's recovery window (10 days), not deleted outright: restoring the origin restores it.
    expect(scheduled?.DeletedDate).toBeInstanceOf(Date);
    expect((scheduled?.DeletedDate as Date).getTime()).toBeGreaterThan(deletedAt + 9 * DAY_MS);
    expect(await currentValue(ignore, 't2/app/db')).toBe('v1');
    expect((await described(ignore, 't2/app/db'))?.DeletedDate).toBeUndefined();
    const marked = await described(grace, 't2/app/db');
    expect(marked?.DeletedDate).toBeUndefined();
    const orphanedAt = Date.parse(tagsOf(marked)[ORPHANED_AT] ?? '');
    expect(orphanedAt).toBeGreaterThanOrEqual(deletedAt - 1000);

    // Two days on: still in its grace period.
    const twoDays = await replicator.resync({ nowMs: orphanedAt + 2 * DAY_MS });
    expect((await described(grace, 't2/app/db'))?.DeletedDate).toBeUndefined();
    expect(JSON.stringify(twoDays.logs)).not.toContain('"deleted"');
    // Past the grace period: the resync deletes it (with a recovery window); the ignored replica stays.
    await replicator.resync({ nowMs: orphanedAt + 3 * DAY_MS + 60_000 });
    expect((await described(grace, 't2/app/db'))?.DeletedDate).toBeInstanceOf(Date);
    expect(await currentValue(ignore, 't2/app/db')).toBe('v1');
    expect((await described(ignore, 't2/app/db'))?.DeletedDate).toBeUndefined();

    // Restoring the origin (RestoreSecret, `aRN` too) restores its replicas and brings them up to date.
    await source.send(new RestoreSecretCommand({ SecretId: secret.arn }));
    const restored = await replicator.change('RestoreSecret', secret);
    expect(outcomesOf(restored)).toEqual({ propagate: 'restored', ignore: 'up-to-date', grace: 'restored' });
    expect((await described(propagate, 't2/app/db'))?.DeletedDate).toBeUndefined();
    expect(await currentValue(propagate, 't2/app/db')).toBe('v1');
    expect(await currentValue(grace, 't2/app/db')).toBe('v1');
    expect(tagsOf(await described(grace, 't2/app/db'))[ORPHANED_AT]).toBeUndefined();
  });

  it("runs two replicators pointing at each other (two-way): a user's write travels once, its echo changes nothing, the newest write wins, and the replicator's own calls are ignored", async () => {
    const towards = (from: string, to: string) => ({
      destinations: [{ name: to, region: to, filters: { 't3/**': `s/${from}/${to}/g` }, twoWay: true }],
    });
    const a = await Replicator.start({
      emulator: lane,
      region: 'ap-south-1',
      name: 't3',
      config: towards('ap-south-1', 'sa-east-1'),
    });
    const b = await Replicator.start({
      emulator: lane,
      region: 'sa-east-1',
      name: 't3',
      config: towards('sa-east-1', 'ap-south-1'),
    });
    const ap = await lane.secrets('ap-south-1');
    const sa = await lane.secrets('sa-east-1');
    const origin = await userCreates(ap, 't3/app/db', 'host=db.ap-south-1');

    // A call by the function's own role is never a trigger: named by its role (the session's issuer), or by
    // its session's ARN alone. Nothing is replicated although the secret is there to be.
    for (const sessionContext of [true, false]) {
      const own = await a.change('CreateSecret', origin, { identity: a.session({ sessionContext }) });
      expect(reportOf(own)).toBeUndefined();
    }
    expect(await described(sa, 't3/app/db')).toBeUndefined();

    // The user's write travels once.
    expect(outcomesOf(await a.change('CreateSecret', origin))).toEqual({ 'sa-east-1': 'created' });
    expect(await currentValue(sa, 't3/app/db')).toBe('host=db.sa-east-1');
    const replica: SecretRef = { arn: (await described(sa, 't3/app/db'))?.ARN as string, name: 't3/app/db' };
    // Its echo: the replica's creation, recorded in sa-east-1 as a call of a's role, reaches b.
    const echo = await b.change('CreateSecret', replica, { identity: a.session() });
    expect(reportOf(echo)).toMatchObject({ action: 'skipped', results: [] });
    expect((await versionIds(ap, origin.arn)).length).toBe(1);
    expect((await versionIds(sa, replica.arn)).length).toBe(1);

    // A user's write on the other side travels back once; its echo changes nothing.
    await userPuts(sa, replica.arn, 'host=db.sa-east-1;pool=20');
    expect(outcomesOf(await b.change('PutSecretValue', replica))).toEqual({ 'ap-south-1': 'updated' });
    expect(await currentValue(ap, origin.arn)).toBe('host=db.ap-south-1;pool=20');
    const backEcho = await a.change('PutSecretValue', origin, { identity: b.session() });
    expect(reportOf(backEcho)).toMatchObject({ action: 'skipped' });
    expect((await versionIds(ap, origin.arn)).length).toBe(2);
    expect((await versionIds(sa, replica.arn)).length).toBe(2);

    // Writes on both sides before either is replicated: the later one (sa-east-1's; in the same second,
    // the ARNs decide, the same way on both sides) wins everywhere, and the earlier one is not written over it.
    await userPuts(ap, origin.arn, 'host=db.ap-south-1;pool=30');
    await userPuts(sa, replica.arn, 'host=db.sa-east-1;pool=40');
    expect(outcomesOf(await a.change('PutSecretValue', origin))).toEqual({
      'sa-east-1': 'newer-at-destination',
    });
    expect(outcomesOf(await b.change('PutSecretValue', replica))).toEqual({ 'ap-south-1': 'updated' });
    expect(reportOf(await a.change('PutSecretValue', origin, { identity: b.session() }))).toMatchObject({
      action: 'skipped',
    });
    expect(await currentValue(ap, origin.arn)).toBe('host=db.ap-south-1;pool=40');
    expect(await currentValue(sa, replica.arn)).toBe('host=db.sa-east-1;pool=40');
    expect((await versionIds(ap, origin.arn)).length).toBe(4); // + the user's write, + the winner's copy
    expect((await versionIds(sa, replica.arn)).length).toBe(3); // + the user's write only

    // The resyncs find nothing to do: a's secret now holds a replica write (never replicated again), b's
    // is up to date on the other side.
    const resyncOf = async (replicator: Replicator) =>
      (await replicator.resync()).logs.find((l) => l.message === 'resync');
    expect(await resyncOf(a)).toMatchObject({ secrets: 0, outcomes: {}, failures: [] });
    expect(await resyncOf(b)).toMatchObject({ secrets: 1, outcomes: { 'up-to-date': 1 }, failures: [] });
    expect((await versionIds(ap, origin.arn)).length).toBe(4);
    expect((await versionIds(sa, replica.arn)).length).toBe(3);
  });

  it("repairs drift with the resync (a user's overwrite of a replica), and a resync that finds nothing to do writes nothing", async () => {
    const replicator = await Replicator.start({
      emulator: lane,
      region: 'eu-west-3',
      name: 't5',
      config: {
        defaults: { filters: { 't5/**': 's/eu-west-3/replica/g' } },
        destinations: [{ region: 'ap-northeast-2' }, { region: 'ap-southeast-1', roleArn: DESTINATION_ROLE }],
      },
    });
    const source = await lane.secrets('eu-west-3');
    const here = await lane.secrets('ap-northeast-2');
    const there = await lane.secrets('ap-southeast-1', ACCOUNT_B);
    const secret = await userCreates(source, 't5/app/db', 'url=db.eu-west-3');
    // Destinations are named by default after their region (and the role's account).
    expect(outcomesOf(await replicator.change('CreateSecret', secret))).toEqual({
      'ap-northeast-2': 'created',
      [`${ACCOUNT_B}/ap-southeast-1`]: 'created',
    });
    const replicated = [await stateOf(here, 't5/app/db'), await stateOf(there, 't5/app/db')];

    const quiet = await replicator.resync();
    expect(quiet.logs.find((l) => l.message === 'resync')).toMatchObject({
      secrets: 1,
      outcomes: { 'up-to-date': 2 },
      failures: [],
    });
    expect([await stateOf(here, 't5/app/db'), await stateOf(there, 't5/app/db')]).toEqual(replicated);

    await userPuts(here, 't5/app/db', 'url=db.tampered');
    await userPuts(there, 't5/app/db', 'url=db.tampered');
    // An operator's resync request runs the same resync as the schedule.
    const repaired = await replicator.deliverOk([resyncRequest('eu-west-3', ACCOUNT_A)]);
    expect(repaired.logs.find((l) => l.message === 'resync')).toMatchObject({
      outcomes: { updated: 2 },
      failures: [],
    });
    expect(await currentValue(here, 't5/app/db')).toBe('url=db.replica');
    expect(await currentValue(there, 't5/app/db')).toBe('url=db.replica');
    // The replica's own earlier version was made current again: no new version for the same content.
    const afterRepair = [await stateOf(here, 't5/app/db'), await stateOf(there, 't5/app/db')];
    expect(afterRepair.map((state) => (state as { versions: string[] }).versions.length)).toEqual([2, 2]);

    await replicator.resync();
    expect([await stateOf(here, 't5/app/db'), await stateOf(there, 't5/app/db')]).toEqual(afterRepair);
  });

  it('picks up a config change from its CloudTrail event: the next change uses it, and the resync that follows fills a new destination', async () => {
    const config = (n: string, regions: readonly string[]) => ({
      destinations: regions.map((region) => ({ region, filters: { 't6/**': `s/us-west-1/${n}/g` } })),
    });
    // Without the config secret's event, the configuration is checked once an hour only.
    const replicator = await Replicator.start({
      emulator: lane,
      region: 'us-west-1',
      name: 't6',
      config: config('first', ['ap-northeast-3']),
      configCheckMs: 3_600_000,
    });
    const source = await lane.secrets('us-west-1');
    const one = await lane.secrets('ap-northeast-3');
    const two = await lane.secrets('af-south-1');
    const secret = await userCreates(source, 't6/app/db', 'v1 us-west-1');
    await replicator.change('CreateSecret', secret);
    expect(await currentValue(one, 't6/app/db')).toBe('v1 first');

    await userPuts(
      source,
      replicator.configSecret.arn,
      JSON.stringify(config('second', ['ap-northeast-3', 'af-south-1'])),
    );
    await userPuts(source, secret.arn, 'v2 us-west-1');
    await replicator.change('PutSecretValue', secret);
    expect(await currentValue(one, 't6/app/db')).toBe('v2 first'); // the event for the config has not come yet
    expect(await described(two, 't6/app/db')).toBeUndefined();

    const reloaded = await replicator.change('PutSecretValue', replicator.configSecret);
    expect(reloaded.logs.find((l) => l.message === 'replicator config loaded')).toBeDefined();
    expect(reloaded.logs.find((l) => l.message === 'resync')).toMatchObject({
      outcomes: { updated: 1, created: 1 },
      failures: [],
    });
    expect(await currentValue(one, 't6/app/db')).toBe('v2 second');
    expect(await currentValue(two, 't6/app/db')).toBe('v2 second');

    await userPuts(source, secret.arn, 'v3 us-west-1');
    expect(outcomesOf(await replicator.change('PutSecretValue', secret))).toEqual({
      'ap-northeast-3': 'updated',
      'af-south-1': 'updated',
    });
    expect(await currentValue(two, 't6/app/db')).toBe('v3 second');

    // A config that does not validate is refused, every problem named; the one in force stays.
    await userPuts(
      source,
      replicator.configSecret.arn,
      JSON.stringify({ destinations: [{ region: 'nowhere' }] }),
    );
    const refused = await replicator.change('PutSecretValue', replicator.configSecret);
    const issues = refused.logs.find((l) => l.message.startsWith('replicator config refused'))
      ?.issues as string[];
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^destinations\[0\]\.region: /),
        expect.stringMatching(/^destinations\[0\]\.filters: missing/),
      ]),
    );
    await userPuts(source, secret.arn, 'v4 us-west-1');
    await replicator.change('PutSecretValue', secret);
    expect(await currentValue(two, 't6/app/db')).toBe('v4 second');
  });
});

describe('the secrets replicator under IAM enforcement (a moto of its own: authentication is on while the handler runs)', () => {
  let moto: MotoServer;
  let proxy: Awaited<ReturnType<typeof throttlingProxy>>;
  let emulator: Emulator;
  let identities: Awaited<ReturnType<typeof enforcedIdentities>>;
  /** Destination regions whose Secrets Manager answers every write with ThrottlingException (through the proxy). */
  const throttledRegions = new Set<string>();
  const WRITES = new Set([
    'CreateSecret',
    'PutSecretValue',
    'UpdateSecret',
    'UpdateSecretVersionStage',
    'TagResource',
  ]);

  beforeAll(async () => {
    moto = await startMoto();
    proxy = await throttlingProxy(
      moto.endpoint,
      (call) => throttledRegions.has(call.region) && WRITES.has(call.operation),
    );
    emulator = new Emulator(moto.endpoint);
    identities = await enforcedIdentities(emulator);
  });
  afterAll(async () => {
    await proxy?.close();
    await moto?.stop();
  });

  /** The handler runs with moto's authentication on: every call it makes is signed, authenticated and authorized. */
  const enforced = async <T>(invoke: () => Promise<T>): Promise<T> => {
    await setAuthentication(moto.endpoint, true);
    try {
      return await invoke();
    } finally {
      await setAuthentication(moto.endpoint, false);
    }
  };

  const start = (region: string, name: string, config: object, credentials = identities.replicator) =>
    Replicator.start({
      emulator,
      region,
      name,
      config,
      handlerEndpoint: proxy.endpoint,
      credentials,
      around: enforced,
      maxReceiveCount: 3,
    });

  it('reports a destination whose role denies writes, naming only it, and retries it alone once the role is fixed', async () => {
    await identities.deny();
    const replicator = await start('us-west-2', 't4', {
      destinations: [
        { name: 'east', region: 'us-east-2', filters: { 't4/**': '' } },
        { name: 'apse', region: 'ap-southeast-2', filters: { 't4/**': '' } },
        {
          name: 'partner',
          region: 'eu-west-1',
          roleArn: DESTINATION_ROLE,
          externalId: EXTERNAL_ID,
          filters: { 't4/**': '' },
        },
      ],
    });
    const source = await emulator.secrets('us-west-2');
    const east = await emulator.secrets('us-east-2');
    const apse = await emulator.secrets('ap-southeast-2');
    const partner = await emulator.secrets('eu-west-1', ACCOUNT_B);
    const secret = await userCreates(source, 't4/app/db', 'v1');
    const event = secretsManagerCall('CreateSecret', secret);
    // The enforcement is real: credentials moto did not issue get nowhere.
    const stranger = await start(
      'us-west-2',
      't4-stranger',
      { destinations: [{ region: 'us-east-2', filters: { 't4/**': '' } }] },
      TEST_CREDENTIALS,
    );
    const refused = await stranger.deliver([event]);
    expect(refused.response?.batchItemFailures).toHaveLength(1);
    expect(await described(east, 't4/app/db')).toBeUndefined();

    const first = await replicator.deliver([event], { receiveCount: 1 });
    expect(first.thrown).toBeUndefined();
    expect(first.response).toEqual({ batchItemFailures: [{ itemIdentifier: first.messageIds[0] }] });
    const redelivered = first.logs.find((l) => l.message === 'message will be redelivered');
    expect(redelivered).toMatchObject({
      messageId: first.messageIds[0],
      code: 'destinations-failed',
      delivery: 1,
    });
    expect(redelivered?.reason).toMatch(/^1 destination\(s\) failed: partner; partner: /);
    expect(redelivered?.reason).not.toMatch(/east|apse/);
    expect(await currentValue(east, 't4/app/db')).toBe('v1');
    expect(await currentValue(apse, 't4/app/db')).toBe('v1');
    expect(await described(partner, 't4/app/db')).toBeUndefined();
    const others = [await stateOf(east, 't4/app/db'), await stateOf(apse, 't4/app/db')];

    await identities.fix();
    const second = await replicator.deliver([event], { receiveCount: 2, messageIds: first.messageIds });
    expect(second.response).toEqual({ batchItemFailures: [] });
    expect(outcomesOf(second)).toEqual({ east: 'up-to-date', apse: 'up-to-date', partner: 'created' });
    expect(await currentValue(partner, 't4/app/db')).toBe('v1');
    // The other destinations got no new version, label or tag.
    expect([await stateOf(east, 't4/app/db'), await stateOf(apse, 't4/app/db')]).toEqual(others);
  });

  it('never lets a secret value reach its logs, its answers, the dead-letter queue or an error: success, denied, too large, failed transform, throttled, malformed', async () => {
    await identities.deny();
    throttledRegions.add('eu-west-2');
    const replicator = await start('ca-central-1', 't7', {
      destinations: [
        { name: 'ok', region: 'us-east-2', filters: { 't7/**': 's/ca-central-1/us-east-2/g' } },
        {
          name: 'denied',
          region: 'eu-west-1',
          roleArn: DESTINATION_ROLE,
          externalId: EXTERNAL_ID,
          filters: { 't7/**': '' },
        },
        // Eight times the value: past Secrets Manager's 64 KiB for the large one.
        { name: 'too-large', region: 'ap-southeast-2', filters: { 't7/**': 's/.*/&&&&&&&&/' } },
        {
          name: 'json-only',
          region: 'ap-northeast-1',
          filters: [{ match: 't7/**', transform: [{ path: '$.region', sed: 's/ca-central-1/x/' }] }],
        },
        { name: 'throttled', region: 'eu-west-2', filters: { 't7/**': '' } },
      ],
    });
    const marker = `MARKER-${randomBytes(12).toString('hex')}`;
    const source = await emulator.secrets('ca-central-1');
    const big = await userCreates(
      source,
      't7/app/token',
      JSON.stringify({ token: marker, region: 'ca-central-1', pad: `${marker} `.repeat(400) }),
    );
    const plain = await userCreates(source, 't7/app/plain', `password=${marker} not JSON, ca-central-1`);

    const deliveries: Delivery[] = [];
    const deliver = async (bodies: readonly (object | string)[], receiveCount: number) => {
      const delivery = await replicator.deliver(bodies, { receiveCount });
      deliveries.push(delivery);
      return delivery;
    };
    // The last delivery of a change: what failed is dead-lettered with its reason.
    const last = await deliver([secretsManagerCall('CreateSecret', big)], 3);
    expect(last.response).toEqual({ batchItemFailures: [] });
    expect(proxy.throttled.filter((call) => call.region === 'eu-west-2')).toHaveLength(4); // its own retries
    // A first delivery: redelivered later.
    const first = await deliver([secretsManagerCall('PutSecretValue', plain)], 1);
    expect(first.response).toEqual({ batchItemFailures: [{ itemIdentifier: first.messageIds[0] }] });
    // Malformed messages: dead-lettered at once.
    const malformed = await deliver(
      [
        `not json ${marker}`,
        { ...secretsManagerCall('PutSecretValue', big), detail: `secretString=${marker}` },
        {
          ...secretsManagerCall('PutSecretValue', big),
          detail: {
            ...secretsManagerCall('PutSecretValue', big).detail,
            requestParameters: { secretString: marker },
            responseElements: null,
          },
        },
      ],
      1,
    );
    expect(malformed.response).toEqual({ batchItemFailures: [] });
    // A resync whose destinations fail: reported (logged, counted), not retried as a whole.
    const resync = await deliver([scheduledEvent('ca-central-1', ACCOUNT_A)], 3);
    expect(resync.response).toEqual({ batchItemFailures: [] });
    expect(resync.logs.find((l) => l.message === 'resync')?.failures).toEqual(
      expect.arrayContaining([expect.objectContaining({ destination: 'denied', outcome: 'failed' })]),
    );
    throttledRegions.delete('eu-west-2');

    // The value did travel where it could.
    expect(await currentValue(await emulator.secrets('us-east-2'), 't7/app/token')).toContain(marker);
    // Every failure was seen (so each path ran), each reason naming a destination and a rule.
    const logged = deliveries.flatMap((d) => d.logs);
    const reasons = logged.map((l) => String(l.reason ?? '')).join('\n');
    for (const expected of [
      /denied: transient failure: \w+ \(HTTP 403\)/,
      /too-large: [^;]*transform step 0: the result is larger than 65536 bytes/,
      /json-only: [^;]*transform step 0 \(path \$\.region\): the value is not a JSON document/,
      /destination\(s\) failed: [^;]*throttled/,
      /the message body is not JSON/,
      /detail: expected a CloudTrail record/,
      /detail: no secret in responseElements/,
    ])
      expect(reasons).toMatch(expected);

    const sqs = emulator.sqs('ca-central-1');
    const dead = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: replicator.deadLetterQueueUrl,
        MaxNumberOfMessages: 10,
        MessageAttributeNames: ['All'],
      }),
    );
    // The change and three malformed messages; their bodies are kept for a redrive.
    expect(dead.Messages?.map((m) => m.MessageAttributes?.reasonCode?.StringValue).sort()).toEqual([
      'destinations-failed',
      'malformed-event',
      'malformed-event',
      'malformed-event',
    ]);
    expect(dead.Messages?.some((m) => m.Body?.includes(marker))).toBe(true);

    const texts = [
      ...deliveries.map((d) => d.output),
      ...deliveries.map((d) => JSON.stringify(d.response ?? null)),
      ...deliveries.flatMap((d) =>
        d.thrown instanceof Error ? [d.thrown.message, String(d.thrown.stack)] : [String(d.thrown ?? '')],
      ),
      ...(dead.Messages ?? []).map((m) => JSON.stringify(m.MessageAttributes)),
    ];
    expect(findLeaks(texts, marker)).toEqual([]);
    expect(findLeaks(texts, marker.slice('MARKER-'.length))).toEqual([]);
  });
});
