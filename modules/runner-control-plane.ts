import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group';
import type { CloudwatchMetricAlarm } from '@cdktf/provider-aws/lib/cloudwatch-metric-alarm';
import { EcsTaskDefinition } from '@cdktf/provider-aws/lib/ecs-task-definition';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy';
import { LambdaPermission } from '@cdktf/provider-aws/lib/lambda-permission';
import { S3BucketNotification } from '@cdktf/provider-aws/lib/s3-bucket-notification';
import { SqsQueue } from '@cdktf/provider-aws/lib/sqs-queue';
import { Construct } from 'constructs';
import {
  parseRunnerConfig,
  RunnerConfigError,
  type RunnerConfig,
  type RunnerType,
} from '../runtime/runners/config';
import {
  DISPATCH_PARTITION,
  LEASES_PARTITION,
  runnerDeadLetterQueueName,
  runnerQueueName,
  SPILL_KEY,
} from '../runtime/runners/tables';
import { BundledFunction, LAMBDA_ENVIRONMENT_BYTES } from './bundled-function';
import type { HttpRoute } from './http-api';
import type { KmsKey } from './kms-key';
import { alarmNameOf, notifyingAlarm, type NotifyingAlarmProps } from './lib/alarm';
import { policyDocument, serviceTrustPolicy, type PolicyStatement } from './lib/policy';
import { fail, requireIntInRange, requireMatch } from './lib/validate';
import { QueueTrigger, queueConsumerStatements } from './queue-trigger';
import { Schedule } from './schedule';
import type { QuotaService } from './quota-service';
import { RUNNER_WORK_FOLDER, type RunnerCluster } from './runner-cluster';
import type { RunnerNetwork } from './runner-network';
import type { SecureBucket } from './secure-bucket';

/** The global tables the control plane keeps its records in (the global stack's; the same name everywhere). */
export interface RunnerGlobalTables {
  readonly idempotency: string;
  readonly workflows: string;
  readonly cacheIndex: string;
  readonly regionStatus: string;
}

/** Names of the platform secrets it reads (replicated to every region by the global stack). */
export interface RunnerSecretNames {
  /** The GitHub webhook's secret (AWSCURRENT and AWSPREVIOUS both verify during a rotation). */
  readonly webhook: string;
  /** JSON `{ appId, privateKey }` of the GitHub App that issues just-in-time runner configs. */
  readonly githubApp: string;
  /** The key runner cache tokens are signed with. */
  readonly cacheTokenKey: string;
}

export interface RunnerControlPlaneProps {
  /**
   * Name prefix, e.g. `dev-runners`: queues `<name>-<runner type>` and `<name>-dead-letter`, functions
   * `<name>-router`, `-dispatcher`, `-admin` and `-cache`, task definitions `<name>-<runner type>`.
   */
  readonly name: string;
  readonly region: string;
  readonly accountId: string;
  /** The control plane's document (runtime/runners/config.ts), validated here as the functions will. */
  readonly document: unknown;
  /** The region's key: queues, logs, function environments. */
  readonly kmsKey: KmsKey;
  /** Alias of every region's estate key (peers' queues and state tables are encrypted with theirs). */
  readonly regionalKeyAlias: string;
  /** Alias of every region's global key (global tables and platform secrets). */
  readonly globalKeyAlias: string;
  /** The region's state table's name, the same in every region (claims, leases, counters, spill state). */
  readonly stateTableName: string;
  readonly globalTables: RunnerGlobalTables;
  readonly secrets: RunnerSecretNames;
  /** This region's artifact cache bucket; its uploads are recorded in the cache index. */
  readonly cacheBucket: SecureBucket;
  /** Every region's artifact cache bucket name. */
  readonly cacheBucketOf: (region: string) => string;
  /** Days the cache bucket keeps an object (its lifecycle); the index forgets an entry a day before. */
  readonly cacheExpireDays: number;
  readonly network: RunnerNetwork;
  readonly cluster: RunnerCluster;
  /** The runner image URI (`<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>`). */
  readonly image: string;
  /** Base URL runners reach the artifact cache under (the estate's API name). */
  readonly cacheUrl: string;
  /** The quota sync whose allocation caps each organisation's runners in this region. */
  readonly quota?: QuotaService;
  /** GitHub's API (GitHub Enterprise Server: `https://<host>/api/v3`). Default: https://api.github.com. */
  readonly githubApiUrl?: string;
  /** Deliveries of a runner queue's message before it is dead-lettered. Default: 5. */
  readonly maxReceiveCount?: number;
  /** Dispatcher invocations at once per runner type (2-1000). Default: 10. */
  readonly dispatchConcurrency?: number;
  /** Provisioned concurrency of the router (webhooks wait on it). Default: 0. */
  readonly routerProvisionedConcurrency?: number;
  readonly logRetentionDays?: number;
  readonly encryptEnvironment?: boolean;
  /** Create the queues' event-source mappings enabled (off only on the emulator). Default: true. */
  readonly triggerEnabled?: boolean;
  /** Ignore drift of the queues' redrive policies (the emulator echoes them reformatted). Default: false. */
  readonly ignoreRedrivePolicyDrift?: boolean;
  /** Topic (in this region) the alarms notify. */
  readonly alarmTopicArn: string;
  /** Ask GitHub to redeliver failed deliveries from this region: one region of the environment does. Default: true. */
  readonly sweepFailedDeliveries?: boolean;
}

/** What the runner configuration may take of it: the rest is table names, URLs and the quota config. */
const MAX_CONFIG_BYTES = 2560;
const DISPATCHER_TIMEOUT_SEC = 60;
const REAPER_TIMEOUT_SEC = 240;
/**
 * The runner image's contract: the runner installed in /home/runner (as ghcr.io/actions/actions-runner), run as
 * its user 1001 (in group 123, `docker`), started with the JIT config the dispatcher puts in its environment.
 */
const RUNNER_HOME = '/home/runner';
const RUNNER_COMMAND = ['sh', '-c', 'exec ./run.sh --jitconfig "$RUNNER_JITCONFIG"'];
/** Webhook deliveries per second the route takes, apart from the API's default (a matrix arrives at once). */
const WEBHOOK_RATE_PER_SEC = 500;

/** The control plane's alarms besides its functions' (each named `<name>-<id in kebab case>`). */
const ALARM_IDS = ['DeadLettered', 'DispatchFailures'] as const;
type AlarmId = (typeof ALARM_IDS)[number];

/** The control plane's functions, each named `<name>-<role>`; `redelivery` only where it sweeps failed deliveries. */
export interface RunnerFunctionNames {
  readonly router: string;
  readonly dispatcher: string;
  readonly admin: string;
  readonly cache: string;
  readonly reaper: string;
  readonly redelivery: string;
}

const FARGATE_SIZES: Readonly<Record<number, readonly [number, number]>> = {
  256: [512, 2048],
  512: [1024, 4096],
  1024: [2048, 8192],
  2048: [4096, 16_384],
  4096: [8192, 30_720],
  8192: [16_384, 61_440],
  16_384: [32_768, 122_880],
};

/**
 * The CI runner control plane of one region (runtime/runners): the router behind `POST /webhook`, a queue
 * per runner type with one dead-letter queue, the dispatcher that starts an ephemeral runner task for each
 * job, the admin API (IAM-authorised) that drains and restores regions, the artifact cache's presigning
 * routes and its upload records, and a task definition per runner type. `routes` go on the region's API.
 *
 * Least privilege: the router sends only to the runner queues (every region's: spillover crosses
 * regions) and claims deliveries in every region's idempotency replica; the dispatcher runs only the runner
 * task definitions, on this cluster, and passes only their execution role; state-table access is limited
 * to the control plane's partitions.
 */
export class RunnerControlPlane extends Construct {
  readonly config: RunnerConfig;
  readonly queues: ReadonlyMap<string, SqsQueue>;
  readonly deadLetterQueue: SqsQueue;
  readonly router: BundledFunction;
  readonly dispatcher: BundledFunction;
  readonly admin: BundledFunction;
  readonly cache: BundledFunction;
  /** Removes runners that took no job within the idle timeout (registration and task), every 5 minutes. */
  readonly reaper: BundledFunction;
  /** Asks GitHub to redeliver the App's failed `workflow_job` deliveries, every 5 minutes (one region). */
  readonly redelivery?: BundledFunction;
  readonly taskDefinitions: ReadonlyMap<string, EcsTaskDefinition>;
  /** The control plane's routes, for the region's HTTP API. */
  readonly routes: readonly HttpRoute[];
  readonly alarms: readonly CloudwatchMetricAlarm[];

  /** Names of the control plane's functions, from its `name`. */
  static functionNames(name: string): RunnerFunctionNames {
    return {
      router: `${name}-router`,
      dispatcher: `${name}-dispatcher`,
      admin: `${name}-admin`,
      cache: `${name}-cache`,
      reaper: `${name}-reaper`,
      redelivery: `${name}-redelivery`,
    };
  }

  /** Names of the control plane's own alarms (its functions' come from `BundledFunction.alarmNamesOf`). */
  static alarmNames(name: string): string[] {
    return ALARM_IDS.map((id) => alarmNameOf(name, id));
  }

  constructor(scope: Construct, id: string, props: RunnerControlPlaneProps) {
    super(scope, id);
    requireMatch(
      'RunnerControlPlane',
      'name',
      props.name,
      /^[a-zA-Z0-9_-]{1,40}$/,
      '1-40 letters, digits, - or _',
    );
    try {
      this.config = parseRunnerConfig(props.document, 'document');
    } catch (error) {
      if (error instanceof RunnerConfigError)
        fail('RunnerControlPlane', 'document', '(see rules)', error.issues.join('; '));
      throw error;
    }
    const configJson = JSON.stringify(props.document);
    if (Buffer.byteLength(configJson) > MAX_CONFIG_BYTES)
      fail(
        'RunnerControlPlane',
        'document',
        `${Buffer.byteLength(configJson)} bytes`,
        `at most ${MAX_CONFIG_BYTES} bytes of JSON (it travels in the functions' environment, ${LAMBDA_ENVIRONMENT_BYTES} bytes in all)`,
      );
    const regions = this.config.regions.map((r) => r.region);
    if (!regions.includes(props.region))
      fail(
        'RunnerControlPlane',
        'document.regions',
        regions,
        `a list including this region, ${props.region}`,
      );
    const maxReceiveCount = requireIntInRange(
      'RunnerControlPlane',
      'maxReceiveCount',
      props.maxReceiveCount ?? 5,
      2,
      100,
    );
    const dispatchConcurrency = requireIntInRange(
      'RunnerControlPlane',
      'dispatchConcurrency',
      props.dispatchConcurrency ?? 10,
      2,
      1000,
    );
    const ec2Types = this.config.runnerTypes.filter((t) => t.launch === 'ec2');
    if (ec2Types.length > 0 && !props.cluster.ec2CapacityProviderName)
      fail(
        'RunnerControlPlane',
        'cluster',
        ec2Types.map((t) => t.name),
        'a cluster with EC2 capacity for the runner types that launch on ec2',
      );
    this.config.runnerTypes
      .filter((t) => t.launch !== 'ec2')
      .forEach((type) => {
        const memory = FARGATE_SIZES[type.cpu];
        if (!memory || type.memoryMiB < memory[0] || type.memoryMiB > memory[1])
          fail(
            'RunnerControlPlane',
            `runnerTypes.${type.name}`,
            `${type.cpu} CPU units, ${type.memoryMiB} MiB`,
            'a Fargate size: cpu 256-16384 (powers of two) with memory in its range',
          );
      });

    const { region, accountId: account, name } = props;
    const prefix = name;
    const functionNames = RunnerControlPlane.functionNames(name);

    this.deadLetterQueue = new SqsQueue(this, 'DeadLetters', {
      name: runnerDeadLetterQueueName(prefix),
      kmsMasterKeyId: props.kmsKey.arn,
      messageRetentionSeconds: 14 * 86_400,
    });
    this.queues = new Map(
      this.config.runnerTypes.map((type) => [
        type.name,
        new SqsQueue(this, `Queue-${type.name}`, {
          name: runnerQueueName(prefix, type.name),
          kmsMasterKeyId: props.kmsKey.arn,
          visibilityTimeoutSeconds: 6 * DISPATCHER_TIMEOUT_SEC,
          messageRetentionSeconds: 4 * 86_400,
          redrivePolicy: JSON.stringify({ deadLetterTargetArn: this.deadLetterQueue.arn, maxReceiveCount }),
          ...(props.ignoreRedrivePolicyDrift ? { lifecycle: { ignoreChanges: ['redrive_policy'] } } : {}),
        }),
      ]),
    );

    const executionRole = this.taskExecutionRole(props);
    this.taskDefinitions = this.runnerTaskDefinitions(props, executionRole.role);

    const common = {
      region,
      kmsKey: props.kmsKey,
      logRetentionDays: props.logRetentionDays,
      encryptEnvironment: props.encryptEnvironment,
      alarmTopicArn: props.alarmTopicArn,
    };
    const shared = {
      RUNNERS_CONFIG: configJson,
      ACCOUNT_ID: account,
      RUNNER_QUEUE_PREFIX: prefix,
      STATE_TABLE: props.stateTableName,
    };
    const tables = props.globalTables;
    const access = new Access(region, account, regions, props);

    this.router = new BundledFunction(this, 'Router', {
      ...common,
      entry: 'runtime/runners/router/handler.ts',
      functionName: functionNames.router,
      statements: [
        access.secret('ReadWebhookSecret', props.secrets.webhook),
        {
          sid: 'ClaimDeliveriesInEveryRegion',
          actions: ['dynamodb:PutItem', 'dynamodb:DeleteItem'],
          resources: access.everyRegion((r) => access.table(r, tables.idempotency)),
        },
        {
          sid: 'PlaceRunsAndReadJobs',
          actions: ['dynamodb:GetItem', 'dynamodb:PutItem'],
          resources: [access.table(region, tables.workflows)],
        },
        ...access.regionViews(),
        {
          sid: 'SendToRunnerQueues',
          actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes'],
          resources: access.runnerQueues(this.config.runnerTypes),
        },
        access.keys(['sqs', 'dynamodb', 'secretsmanager']),
      ],
      environment: {
        ...shared,
        WEBHOOK_SECRET_ID: props.secrets.webhook,
        IDEMPOTENCY_TABLE: tables.idempotency,
        WORKFLOWS_TABLE: tables.workflows,
        REGION_STATUS_TABLE: tables.regionStatus,
      },
      provisionedConcurrency: props.routerProvisionedConcurrency,
    });

    const quotaAccess = this.config.concurrencyResource ? props.quota?.limiterAccess() : undefined;
    if (this.config.concurrencyResource && !quotaAccess)
      fail(
        'RunnerControlPlane',
        'quota',
        undefined,
        `the quota service: the document caps organisations by the quota resource ${this.config.concurrencyResource}`,
      );
    this.dispatcher = new BundledFunction(this, 'Dispatcher', {
      ...common,
      entry: 'runtime/runners/dispatcher/handler.ts',
      functionName: functionNames.dispatcher,
      timeoutSec: DISPATCHER_TIMEOUT_SEC,
      statements: [
        ...[...this.queues.values()].flatMap((queue, index) =>
          queueConsumerStatements(`ConsumeRunnerQueue${index}`, queue, this.deadLetterQueue).slice(0, 1),
        ),
        {
          sid: 'DeadLetterWithReason',
          actions: ['sqs:SendMessage'],
          resources: [this.deadLetterQueue.arn],
        },
        {
          // Waits and retries go back to its own queues; a drained region's jobs go to another region's.
          sid: 'SendToRunnerQueues',
          actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes'],
          resources: access.runnerQueues(this.config.runnerTypes),
        },
        ...access.regionViews('read'),
        {
          sid: 'ClaimsLeasesAndCounters',
          actions: [
            'dynamodb:GetItem',
            'dynamodb:PutItem',
            'dynamodb:UpdateItem',
            'dynamodb:DeleteItem',
            // The region's live leases, against its capacity.
            'dynamodb:Query',
          ],
          resources: [access.table(region, props.stateTableName)],
          conditions: {
            'ForAllValues:StringLike': {
              'dynamodb:LeadingKeys': ['runner-job#*', LEASES_PARTITION, DISPATCH_PARTITION],
            },
          },
        },
        {
          sid: 'RecordJobs',
          actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem'],
          resources: [access.table(region, tables.workflows)],
        },
        {
          sid: 'RunRunnerTasksOnThisCluster',
          actions: ['ecs:RunTask'],
          resources: [...this.taskDefinitions.values()].map((d) => `${d.arnWithoutRevision}:*`),
          conditions: { ArnEquals: { 'ecs:cluster': props.cluster.cluster.arn } },
        },
        {
          sid: 'TagRunnerTasks',
          actions: ['ecs:TagResource'],
          resources: [`arn:aws:ecs:${region}:${account}:task/${props.cluster.cluster.name}/*`],
          conditions: { StringEquals: { 'ecs:CreateAction': 'RunTask' } },
        },
        {
          sid: 'PassOnlyTheRunnerExecutionRole',
          actions: ['iam:PassRole'],
          resources: [executionRole.role.arn],
          conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
        },
        access.secret('ReadGitHubAppKey', props.secrets.githubApp),
        access.secret('ReadCacheTokenKey', props.secrets.cacheTokenKey),
        {
          sid: 'UseRegionalKey',
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: [props.kmsKey.arn],
        },
        access.keys(['sqs', 'dynamodb', 'secretsmanager']),
        ...(quotaAccess?.statements ?? []),
      ],
      environment: {
        ...shared,
        ...(quotaAccess?.environment ?? {}),
        WORKFLOWS_TABLE: tables.workflows,
        REGION_STATUS_TABLE: tables.regionStatus,
        RUNNER_DEAD_LETTER_QUEUE_URL: this.deadLetterQueue.url,
        RUNNER_MAX_RECEIVE_COUNT: String(maxReceiveCount),
        ECS_CLUSTER: props.cluster.cluster.name,
        TASK_DEFINITIONS: JSON.stringify(
          Object.fromEntries(this.config.runnerTypes.map((t) => [t.name, `${prefix}-${t.name}`])),
        ),
        RUNNER_SUBNETS: props.network.privateSubnets.map((s) => s.id).join(','),
        RUNNER_SECURITY_GROUP: props.network.runnerSecurityGroup.id,
        ...(props.cluster.ec2CapacityProviderName
          ? { EC2_CAPACITY_PROVIDER: props.cluster.ec2CapacityProviderName }
          : {}),
        GITHUB_APP_SECRET_ID: props.secrets.githubApp,
        GITHUB_API_URL: props.githubApiUrl ?? 'https://api.github.com',
        RUNNER_CACHE_URL: props.cacheUrl,
        CACHE_TOKEN_SECRET_ID: props.secrets.cacheTokenKey,
      },
    });
    [...this.queues.entries()].forEach(
      ([type, queue]) =>
        new QueueTrigger(this, `Dispatch-${type}`, {
          queue,
          consumer: this.dispatcher,
          batchSize: 5,
          batchingWindowSec: 0,
          maximumConcurrency: dispatchConcurrency,
          enabled: props.triggerEnabled,
        }),
    );

    this.admin = new BundledFunction(this, 'Admin', {
      ...common,
      entry: 'runtime/runners/admin/handler.ts',
      functionName: functionNames.admin,
      statements: [
        {
          sid: 'ChangeRegionStatus',
          actions: [
            'dynamodb:GetItem',
            'dynamodb:BatchGetItem',
            'dynamodb:PutItem',
            'dynamodb:ConditionCheckItem',
          ],
          resources: [access.table(region, tables.regionStatus)],
        },
        ...access.regionViews('read'),
        {
          sid: 'ReadRunnerQueueDepths',
          actions: ['sqs:GetQueueAttributes'],
          resources: access.runnerQueues(this.config.runnerTypes),
        },
        access.keys(['dynamodb']),
      ],
      environment: { ...shared, REGION_STATUS_TABLE: tables.regionStatus },
    });

    const buckets = Object.fromEntries(regions.map((r) => [r, props.cacheBucketOf(r)]));
    const expireDays = requireIntInRange(
      'RunnerControlPlane',
      'cacheExpireDays',
      props.cacheExpireDays,
      2,
      3650,
    );
    this.cache = new BundledFunction(this, 'Cache', {
      ...common,
      entry: 'runtime/runners/cache/handler.ts',
      functionName: functionNames.cache,
      statements: [
        {
          // One item per region holding a copy: every region's read at once, this region's written.
          sid: 'CacheIndex',
          actions: ['dynamodb:BatchGetItem', 'dynamodb:UpdateItem'],
          resources: [access.table(region, tables.cacheIndex)],
        },
        {
          // Presigned URLs act with the function's rights: reads from every region's cache, writes here.
          sid: 'PresignCacheReads',
          actions: ['s3:GetObject'],
          resources: regions.map((r) => `arn:aws:s3:::${props.cacheBucketOf(r)}/*`),
        },
        {
          sid: 'PresignCacheWritesHere',
          actions: ['s3:PutObject'],
          resources: [`arn:aws:s3:::${props.cacheBucketOf(region)}/*`],
        },
        access.secret('ReadCacheTokenKey', props.secrets.cacheTokenKey),
        access.keys(['s3', 'dynamodb', 'secretsmanager']),
      ],
      environment: {
        RUNNERS_CONFIG: configJson,
        CACHE_INDEX_TABLE: tables.cacheIndex,
        CACHE_BUCKETS: JSON.stringify(buckets),
        CACHE_TOKEN_SECRET_ID: props.secrets.cacheTokenKey,
        CACHE_EXPIRE_DAYS: String(expireDays),
      },
    });
    const s3Invoke = new LambdaPermission(this, 'CacheUploads', {
      statementId: 'CacheBucketUploads',
      action: 'lambda:InvokeFunction',
      functionName: this.cache.function.functionName,
      qualifier: this.cache.alias.name,
      principal: 's3.amazonaws.com',
      sourceArn: props.cacheBucket.bucket.arn,
      sourceAccount: account,
    });
    new S3BucketNotification(this, 'CacheUploadNotification', {
      bucket: props.cacheBucket.bucket.id,
      lambdaFunction: [{ lambdaFunctionArn: this.cache.alias.arn, events: ['s3:ObjectCreated:*'] }],
      dependsOn: [s3Invoke],
    });

    this.reaper = new BundledFunction(this, 'Reaper', {
      ...common,
      entry: 'runtime/runners/reaper/handler.ts',
      functionName: functionNames.reaper,
      timeoutSec: REAPER_TIMEOUT_SEC,
      // One pass at a time; a pass that fails is simply the next one's work.
      reservedConcurrency: 1,
      asyncRetries: { attempts: 0, maxEventAgeSec: 300 },
      statements: [
        {
          // ListTasks names container instances as its resource, which Fargate tasks have none of.
          sid: 'ListRunnerTasksOfThisCluster',
          actions: ['ecs:ListTasks'],
          resources: ['*'],
          conditions: { ArnEquals: { 'ecs:cluster': props.cluster.cluster.arn } },
        },
        {
          sid: 'DescribeRunnerTasks',
          actions: ['ecs:DescribeTasks'],
          resources: [`arn:aws:ecs:${region}:${account}:task/${props.cluster.cluster.name}/*`],
        },
        {
          sid: 'StopOnlyRunnerTasks',
          actions: ['ecs:StopTask'],
          resources: [`arn:aws:ecs:${region}:${account}:task/${props.cluster.cluster.name}/*`],
          conditions: {
            ArnEquals: { 'ecs:cluster': props.cluster.cluster.arn },
            Null: { 'aws:ResourceTag/runner-job-id': 'false' },
          },
        },
        access.secret('ReadGitHubAppKey', props.secrets.githubApp),
        access.keys(['secretsmanager']),
      ],
      environment: {
        RUNNERS_CONFIG: configJson,
        ECS_CLUSTER: props.cluster.cluster.name,
        GITHUB_APP_SECRET_ID: props.secrets.githubApp,
        GITHUB_API_URL: props.githubApiUrl ?? 'https://api.github.com',
      },
    });
    new Schedule(this, 'ReapIdleRunners', {
      ruleName: `${name}-reaper`,
      expression: 'rate(5 minutes)',
      target: this.reaper,
    });

    // GitHub never redelivers a failed delivery by itself: one region (the primary) asks it to, for the
    // App's webhook; two regions would each add an attempt per pass.
    if (props.sweepFailedDeliveries ?? true)
      this.redelivery = new BundledFunction(this, 'Redelivery', {
        ...common,
        entry: 'runtime/runners/redelivery/handler.ts',
        functionName: functionNames.redelivery,
        timeoutSec: REAPER_TIMEOUT_SEC,
        reservedConcurrency: 1,
        asyncRetries: { attempts: 0, maxEventAgeSec: 300 },
        statements: [
          access.secret('ReadGitHubAppKey', props.secrets.githubApp),
          access.keys(['secretsmanager']),
        ],
        environment: {
          GITHUB_APP_SECRET_ID: props.secrets.githubApp,
          GITHUB_API_URL: props.githubApiUrl ?? 'https://api.github.com',
        },
      });
    if (this.redelivery)
      new Schedule(this, 'RedeliverFailed', {
        ruleName: `${name}-redelivery`,
        expression: 'rate(5 minutes)',
        target: this.redelivery,
      });

    this.routes = [
      { routeKey: 'POST /webhook', handler: this.router, ownThrottleRatePerSec: WEBHOOK_RATE_PER_SEC },
      { routeKey: 'POST /admin/failover/{region}', handler: this.admin, authorization: 'iam' },
      { routeKey: 'POST /admin/restore/{region}', handler: this.admin, authorization: 'iam' },
      { routeKey: 'GET /admin/regions', handler: this.admin, authorization: 'iam' },
      { routeKey: 'GET /cache/{hash}', handler: this.cache },
      { routeKey: 'PUT /cache/{hash}', handler: this.cache },
    ];
    this.alarms = this.createAlarms(props);
  }

  private taskExecutionRole(props: RunnerControlPlaneProps): { role: IamRole; logGroup: CloudwatchLogGroup } {
    const { region, accountId: account, name } = props;
    const logGroup = new CloudwatchLogGroup(this, 'RunnerLogs', {
      name: `/ecs/${name}`,
      retentionInDays: props.logRetentionDays ?? 365,
      kmsKeyId: props.kmsKey.arn,
    });
    const role = new IamRole(this, 'RunnerExecutionRole', {
      name: `${name}-task-execution-${region}`,
      assumeRolePolicy: serviceTrustPolicy('ecs-tasks.amazonaws.com', {
        sourceAccount: account,
        sourceArn: `arn:aws:ecs:${region}:${account}:*`,
      }),
    });
    const repository = props.image.split('/').slice(1).join('/').split(':')[0] ?? '';
    new IamRolePolicy(this, 'RunnerExecutionPolicy', {
      name: 'pull-image-write-logs',
      role: role.id,
      policy: policyDocument([
        { sid: 'RegistryLogin', actions: ['ecr:GetAuthorizationToken'], resources: ['*'] },
        {
          sid: 'PullRunnerImage',
          actions: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'],
          resources: [`arn:aws:ecr:${region}:${account}:repository/${repository}`],
        },
        {
          sid: 'WriteRunnerLogs',
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [`${logGroup.arn}:*`],
        },
      ]),
    });
    return { role, logGroup };
  }

  private runnerTaskDefinitions(
    props: RunnerControlPlaneProps,
    executionRole: IamRole,
  ): ReadonlyMap<string, EcsTaskDefinition> {
    return new Map(
      this.config.runnerTypes.map((type) => [
        type.name,
        new EcsTaskDefinition(this, `Task-${type.name}`, {
          family: `${props.name}-${type.name}`,
          // EC2 runners share the host's Docker daemon: on its bridge, the daemon publishes a job's service
          // ports on the host and mounts the work folder at the path the runner sees (awsvpc would hide both).
          networkMode: type.launch === 'ec2' ? 'bridge' : 'awsvpc',
          requiresCompatibilities: [type.launch === 'ec2' ? 'EC2' : 'FARGATE'],
          cpu: String(type.cpu),
          memory: String(type.memoryMiB),
          executionRoleArn: executionRole.arn,
          runtimePlatform: { operatingSystemFamily: 'LINUX', cpuArchitecture: 'X86_64' },
          containerDefinitions: JSON.stringify([this.runnerContainer(props, type)]),
          ...(type.launch === 'ec2'
            ? {
                volume: [
                  { name: 'docker-socket', hostPath: '/var/run/docker.sock' },
                  { name: 'work', hostPath: RUNNER_WORK_FOLDER },
                ],
              }
            : {}),
        }),
      ]),
    );
  }

  private runnerContainer(props: RunnerControlPlaneProps, type: RunnerType): Record<string, unknown> {
    return {
      name: 'runner',
      image: props.image,
      essential: true,
      workingDirectory: RUNNER_HOME,
      command: RUNNER_COMMAND,
      environment: [
        { name: 'RUNNER_REGION', value: props.region },
        { name: 'RUNNER_TYPE', value: type.name },
      ],
      logConfiguration: {
        logDriver: 'awslogs',
        options: {
          'awslogs-group': `/ecs/${props.name}`,
          'awslogs-region': props.region,
          'awslogs-stream-prefix': type.name,
        },
      },
      ...(type.launch === 'ec2'
        ? {
            mountPoints: [
              { sourceVolume: 'docker-socket', containerPath: '/var/run/docker.sock' },
              // The same path on the host and in the runner: the daemon resolves a job's bind mounts on the host.
              { sourceVolume: 'work', containerPath: RUNNER_WORK_FOLDER },
            ],
          }
        : {}),
    };
  }

  private createAlarms(props: RunnerControlPlaneProps): CloudwatchMetricAlarm[] {
    const alarm = (alarmId: AlarmId, alarmDescription: string, metric: Partial<NotifyingAlarmProps>) =>
      notifyingAlarm(this, alarmId, {
        prefix: props.name,
        topicArn: props.alarmTopicArn,
        alarmDescription,
        ...metric,
      });
    return [
      alarm('DeadLettered', `A runner job in ${props.region} was dead-lettered: redrive it once fixed`, {
        namespace: 'AWS/SQS',
        metricName: 'ApproximateNumberOfMessagesVisible',
        dimensions: { QueueName: this.deadLetterQueue.name },
        statistic: 'Maximum',
      }),
      alarm('DispatchFailures', `Runner dispatches are failing in ${props.region}`, {
        namespace: 'Estate/Runners',
        metricName: 'DispatchFailed',
        dimensions: { service: 'runner-dispatcher', region: props.region },
        threshold: 5,
      }),
    ];
  }
}

/** The ARNs and grants the control plane's functions share. */
class Access {
  constructor(
    private readonly region: string,
    private readonly account: string,
    private readonly regions: readonly string[],
    private readonly props: RunnerControlPlaneProps,
  ) {}

  everyRegion(arn: (region: string) => string): string[] {
    return this.regions.map(arn);
  }

  table(region: string, name: string): string {
    return `arn:aws:dynamodb:${region}:${this.account}:table/${name}`;
  }

  secret(sid: string, name: string): PolicyStatement {
    return {
      sid,
      actions: ['secretsmanager:GetSecretValue'],
      resources: [`arn:aws:secretsmanager:${this.region}:${this.account}:secret:${name}-??????`],
    };
  }

  runnerQueues(types: readonly RunnerType[]): string[] {
    return this.regions.flatMap((r) =>
      types.map((t) => `arn:aws:sqs:${r}:${this.account}:${runnerQueueName(this.props.name, t.name)}`),
    );
  }

  readRegionStatus(): PolicyStatement {
    return {
      sid: 'ReadRegionStatus',
      actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem'],
      resources: [this.table(this.region, this.props.globalTables.regionStatus)],
    };
  }

  /** Every region's spillover inputs: its leases, dispatch counters and spill state; `keep` also writes spill. */
  regionViews(access: 'read' | 'keep' = 'keep'): PolicyStatement[] {
    const stateTables = this.everyRegion((r) => this.table(r, this.props.stateTableName));
    const read = [
      this.readRegionStatus(),
      {
        sid: 'ReadEveryRegionsRunnerCounters',
        actions: ['dynamodb:Query', 'dynamodb:GetItem'],
        resources: stateTables,
        conditions: {
          'ForAllValues:StringEquals': {
            'dynamodb:LeadingKeys': [LEASES_PARTITION, DISPATCH_PARTITION, SPILL_KEY.pk],
          },
        },
      },
    ];
    return access === 'read'
      ? read
      : [
          ...read,
          {
            sid: 'KeepEveryRegionsSpillState',
            actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
            resources: stateTables,
            conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [SPILL_KEY.pk] } },
          },
        ];
  }

  /** The estate's and the global keys of every region, only through the given services. */
  keys(services: readonly string[]): PolicyStatement {
    return {
      sid: 'UseEstateKeysThroughServices',
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: this.everyRegion((r) => `arn:aws:kms:${r}:${this.account}:key/*`),
      conditions: {
        'ForAnyValue:StringEquals': {
          'kms:ResourceAliases': [
            `alias/${this.props.regionalKeyAlias}`,
            `alias/${this.props.globalKeyAlias}`,
          ],
        },
        StringEquals: {
          'kms:ViaService': this.regions.flatMap((r) => services.map((s) => `${s}.${r}.amazonaws.com`)),
        },
      },
    };
  }
}
