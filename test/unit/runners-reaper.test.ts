import type { Logger } from '@aws-lambda-powertools/logger';
import {
  DescribeTasksCommand,
  ListTasksCommand,
  StopTaskCommand,
  type DescribeTasksCommandOutput,
  type ListTasksCommandOutput,
} from '@aws-sdk/client-ecs';
import { HandlerConfigError } from '../../runtime/lib/config';
import { GitHubAppRunners } from '../../runtime/runners/github-app';
import { PermanentError, RetryableError } from '../../runtime/lib/failures';
import {
  REAP_REASON,
  reapIdleRunners,
  STUCK_PENDING_MS,
  type ReaperDeps,
  type ReaperEcs,
  type ReaperGitHub,
  type ReaperTask,
  type RegisteredRunner,
  type RunnerDeletion,
} from '../../runtime/runners/reaper';
import {
  createReaperHandler,
  EcsReaperTasks,
  loadReaperSettings,
  type MetricsSink,
} from '../../runtime/runners/reaper/handler';
import { FakeGitHub, type FakeRunner } from '../support/fake-github';

const EU = 'eu-central-1';
const CLUSTER = 'estate-runners';
const ACCOUNT = '123456789012';
const NOW = Date.parse('2030-06-01T12:00:00Z');
const IDLE_SEC = 900;
const arnOf = (id: string) => `arn:aws:ecs:${EU}:${ACCOUNT}:task/${CLUSTER}/${id}`;

interface TaskSpec {
  readonly id: string;
  readonly job?: number;
  readonly org?: string;
  /** Seconds since it started. */
  readonly ageSec: number;
  readonly retry?: string;
  readonly tags?: Record<string, string>;
  readonly startedBy?: string | null;
  readonly desiredStatus?: string;
}

/** The task without `startedAt` (ECS sets it only once the task runs). */
function unstartedOf(t: ReaperTask): ReaperTask {
  const copy: { -readonly [K in keyof ReaperTask]: ReaperTask[K] } = { ...t };
  delete copy.startedAt;
  return copy;
}

/** A task not RUNNING yet (waiting for EC2 capacity): created `pendingSec` ago, no `startedAt`. */
function pendingTask(
  spec: Omit<TaskSpec, 'ageSec'> & { readonly pendingSec: number; readonly lastStatus?: string },
): ReaperTask {
  return {
    ...unstartedOf(task({ ...spec, ageSec: 0 })),
    lastStatus: spec.lastStatus ?? 'PROVISIONING',
    createdAt: NOW - spec.pendingSec * 1000,
  };
}

function task(spec: TaskSpec): ReaperTask {
  const tags = new Map<string, string>(
    Object.entries(
      spec.tags ?? {
        ...(spec.job !== undefined ? { 'runner-job-id': String(spec.job) } : {}),
        ...(spec.org !== undefined ? { 'runner-organization': spec.org } : {}),
        'runner-type': 'standard',
        ...(spec.retry !== undefined ? { 'runner-retry': spec.retry } : {}),
      },
    ),
  );
  const startedBy =
    spec.startedBy === null ? undefined : (spec.startedBy ?? (spec.job ? `job-${spec.job}` : undefined));
  return {
    taskArn: arnOf(spec.id),
    tags,
    ...(startedBy ? { startedBy } : {}),
    desiredStatus: spec.desiredStatus ?? 'RUNNING',
    lastStatus: 'RUNNING',
    createdAt: NOW - spec.ageSec * 1000 - 30_000,
    startedAt: NOW - spec.ageSec * 1000,
  };
}

/** The region's cluster in memory: lists, describes (counting batches) and stops; each can be made to fail. */
class FakeEcs implements ReaperEcs {
  readonly tasks = new Map<string, ReaperTask>();
  readonly batches: number[] = [];
  readonly stopped: { taskId: string; reason: string }[] = [];
  failList: Error | undefined;
  failDescribe: (arns: readonly string[]) => boolean = () => false;
  failStop = new Set<string>();

  constructor(...tasks: ReaperTask[]) {
    for (const t of tasks) this.tasks.set(t.taskArn, t);
  }

  async listTasks(limit: number) {
    if (this.failList) throw this.failList;
    const all = [...this.tasks.values()].filter((t) => t.desiredStatus === 'RUNNING').map((t) => t.taskArn);
    return { taskArns: all.slice(0, limit), truncated: all.length > limit };
  }

  async describe(arns: readonly string[]) {
    this.batches.push(arns.length);
    if (arns.length > 100) throw new Error('DescribeTasks takes at most 100 tasks');
    if (this.failDescribe(arns)) throw new Error('ThrottlingException (simulated)');
    return arns.flatMap((arn) => {
      const t = this.tasks.get(arn);
      return t ? [t] : [];
    });
  }

  async stop(taskArn: string, reason: string) {
    const id = taskArn.slice(taskArn.lastIndexOf('/') + 1);
    if (this.failStop.has(id)) throw new Error('ServerException (simulated)');
    this.stopped.push({ taskId: id, reason });
    const t = this.tasks.get(taskArn);
    if (t) this.tasks.set(taskArn, { ...t, desiredStatus: 'STOPPED' });
  }

  stoppedIds(): string[] {
    return this.stopped.map((s) => s.taskId);
  }
}

/** GitHub's runner registrations per organisation. */
class FakeRunners implements ReaperGitHub {
  readonly orgs = new Map<string, RegisteredRunner[]>();
  readonly lists: string[] = [];
  readonly deletes: { organization: string; id: number }[] = [];
  failList = new Map<string, Error>();
  /** Listed idle, but running a job by the time it is deleted. */
  busyOnDelete = new Set<number>();
  failDelete = new Set<number>();
  /** Left out of the first listing (a page shifted under the reader). */
  missedOnce = new Set<string>();
  private nextId = 1;

  add(organization: string, name: string, status: 'online' | 'offline', busy = false): RegisteredRunner {
    const runner = { id: this.nextId++, name, status, busy };
    this.orgs.set(organization, [...(this.orgs.get(organization) ?? []), runner]);
    return runner;
  }

  async listRunners(organization: string, namePrefix: string) {
    this.lists.push(organization);
    const failure = this.failList.get(organization);
    if (failure) throw failure;
    return (this.orgs.get(organization) ?? []).filter((r) => {
      if (this.missedOnce.delete(r.name)) return false;
      return r.name.startsWith(namePrefix);
    });
  }

  async deleteRunner(organization: string, id: number): Promise<RunnerDeletion> {
    this.deletes.push({ organization, id });
    if (this.failDelete.has(id))
      throw new RetryableError('github-unavailable', 'delete-runner: GitHub answered 502');
    if (this.busyOnDelete.has(id)) return 'busy';
    const runners = this.orgs.get(organization) ?? [];
    const found = runners.find((r) => r.id === id);
    if (!found) return 'absent';
    if (found.busy) return 'busy';
    this.orgs.set(
      organization,
      runners.filter((r) => r !== found),
    );
    return 'deleted';
  }
}

function deps(ecs: FakeEcs, github: FakeRunners, extra: Partial<ReaperDeps> = {}): ReaperDeps {
  return {
    region: EU,
    config: { idleTimeoutSec: IDLE_SEC },
    ecs,
    github,
    now: () => NOW,
    ...extra,
  };
}

const OLD = IDLE_SEC + 60;

describe('the runner reaper', () => {
  it('reaps an idle runner: its registration deleted, then its task stopped', async () => {
    const ecs = new FakeEcs(task({ id: 'a1', job: 42, org: 'acme', ageSec: OLD }));
    const github = new FakeRunners();
    const runner = github.add('acme', `${EU}-42-0`, 'online');
    const report = await reapIdleRunners(deps(ecs, github));
    expect(github.deletes).toEqual([{ organization: 'acme', id: runner.id }]);
    expect(ecs.stopped).toEqual([{ taskId: 'a1', reason: REAP_REASON }]);
    expect(REAP_REASON).toBe('idle runner reaped');
    expect(report).toMatchObject({
      listed: 1,
      candidates: 1,
      handled: 1,
      reaped: 1,
      registrationsDeleted: 1,
    });
    expect(report.tasks).toEqual([
      { taskId: 'a1', jobId: 42, runnerType: 'standard', outcome: 'reaped', runner: 'idle' },
    ]);
  });

  it('keeps a busy runner’s task and its registration', async () => {
    const ecs = new FakeEcs(task({ id: 'b1', job: 43, org: 'acme', ageSec: 6 * 3600 }));
    const github = new FakeRunners();
    github.add('acme', `${EU}-43-0`, 'online', true);
    const report = await reapIdleRunners(deps(ecs, github));
    expect(github.deletes).toEqual([]);
    expect(ecs.stopped).toEqual([]);
    expect(report).toMatchObject({ keptBusy: 1, reaped: 0 });
  });

  it('keeps a task younger than the idle timeout without asking GitHub', async () => {
    const ecs = new FakeEcs(task({ id: 'y1', job: 44, org: 'acme', ageSec: IDLE_SEC - 1 }));
    const github = new FakeRunners();
    github.add('acme', `${EU}-44-0`, 'online');
    const report = await reapIdleRunners(deps(ecs, github));
    expect(github.lists).toEqual([]);
    expect(ecs.stopped).toEqual([]);
    expect(report).toMatchObject({ young: 1, candidates: 0, handled: 0 });
  });

  it('judges idleness only of RUNNING tasks, from startedAt, and never one without it', async () => {
    const started = task({ id: 's1', job: 45, org: 'acme', ageSec: 60 });
    const unstarted = unstartedOf(task({ id: 's3', job: 47, org: 'acme', ageSec: OLD }));
    // Created long ago, started a minute ago: young. RUNNING without startedAt: never judged.
    const ecs = new FakeEcs({ ...started, createdAt: NOW - 3_600_000 }, unstarted);
    const report = await reapIdleRunners(deps(ecs, new FakeRunners()));
    expect(report).toMatchObject({ young: 2, pending: 0, candidates: 0, reaped: 0 });
    expect(ecs.stopped).toEqual([]);
  });

  it('leaves a task waiting for EC2 capacity alone, however far past the idle timeout it was created', async () => {
    const ecs = new FakeEcs(
      pendingTask({ id: 'p1', job: 50, org: 'acme', pendingSec: OLD }),
      pendingTask({ id: 'p2', job: 51, org: 'acme', pendingSec: 3600, lastStatus: 'PENDING' }),
      pendingTask({ id: 'p3', job: 52, org: 'acme', pendingSec: STUCK_PENDING_MS / 1000 - 1 }),
    );
    const github = new FakeRunners();
    github.add('acme', `${EU}-50-0`, 'offline');
    github.add('acme', `${EU}-51-0`, 'offline');
    github.add('acme', `${EU}-52-0`, 'offline');
    const report = await reapIdleRunners(deps(ecs, github));
    expect(ecs.stopped).toEqual([]);
    expect(github.lists).toEqual([]);
    expect(github.deletes).toEqual([]);
    expect(report).toMatchObject({ young: 0, pending: 3, candidates: 0, reaped: 0, stuckPending: 0 });
  });

  it("counts a task stuck short of RUNNING past the bound and leaves it alone: it is its job's only runner", async () => {
    const ecs = new FakeEcs(
      pendingTask({ id: 'k1', job: 53, org: 'acme', pendingSec: STUCK_PENDING_MS / 1000 }),
      task({ id: 'k2', job: 54, org: 'acme', ageSec: OLD }),
    );
    const github = new FakeRunners();
    github.add('acme', `${EU}-53-0`, 'offline');
    const idleRunner = github.add('acme', `${EU}-54-0`, 'online');
    const report = await reapIdleRunners(deps(ecs, github));
    expect(STUCK_PENDING_MS).toBe(2 * 3600 * 1000);
    expect(github.deletes).toEqual([{ organization: 'acme', id: idleRunner.id }]);
    expect(ecs.stopped).toEqual([{ taskId: 'k2', reason: REAP_REASON }]);
    expect(report).toMatchObject({ pending: 1, candidates: 1, reaped: 1, stuckPending: 1 });
  });

  it('keeps an idle task while a pending task of the same job may hold its runner name', async () => {
    const ecs = new FakeEcs(
      task({ id: 't1', job: 55, org: 'acme', ageSec: OLD }),
      pendingTask({ id: 't2', job: 55, org: 'acme', pendingSec: 60 }),
    );
    const github = new FakeRunners();
    github.add('acme', `${EU}-55-0`, 'offline');
    const report = await reapIdleRunners(deps(ecs, github));
    expect(ecs.stopped).toEqual([]);
    expect(report).toMatchObject({ pending: 1, candidates: 1, keptYoungTwin: 1 });
  });

  it('reaps a task whose runner is offline', async () => {
    const ecs = new FakeEcs(task({ id: 'o1', job: 48, org: 'acme', ageSec: OLD }));
    const github = new FakeRunners();
    github.add('acme', `${EU}-48-0`, 'offline');
    const report = await reapIdleRunners(deps(ecs, github));
    expect(github.deletes).toHaveLength(1);
    expect(ecs.stoppedIds()).toEqual(['o1']);
    expect(report.tasks[0]).toMatchObject({ outcome: 'reaped', runner: 'offline' });
  });

  it('stops a task whose runner is not registered, once a second listing confirms it', async () => {
    const ecs = new FakeEcs(task({ id: 'n1', job: 49, org: 'acme', ageSec: OLD }));
    const github = new FakeRunners();
    github.add('acme', `${EU}-1-0`, 'online');
    const report = await reapIdleRunners(deps(ecs, github));
    expect(github.lists).toEqual(['acme', 'acme']);
    expect(github.deletes).toEqual([]);
    expect(ecs.stoppedIds()).toEqual(['n1']);
    expect(report.tasks[0]).toMatchObject({ outcome: 'reaped', runner: 'absent' });
  });

  it('keeps a busy runner that a page shift left out of the first listing', async () => {
    const ecs = new FakeEcs(task({ id: 'p1', job: 50, org: 'acme', ageSec: OLD }));
    const github = new FakeRunners();
    github.add('acme', `${EU}-50-0`, 'online', true);
    github.missedOnce.add(`${EU}-50-0`);
    const report = await reapIdleRunners(deps(ecs, github));
    expect(ecs.stopped).toEqual([]);
    expect(report).toMatchObject({ keptBusy: 1, reaped: 0 });
  });

  it('keeps the task when GitHub answers busy (422) to the deletion: the runner took a job meanwhile', async () => {
    const ecs = new FakeEcs(task({ id: 'r1', job: 51, org: 'acme', ageSec: OLD }));
    const github = new FakeRunners();
    const runner = github.add('acme', `${EU}-51-0`, 'online');
    github.busyOnDelete.add(runner.id);
    const report = await reapIdleRunners(deps(ecs, github));
    expect(github.deletes).toHaveLength(1);
    expect(ecs.stopped).toEqual([]);
    expect(report).toMatchObject({ keptBusy: 1, reaped: 0, registrationsDeleted: 0, errors: 0 });
  });

  it('counts runner tasks it cannot attribute and never stops them; leaves other tasks alone', async () => {
    const ecs = new FakeEcs(
      task({ id: 'u1', ageSec: 99_999, tags: {}, startedBy: 'job-52' }),
      task({ id: 'u2', ageSec: 99_999, tags: { 'runner-job-id': '53' }, startedBy: 'job-53' }),
      task({
        id: 'u3',
        ageSec: 99_999,
        tags: { 'runner-job-id': '54', 'runner-organization': 'Not A Login!' },
      }),
      task({
        id: 'u4',
        ageSec: 99_999,
        tags: { 'runner-job-id': '55', 'runner-organization': 'acme' },
        startedBy: 'job-56',
      }),
      task({
        id: 'u5',
        ageSec: 99_999,
        tags: { 'runner-job-id': '9007199254740993', 'runner-organization': 'acme' },
        startedBy: null,
      }),
      task({ id: 'u6', ageSec: 99_999, job: 57, org: 'acme', retry: '2' }),
      task({
        id: 'u7',
        ageSec: 99_999,
        tags: { 'runner-job-id': '__proto__', 'runner-organization': 'acme' },
        startedBy: null,
      }),
      task({ id: 'svc', ageSec: 99_999, tags: { team: 'platform' }, startedBy: 'ecs-svc/1234567890' }),
    );
    const github = new FakeRunners();
    const report = await reapIdleRunners(deps(ecs, github));
    expect(report).toMatchObject({ listed: 8, unattributed: 7, foreign: 1, candidates: 0, reaped: 0 });
    expect(ecs.stopped).toEqual([]);
    expect(github.lists).toEqual([]);
  });

  it('isolates each task’s failure and counts it: the others are reaped', async () => {
    const ecs = new FakeEcs(
      task({ id: 'e1', job: 60, org: 'broken', ageSec: OLD + 50 }),
      task({ id: 'e2', job: 61, org: 'broken', ageSec: OLD + 40 }),
      task({ id: 'e3', job: 62, org: 'acme', ageSec: OLD + 30 }),
      task({ id: 'e4', job: 63, org: 'acme', ageSec: OLD + 20 }),
      task({ id: 'e5', job: 64, org: 'acme', ageSec: OLD + 10 }),
    );
    const github = new FakeRunners();
    github.failList.set('broken', new PermanentError('github-404', 'list-runners: GitHub answered 404'));
    github.add('acme', `${EU}-62-0`, 'online');
    github.failDelete.add(github.add('acme', `${EU}-63-0`, 'online').id);
    github.add('acme', `${EU}-64-0`, 'online');
    ecs.failStop.add('e3');
    const report = await reapIdleRunners(deps(ecs, github));
    expect(report).toMatchObject({ handled: 5, reaped: 1, errors: 4 });
    expect(ecs.stoppedIds()).toEqual(['e5']);
    expect(report.tasks.map((t) => `${t.taskId}:${t.outcome}`)).toEqual([
      'e1:error',
      'e2:error',
      'e3:error',
      'e4:error',
      'e5:reaped',
    ]);
    // The organisation's listing failed once and was not asked again for its second task.
    expect(github.lists.filter((o) => o === 'broken')).toHaveLength(1);
  });

  it('describes in batches of 100, and a failed batch is counted while the others go on', async () => {
    const tasks = Array.from({ length: 250 }, (_, i) =>
      task({ id: `t${i}`, job: 1_000 + i, org: 'acme', ageSec: 60 }),
    );
    const ecs = new FakeEcs(...tasks);
    ecs.failDescribe = (arns) => arns.includes(arnOf('t100'));
    const report = await reapIdleRunners(deps(ecs, new FakeRunners()));
    expect(ecs.batches).toEqual([100, 100, 50]);
    expect(report).toMatchObject({ listed: 250, young: 150, errors: 1 });
  });

  it('handles at most the bound per run, oldest first, the rest next time', async () => {
    const tasks = Array.from({ length: 7 }, (_, i) =>
      task({ id: `q${i}`, job: 70 + i, org: 'acme', ageSec: OLD + (7 - i) * 10 }),
    );
    const ecs = new FakeEcs(...tasks);
    const github = new FakeRunners();
    for (let i = 0; i < 7; i++) github.add('acme', `${EU}-${70 + i}-0`, 'online');
    const first = await reapIdleRunners(deps(ecs, github, { maxTasksPerRun: 3 }));
    expect(first).toMatchObject({ candidates: 7, handled: 3, deferred: 4, reaped: 3 });
    expect(ecs.stoppedIds()).toEqual(['q0', 'q1', 'q2']);
    const second = await reapIdleRunners(deps(ecs, github, { maxTasksPerRun: 3 }));
    expect(second).toMatchObject({ candidates: 4, handled: 3, deferred: 1 });
    expect(ecs.stoppedIds()).toEqual(['q0', 'q1', 'q2', 'q3', 'q4', 'q5']);
  });

  it('starts at a random place among the candidates, so busy tasks cannot starve the others', async () => {
    const tasks = Array.from({ length: 6 }, (_, i) =>
      task({ id: `v${i}`, job: 80 + i, org: 'acme', ageSec: OLD + (6 - i) * 10 }),
    );
    const ecs = new FakeEcs(...tasks);
    const github = new FakeRunners();
    // The three oldest run long jobs.
    for (let i = 0; i < 6; i++) github.add('acme', `${EU}-${80 + i}-0`, 'online', i < 3);
    const oldestFirst = await reapIdleRunners(deps(ecs, github, { maxTasksPerRun: 3, random: () => 0 }));
    expect(oldestFirst).toMatchObject({ keptBusy: 3, reaped: 0 });
    const rotated = await reapIdleRunners(deps(ecs, github, { maxTasksPerRun: 3, random: () => 0.5 }));
    expect(rotated).toMatchObject({ keptBusy: 0, reaped: 3 });
    expect(ecs.stoppedIds()).toEqual(['v3', 'v4', 'v5']);
  });

  it('stops handling when the run’s time is nearly up', async () => {
    const ecs = new FakeEcs(task({ id: 'w1', job: 90, org: 'acme', ageSec: OLD }));
    const report = await reapIdleRunners(deps(ecs, new FakeRunners(), { timeLeftMs: () => 5_000 }));
    expect(report).toMatchObject({ candidates: 1, handled: 0, deferred: 1 });
    expect(ecs.stopped).toEqual([]);
  });

  it('stops calling GitHub for the run once it is rate-limited', async () => {
    const ecs = new FakeEcs(
      task({ id: 'l1', job: 91, org: 'acme', ageSec: OLD + 20 }),
      task({ id: 'l2', job: 92, org: 'globex', ageSec: OLD + 10 }),
      task({ id: 'l3', job: 93, org: 'initech', ageSec: OLD }),
    );
    const github = new FakeRunners();
    const limited = Object.assign(new RetryableError('github-rate-limited', 'list-runners: rate limited'), {
      retryAfterSec: 60,
    });
    github.failList.set('acme', limited);
    const report = await reapIdleRunners(deps(ecs, github));
    expect(report).toMatchObject({ throttled: true, handled: 1, deferred: 2, errors: 1 });
    expect(github.lists).toEqual(['acme']);
  });

  it('waits while a younger task of the same job may hold the runner (no retry tag to tell them apart)', async () => {
    const ecs = new FakeEcs(
      task({ id: 'j0', job: 95, org: 'acme', ageSec: OLD }),
      task({ id: 'j1', job: 95, org: 'acme', ageSec: 300 }),
    );
    const github = new FakeRunners();
    github.add('acme', `${EU}-95-0`, 'offline');
    github.add('acme', `${EU}-95-1`, 'online');
    const report = await reapIdleRunners(deps(ecs, github));
    expect(report).toMatchObject({ keptYoungTwin: 1, reaped: 0 });
    expect(github.deletes).toEqual([]);
    expect(ecs.stopped).toEqual([]);
  });

  it('tells the tasks of one job apart by a retry tag when the launcher sets one', async () => {
    const ecs = new FakeEcs(
      task({ id: 'k0', job: 96, org: 'acme', ageSec: OLD, retry: '0' }),
      task({ id: 'k1', job: 96, org: 'acme', ageSec: 300, retry: '1' }),
    );
    const github = new FakeRunners();
    github.add('acme', `${EU}-96-0`, 'offline');
    const young = github.add('acme', `${EU}-96-1`, 'online');
    const report = await reapIdleRunners(deps(ecs, github));
    expect(report).toMatchObject({ reaped: 1, registrationsDeleted: 1 });
    expect(ecs.stoppedIds()).toEqual(['k0']);
    expect(github.orgs.get('acme')).toEqual([young]);
  });

  it('reaps two old tasks of one job, deleting each registration once', async () => {
    const ecs = new FakeEcs(
      task({ id: 'd0', job: 97, org: 'acme', ageSec: OLD + 600 }),
      task({ id: 'd1', job: 97, org: 'acme', ageSec: OLD }),
    );
    const github = new FakeRunners();
    github.add('acme', `${EU}-97-0`, 'offline');
    github.add('acme', `${EU}-97-1`, 'online');
    const report = await reapIdleRunners(deps(ecs, github));
    expect(report).toMatchObject({ reaped: 2, registrationsDeleted: 2 });
    expect(github.deletes).toHaveLength(2);
    expect(ecs.stoppedIds()).toEqual(['d0', 'd1']);
  });

  it('keeps both tasks of a job while one of its runners is busy', async () => {
    const ecs = new FakeEcs(
      task({ id: 'm0', job: 98, org: 'acme', ageSec: OLD + 600 }),
      task({ id: 'm1', job: 98, org: 'acme', ageSec: OLD }),
    );
    const github = new FakeRunners();
    github.add('acme', `${EU}-98-0`, 'online', true);
    github.add('acme', `${EU}-98-1`, 'online');
    const report = await reapIdleRunners(deps(ecs, github));
    expect(report).toMatchObject({ keptBusy: 2, reaped: 0 });
    expect(github.deletes).toEqual([]);
  });

  it('looks only at runners of its own region, and leaves tasks already stopping alone', async () => {
    const ecs = new FakeEcs(
      task({ id: 'g1', job: 99, org: 'acme', ageSec: OLD }),
      task({ id: 'g2', job: 100, org: 'acme', ageSec: OLD, desiredStatus: 'STOPPED' }),
    );
    ecs.listTasks = async () => ({ taskArns: [arnOf('g1'), arnOf('g2')], truncated: false });
    const github = new FakeRunners();
    github.add('acme', `us-east-1-99-0`, 'online', true);
    const report = await reapIdleRunners(deps(ecs, github));
    expect(report).toMatchObject({ candidates: 1, reaped: 1 });
    expect(ecs.stoppedIds()).toEqual(['g1']);
    expect(github.deletes).toEqual([]);
  });

  it('fails the run when the cluster cannot be listed', async () => {
    const ecs = new FakeEcs();
    ecs.failList = new Error('AccessDeniedException (simulated)');
    await expect(reapIdleRunners(deps(ecs, new FakeRunners()))).rejects.toThrow('AccessDenied');
  });
});

// ------------------------------------------------------------------------------------------ adapter

describe('EcsReaperTasks', () => {
  type Sent = ListTasksCommand | DescribeTasksCommand | StopTaskCommand;
  const recorder = (answer: (command: Sent) => unknown) => {
    const sent: Sent[] = [];
    return {
      sent,
      client: {
        send: async (command: Sent) => {
          sent.push(command);
          return answer(command);
        },
      } as unknown as ConstructorParameters<typeof EcsReaperTasks>[0],
    };
  };

  it('lists the cluster’s running tasks page by page, up to the limit', async () => {
    const pages: Record<string, Partial<ListTasksCommandOutput>> = {
      start: { taskArns: ['a', 'b'], nextToken: 'p2' },
      p2: { taskArns: ['c', 'd'], nextToken: 'p3' },
      p3: { taskArns: ['e'] },
    };
    const { sent, client } = recorder((c) => pages[(c as ListTasksCommand).input.nextToken ?? 'start']);
    const ecs = new EcsReaperTasks(client, CLUSTER);
    expect(await ecs.listTasks(100)).toEqual({ taskArns: ['a', 'b', 'c', 'd', 'e'], truncated: false });
    expect(sent[0]?.input).toEqual({ cluster: CLUSTER, desiredStatus: 'RUNNING', maxResults: 100 });
    expect(await ecs.listTasks(3)).toEqual({ taskArns: ['a', 'b', 'c'], truncated: true });
  });

  it('describes with tags, as epoch ms and a Map; stops with the reason', async () => {
    const answer: Partial<DescribeTasksCommandOutput> = {
      tasks: [
        {
          taskArn: arnOf('x1'),
          startedBy: 'job-42',
          desiredStatus: 'RUNNING',
          lastStatus: 'RUNNING',
          createdAt: new Date(NOW - 2_000),
          startedAt: new Date(NOW - 1_000),
          tags: [
            { key: 'runner-job-id', value: '42' },
            { key: '__proto__', value: 'x' },
          ],
        },
      ],
      failures: [{ arn: arnOf('gone'), reason: 'MISSING' }],
    };
    const { sent, client } = recorder(() => answer);
    const ecs = new EcsReaperTasks(client, CLUSTER);
    const [described] = await ecs.describe([arnOf('x1'), arnOf('gone')]);
    expect(sent[0]?.input).toEqual({
      cluster: CLUSTER,
      tasks: [arnOf('x1'), arnOf('gone')],
      include: ['TAGS'],
    });
    expect(described).toEqual({
      taskArn: arnOf('x1'),
      startedBy: 'job-42',
      desiredStatus: 'RUNNING',
      lastStatus: 'RUNNING',
      createdAt: NOW - 2_000,
      startedAt: NOW - 1_000,
      tags: new Map([
        ['runner-job-id', '42'],
        ['__proto__', 'x'],
      ]),
    });
    await ecs.stop(arnOf('x1'), REAP_REASON);
    expect(sent[1]?.input).toEqual({ cluster: CLUSTER, task: arnOf('x1'), reason: REAP_REASON });
  });
});

// ------------------------------------------------------------------------------------------ handler

const CONFIG = JSON.stringify({
  regions: [
    { region: EU, priority: 1, capacity: 10 },
    { region: 'us-east-1', priority: 2, capacity: 10 },
  ],
  runnerTypes: [{ name: 'standard', labels: ['self-hosted'] }],
  idleTimeoutSec: IDLE_SEC,
});

describe('the reaper’s settings', () => {
  const env = {
    AWS_REGION: EU,
    RUNNERS_CONFIG: CONFIG,
    ECS_CLUSTER: CLUSTER,
    GITHUB_APP_SECRET_ID: 'estate/runners/github-app-private-key',
  };

  it('reads the environment, with defaults', () => {
    const settings = loadReaperSettings(env);
    expect(settings).toMatchObject({
      region: EU,
      cluster: CLUSTER,
      githubAppSecretId: env.GITHUB_APP_SECRET_ID,
      githubApiUrl: 'https://api.github.com',
      maxTasksPerRun: 50,
    });
    expect(settings.config.idleTimeoutSec).toBe(IDLE_SEC);
  });

  it('names every bad setting at once, no value quoted', () => {
    let error: unknown;
    try {
      loadReaperSettings({
        ...env,
        ECS_CLUSTER: 'has spaces',
        GITHUB_APP_SECRET_ID: '',
        REAPER_MAX_TASKS: '0',
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(HandlerConfigError);
    const problems = (error as HandlerConfigError).problems.join('\n');
    expect(problems).toMatch(/ECS_CLUSTER/);
    expect(problems).toMatch(/GITHUB_APP_SECRET_ID/);
    expect(problems).toMatch(/REAPER_MAX_TASKS/);
    expect(problems).not.toContain('has spaces');
  });

  it('refuses a region the configuration does not have', () => {
    expect(() => loadReaperSettings({ ...env, AWS_REGION: 'ap-southeast-2' })).toThrow(
      /AWS_REGION: expected one of the regions of RUNNERS_CONFIG/,
    );
  });
});

class RecordingMetrics implements MetricsSink {
  readonly values = new Map<string, number>();
  published = 0;
  addMetric(name: string, _unit: unknown, value: number): void {
    this.values.set(name, (this.values.get(name) ?? 0) + value);
  }
  publishStoredMetrics(): void {
    this.published += 1;
  }
}

function recordingLogger() {
  const lines: { level: string; message: string; fields: unknown }[] = [];
  const log = (level: string) => (message: string, fields?: unknown) =>
    lines.push({ level, message, fields });
  const logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
  return { lines, logger: logger as unknown as Logger };
}

describe('the reaper’s handler', () => {
  it('runs one pass and reports RunnersReaped, ReaperErrors and UnattributedTasks, no ARN logged', async () => {
    const ecs = new FakeEcs(
      task({ id: 'h1', job: 1, org: 'acme', ageSec: OLD }),
      task({ id: 'h2', job: 2, org: 'broken', ageSec: OLD }),
      task({ id: 'h3', ageSec: OLD, tags: {}, startedBy: 'job-3' }),
      task({ id: 'h4', job: 4, org: 'acme', ageSec: 10 }),
    );
    const github = new FakeRunners();
    github.add('acme', `${EU}-1-0`, 'online');
    github.failList.set(
      'broken',
      new RetryableError('github-unavailable', 'list-runners: GitHub answered 502'),
    );
    const metrics = new RecordingMetrics();
    const { lines, logger } = recordingLogger();
    const handler = createReaperHandler({ deps: deps(ecs, github), metrics, logger });
    const summary = await handler({ source: 'aws.events' }, { getRemainingTimeInMillis: () => 120_000 });
    expect(summary).toMatchObject({ reaped: 1, errors: 1, unattributed: 1, young: 1 });
    expect(summary).not.toHaveProperty('tasks');
    expect(Object.fromEntries(metrics.values)).toEqual({
      RunnersReaped: 1,
      ReaperErrors: 1,
      UnattributedTasks: 1,
      StuckPending: 0,
    });
    expect(metrics.published).toBe(1);
    expect(lines.map((l) => `${l.level} ${l.message}`)).toEqual([
      'info idle runner reaped',
      'warn runner task not reaped: failed',
      'warn runner tasks without a job id and organisation: left running',
      'info reaper run',
    ]);
    expect(lines[1]?.fields).toMatchObject({ taskId: 'h2', jobId: 2, code: 'github-unavailable' });
    const logged = JSON.stringify(lines);
    expect(logged).not.toContain('arn:aws');
    expect(logged).not.toContain(ACCOUNT);
    expect(logged).not.toContain('broken');
  });

  it('publishes zeros on a quiet run', async () => {
    const metrics = new RecordingMetrics();
    const handler = createReaperHandler({
      deps: deps(new FakeEcs(), new FakeRunners()),
      metrics,
      logger: recordingLogger().logger,
    });
    await handler({});
    expect(Object.fromEntries(metrics.values)).toEqual({
      RunnersReaped: 0,
      ReaperErrors: 0,
      UnattributedTasks: 0,
      StuckPending: 0,
    });
  });

  it('fails a run that cannot list the cluster, with a bounded error that carries no ARN', async () => {
    const ecs = new FakeEcs();
    ecs.failList = Object.assign(
      new Error(
        `User: arn:aws:sts::${ACCOUNT}:assumed-role/reaper is not authorized to perform: ecs:ListTasks`,
      ),
      { name: 'AccessDeniedException' },
    );
    const metrics = new RecordingMetrics();
    const { lines, logger } = recordingLogger();
    const handler = createReaperHandler({ deps: deps(ecs, new FakeRunners()), metrics, logger });
    let error: unknown;
    try {
      await handler({});
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(RetryableError);
    expect(String((error as Error).message)).not.toContain(ACCOUNT);
    expect(JSON.stringify(lines)).not.toContain(ACCOUNT);
    expect(metrics.values.get('ReaperErrors')).toBe(1);
    expect(metrics.published).toBe(1);
  });
});

// ------------------------------------------------------------------------------ over the GitHub App

describe('the reaper over the GitHub App adapter and the fake GitHub', () => {
  let github: FakeGitHub;
  beforeEach(async () => {
    github = await FakeGitHub.start({
      appId: 4_242,
      installations: { acme: 77 },
      runnerGroups: { acme: ['docker-trusted'] },
    });
  });
  afterEach(async () => {
    await github.close();
  });

  it('reaps the idle and the offline, keeps the busy, through real calls', async () => {
    const app = new GitHubAppRunners({ loadSecret: async () => github.appSecret(), baseUrl: github.url });
    for (const job of [1, 2, 3])
      await app.jitConfig({
        organization: 'acme',
        runnerName: `${EU}-${job}-0`,
        labels: ['self-hosted'],
        runnerGroup: job === 3 ? 'docker-trusted' : 'Default',
      });
    expect(github.jitConfigs.map((j) => j.runnerGroupId)).toEqual([1, 1, 2]);
    const [idle, offline, busy] = github.runnersOf('acme') as FakeRunner[];
    (idle as FakeRunner).status = 'online';
    Object.assign(busy as FakeRunner, { status: 'online', busy: true });
    const ecs = new FakeEcs(
      task({ id: 'i1', job: 1, org: 'acme', ageSec: OLD }),
      task({ id: 'i2', job: 2, org: 'acme', ageSec: OLD }),
      task({ id: 'i3', job: 3, org: 'acme', ageSec: OLD }),
    );
    const report = await reapIdleRunners({ ...deps(ecs, new FakeRunners()), github: app });
    expect(report).toMatchObject({ reaped: 2, keptBusy: 1, registrationsDeleted: 2, errors: 0 });
    expect(ecs.stoppedIds()).toEqual(['i1', 'i2']);
    expect(github.runnersOf('acme').map((r) => r.name)).toEqual([`${EU}-3-0`]);
    expect(offline?.status).toBe('offline');
    // A busy runner's deletion is refused by GitHub (422) and reported as such.
    expect(await app.deleteRunner('acme', (busy as FakeRunner).id)).toBe('busy');
  });
});
