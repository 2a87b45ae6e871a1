import {
  RunTaskCommand,
  type CapacityProviderStrategyItem,
  type ECSClient,
  type RunTaskCommandInput,
} from '@aws-sdk/client-ecs';
import { PermanentError, RetryableError } from '../lib/failures';
import { boundedText } from '../lib/redact';
import type { Launch, RunnerType } from './config';
import type { LaunchRequest, RunnerLauncher } from './dispatch';

/**
 * RunnerLauncher over ECS RunTask: one task of the runner type's task definition on the region's cluster,
 * placed by the type's launch (`fargate` -> FARGATE, `fargate-spot` -> FARGATE_SPOT, `ec2` -> the EC2
 * capacity provider).
 *
 * - Fargate types (`awsvpc` task definitions): in the private subnets with the runner security group and no
 *   public IP.
 * - `ec2` types: their task definitions use `bridge` networking (the host's Docker daemon must see the
 *   runner's work folder and publish service containers' ports on the host), so RunTask sends no
 *   `networkConfiguration` (ECS refuses one for a bridge task) and places with `distinctInstance` in
 *   the task group `ec2-runners` (`distinctInstance` separates the tasks of one group only; every ec2 type
 *   passes the same one): one runner per instance at a time, whatever its type, so two jobs never share a
 *   Docker daemon.
 * - Overrides: ECS takes at most 8,192 characters of `overrides` in all (their JSON, formatting included).
 *   A larger one is refused here (`OverridesTooLargeError`, permanent, naming the container environment)
 *   instead of being sent for ECS to answer InvalidParameterException.
 *
 * - The JIT config rides in the container override's environment (RUNNER_JITCONFIG), beside the cache token
 *   and URL. Decided: it is single-use and consumed by the runner within about a minute of the task starting;
 *   in that window anyone allowed ecs:DescribeTasks on the cluster can read it (so that permission is kept
 *   to operators). A Secrets Manager secret per job would close the window at one secret write and delete
 *   per job.
 * - `startedBy` = `job-<id>` (ECS allows 36 characters): tasks of a job are found by it.
 * - Tags: the job id, organisation and runner type on the task, and `propagateTags: TASK_DEFINITION` so the
 *   estate's tags of the task definition (environment, cost allocation) reach the task too. Tagging at
 *   RunTask needs `ecs:TagResource` on the task beside `ecs:RunTask`.
 * - RunTask may answer 200 with `failures` and no task (RESOURCE:MEMORY, capacity unavailable, a Spot pool
 *   empty): transient, with a bounded reason (the failure's reason text, its ARN left out).
 */

export interface EcsLauncherOptions {
  readonly ecs: ECSClient;
  readonly cluster: string;
  /** Runner type name -> task definition family, `family:revision` or ARN. */
  readonly taskDefinitions: ReadonlyMap<string, string>;
  readonly runnerTypes: readonly RunnerType[];
  readonly subnets: readonly string[];
  readonly securityGroup: string;
  /** The cluster's EC2 capacity provider; required when a runner type launches on `ec2`. */
  readonly ec2CapacityProvider?: string;
  /** The runner container's name in the task definitions. Default: `runner`. */
  readonly containerName?: string;
}

const MAX_STARTED_BY = 36;
/** The task group of every ec2 runner task: `distinctInstance` keeps one task of it per instance. */
export const EC2_TASK_GROUP = 'ec2-runners';

/** ECS's limit on a RunTask's `overrides`, in characters of their JSON (formatting included). */
export const MAX_OVERRIDES_CHARS = 8_192;

/** The container overrides would pass ECS's limit: nothing is sent to ECS. */
export class OverridesTooLargeError extends PermanentError {
  constructor(containerName: string, chars: number) {
    super(
      'runner-overrides-too-large',
      `overrides.containerOverrides.${containerName}.environment: expected at most ${MAX_OVERRIDES_CHARS} characters of RunTask overrides in all (JSON), found ${chars}`,
    );
    this.name = 'OverridesTooLargeError';
  }
}

/** The size ECS counts: the overrides' JSON, in UTF-8 bytes (never less than its characters). */
export const overridesSize = (overrides: RunTaskCommandInput['overrides']): number =>
  Buffer.byteLength(JSON.stringify(overrides ?? {}), 'utf8');

/** The capacity provider a launch places on. */
export function capacityProviderOf(launch: Launch, ec2CapacityProvider: string | undefined): string {
  if (launch === 'fargate') return 'FARGATE';
  if (launch === 'fargate-spot') return 'FARGATE_SPOT';
  if (!ec2CapacityProvider)
    throw new PermanentError(
      'ec2-capacity-provider',
      'EC2_CAPACITY_PROVIDER: expected one for an ec2 runner type',
    );
  return ec2CapacityProvider;
}

/** A RunTask failure's reason as it may be logged and kept: ARNs and unusual characters left out. */
export function failureReason(reason: string | undefined): string {
  const text = (reason ?? 'unknown')
    .replace(/arn:[^\s,;]*/g, '(arn)')
    .replace(/[^A-Za-z0-9 :._()/-]/g, ' ')
    .trim();
  return boundedText(text || 'unknown', 80);
}

export class EcsRunnerLauncher implements RunnerLauncher {
  constructor(private readonly options: EcsLauncherOptions) {}

  /** The RunTask input for a request (exposed for tests: it carries the JIT config, never log it). */
  input(request: LaunchRequest): RunTaskCommandInput {
    const { options } = this;
    const type = options.runnerTypes.find((t) => t.name === request.runnerType);
    const taskDefinition = options.taskDefinitions.get(request.runnerType);
    if (!type || !taskDefinition)
      throw new PermanentError(
        'runner-task-definition',
        'runnerType: expected a task definition for the runner type',
      );
    const strategy: CapacityProviderStrategyItem[] = [
      { capacityProvider: capacityProviderOf(type.launch, options.ec2CapacityProvider), weight: 1 },
    ];
    const environment = [
      { name: 'RUNNER_JITCONFIG', value: request.jitConfig },
      ...Object.entries(request.environment).map(([name, value]) => ({ name, value })),
    ];
    const containerName = options.containerName ?? 'runner';
    const overrides = { containerOverrides: [{ name: containerName, environment }] };
    const size = overridesSize(overrides);
    if (size > MAX_OVERRIDES_CHARS) throw new OverridesTooLargeError(containerName, size);
    const placement: Pick<RunTaskCommandInput, 'group' | 'networkConfiguration' | 'placementConstraints'> =
      type.launch === 'ec2'
        ? // distinctInstance separates the tasks of one task group: every ec2 type shares one group, so no two
          // runners (of one type or of two) ever share a host's Docker daemon.
          { group: EC2_TASK_GROUP, placementConstraints: [{ type: 'distinctInstance' }] }
        : {
            networkConfiguration: {
              awsvpcConfiguration: {
                subnets: [...options.subnets],
                securityGroups: [options.securityGroup],
                assignPublicIp: 'DISABLED',
              },
            },
          };
    return {
      cluster: options.cluster,
      taskDefinition,
      count: 1,
      capacityProviderStrategy: strategy,
      ...placement,
      overrides,
      startedBy: `job-${request.jobId}`.slice(0, MAX_STARTED_BY),
      enableECSManagedTags: true,
      propagateTags: 'TASK_DEFINITION',
      tags: [
        { key: 'runner-job-id', value: String(request.jobId) },
        // The reaper finds the runner of the task by it: `<region>-<job id>-<retry>`.
        { key: 'runner-retry', value: String(request.retry) },
        { key: 'runner-organization', value: request.organization },
        { key: 'runner-type', value: type.name },
      ],
    };
  }

  async start(request: LaunchRequest): Promise<{ readonly taskArn: string }> {
    const answer = await this.options.ecs.send(new RunTaskCommand(this.input(request)));
    const taskArn = answer.tasks?.[0]?.taskArn;
    if (taskArn) return { taskArn };
    const failure = answer.failures?.[0];
    throw new RetryableError(
      'runner-task-not-placed',
      `ECS placed no task: ${failure ? failureReason(failure.reason) : 'no task and no failure in the answer'}`,
    );
  }
}
