import type { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ECSClient } from '@aws-sdk/client-ecs';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import * as z from 'zod/mini';
import { HandlerConfigError, loadConfig } from '../../lib/config';
import { classifyFailure, PermanentError } from '../../lib/failures';
import { BatchCorrelation, createLogger } from '../../lib/logger';
import { consumeQueue } from '../../lib/queue-consumer';
import { describeError } from '../../lib/redact';
import { parseAllocationConfig, resourceOf, type AllocationConfig } from '../../quota/config';
import { DynamodbLimiterStore } from '../../quota/dynamodb-store';
import { RegionalLimit } from '../../quota/regional-limit';
import { SecretsManagerCacheTokenIssuer } from '../cache-token';
import { NO_CONCURRENCY_CAP, QuotaConcurrencyCap } from '../concurrency-cap';
import { REGION_NAME, type RunnerConfig, functionRunnerConfig } from '../config';
import {
  handleRunnerMessage,
  type BestEffortStep,
  type DispatchDeps,
  type DispatchObserver,
  type MessageOutcome,
} from '../dispatch';
import {
  DynamodbDispatchCounters,
  DynamodbJobClaims,
  DynamodbJobRecords,
  DynamodbLeaseTable,
  RegionStatusFailover,
  SqsQueueSender,
} from '../dispatch-adapters';
import { EcsRunnerLauncher } from '../ecs-launcher';
import { GitHubAppRunners, secretFromSecretsManager } from '../github-app';
import { LEASE_CONTENTION, RunnerLeases } from '../leases';
import {
  checkSource,
  correlationAttribute,
  correlationOf,
  parseRunnerQueueMessage,
  type SourceSettings,
} from '../messages';
import type { RunnerQueueMessage } from '../model';
import { RegionStatusTable } from '../region-status';
import { DynamodbRegionViews } from '../region-views';
import { RegionalClients } from '../router-adapters';
import { queueUrlOf } from '../tables';

/**
 * The dispatcher's SQS handler (one function per region, consuming every runner queue of the region): each
 * record is one message (dispatch, check-queued, completed), parsed and checked against the queue that
 * delivered it (messages.ts), and handed to the core (dispatch.ts). Failures go through `consumeQueue`:
 * permanent ones dead-lettered at once with their reason, transient ones redelivered with backoff. A GitHub
 * rate limit is not a failure here: consumeQueue sets one backoff for every failure and cannot take GitHub's
 * delay, so the core re-sends the message with `DelaySeconds` = min(900, retryAfterSec) and acknowledges it.
 *
 * Metrics (namespace `Estate/Runners`, service `runner-dispatcher`, dimension `region`): Dispatched,
 * DispatchFailed (failures counted toward the region's error rate), TenantFailures (permanent: GitHub
 * refusing an organisation's App, permissions or runner group), OverridesTooLarge, Waits, RateLimited,
 * Duplicates, Retried, NotQueued, CompletedBeforeDispatch, RunnerForCompletedJob, Rerouted,
 * StatusUnknownDispatched, DemandNotRecorded, AwaitingApproval (a job held by an environment's approval or
 * wait timer, re-sent), NotInRunnerGroup (the runner group does not admit the repository: acknowledged),
 * RerouteLimit (a job re-routed twice, dispatched where it is), LeaseContention (not counted for the
 * region), plus Completed, CompletedForwarded, QueuedCheckReleased,
 * DispatchedElsewhere, StepFailures, DeadLettered and Redelivered. Every log line about a message carries
 * its correlation id under `correlation_id`, as the router's lines of the delivery do (the GitHub delivery
 * id): the core's outcome and observer lines, and consumeQueue's redelivery and dead-letter lines. A body
 * that cannot be read is traced by the router's `correlationId` attribute when that is well-formed. Lines
 * about a read the batch shares (a region view unreadable) belong to no one message and carry none. Never a
 * body, a token or a JIT config.
 */

// Where callers found them before messages.ts held them.
export { checkSource, parseRunnerQueueMessage, type SourceSettings } from '../messages';

// ---------------------------------------------------------------------------------------- settings

const nonEmpty = (what: string) => z.string().check(z.minLength(1, `expected ${what}`));

const environment = z.object({
  AWS_REGION: z.string().check(z.regex(REGION_NAME, 'expected the region the function runs in')),
  ACCOUNT_ID: z.string().check(z.regex(/^\d{12}$/, 'expected a 12-digit account id')),
  RUNNERS_CONFIG: z.string().check(z.minLength(2, 'expected the runner configuration as JSON')),
  STATE_TABLE: nonEmpty("the region's state table"),
  WORKFLOWS_TABLE: nonEmpty('the runner-workflows global table'),
  REGION_STATUS_TABLE: nonEmpty('the region-status global table'),
  RUNNER_QUEUE_PREFIX: z.string().check(z.regex(/^[A-Za-z0-9_-]{1,48}$/, 'expected a queue name prefix')),
  RUNNER_DEAD_LETTER_QUEUE_URL: z.string().check(z.regex(/^https?:\/\/\S+$/, 'expected a queue URL')),
  RUNNER_MAX_RECEIVE_COUNT: z.coerce
    .number()
    .check(z.int('expected a whole number'), z.gte(1, 'expected 1-1000'), z.lte(1000, 'expected 1-1000')),
  ECS_CLUSTER: nonEmpty('the ECS cluster'),
  TASK_DEFINITIONS: z.string().check(z.minLength(2, 'expected JSON of runner type -> task definition')),
  RUNNER_SUBNETS: z
    .string()
    .check(z.regex(/^subnet-[0-9a-z]+(,subnet-[0-9a-z]+)*$/, 'expected subnet ids, comma-separated')),
  RUNNER_SECURITY_GROUP: z.string().check(z.regex(/^sg-[0-9a-z]+$/, 'expected a security group id')),
  EC2_CAPACITY_PROVIDER: z.optional(nonEmpty('a capacity provider name')),
  GITHUB_APP_SECRET_ID: nonEmpty("the GitHub App's secret"),
  GITHUB_API_URL: z._default(
    z.string().check(z.regex(/^https?:\/\/\S+$/, 'expected a URL')),
    'https://api.github.com',
  ),
  RUNNER_CACHE_URL: z.string().check(z.regex(/^https?:\/\/\S+$/, 'expected a URL')),
  CACHE_TOKEN_SECRET_ID: nonEmpty('the cache token secret'),
  RUNNER_CONTAINER_NAME: z._default(
    z.string().check(z.regex(/^[A-Za-z0-9_-]{1,255}$/, 'expected a container name')),
    'runner',
  ),
  QUOTA_TABLE_NAME: z.optional(nonEmpty("the quota limiter's table")),
  QUOTA_CONFIG: z.optional(z.string().check(z.minLength(2, 'expected the allocation config as JSON'))),
  QUOTA_HEARTBEAT_CACHE_MS: z._default(
    z.coerce.number().check(z.int(), z.gte(0), z.lte(60_000, 'expected 0-60000 ms')),
    1000,
  ),
});

export interface DispatcherSettings {
  readonly region: string;
  readonly account: string;
  readonly config: RunnerConfig;
  readonly stateTable: string;
  readonly workflowsTable: string;
  readonly regionStatusTable: string;
  readonly queuePrefix: string;
  readonly deadLetterQueueUrl: string;
  readonly maxReceiveCount: number;
  readonly cluster: string;
  readonly taskDefinitions: ReadonlyMap<string, string>;
  readonly subnets: readonly string[];
  readonly securityGroup: string;
  readonly ec2CapacityProvider?: string;
  readonly githubAppSecretId: string;
  readonly githubApiUrl: string;
  readonly cacheUrl: string;
  readonly cacheTokenSecretId: string;
  readonly containerName: string;
  /** Present when the configuration caps organisations by a quota resource. */
  readonly quota?: {
    readonly tableName: string;
    readonly config: AllocationConfig;
    readonly heartbeatCacheMs: number;
  };
}

function taskDefinitionsOf(
  json: string,
  config: RunnerConfig | undefined,
  problems: string[],
): Map<string, string> {
  const out = new Map<string, string>();
  let value: unknown;
  try {
    value = JSON.parse(json) as unknown;
  } catch {
    problems.push('TASK_DEFINITIONS: expected JSON of runner type -> task definition');
    return out;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push('TASK_DEFINITIONS: expected a JSON object of runner type -> task definition');
    return out;
  }
  for (const [type, definition] of Object.entries(value))
    if (typeof definition === 'string' && /^[A-Za-z0-9_:/.-]{1,2048}$/.test(definition))
      out.set(type, definition);
    else problems.push('TASK_DEFINITIONS: expected a task definition family or ARN per runner type');
  for (const type of config?.runnerTypes ?? [])
    if (!out.has(type.name))
      problems.push('TASK_DEFINITIONS: expected a task definition for every runner type');
  return out;
}

/** The dispatcher's settings from its environment; every problem named at once, no value quoted. */
export function loadDispatcherSettings(env: NodeJS.ProcessEnv = process.env): DispatcherSettings {
  const raw = loadConfig(environment, env);
  const problems: string[] = [];
  const config = functionRunnerConfig(raw.RUNNERS_CONFIG, raw.AWS_REGION, problems);
  const taskDefinitions = taskDefinitionsOf(raw.TASK_DEFINITIONS, config, problems);
  if (config?.runnerTypes.some((t) => t.launch === 'ec2') && !raw.EC2_CAPACITY_PROVIDER)
    problems.push('EC2_CAPACITY_PROVIDER: expected one: a runner type launches on ec2');
  let quota: DispatcherSettings['quota'];
  if (config?.concurrencyResource) {
    if (!raw.QUOTA_TABLE_NAME || !raw.QUOTA_CONFIG)
      problems.push(
        'QUOTA_TABLE_NAME, QUOTA_CONFIG: expected both: the configuration caps organisations by a quota resource',
      );
    else {
      try {
        const allocation = parseAllocationConfig(JSON.parse(raw.QUOTA_CONFIG) as unknown, 'QUOTA_CONFIG');
        if (!resourceOf(allocation, config.concurrencyResource))
          problems.push(
            'QUOTA_CONFIG: expected the concurrencyResource of the runner configuration among its resources',
          );
        if (!allocation.regions.some((r) => r.region === raw.AWS_REGION))
          problems.push('QUOTA_CONFIG: expected the regions to include the one the function runs in');
        quota = {
          tableName: raw.QUOTA_TABLE_NAME,
          config: allocation,
          heartbeatCacheMs: raw.QUOTA_HEARTBEAT_CACHE_MS,
        };
      } catch (error) {
        problems.push(
          error instanceof PermanentError
            ? error.reason
            : 'QUOTA_CONFIG: expected the allocation config as JSON',
        );
      }
    }
  }
  if (problems.length > 0 || !config) throw new HandlerConfigError(problems);
  return {
    region: raw.AWS_REGION,
    account: raw.ACCOUNT_ID,
    config,
    stateTable: raw.STATE_TABLE,
    workflowsTable: raw.WORKFLOWS_TABLE,
    regionStatusTable: raw.REGION_STATUS_TABLE,
    queuePrefix: raw.RUNNER_QUEUE_PREFIX,
    deadLetterQueueUrl: raw.RUNNER_DEAD_LETTER_QUEUE_URL,
    maxReceiveCount: raw.RUNNER_MAX_RECEIVE_COUNT,
    cluster: raw.ECS_CLUSTER,
    taskDefinitions,
    subnets: raw.RUNNER_SUBNETS.split(','),
    securityGroup: raw.RUNNER_SECURITY_GROUP,
    ...(raw.EC2_CAPACITY_PROVIDER ? { ec2CapacityProvider: raw.EC2_CAPACITY_PROVIDER } : {}),
    githubAppSecretId: raw.GITHUB_APP_SECRET_ID,
    githubApiUrl: raw.GITHUB_API_URL,
    cacheUrl: raw.RUNNER_CACHE_URL,
    cacheTokenSecretId: raw.CACHE_TOKEN_SECRET_ID,
    containerName: raw.RUNNER_CONTAINER_NAME,
    ...(quota ? { quota } : {}),
  };
}

// ----------------------------------------------------------------------------------------- handler

/** The part of Powertools' Metrics the handler uses (tests inject a recorder). */
export interface MetricsSink {
  addMetric(name: string, unit: (typeof MetricUnit)[keyof typeof MetricUnit], value: number): void;
  publishStoredMetrics(): void;
}

export interface DispatchHandlerOptions {
  /** The core's dependencies; the handler adds the observer. */
  readonly deps: Omit<DispatchDeps, 'observer'>;
  readonly sqs: SQSClient;
  readonly account: string;
  readonly queuePrefix: string;
  readonly deadLetterQueueUrl: string;
  readonly maxReceiveCount: number;
  readonly logger?: Logger;
  readonly metrics?: MetricsSink;
}

/** Production dependencies from the settings: SDK clients created once per container. */
export function dispatchOptionsFrom(settings: DispatcherSettings): DispatchHandlerOptions {
  const { region, config } = settings;
  const dynamodbOf = new RegionalClients((r) => new DynamoDBClient({ region: r }));
  const sqsOf = new RegionalClients((r) => new SQSClient({ region: r, useQueueUrlAsEndpoint: false }));
  const dynamodb = dynamodbOf.of(region);
  const sqs = sqsOf.of(region);
  const secrets = new SecretsManagerClient({ region });
  const logger = createLogger('runner-dispatcher');
  const now = () => Date.now();
  const cap =
    settings.quota && config.concurrencyResource
      ? new QuotaConcurrencyCap(
          new RegionalLimit({
            store: new DynamodbLimiterStore(dynamodb, settings.quota.tableName),
            config: settings.quota.config,
            region,
            heartbeatCacheMs: settings.quota.heartbeatCacheMs,
          }),
          config.concurrencyResource,
        )
      : NO_CONCURRENCY_CAP;
  return {
    sqs,
    logger,
    account: settings.account,
    queuePrefix: settings.queuePrefix,
    deadLetterQueueUrl: settings.deadLetterQueueUrl,
    maxReceiveCount: settings.maxReceiveCount,
    deps: {
      region,
      config,
      claims: new DynamodbJobClaims(dynamodb, settings.stateTable),
      records: new DynamodbJobRecords(dynamodb, settings.workflowsTable, now),
      leases: new RunnerLeases({ table: new DynamodbLeaseTable(dynamodb, settings.stateTable), now }),
      cap,
      github: new GitHubAppRunners({
        loadSecret: secretFromSecretsManager(secrets, settings.githubAppSecretId),
        baseUrl: settings.githubApiUrl,
      }),
      launcher: new EcsRunnerLauncher({
        ecs: new ECSClient({ region }),
        cluster: settings.cluster,
        taskDefinitions: settings.taskDefinitions,
        runnerTypes: config.runnerTypes,
        subnets: settings.subnets,
        securityGroup: settings.securityGroup,
        ...(settings.ec2CapacityProvider ? { ec2CapacityProvider: settings.ec2CapacityProvider } : {}),
        containerName: settings.containerName,
      }),
      counters: new DynamodbDispatchCounters(dynamodb, settings.stateTable, config.errorWindowSec, now),
      queue: new SqsQueueSender({
        sqs: (r) => sqsOf.of(r),
        region,
        account: settings.account,
        prefix: settings.queuePrefix,
      }),
      failover: regionFailover(settings, dynamodbOf, sqsOf, now, logger),
      cacheTokens: new SecretsManagerCacheTokenIssuer({
        secretId: settings.cacheTokenSecretId,
        client: secrets,
      }),
      cacheUrl: settings.cacheUrl,
      now,
      random: Math.random,
    },
  };
}

/**
 * Failover's reads: this region's status (the region-status table's local replica, kept 5 s), and every
 * region's view built as the router builds it (region-views.ts, its own 5 s cache), read only while this
 * region takes no new jobs.
 */
function regionFailover(
  settings: DispatcherSettings,
  dynamodb: RegionalClients<DynamoDBClient>,
  sqs: RegionalClients<SQSClient>,
  now: () => number,
  logger: Logger,
): RegionStatusFailover {
  const regions = settings.config.regions.map((r) => r.region);
  const statuses = new RegionStatusTable({
    client: dynamodb.of(settings.region),
    tableName: settings.regionStatusTable,
    regions,
    now,
  });
  const views = new DynamodbRegionViews({
    config: settings.config,
    localRegion: settings.region,
    accountId: settings.account,
    queuePrefix: settings.queuePrefix,
    regionStatusTable: settings.regionStatusTable,
    stateTable: settings.stateTable,
    dynamodb: (r) => dynamodb.of(r),
    sqs: (r) => sqs.of(r),
    now,
    statuses,
    onRegionUnreadable: (region, reason) =>
      logger.warn('region view unreadable: routed as out', { region, reason }),
  });
  return new RegionStatusFailover({ region: settings.region, statuses, views, now });
}

/** The URL of the queue a batch came from (an event source mapping delivers from one queue). */
function sourceQueueUrl(event: SQSEvent): string | undefined {
  const arn = event.Records[0]?.eventSourceARN;
  const [, , service, region, account, name] = arn?.split(':') ?? [];
  return service === 'sqs' && region && account && name ? queueUrlOf(region, account, name) : undefined;
}

/** The handler over the options given, built on first use when given a factory. */
export function createDispatchHandler(
  given: DispatchHandlerOptions | (() => DispatchHandlerOptions),
): (event: SQSEvent) => Promise<SQSBatchResponse> {
  let built: DispatchHandlerOptions | undefined = typeof given === 'function' ? undefined : given;
  let logger: Logger | undefined;
  let metrics: MetricsSink | undefined;
  return async (event) => {
    built ??= (given as () => DispatchHandlerOptions)();
    const options = built;
    const region = options.deps.region;
    logger ??= options.logger ?? createLogger('runner-dispatcher');
    metrics ??=
      options.metrics ??
      new Metrics({
        namespace: 'Estate/Runners',
        serviceName: 'runner-dispatcher',
        defaultDimensions: { region },
      });
    const log = logger;
    const sink = metrics;
    const count = (name: string) => sink.addMetric(name, MetricUnit.Count, 1);
    const source: SourceSettings = {
      region,
      queuePrefix: options.queuePrefix,
      runnerTypes: options.deps.config.runnerTypes.map((t) => t.name),
    };
    const queueUrl = sourceQueueUrl(event);
    // Records run at once: each line names its record's correlation id (BatchCorrelation), none is appended.
    const correlation = new BatchCorrelation();
    try {
      return await consumeQueue(
        event,
        async (record) => {
          const attribute = correlationAttribute(record);
          if (attribute !== undefined) correlation.set(record.messageId, attribute);
          const message = parseRunnerQueueMessage(record.body);
          const correlationId = correlationOf(message);
          correlation.set(record.messageId, correlationId);
          checkSource(record, message, source);
          const observer: DispatchObserver = {
            dispatchFailed: (error, regional) => {
              const failure = classifyFailure(error);
              // Only what says something about the region is its DispatchFailed (the alarm's metric).
              count(
                regional
                  ? 'DispatchFailed'
                  : failure.code === 'runner-overrides-too-large'
                    ? 'OverridesTooLarge'
                    : failure.code === LEASE_CONTENTION
                      ? 'LeaseContention'
                      : 'TenantFailures',
              );
              log.warn('dispatch failed; lease and claim released', {
                correlation_id: correlationId,
                code: failure.code,
                reason: failure.reason,
                permanent: failure.permanent,
                countedForRegion: regional,
              });
            },
            stepFailed: (step: BestEffortStep, error) => {
              count('StepFailures');
              log.warn('best-effort step failed', {
                correlation_id: correlationId,
                step,
                error: describeError(error),
              });
            },
            rerouteLimited: (regionStatus) => {
              count('RerouteLimit');
              log.warn('job re-routed twice already: dispatched here though this region takes no new jobs', {
                correlation_id: correlationId,
                regionStatus,
              });
            },
            demandNotRecorded: () => {
              count('DemandNotRecorded');
              log.warn("the organisation's demand was not recorded for the quota sync (contention)", {
                correlation_id: correlationId,
              });
            },
          };
          const outcome = await handleRunnerMessage(
            message,
            { messageId: record.messageId },
            { ...options.deps, observer },
          );
          report(outcome, message, correlationId, log, count);
        },
        {
          sqs: options.sqs,
          deadLetterQueueUrl: options.deadLetterQueueUrl,
          maxReceiveCount: options.maxReceiveCount,
          // consumeQueue's lines of a record name its messageId: they get its correlation id.
          logger: correlation.logger(log),
          ...(queueUrl ? { queueUrl } : {}),
          onFailure: (_failure, outcome) =>
            count(outcome === 'dead-lettered' ? 'DeadLettered' : 'Redelivered'),
        },
      );
    } finally {
      sink.publishStoredMetrics();
    }
  };
}

/** One log line and its metrics per message: ids, kinds and counts only. */
function report(
  outcome: MessageOutcome,
  message: RunnerQueueMessage,
  correlationId: string,
  log: Logger,
  count: (name: string) => void,
): void {
  const job = message.kind === 'check-queued' ? message.dispatch.job : message.job;
  const fields = {
    correlation_id: correlationId,
    jobId: job.jobId,
    kind: message.kind,
    outcome: outcome.kind,
  };
  const inner = outcome.kind === 'retried' ? outcome.outcome : outcome;
  if (outcome.kind === 'retried') count('Retried');
  switch (inner.kind) {
    case 'dispatched':
      count('Dispatched');
      if (inner.statusUnknown) count('StatusUnknownDispatched');
      log.info('runner dispatched', {
        ...fields,
        retry: inner.retry,
        ...(inner.statusUnknown ? { githubStatus: 'unknown' } : {}),
      });
      return;
    case 'waiting':
      count(inner.limit === 'github-rate-limit' ? 'RateLimited' : 'Waits');
      log.info(
        inner.limit === 'github-rate-limit'
          ? "job waits for GitHub's rate limit"
          : 'job waits for a runner slot',
        { ...fields, limit: inner.limit, waits: inner.waits, delaySec: inner.delaySec },
      );
      return;
    case 'duplicate':
    case 'runner-exists':
      count('Duplicates');
      log.info('job already dispatched here', { ...fields, detail: inner.kind });
      return;
    case 'elsewhere':
      count('DispatchedElsewhere');
      log.info('job already dispatched by another region', fields);
      return;
    case 'not-queued':
      count('NotQueued');
      log.info('job no longer queued at GitHub: nothing started', { ...fields, status: inner.status });
      return;
    case 'job-over':
      count('CompletedBeforeDispatch');
      log.info('job completed before its runner started: nothing started', fields);
      return;
    case 'started-for-completed':
      count('RunnerForCompletedJob');
      log.warn('job completed while its runner started: the runner finds no job, the reaper removes it', {
        ...fields,
        retry: inner.retry,
      });
      return;
    case 'rerouted':
      count('Rerouted');
      log.info('job re-routed: this region takes no new jobs', {
        ...fields,
        regionStatus: inner.status,
        to: inner.region,
        reason: 'drained',
      });
      return;
    case 'awaiting-approval':
      count('AwaitingApproval');
      log.info("job held by an environment's approval or wait timer: nothing started, looked at again", {
        ...fields,
        waitingSince: new Date(inner.since).toISOString(),
        delaySec: inner.delaySec,
      });
      return;
    case 'not-in-runner-group':
      count('NotInRunnerGroup');
      log.warn("the runner type's group does not admit the job's repository: nothing started", {
        ...fields,
        repository: job.repository,
        organization: job.organization,
        runnerGroup: inner.runnerGroup,
      });
      return;
    case 'completed':
      count('Completed');
      if (inner.forwardedTo) count('CompletedForwarded');
      log.info('job completed: lease released, record deleted', {
        ...fields,
        ...(inner.forwardedTo ? { forwardedTo: inner.forwardedTo } : {}),
      });
      return;
    case 'checked':
      if (inner.status === 'completed') count('QueuedCheckReleased');
      log.info('queued check: nothing to do', { ...fields, status: inner.status });
      return;
  }
}

/** The Lambda entry point: settings and clients built on the first invocation. */
export const handler = createDispatchHandler(() => dispatchOptionsFrom(loadDispatcherSettings()));
