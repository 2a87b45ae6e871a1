import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { GetItemCommand, PutItemCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import {
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { AwsRegion } from '../../environments';
import { findLeaks } from '../../runtime/lib/leak-check';
import type { DispatchMessage } from '../../runtime/runners/model';
import { invokeDeployed, regionalStackOf, type LocalEstate } from '../../scripts/lib/local-estate';
import { resourceName, runnerSecretNames } from '../../stacks/names';
import { FakeGitHub } from '../support/fake-github';
import { EcsRecorder } from '../support/runners-emulator';
import { consumeWith, emulatorClients } from './topology';

interface RunnerRegion {
  readonly region: AwsRegion;
  readonly stackDir: string;
  readonly router: string;
  readonly dispatcher: string;
  readonly admin: string;
  readonly queueUrls: Readonly<Record<string, string>>;
  readonly deadLetterUrl: string;
}

type HttpAnswer = { statusCode: number; body: string };

const ORG_EU = 'estate-eu';
const CALLER = {
  accountId: '123456789012',
  userArn: 'arn:aws:sts::123456789012:assumed-role/platform-oncall/alice',
  userId: 'AROAEXAMPLEONCALL:alice',
};

/**
 * The runner control plane as deployed in both regions of `local`: the deployed router, dispatcher and admin
 * bundles invoked with the events API Gateway and the queues' event-source mappings would send, on the
 * tables, queues and secrets Terraform created. Two parts stand in, as in the emulator lane: ECS RunTask
 * (moto 5.2 answers 500 for Fargate tasks) is a recorder reached through AWS_ENDPOINT_URL_ECS, and GitHub
 * is a fake at GITHUB_API_URL that verifies the App's JWT.
 */
export function runnersScenarios(endpoint: string, estateOf: () => LocalEstate): void {
  let estate: LocalEstate;
  let regions: RunnerRegion[];
  let github: FakeGitHub;
  let ecs: EcsRecorder;
  const webhookSecret = `whsec-${randomBytes(16).toString('hex')}`;
  const cacheTokenKey = randomBytes(32).toString('base64');
  const outputs: string[] = [];
  const at = (region: AwsRegion) => regions.find((r) => r.region === region) as RunnerRegion;
  const sqs = (region: string): SQSClient => emulatorClients(endpoint, region).sqs;
  const dynamodb = (region: string): DynamoDBClient => emulatorClients(endpoint, region).dynamodb;

  beforeAll(async () => {
    estate = estateOf();
    github = await FakeGitHub.start({
      appId: 424_242,
      installations: { [ORG_EU]: 7_001, 'estate-us': 7_002 },
    });
    ecs = await EcsRecorder.start();
    regions = estate.environment.regions.map((region) => {
      const stack = regionalStackOf(estate, region);
      return {
        region,
        stackDir: stack.dir,
        router: stack.outputs.runner_router_function as string,
        dispatcher: stack.outputs.runner_dispatcher_function as string,
        admin: stack.outputs.runner_admin_function as string,
        queueUrls: stack.outputs.runner_queue_urls as Record<string, string>,
        deadLetterUrl: stack.outputs.runner_dead_letter_url as string,
      };
    });
    // The platform secrets' values are set out of band, as an operator does (README): in the primary region,
    // whose secrets the global stack replicates (the scenarios run the primary region's functions).
    const names = runnerSecretNames(estate.environment);
    const primary = estate.environment.regions[0] as AwsRegion;
    const secrets = new SecretsManagerClient({
      region: primary,
      endpoint,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    for (const [secretId, value] of [
      [names.webhook, webhookSecret],
      [names.githubApp, github.appSecret()],
      [names.cacheTokenKey, cacheTokenKey],
    ] as const)
      await secrets.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: value }));
    for (const { region } of regions) {
      // A fresh health verdict in the region-status table, as the schedule writes it every minute.
      await invokeDeployed(
        endpoint,
        region,
        at(region).stackDir,
        resourceName(estate.environment, 'health'),
        {
          source: 'aws.events',
          'detail-type': 'Scheduled Event',
          detail: {},
        },
      );
    }
    await replicateVerdicts();
  });

  /**
   * `local` keeps one region-status table per region (the emulator cannot create global-table replicas):
   * each region's verdict is copied into every other region's table, as replication would.
   */
  async function replicateVerdicts(): Promise<void> {
    const table = resourceName(estate.environment, 'region-status');
    for (const { region } of regions) {
      const verdict = (
        await dynamodb(region).send(
          new GetItemCommand({ TableName: table, Key: { region: { S: region } }, ConsistentRead: true }),
        )
      ).Item;
      if (!verdict) throw new Error(`no health verdict in ${region}`);
      for (const { region: peer } of regions.filter((r) => r.region !== region))
        await dynamodb(peer).send(new PutItemCommand({ TableName: table, Item: verdict }));
    }
  }

  afterAll(async () => {
    await github?.close();
    await ecs?.close();
  });

  const invoke = async (region: AwsRegion, functionName: string, event: unknown) => {
    const { response } = await invokeDeployed(endpoint, region, at(region).stackDir, functionName, event, {
      AWS_ENDPOINT_URL_ECS: ecs.endpoint,
      GITHUB_API_URL: github.url,
    });
    outputs.push(JSON.stringify(response ?? null));
    return response;
  };

  const delivery = (action: 'queued' | 'completed', jobId: number, runId: number, organization = ORG_EU) =>
    JSON.stringify({
      action,
      workflow_job: {
        id: jobId,
        run_id: runId,
        run_attempt: 1,
        labels: ['self-hosted', 'linux', 'x64'],
        status: action,
        created_at: new Date().toISOString(),
        runner_name: action === 'completed' ? `eu-central-1-${jobId}-0` : null,
      },
      repository: {
        full_name: `${organization}/service`,
        owner: { login: organization, type: 'Organization' },
      },
      installation: { id: organization === ORG_EU ? 7_001 : 7_002 },
    });

  const webhook = async (region: AwsRegion, body: string, deliveryId = randomUUID()) =>
    (await invoke(region, at(region).router, {
      version: '2.0',
      routeKey: 'POST /webhook',
      rawPath: '/webhook',
      headers: {
        'content-type': 'application/json',
        'x-github-delivery': deliveryId,
        'x-github-event': 'workflow_job',
        'x-hub-signature-256': `sha256=${createHmac('sha256', webhookSecret).update(body).digest('hex')}`,
      },
      requestContext: { http: { method: 'POST', path: '/webhook' }, routeKey: 'POST /webhook' },
      body,
      isBase64Encoded: false,
    })) as HttpAnswer;

  const admin = async (
    region: AwsRegion,
    action: 'failover' | 'restore',
    target: AwsRegion,
    reason: string,
  ) =>
    (await invoke(region, at(region).admin, {
      version: '2.0',
      routeKey: `POST /admin/${action}/{region}`,
      rawPath: `/admin/${action}/${target}`,
      headers: { 'content-type': 'application/json' },
      pathParameters: { region: target },
      requestContext: {
        accountId: CALLER.accountId,
        http: { method: 'POST', path: `/admin/${action}/${target}` },
        routeKey: `POST /admin/${action}/{region}`,
        authorizer: { iam: { ...CALLER, accessKey: 'ASIAEXAMPLE', callerId: CALLER.userId } },
      },
      body: JSON.stringify({ reason }),
      isBase64Encoded: false,
    })) as HttpAnswer;

  /** Every message a runner queue holds now (left in flight until deleted). */
  async function receive(region: AwsRegion, type = 'standard'): Promise<Message[]> {
    const got = await sqs(region).send(
      new ReceiveMessageCommand({
        QueueUrl: at(region).queueUrls[type],
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
      }),
    );
    return got.Messages ?? [];
  }

  /** What the event-source mapping does: the deployed dispatcher on the messages, then deletes what it took. */
  const dispatch = (region: AwsRegion, messages: readonly Message[], type = 'standard') =>
    consumeWith(sqs(region), at(region).queueUrls[type] as string, region, messages, (event) =>
      invoke(region, at(region).dispatcher, event),
    );

  const jobRecord = async (region: AwsRegion, jobId: number) =>
    (
      await dynamodb(region).send(
        new GetItemCommand({
          TableName: resourceName(estate.environment, 'runner-workflows'),
          Key: { workflowId: { S: `job:${jobId}` } },
          ConsistentRead: true,
        }),
      )
    ).Item;

  it('routes a signed queued job home, starts one runner for it on the deployed cluster, and cleans up on completed', async () => {
    const [home, other] = ['eu-central-1', 'us-east-1'] as const;
    const jobId = 9_100_000_001;
    const answer = await webhook(home, delivery('queued', jobId, 5_100_001));
    expect(answer.statusCode).toBe(202);
    expect(JSON.parse(answer.body)).toMatchObject({ region: home, reason: 'home', runnerType: 'standard' });
    expect(await receive(other)).toEqual([]);
    const queued = await receive(home);
    expect(queued.map((m) => (JSON.parse(m.Body ?? '{}') as DispatchMessage).job.jobId)).toEqual([jobId]);

    expect((await dispatch(home, queued)).batchItemFailures).toEqual([]);
    const [task, ...more] = ecs.runTasks();
    expect(more).toEqual([]);
    expect(task).toMatchObject({
      region: home,
      cluster: resourceName(estate.environment, 'runners'),
      taskDefinition: `${resourceName(estate.environment, 'runners')}-standard`,
    });
    expect([...(task?.environment.keys() ?? [])].sort()).toEqual([
      'RUNNER_CACHE_TOKEN',
      'RUNNER_CACHE_URL',
      'RUNNER_JITCONFIG',
    ]);
    expect(github.jitConfigs.map((issue) => issue.name)).toEqual([`${home}-${jobId}-0`]);
    expect((await jobRecord(home, jobId))?.region).toEqual({ S: home });

    // The job's end: the router finds where it ran, that region's dispatcher releases and forgets it.
    expect((await webhook(home, delivery('completed', jobId, 5_100_001))).statusCode).toBe(202);
    const completed = (await receive(home)).filter(
      (m) => (JSON.parse(m.Body ?? '{}') as { kind: string }).kind === 'completed',
    );
    expect(completed).toHaveLength(1);
    expect((await dispatch(home, completed)).batchItemFailures).toEqual([]);
    expect(await jobRecord(home, jobId)).toBeUndefined();
    expect(ecs.runTasks()).toHaveLength(1);
    expect(ecs.otherOperations()).toEqual([]);
    const secrets = [webhookSecret, cacheTokenKey, ...github.secrets()];
    for (const secret of secrets) expect(findLeaks(outputs, secret)).toEqual([]);
  });

  it('takes no new run into a drained region, and refuses to drain the last active one', async () => {
    const [home, other] = ['eu-central-1', 'us-east-1'] as const;
    expect((await admin(home, 'failover', home, 'maintenance window, CHG-1')).statusCode).toBe(200);
    // The drain is in home's replica of region-status: home's router reads it there.
    const answer = await webhook(home, delivery('queued', 9_100_000_002, 5_100_002));
    expect(JSON.parse(answer.body)).toMatchObject({ region: other, reason: 'drained' });
    const last = await admin(home, 'failover', other, 'both?');
    expect(last.statusCode).toBe(409);
    expect(last.body).toContain('last-active-region');
    expect((await admin(home, 'restore', home, 'CHG-1 done')).statusCode).toBe(200);
    const back = await webhook(home, delivery('queued', 9_100_000_003, 5_100_003));
    expect(JSON.parse(back.body)).toMatchObject({ region: home, reason: 'home' });
    // Leave the queues as found.
    for (const region of [home, other]) {
      const left = await receive(region);
      if (left.length > 0)
        await sqs(region).send(
          new DeleteMessageBatchCommand({
            QueueUrl: at(region).queueUrls.standard,
            Entries: left.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle ?? '' })),
          }),
        );
    }
  });
}
