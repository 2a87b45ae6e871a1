import type { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import {
  DescribeTasksCommand,
  ECSClient,
  ListTasksCommand,
  StopTaskCommand,
  type Task,
} from '@aws-sdk/client-ecs';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import * as z from 'zod/mini';
import { HandlerConfigError, loadConfig } from '../../lib/config';
import { classifyFailure, PermanentError, RetryableError } from '../../lib/failures';
import { createLogger } from '../../lib/logger';
import { REGION_NAME, type RunnerConfig, functionRunnerConfig } from '../config';
import { GitHubAppRunners, secretFromSecretsManager } from '../github-app';
import {
  reapIdleRunners,
  type ReaperDeps,
  type ReaperEcs,
  type ReaperReport,
  type ReaperTask,
} from '../reaper';

/**
 * The runner reaper's scheduled function (EventBridge, every 5 minutes, one per region): one pass of
 * reaper.ts over the region's cluster. The event carries nothing it uses.
 *
 * Metrics (namespace `Estate/Runners`, service `runner-reaper`, dimension `region`), every run, zeros
 * included: RunnersReaped, ReaperErrors, UnattributedTasks, StuckPending. Log lines carry task ids (not ARNs), job ids
 * and outcomes, never an organisation's token or a JIT config. A run that cannot list the cluster's
 * tasks fails (the function's Errors alarm); a task's failure is counted and the run goes on.
 */

// ---------------------------------------------------------------------------------------- settings

const nonEmpty = (what: string) => z.string().check(z.minLength(1, `expected ${what}`));

const environment = z.object({
  AWS_REGION: z.string().check(z.regex(REGION_NAME, 'expected the region the function runs in')),
  RUNNERS_CONFIG: z.string().check(z.minLength(2, 'expected the runner configuration as JSON')),
  ECS_CLUSTER: z
    .string()
    .check(z.regex(/^[A-Za-z0-9_:/.-]{1,2048}$/, "expected the region's runner cluster (name or ARN)")),
  GITHUB_APP_SECRET_ID: nonEmpty("the GitHub App's secret"),
  GITHUB_API_URL: z._default(
    z.string().check(z.regex(/^https?:\/\/\S+$/, 'expected a URL')),
    'https://api.github.com',
  ),
  REAPER_MAX_TASKS: z._default(
    z.coerce
      .number()
      .check(z.int('expected a whole number'), z.gte(1, 'expected 1-1000'), z.lte(1000, 'expected 1-1000')),
    50,
  ),
});

export interface ReaperSettings {
  readonly region: string;
  readonly config: RunnerConfig;
  readonly cluster: string;
  readonly githubAppSecretId: string;
  readonly githubApiUrl: string;
  readonly maxTasksPerRun: number;
}

/** The reaper's settings from its environment; every problem named at once, no value quoted. */
export function loadReaperSettings(env: NodeJS.ProcessEnv = process.env): ReaperSettings {
  const raw = loadConfig(environment, env);
  const problems: string[] = [];
  const config = functionRunnerConfig(raw.RUNNERS_CONFIG, raw.AWS_REGION, problems);
  if (problems.length > 0 || !config) throw new HandlerConfigError(problems);
  return {
    region: raw.AWS_REGION,
    config,
    cluster: raw.ECS_CLUSTER,
    githubAppSecretId: raw.GITHUB_APP_SECRET_ID,
    githubApiUrl: raw.GITHUB_API_URL,
    maxTasksPerRun: raw.REAPER_MAX_TASKS,
  };
}

// -------------------------------------------------------------------------------------------- ECS

/** Per ECS call: a slow answer fails the call (the SDK retries it) rather than the whole run. */
export const ECS_REQUEST_TIMEOUT_MS = 5_000;
export const ECS_CONNECTION_TIMEOUT_MS = 2_000;

/** ReaperEcs over the region's cluster. */
export class EcsReaperTasks implements ReaperEcs {
  constructor(
    private readonly ecs: Pick<ECSClient, 'send'>,
    private readonly cluster: string,
  ) {}

  async listTasks(
    limit: number,
  ): Promise<{ readonly taskArns: readonly string[]; readonly truncated: boolean }> {
    const taskArns: string[] = [];
    let nextToken: string | undefined;
    do {
      const page = await this.ecs.send(
        new ListTasksCommand({
          cluster: this.cluster,
          desiredStatus: 'RUNNING',
          maxResults: 100,
          ...(nextToken ? { nextToken } : {}),
        }),
      );
      taskArns.push(...(page.taskArns ?? []));
      nextToken = page.nextToken;
      if (taskArns.length >= limit)
        return { taskArns: taskArns.slice(0, limit), truncated: taskArns.length > limit || !!nextToken };
    } while (nextToken);
    return { taskArns, truncated: false };
  }

  async describe(taskArns: readonly string[]): Promise<readonly ReaperTask[]> {
    if (taskArns.length === 0) return [];
    const answer = await this.ecs.send(
      new DescribeTasksCommand({ cluster: this.cluster, tasks: [...taskArns], include: ['TAGS'] }),
    );
    return (answer.tasks ?? []).flatMap((task) => (task.taskArn ? [reaperTaskOf(task, task.taskArn)] : []));
  }

  async stop(taskArn: string, reason: string): Promise<void> {
    await this.ecs.send(new StopTaskCommand({ cluster: this.cluster, task: taskArn, reason }));
  }
}

const epochMs = (date: Date | undefined): number | undefined => {
  const ms = date?.getTime();
  return ms !== undefined && Number.isFinite(ms) ? ms : undefined;
};

function reaperTaskOf(task: Task, taskArn: string): ReaperTask {
  const tags = new Map<string, string>();
  for (const { key, value } of task.tags ?? [])
    if (key !== undefined && value !== undefined) tags.set(key, value);
  const createdAt = epochMs(task.createdAt);
  const startedAt = epochMs(task.startedAt);
  return {
    taskArn,
    tags,
    ...(task.startedBy ? { startedBy: task.startedBy } : {}),
    ...(task.desiredStatus ? { desiredStatus: task.desiredStatus } : {}),
    ...(task.lastStatus ? { lastStatus: task.lastStatus } : {}),
    ...(createdAt !== undefined ? { createdAt } : {}),
    ...(startedAt !== undefined ? { startedAt } : {}),
  };
}

// ----------------------------------------------------------------------------------------- handler

/** The part of Powertools' Metrics the handler uses (tests inject a recorder). */
export interface MetricsSink {
  addMetric(name: string, unit: (typeof MetricUnit)[keyof typeof MetricUnit], value: number): void;
  publishStoredMetrics(): void;
}

export interface ReaperHandlerOptions {
  /** The core's dependencies; the handler adds the time left from Lambda's context. */
  readonly deps: Omit<ReaperDeps, 'timeLeftMs'>;
  readonly logger?: Logger;
  readonly metrics?: MetricsSink;
}

/** What a run answers (EventBridge ignores it): the counts, no task detail. */
export type ReaperSummary = Omit<ReaperReport, 'tasks'>;

function summaryOf(report: ReaperReport): ReaperSummary {
  const summary: { -readonly [K in keyof ReaperReport]?: ReaperReport[K] } = { ...report };
  delete summary.tasks;
  return summary as ReaperSummary;
}

/** The part of Lambda's context the handler reads. */
export interface ReaperContext {
  getRemainingTimeInMillis(): number;
}

/** Production dependencies from the settings: SDK clients created once per container. */
export function reaperOptionsFrom(settings: ReaperSettings): ReaperHandlerOptions {
  const { region } = settings;
  const requestHandler = {
    requestTimeout: ECS_REQUEST_TIMEOUT_MS,
    connectionTimeout: ECS_CONNECTION_TIMEOUT_MS,
  };
  const ecs = new ECSClient({ region, maxAttempts: 3, requestHandler });
  const secrets = new SecretsManagerClient({ region, maxAttempts: 3, requestHandler });
  return {
    deps: {
      region,
      config: settings.config,
      ecs: new EcsReaperTasks(ecs, settings.cluster),
      github: new GitHubAppRunners({
        loadSecret: secretFromSecretsManager(secrets, settings.githubAppSecretId),
        baseUrl: settings.githubApiUrl,
        userAgent: 'estate-runner-reaper',
      }),
      now: () => Date.now(),
      random: Math.random,
      maxTasksPerRun: settings.maxTasksPerRun,
    },
  };
}

/** The handler over the options given, built on first use when given a factory. */
export function createReaperHandler(
  given: ReaperHandlerOptions | (() => ReaperHandlerOptions),
): (event?: unknown, context?: ReaperContext) => Promise<ReaperSummary> {
  let built: ReaperHandlerOptions | undefined = typeof given === 'function' ? undefined : given;
  let logger: Logger | undefined;
  let metrics: MetricsSink | undefined;
  return async (_event, context) => {
    built ??= (given as () => ReaperHandlerOptions)();
    const options = built;
    const { region } = options.deps;
    logger ??= options.logger ?? createLogger('runner-reaper');
    metrics ??=
      options.metrics ??
      new Metrics({
        namespace: 'Estate/Runners',
        serviceName: 'runner-reaper',
        defaultDimensions: { region },
      });
    const log = logger;
    const sink = metrics;
    try {
      const report = await reapIdleRunners({
        ...options.deps,
        ...(context ? { timeLeftMs: () => context.getRemainingTimeInMillis() } : {}),
      });
      sink.addMetric('RunnersReaped', MetricUnit.Count, report.reaped);
      sink.addMetric('ReaperErrors', MetricUnit.Count, report.errors);
      sink.addMetric('UnattributedTasks', MetricUnit.Count, report.unattributed);
      sink.addMetric('StuckPending', MetricUnit.Count, report.stuckPending);
      for (const task of report.tasks) {
        const { error, ...fields } = task;
        if (task.outcome === 'error') {
          const failure = classifyFailure(error);
          log.warn('runner task not reaped: failed', {
            ...fields,
            code: failure.code,
            reason: failure.reason,
          });
        } else log.info(task.outcome === 'reaped' ? 'idle runner reaped' : 'runner task kept', fields);
      }
      const summary = summaryOf(report);
      if (report.unattributed > 0)
        log.warn('runner tasks without a job id and organisation: left running', {
          unattributed: report.unattributed,
        });
      log.info('reaper run', { ...summary });
      return summary;
    } catch (error) {
      sink.addMetric('ReaperErrors', MetricUnit.Count, 1);
      const failure = classifyFailure(error);
      log.error('reaper run failed: the cluster could not be listed', {
        code: failure.code,
        reason: failure.reason,
      });
      // Bounded and value-free: what Lambda logs of a failed invocation carries no ARN or account.
      throw failure.permanent
        ? new PermanentError(failure.code, failure.reason)
        : new RetryableError(failure.code, failure.reason);
    } finally {
      sink.publishStoredMetrics();
    }
  };
}

/** The Lambda entry point: settings and clients built on the first invocation. */
export const handler = createReaperHandler(() => reaperOptionsFrom(loadReaperSettings()));
