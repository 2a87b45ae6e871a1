import { Testing } from 'cdktf';
import type { Construct } from 'constructs';
import { KmsKey } from '../../modules/kms-key';
import { RunnerCluster } from '../../modules/runner-cluster';
import { RunnerControlPlane } from '../../modules/runner-control-plane';
import { RunnerNetwork } from '../../modules/runner-network';
import { SecureBucket } from '../../modules/secure-bucket';
import { only, resources, roleStatement, roleStatements, type Block } from '../support/synthesized';

const ACCOUNT = '222222222222';
const REGION = 'eu-central-1';
const DOCUMENT = {
  regions: [
    { region: 'eu-central-1', priority: 1, capacity: 20 },
    { region: 'us-east-1', priority: 2, capacity: 20 },
  ],
  organizations: { acme: 'eu-central-1' },
  runnerTypes: [
    { name: 'standard', labels: ['self-hosted', 'linux'], launch: 'fargate-spot' },
    {
      name: 'large',
      labels: ['self-hosted', 'linux', 'large'],
      launch: 'fargate',
      cpu: 4096,
      memoryMiB: 16384,
    },
  ],
};

type Props = ConstructorParameters<typeof RunnerControlPlane>[2];

function controlPlane(scope: Construct, props: Partial<Props> = {}, ec2 = false): RunnerControlPlane {
  const kmsKey = new KmsKey(scope, 'Key', { aliasName: 'dev-estate', accountId: ACCOUNT, region: REGION });
  const network = new RunnerNetwork(scope, 'Network', {
    name: 'dev-runners',
    cidr: '10.20.0.0/16',
    region: REGION,
    kmsKey,
  });
  const cluster = new RunnerCluster(scope, 'Cluster', {
    clusterName: 'dev-runners',
    ...(ec2
      ? {
          ec2: {
            instanceType: 'm7i.large',
            maxInstances: 4,
            subnetIds: network.privateSubnets.map((s) => s.id),
            securityGroupIds: [network.runnerSecurityGroup.id],
            region: REGION,
            accountId: ACCOUNT,
          },
        }
      : {}),
  });
  return new RunnerControlPlane(scope, 'Runners', {
    name: 'dev-runners',
    region: REGION,
    accountId: ACCOUNT,
    document: DOCUMENT,
    kmsKey,
    regionalKeyAlias: 'dev-estate',
    globalKeyAlias: 'dev-global',
    stateTableName: 'dev-region-state',
    globalTables: {
      idempotency: 'dev-idempotency-keys',
      workflows: 'dev-runner-workflows',
      cacheIndex: 'dev-artifact-cache-index',
      regionStatus: 'dev-region-status',
    },
    secrets: {
      webhook: 'dev/runners/webhook-secret',
      githubApp: 'dev/runners/github-app-private-key',
      cacheTokenKey: 'dev/runners/cache-token-key',
    },
    cacheBucket: new SecureBucket(scope, 'Cache', {
      bucketName: `dev-artifact-cache-${ACCOUNT}-${REGION}`,
      kmsKey,
    }),
    cacheBucketOf: (region) => `dev-artifact-cache-${ACCOUNT}-${region}`,
    cacheExpireDays: 30,
    network,
    cluster,
    image: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/runner:2.330.0`,
    cacheUrl: 'https://api.dev.estate.example.com',
    alarmTopicArn: `arn:aws:sns:${REGION}:${ACCOUNT}:dev-alarms`,
    ...props,
  });
}

const synth = (props: Partial<Props> = {}, ec2 = false) =>
  Testing.synthScope((scope) => void controlPlane(scope, props, ec2));

const queueArn = (region: string, type: string) => `arn:aws:sqs:${region}:${ACCOUNT}:dev-runners-${type}`;

describe('RunnerControlPlane', () => {
  const synthesized = synth();
  let routes: readonly { routeKey: string; authorization?: string; ownThrottleRatePerSec?: number }[] = [];
  Testing.synthScope((scope) => {
    routes = controlPlane(scope).routes;
  });

  it('has a queue per runner type, each redriving to the one dead-letter queue, all under the region key', () => {
    const queues = resources(synthesized, 'aws_sqs_queue').filter(
      (q) => String(q.name).startsWith('dev-runners') && !String(q.name).endsWith('-dlq'),
    );
    expect(queues.map((q) => q.name).sort()).toEqual([
      'dev-runners-dead-letter',
      'dev-runners-large',
      'dev-runners-standard',
    ]);
    for (const queue of queues.filter((q) => q.name !== 'dev-runners-dead-letter')) {
      expect(JSON.parse(queue.redrive_policy as string)).toMatchObject({ maxReceiveCount: 5 });
      expect(queue.kms_master_key_id).toBeDefined();
    }
  });

  it('serves the webhook unauthenticated (its signature is checked), the admin routes only to IAM principals', () => {
    expect(routes.find((r) => r.routeKey === 'POST /webhook')).toMatchObject({ ownThrottleRatePerSec: 500 });
    expect(routes.map((r) => [r.routeKey, r.authorization ?? 'none'])).toEqual([
      ['POST /webhook', 'none'],
      ['POST /admin/failover/{region}', 'iam'],
      ['POST /admin/restore/{region}', 'iam'],
      ['GET /admin/regions', 'iam'],
      ['GET /cache/{hash}', 'none'],
      ['PUT /cache/{hash}', 'none'],
    ]);
  });

  it('lets the router send only to the runner queues of every region, and claim deliveries in every replica', () => {
    const sends = roleStatements(synthesized).filter((s) =>
      (s.Action as string[]).includes('sqs:SendMessage'),
    );
    const routerSend = roleStatement(synthesized, 'SendToRunnerQueues');
    expect(routerSend.Resource).toEqual([
      queueArn('eu-central-1', 'standard'),
      queueArn('eu-central-1', 'large'),
      queueArn('us-east-1', 'standard'),
      queueArn('us-east-1', 'large'),
    ]);
    expect(sends.length).toBeGreaterThan(1);
    expect(roleStatement(synthesized, 'ClaimDeliveriesInEveryRegion').Resource).toEqual([
      `arn:aws:dynamodb:eu-central-1:${ACCOUNT}:table/dev-idempotency-keys`,
      `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/dev-idempotency-keys`,
    ]);
  });

  it('lets the dispatcher run only the runner task definitions, on its cluster, passing only their execution role', () => {
    const run = roleStatement(synthesized, 'RunRunnerTasksOnThisCluster');
    expect(run.Action).toEqual(['ecs:RunTask']);
    expect(run.Resource).toHaveLength(2);
    for (const arn of run.Resource as string[])
      expect(arn).toMatch(/aws_ecs_task_definition\.Runners_Task-\w+_\w+\.arn_without_revision\}:\*$/);
    expect(run.Condition).toEqual({
      ArnEquals: { 'ecs:cluster': expect.stringContaining('aws_ecs_cluster') },
    });
    const pass = roleStatement(synthesized, 'PassOnlyTheRunnerExecutionRole');
    expect(pass.Resource).toEqual([expect.stringContaining('RunnerExecutionRole')]);
    expect(pass.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } });
  });

  it('lets only the router keep spill state; the admin API reads it', () => {
    const keepers = resources(synthesized, 'aws_iam_role_policy').filter((p) =>
      (JSON.parse(p.policy as string) as { Statement: Block[] }).Statement.some(
        (st) => st.Sid === 'KeepEveryRegionsSpillState',
      ),
    );
    expect(keepers.map((p) => p.role)).toEqual([expect.stringContaining('Runners_Router')]);
  });

  it('reaps idle runners every 5 minutes, one pass at a time, stopping only runner-tagged tasks of its cluster', () => {
    const stop = roleStatement(synthesized, 'StopOnlyRunnerTasks');
    expect(stop.Action).toEqual(['ecs:StopTask']);
    expect(stop.Resource).toEqual([
      expect.stringMatching(
        /^arn:aws:ecs:eu-central-1:222222222222:task\/\$\{aws_ecs_cluster\.\w+\.name\}\/\*$/,
      ),
    ]);
    expect(stop.Condition).toEqual({
      ArnEquals: { 'ecs:cluster': expect.stringContaining('aws_ecs_cluster') },
      Null: { 'aws:ResourceTag/runner-job-id': 'false' },
    });
    expect(roleStatement(synthesized, 'ListRunnerTasksOfThisCluster').Condition).toEqual({
      ArnEquals: { 'ecs:cluster': expect.stringContaining('aws_ecs_cluster') },
    });
    const reaper = resources(synthesized, 'aws_lambda_function').find(
      (f) => f.function_name === 'dev-runners-reaper',
    ) as Block;
    expect(reaper.reserved_concurrent_executions).toBe(1);
    expect(
      resources(synthesized, 'aws_cloudwatch_event_rule').map((r) => [r.name, r.schedule_expression]),
    ).toContainEqual(['dev-runners-reaper', 'rate(5 minutes)']);
  });

  it("asks GitHub every 5 minutes to redeliver failed deliveries, reading only the App's key", () => {
    const redelivery = resources(synthesized, 'aws_lambda_function').find(
      (f) => f.function_name === 'dev-runners-redelivery',
    ) as Block;
    expect(redelivery.reserved_concurrent_executions).toBe(1);
    expect(
      resources(synthesized, 'aws_cloudwatch_event_rule').map((r) => [r.name, r.schedule_expression]),
    ).toContainEqual(['dev-runners-redelivery', 'rate(5 minutes)']);
    const policy = resources(synthesized, 'aws_iam_role_policy').find((p) =>
      String(p.role).includes('Runners_Redelivery'),
    ) as Block;
    const actions = (JSON.parse(policy.policy as string) as { Statement: Block[] }).Statement.flatMap(
      (st) => st.Action as string[],
    );
    expect(
      actions.filter(
        (a) =>
          !a.startsWith('logs:') && !a.startsWith('xray:') && !a.startsWith('sqs:') && !a.startsWith('kms:'),
      ),
    ).toEqual(['secretsmanager:GetSecretValue']);
  });

  it("limits state-table access to the control plane's partitions", () => {
    expect(roleStatement(synthesized, 'ClaimsLeasesAndCounters').Condition).toEqual({
      'ForAllValues:StringLike': {
        'dynamodb:LeadingKeys': ['runner-job#*', 'runner-leases', 'runner-dispatch'],
      },
    });
    expect(roleStatement(synthesized, 'KeepEveryRegionsSpillState').Condition).toEqual({
      'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['runner-spill'] },
    });
  });

  it('defines each runner type as an awsvpc Fargate task of its size, the Docker socket on none of them', () => {
    const definitions = resources(synthesized, 'aws_ecs_task_definition');
    expect(definitions.map((d) => [d.family, d.requires_compatibilities, d.cpu, d.memory]).sort()).toEqual([
      ['dev-runners-large', ['FARGATE'], '4096', '16384'],
      ['dev-runners-standard', ['FARGATE'], '1024', '2048'],
    ]);
    for (const definition of definitions) {
      expect(definition.network_mode).toBe('awsvpc');
      expect(definition.task_role_arn).toBeUndefined();
      expect(JSON.stringify(definition)).not.toContain('docker.sock');
    }
  });

  it('records uploads to the cache bucket through the cache function', () => {
    const notification = only(synthesized, 'aws_s3_bucket_notification');
    expect(notification.lambda_function).toEqual([
      { events: ['s3:ObjectCreated:*'], lambda_function_arn: expect.stringContaining('Runners_Cache') },
    ]);
    const permission = resources(synthesized, 'aws_lambda_permission').find(
      (p) => p.principal === 's3.amazonaws.com',
    ) as Block;
    expect(permission.source_account).toBe(ACCOUNT);
  });

  it('mounts the Docker socket only for an EC2 runner type, placed on the EC2 capacity provider', () => {
    const withEc2 = synth(
      {
        document: {
          ...DOCUMENT,
          runnerTypes: [
            ...DOCUMENT.runnerTypes,
            {
              name: 'docker',
              labels: ['self-hosted', 'docker'],
              launch: 'ec2',
              runnerGroup: 'docker-trusted',
            },
          ],
        },
      },
      true,
    );
    const docker = resources(withEc2, 'aws_ecs_task_definition').find(
      (d) => d.family === 'dev-runners-docker',
    ) as Block;
    expect(docker.requires_compatibilities).toEqual(['EC2']);
    // The host's daemon runs a job's containers: on its bridge, with the work folder at the same path.
    expect(docker.network_mode).toBe('bridge');
    expect(docker.volume).toEqual([
      { name: 'docker-socket', host_path: '/var/run/docker.sock' },
      { name: 'work', host_path: '/home/runner/_work' },
    ]);
    const [container] = JSON.parse(docker.container_definitions as string) as {
      mountPoints: unknown;
      command: unknown;
      workingDirectory: unknown;
    }[];
    // The image's contract: the runner in /home/runner, started with the JIT config from its environment.
    expect(container?.workingDirectory).toBe('/home/runner');
    expect(container?.command).toEqual(['sh', '-c', 'exec ./run.sh --jitconfig "$RUNNER_JITCONFIG"']);
    expect(container?.mountPoints).toEqual([
      { sourceVolume: 'docker-socket', containerPath: '/var/run/docker.sock' },
      { sourceVolume: 'work', containerPath: '/home/runner/_work' },
    ]);
    const dispatcher = resources(withEc2, 'aws_lambda_function').find(
      (f) => f.function_name === 'dev-runners-dispatcher',
    ) as Block;
    expect(
      (dispatcher.environment as { variables: Record<string, string> }).variables.EC2_CAPACITY_PROVIDER,
    ).toBe('dev-runners-ec2');
  });

  it.each<[string, Partial<Props>, boolean, RegExp]>([
    [
      'a bad document, naming the field',
      { document: { ...DOCUMENT, regions: [] } },
      false,
      /document\.regions: expected at least one region/,
    ],
    [
      'a document without this region',
      { region: 'eu-west-1' },
      false,
      /document\.regions.*including this region, eu-west-1/,
    ],
    [
      'a Fargate size Fargate does not offer',
      { document: { ...DOCUMENT, runnerTypes: [{ name: 'odd', labels: ['x'], cpu: 1024, memoryMiB: 512 }] } },
      false,
      /runnerTypes\.odd.*a Fargate size/,
    ],
    [
      'an EC2 runner type on a cluster without EC2 capacity',
      {
        document: {
          ...DOCUMENT,
          runnerTypes: [{ name: 'docker', labels: ['docker'], launch: 'ec2', runnerGroup: 'docker-trusted' }],
        },
      },
      false,
      /invalid cluster.*EC2 capacity/,
    ],
    [
      'a concurrency resource with no quota service',
      { document: { ...DOCUMENT, concurrencyResource: 'runner-concurrency' } },
      false,
      /invalid quota.*runner-concurrency/,
    ],
    [
      'a document too large for the functions environment',
      {
        document: {
          ...DOCUMENT,
          repositories: Object.fromEntries(
            Array.from({ length: 120 }, (_, i) => [`acme/repository-${i}`, 'us-east-1']),
          ),
        },
      },
      false,
      /invalid document.*at most 2560 bytes/,
    ],
  ])('refuses %s', (_name, props, ec2, message) => {
    expect(() => Testing.synthScope((scope) => void controlPlane(scope, props, ec2))).toThrow(message);
  });
});
