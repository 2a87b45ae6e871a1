import { LOGIN, type RunnerConfig } from './config';
import { runnerNameOf, type Retry } from './dispatch';

/**
 * The runner reaper's core: ephemeral just-in-time runners have no idle timeout of their own, so a runner
 * that never gets a job (its job was cancelled, taken by another runner, or it was a duplicate) waits
 * forever and its task bills forever. Run every few minutes in each region, it removes them:
 *
 * 1. lists the tasks of the region's cluster whose desired status is RUNNING (at most `maxListedTasks`)
 *    and describes them in batches of 100, with their tags;
 * 2. keeps the runner tasks (started by the dispatcher: `startedBy` `job-<id>` or a `runner-*` tag) and
 *    attributes each by its tags `runner-job-id` and `runner-organization` (and `runner-retry` when a
 *    launcher sets it). A runner task it cannot attribute is counted, never stopped;
 * 3. idleness is judged only of a task whose `lastStatus` is RUNNING, from its `startedAt`: one idle for
 *    `idleTimeoutSec` is a candidate. A task not RUNNING yet (PROVISIONING, PENDING: the EC2 capacity
 *    provider may be scaling out, or at `maxInstances`, for a long while) is left alone, its runner waiting
 *    for capacity to start; one created more than `STUCK_PENDING_MS` ago is counted (`stuckPending`, for
 *    an alarm) and still left alone: it is its job's only runner. Its runner is `<region>-<job id>-<retry>` (runnerNameOf) in its organisation;
 *    without a retry tag both retries' names are its candidates;
 * 4. at most `maxTasksPerRun` candidates are handled per run, starting at a random offset among them
 *    oldest first (so busy tasks cannot starve the others run after run), the rest next time; the run
 *    also stops early when its time is nearly up or GitHub rate-limits it;
 * 5. for each: a runner that is busy keeps the task. One online and idle, offline, or absent has its
 *    registration deleted (GitHub answering `busy` keeps the task: it took a job meanwhile), then the task
 *    is stopped with the reason `idle runner reaped`.
 *
 * Never stopped: a task whose runner is busy; a task sharing a candidate runner name with a task younger
 * than the timeout or pending (without a retry tag, two tasks of one job cannot be told apart: the young
 * one's runner may be waiting for its job, so both wait until both are old); a task not RUNNING yet and
 * not stuck; a RUNNING task without `startedAt`; a task the reaper cannot attribute.
 *
 * GitHub's runner list is paged by offset: a runner deleted while it is read can shift another out of
 * the pages. "Absent" is therefore confirmed by a second listing of the organisation before a task is
 * stopped for it. Each task's failure is isolated and counted; the run carries on with the next.
 */

// ---------------------------------------------------------------------------------------------- ports

export const TAG_JOB_ID = 'runner-job-id';
export const TAG_ORGANIZATION = 'runner-organization';
export const TAG_RUNNER_TYPE = 'runner-type';
/** Optional: the dispatch's retry (0 or 1), when the launcher tags it. */
export const TAG_RETRY = 'runner-retry';
export const REAP_REASON = 'idle runner reaped';

/**
 * How long a runner task may stay short of RUNNING before it is judged stuck, from its `createdAt`. A task
 * waits in PROVISIONING while the EC2 capacity provider scales out (minutes), or for as long as the
 * cluster is at `maxInstances` and no task ends; that wait is the job's only way to a runner, so it is
 * never cut short at the idle timeout. Two hours is far past scale-out: a task pending that long is stuck
 * (an instance that never registers, a placement that cannot be met): it is counted for an operator, and
 * left alone, since stopping it would leave its job with no runner at all.
 */
export const STUCK_PENDING_MS = 2 * 60 * 60 * 1000;

/** A task of the cluster, as DescribeTasks tells it. */
export interface ReaperTask {
  readonly taskArn: string;
  readonly startedBy?: string;
  readonly desiredStatus?: string;
  readonly lastStatus?: string;
  /** Epoch ms. */
  readonly createdAt?: number;
  /** Epoch ms; absent until the task runs. */
  readonly startedAt?: number;
  readonly tags: ReadonlyMap<string, string>;
}

/** The region's cluster (ECS). */
export interface ReaperEcs {
  /** ARNs of the cluster's tasks whose desired status is RUNNING, at most `limit`. */
  listTasks(limit: number): Promise<{ readonly taskArns: readonly string[]; readonly truncated: boolean }>;
  /** At most 100 ARNs; tasks ECS no longer knows are left out. */
  describe(taskArns: readonly string[]): Promise<readonly ReaperTask[]>;
  stop(taskArn: string, reason: string): Promise<void>;
}

/** A self-hosted runner registered in an organisation. */
export interface RegisteredRunner {
  readonly id: number;
  readonly name: string;
  readonly status: 'online' | 'offline';
  readonly busy: boolean;
}

/** `busy`: GitHub refused because the runner is running a job. `absent`: no such runner (no longer). */
export type RunnerDeletion = 'deleted' | 'busy' | 'absent';

/** GitHub's side (github-app.ts). */
export interface ReaperGitHub {
  /** Every runner of the organisation whose name starts with the prefix; fails rather than answer part. */
  listRunners(organization: string, namePrefix: string): Promise<readonly RegisteredRunner[]>;
  deleteRunner(organization: string, runnerId: number): Promise<RunnerDeletion>;
}

/** A handled task, as it may be logged: the task's id (not its ARN), the job, the outcome. */
export interface TaskReport {
  readonly taskId: string;
  readonly jobId: number;
  readonly runnerType?: string;
  readonly outcome: 'reaped' | 'kept-busy' | 'kept-young-twin' | 'error';
  /** For `reaped`: what the runner was. */
  readonly runner?: 'idle' | 'offline' | 'absent';
  /** For `error`: the failure. */
  readonly error?: unknown;
}

export interface ReaperDeps {
  readonly region: string;
  readonly config: Pick<RunnerConfig, 'idleTimeoutSec'>;
  readonly ecs: ReaperEcs;
  readonly github: ReaperGitHub;
  /** Epoch ms. */
  readonly now: () => number;
  /** In [0, 1): where in the candidates a run starts. Default: 0 (oldest first). */
  readonly random?: () => number;
  /** Candidates handled per run. Default: 50. */
  readonly maxTasksPerRun?: number;
  /** Tasks listed per run. Default: 10,000. */
  readonly maxListedTasks?: number;
  /** Milliseconds the run has left (Lambda's remaining time); the run stops handling below `reserveMs`. */
  readonly timeLeftMs?: () => number;
  /** Default: 20 s. */
  readonly reserveMs?: number;
}

export interface ReaperReport {
  /** Tasks listed (desired status RUNNING). */
  readonly listed: number;
  /** More tasks exist than were listed. */
  readonly truncated: boolean;
  /** Tasks neither started by the dispatcher nor tagged as runners: not the reaper's. */
  readonly foreign: number;
  /** Runner tasks without a usable job id and organisation: counted, never stopped. */
  readonly unattributed: number;
  /** Attributed RUNNING runner tasks idle for less than the idle timeout (or without `startedAt`). */
  readonly young: number;
  /** Attributed runner tasks not RUNNING yet and not stuck: waiting for capacity, left alone. */
  readonly pending: number;
  /** Attributed tasks to handle: RUNNING ones at or past the idle timeout. */
  readonly candidates: number;
  readonly handled: number;
  /** Candidates left for the next run (the bound, the time left, a rate limit). */
  readonly deferred: number;
  /** Idle runners' tasks stopped. */
  readonly reaped: number;
  /** Tasks short of RUNNING past `STUCK_PENDING_MS`: counted and left alone (their job has no other runner). */
  readonly stuckPending: number;
  readonly keptBusy: number;
  readonly keptYoungTwin: number;
  readonly registrationsDeleted: number;
  /** Failed tasks, plus failed describe batches. */
  readonly errors: number;
  /** GitHub rate-limited the run: it stopped early. */
  readonly throttled: boolean;
  readonly tasks: readonly TaskReport[];
}

// ------------------------------------------------------------------------------------------- policy

const DESCRIBE_BATCH = 100;
const JOB_ID = /^[1-9]\d{0,15}$/;
const STARTED_BY = /^job-([1-9]\d{0,15})$/;

interface Attributed {
  readonly task: ReaperTask;
  readonly taskId: string;
  readonly jobId: number;
  readonly organization: string;
  readonly runnerType?: string;
  /** The runner names this task may be registered under. */
  readonly names: readonly string[];
  /**
   * Epoch ms the task's age counts from: `startedAt` of a RUNNING task (its idle time), `createdAt` of one
   * not RUNNING yet (how long it has been pending); undefined when ECS gave no such time (never judged).
   */
  readonly since?: number;
  /** `lastStatus` is RUNNING. */
  readonly running: boolean;
}

/** The last part of a task ARN (`.../task/<cluster>/<id>`): loggable, unlike the ARN. */
export const taskIdOf = (taskArn: string): string => {
  const id = taskArn.slice(taskArn.lastIndexOf('/') + 1);
  return /^[A-Za-z0-9-]{1,64}$/.test(id) ? id : '(unreadable)';
};

const isRunnerTask = (task: ReaperTask): boolean =>
  (task.startedBy !== undefined && task.startedBy.startsWith('job-')) ||
  [TAG_JOB_ID, TAG_ORGANIZATION, TAG_RUNNER_TYPE].some((tag) => task.tags.has(tag));

/** The task's job and organisation from its tags, checked against `startedBy`; undefined when unusable. */
export function attribute(task: ReaperTask, region: string): Attributed | undefined {
  const jobTag = task.tags.get(TAG_JOB_ID);
  const organization = task.tags.get(TAG_ORGANIZATION);
  if (jobTag === undefined || !JOB_ID.test(jobTag)) return undefined;
  const jobId = Number(jobTag);
  if (!Number.isSafeInteger(jobId)) return undefined;
  if (organization === undefined || !LOGIN.test(organization)) return undefined;
  const started = task.startedBy === undefined ? undefined : STARTED_BY.exec(task.startedBy);
  if (task.startedBy?.startsWith('job-') && started?.[1] !== jobTag) return undefined;
  const retryTag = task.tags.get(TAG_RETRY);
  if (retryTag !== undefined && retryTag !== '0' && retryTag !== '1') return undefined;
  const retries: readonly Retry[] = retryTag === undefined ? [0, 1] : [retryTag === '0' ? 0 : 1];
  const running = task.lastStatus === 'RUNNING';
  const since = running ? task.startedAt : task.createdAt;
  const runnerType = task.tags.get(TAG_RUNNER_TYPE);
  return {
    task,
    taskId: taskIdOf(task.taskArn),
    jobId,
    organization,
    ...(runnerType !== undefined && /^[a-z][a-z0-9-]{0,30}$/.test(runnerType) ? { runnerType } : {}),
    names: retries.map((retry) => runnerNameOf(region, jobId, retry)),
    ...(since !== undefined && Number.isFinite(since) ? { since } : {}),
    running,
  };
}

const isRateLimit = (error: unknown): boolean =>
  error instanceof Error && typeof (error as { retryAfterSec?: unknown }).retryAfterSec === 'number';

// --------------------------------------------------------------------------------------------- core

/** One pass over the region's cluster. Throws only when the tasks cannot be listed at all. */
export async function reapIdleRunners(deps: ReaperDeps): Promise<ReaperReport> {
  const now = deps.now();
  const idleMs = deps.config.idleTimeoutSec * 1000;
  const { taskArns, truncated } = await deps.ecs.listTasks(deps.maxListedTasks ?? 10_000);

  let errors = 0;
  const described: ReaperTask[] = [];
  for (let at = 0; at < taskArns.length; at += DESCRIBE_BATCH) {
    try {
      described.push(...(await deps.ecs.describe(taskArns.slice(at, at + DESCRIBE_BATCH))));
    } catch {
      // Those tasks wait for the next run.
      errors += 1;
    }
  }

  let foreign = 0;
  let unattributed = 0;
  const young: Attributed[] = [];
  const pending: Attributed[] = [];
  const old: Attributed[] = [];
  let stuckCount = 0;
  for (const task of described) {
    // Already being stopped (by ECS, an operator or an earlier run): nothing to do.
    if (task.desiredStatus !== undefined && task.desiredStatus !== 'RUNNING') continue;
    if (!isRunnerTask(task)) {
      foreign += 1;
      continue;
    }
    const attributed = attribute(task, deps.region);
    const age = attributed?.since === undefined ? undefined : now - attributed.since;
    if (!attributed) unattributed += 1;
    else if (!attributed.running) {
      // Waiting for capacity: never judged idle, its runner has not started. One pending for hours is
      // counted (an alarm's business), never stopped: its job would be left with no runner at all.
      if (age !== undefined && age >= STUCK_PENDING_MS) stuckCount += 1;
      pending.push(attributed);
    } else if (age !== undefined && age >= idleMs) old.push(attributed);
    else young.push(attributed);
  }

  // The runner names young and pending tasks may hold: a candidate sharing one waits (see the module's
  // comment).
  const youngNames = new Set([...young, ...pending].flatMap((t) => t.names));
  old.sort((a, b) => (a.since ?? 0) - (b.since ?? 0) || a.taskId.localeCompare(b.taskId));
  const offset =
    old.length === 0 ? 0 : Math.floor(Math.min(0.999_999, Math.max(0, deps.random?.() ?? 0)) * old.length);
  const ordered = [...old.slice(offset), ...old.slice(0, offset)];
  const bound = Math.max(0, deps.maxTasksPerRun ?? 50);

  const listings = new Map<string, Promise<ReadonlyMap<string, RegisteredRunner>>>();
  const confirmations = new Map<string, Promise<ReadonlyMap<string, RegisteredRunner>>>();
  const prefix = `${deps.region}-`;
  const listing = (
    cache: Map<string, Promise<ReadonlyMap<string, RegisteredRunner>>>,
    organization: string,
  ): Promise<ReadonlyMap<string, RegisteredRunner>> => {
    let found = cache.get(organization);
    if (!found) {
      found = deps.github
        .listRunners(organization, prefix)
        .then((runners) => new Map(runners.map((r) => [r.name, r])));
      // A failure is each of the organisation's tasks' to report; none is left unhandled here.
      void found.catch(() => undefined);
      cache.set(organization, found);
    }
    return found;
  };
  const deleted = new Set<number>();

  const tasks: TaskReport[] = [];
  let handled = 0;
  let throttled = false;
  let reaped = 0;
  let keptBusy = 0;
  let keptYoungTwin = 0;
  let registrationsDeleted = 0;

  for (const candidate of ordered) {
    if (handled >= bound || throttled) break;
    if (deps.timeLeftMs && deps.timeLeftMs() < (deps.reserveMs ?? 20_000)) break;
    handled += 1;
    const base = {
      taskId: candidate.taskId,
      jobId: candidate.jobId,
      ...(candidate.runnerType ? { runnerType: candidate.runnerType } : {}),
    };
    try {
      if (candidate.names.some((name) => youngNames.has(name))) {
        keptYoungTwin += 1;
        tasks.push({ ...base, outcome: 'kept-young-twin' });
        continue;
      }
      const { organization } = candidate;
      const first = await listing(listings, organization);
      let runners = candidate.names.flatMap((name) => {
        const runner = first.get(name);
        return runner && !deleted.has(runner.id) ? [runner] : [];
      });
      if (runners.length === 0) {
        // Absent: confirmed by a second listing (an offset-paged list can skip a runner).
        const second = await listing(confirmations, organization);
        runners = candidate.names.flatMap((name) => {
          const runner = second.get(name);
          return runner && !deleted.has(runner.id) ? [runner] : [];
        });
      }
      if (runners.some((r) => r.busy)) {
        keptBusy += 1;
        tasks.push({ ...base, outcome: 'kept-busy' });
        continue;
      }
      let busy = false;
      for (const runner of runners) {
        const answer = await deps.github.deleteRunner(organization, runner.id);
        if (answer === 'busy') {
          busy = true;
          break;
        }
        deleted.add(runner.id);
        if (answer === 'deleted') registrationsDeleted += 1;
      }
      if (busy) {
        keptBusy += 1;
        tasks.push({ ...base, outcome: 'kept-busy' });
        continue;
      }
      await deps.ecs.stop(candidate.task.taskArn, REAP_REASON);
      reaped += 1;
      const runner =
        runners.length === 0 ? 'absent' : runners.some((r) => r.status === 'online') ? 'idle' : 'offline';
      tasks.push({ ...base, outcome: 'reaped', runner });
    } catch (error) {
      errors += 1;
      tasks.push({ ...base, outcome: 'error', error });
      if (isRateLimit(error)) throttled = true;
    }
  }

  return {
    listed: taskArns.length,
    truncated,
    foreign,
    unattributed,
    young: young.length,
    pending: pending.length,
    candidates: old.length,
    handled,
    deferred: old.length - handled,
    reaped,
    stuckPending: stuckCount,
    keptBusy,
    keptYoungTwin,
    registrationsDeleted,
    errors,
    throttled,
    tasks,
  };
}
