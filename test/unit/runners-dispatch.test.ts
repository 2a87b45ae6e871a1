import type { Logger } from '@aws-lambda-powertools/logger';
import type { ECSClient, RunTaskCommandInput } from '@aws-sdk/client-ecs';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { HandlerConfigError } from '../../runtime/lib/config';
import { PermanentError, RetryableError } from '../../runtime/lib/failures';
import { parseRunnerConfig } from '../../runtime/runners/config';
import {
  claimSlot,
  handleRunnerMessage,
  RunnerExistsError,
  WAIT_CAP_SEC,
  waitDelaySec,
  type CacheTokenIssuer,
  type ConcurrencyCap,
  type DispatchCounters,
  type DispatchDeps,
  type GitHubJobStatus,
  type GitHubRunners,
  type JitRequest,
  type JobClaims,
  type JobRecord,
  type JobRecords,
  type LaunchRequest,
  type QueueSender,
  type Retry,
  type RunnerLauncher,
} from '../../runtime/runners/dispatch';
import {
  checkSource,
  createDispatchHandler,
  loadDispatcherSettings,
  parseRunnerQueueMessage,
  type MetricsSink,
} from '../../runtime/runners/dispatcher/handler';
import { EcsRunnerLauncher, failureReason } from '../../runtime/runners/ecs-launcher';
import {
  RunnerLeases,
  type LeaseState,
  type LeaseTable,
  type LeaseWrite,
} from '../../runtime/runners/leases';
import type {
  CompletedMessage,
  DispatchMessage,
  QueuedCheckMessage,
  RunnerQueueMessage,
} from '../../runtime/runners/model';

const EU = 'eu-central-1';
const US = 'us-east-1';
const T0 = 1_760_000_000_000;
const JIT = 'JIT-SECRET-VALUE';
const CACHE_TOKEN = 'CACHE-TOKEN-VALUE';

const CONFIG = parseRunnerConfig({
  regions: [
    { region: EU, priority: 1, capacity: 4 },
    { region: US, priority: 2, capacity: 4 },
  ],
  runnerTypes: [
    { name: 'standard', labels: ['self-hosted', 'linux'], launch: 'fargate-spot' },
    {
      name: 'docker',
      labels: ['self-hosted', 'linux', 'docker'],
      launch: 'ec2',
      runnerGroup: 'docker-trusted',
    },
  ],
  leaseTtlSec: 3600,
  queuedTimeoutSec: 600,
});

// ------------------------------------------------------------------------------------------- fakes

class MemoryClaims implements JobClaims {
  readonly items = new Map<string, { owner: string; expiresAt: number }>();
  async claim(jobId: number, retry: Retry, owner: string, expiresAtSec: number, nowSec: number) {
    const key = `${jobId}/${claimSlot(retry)}`;
    const held = this.items.get(key);
    if (held && held.owner !== owner && held.expiresAt >= nowSec) return false;
    this.items.set(key, { owner, expiresAt: expiresAtSec });
    return true;
  }
  async release(jobId: number, retry: Retry, owner: string) {
    const key = `${jobId}/${claimSlot(retry)}`;
    if (this.items.get(key)?.owner === owner) this.items.delete(key);
  }
  held(jobId: number, retry: Retry = 0) {
    return this.items.get(`${jobId}/${claimSlot(retry)}`);
  }
}

class MemoryRecords implements JobRecords {
  readonly items = new Map<number, JobRecord | { region: string }>();
  failPuts = 0;
  putAttempts = 0;
  async get(jobId: number) {
    const item = this.items.get(jobId);
    return item && { region: item.region };
  }
  async put(record: JobRecord) {
    this.putAttempts++;
    if (this.failPuts-- > 0) throw Object.assign(new Error('throttled'), { name: 'ThrottlingException' });
    this.items.set(record.jobId, record);
  }
  async delete(jobId: number) {
    this.items.delete(jobId);
  }
}

class MemoryLeaseTable implements LeaseTable {
  readonly items = new Map<string, LeaseState>();
  async read(organization: string) {
    return this.items.get(organization);
  }
  async write(organization: string, next: LeaseWrite, expectedVersion: number | undefined) {
    if (this.items.get(organization)?.version !== expectedVersion) return false;
    this.items.set(organization, {
      leases: new Map(next.leases),
      waiting: new Map(next.waiting),
      version: (expectedVersion ?? 0) + 1,
    });
    return true;
  }
  async all() {
    return [...this.items.values()];
  }
  leasesOf(organization: string): string[] {
    return [...(this.items.get(organization)?.leases.keys() ?? [])];
  }
}

class FakeCap implements ConcurrencyCap {
  cap: number | undefined = undefined;
  readonly demand: { organization: string; wanted: number; held: number }[] = [];
  async capOf() {
    return this.cap;
  }
  async recordDemand(organization: string, level: { wanted: number; held: number }) {
    this.demand.push({ organization, ...level });
  }
}

class FakeGitHub implements GitHubRunners {
  readonly jitRequests: JitRequest[] = [];
  readonly statusRequests: { repository: string; jobId: number }[] = [];
  failure: Error | undefined;
  status: GitHubJobStatus = 'queued';
  async jitConfig(request: JitRequest) {
    this.jitRequests.push(request);
    if (this.failure) throw this.failure;
    return JIT;
  }
  async jobStatus(repository: string, jobId: number) {
    this.statusRequests.push({ repository, jobId });
    return this.status;
  }
}

/** A launcher with `start` only: the dispatcher has no way to stop a task, and none is asked of it. */
class FakeLauncher implements RunnerLauncher {
  readonly started: LaunchRequest[] = [];
  failure: Error | undefined;
  async start(request: LaunchRequest) {
    if (this.failure) throw this.failure;
    this.started.push(request);
    return { taskArn: `arn:aws:ecs:${EU}:111122223333:task/runners/${this.started.length}` };
  }
}

class FakeCounters implements DispatchCounters {
  readonly outcomes: string[] = [];
  async record(outcome: 'dispatched' | 'failed') {
    this.outcomes.push(outcome);
  }
}

class FakeQueue implements QueueSender {
  readonly sent: { runnerType: string; message: RunnerQueueMessage; delaySec: number }[] = [];
  async send(runnerType: string, message: RunnerQueueMessage, delaySec: number) {
    this.sent.push({ runnerType, message, delaySec });
  }
}

const cacheTokens: CacheTokenIssuer = { issue: async () => CACHE_TOKEN };

function world(region = EU) {
  const clock = { t: T0 };
  const claims = new MemoryClaims();
  const records = new MemoryRecords();
  const table = new MemoryLeaseTable();
  const cap = new FakeCap();
  const github = new FakeGitHub();
  const launcher = new FakeLauncher();
  const counters = new FakeCounters();
  const queue = new FakeQueue();
  const failed: unknown[] = [];
  const steps: string[] = [];
  const deps: DispatchDeps = {
    region,
    config: CONFIG,
    claims,
    records,
    leases: new RunnerLeases({ table, now: () => clock.t, sleep: async () => {} }),
    cap,
    github,
    launcher,
    counters,
    queue,
    cacheTokens,
    cacheUrl: 'https://cache.eu.example.com',
    observer: { dispatchFailed: (error) => failed.push(error), stepFailed: (step) => steps.push(step) },
    now: () => clock.t,
    random: () => 0.5,
    sleep: async () => {},
  };
  let n = 0;
  const handle = (message: RunnerQueueMessage, messageId = `m-${++n}`) =>
    handleRunnerMessage(message, { messageId }, deps);
  return {
    clock,
    claims,
    records,
    table,
    cap,
    github,
    launcher,
    counters,
    queue,
    failed,
    steps,
    deps,
    handle,
  };
}

const job = (jobId = 42, organization = 'acme') => ({
  action: 'queued' as const,
  jobId,
  runId: 7,
  runAttempt: 1,
  organization,
  repository: `${organization}/app`,
  labels: ['self-hosted', 'linux'],
});

const dispatchMessage = (overrides: Partial<DispatchMessage> = {}): DispatchMessage => ({
  version: 1,
  kind: 'dispatch',
  job: job(),
  deliveryId: 'd-1',
  region: EU,
  runnerType: 'standard',
  reason: 'home',
  routedAt: T0,
  correlationId: 'corr-1',
  retry: 0,
  ...overrides,
});

const check = (dispatch: DispatchMessage = dispatchMessage()): QueuedCheckMessage => ({
  version: 1,
  kind: 'check-queued',
  dispatch,
});

const completed = (jobId = 42, organization = 'acme'): CompletedMessage => ({
  version: 1,
  kind: 'completed',
  job: { ...job(jobId, organization), action: 'completed' },
  deliveryId: 'd-2',
  correlationId: 'corr-2',
});

// ------------------------------------------------------------------------------------------- core

describe('dispatch: a routed job', () => {
  it('claims the job, leases a slot, starts one runner with its JIT config and cache token, then records and schedules a check', async () => {
    const w = world();
    expect(await w.handle(dispatchMessage(), 'msg-a')).toEqual({ kind: 'dispatched', retry: 0 });
    expect(w.claims.held(42)).toEqual({ owner: 'msg-a', expiresAt: T0 / 1000 + 3600 });
    expect(w.github.jitRequests).toEqual([
      { organization: 'acme', runnerName: `${EU}-42-0`, labels: ['self-hosted', 'linux'], runnerGroupId: 1 },
    ]);
    expect(w.launcher.started).toEqual([
      {
        runnerType: 'standard',
        jitConfig: JIT,
        environment: { RUNNER_CACHE_TOKEN: CACHE_TOKEN, RUNNER_CACHE_URL: 'https://cache.eu.example.com' },
        jobId: 42,
        organization: 'acme',
      },
    ]);
    expect(w.records.items.get(42)).toMatchObject({
      region: EU,
      runnerType: 'standard',
      repository: 'acme/app',
      organization: 'acme',
      runId: 7,
      dispatchedAt: T0,
      expiresAt: T0 / 1000 + 3600,
    });
    expect(w.counters.outcomes).toEqual(['dispatched']);
    expect(w.queue.sent).toEqual([
      { runnerType: 'standard', message: check(dispatchMessage()), delaySec: 600 },
    ]);
    expect(w.table.leasesOf('acme')).toEqual(['42']);
    expect(w.cap.demand).toEqual([{ organization: 'acme', wanted: 1, held: 1 }]);
  });

  it('skips a copy of the job another message claimed, starting nothing', async () => {
    const w = world();
    await w.handle(dispatchMessage(), 'msg-a');
    expect(await w.handle(dispatchMessage(), 'msg-b')).toEqual({ kind: 'duplicate' });
    expect(w.launcher.started).toHaveLength(1);
    expect(w.github.jitRequests).toHaveLength(1);
  });

  it('takes an expired claim over', async () => {
    const w = world();
    w.github.failure = new RetryableError('github-unavailable', 'x');
    w.claims.items.set('42/claim', { owner: 'gone', expiresAt: T0 / 1000 - 1 });
    await expect(w.handle(dispatchMessage(), 'msg-a')).rejects.toBeInstanceOf(RetryableError);
    expect(w.github.jitRequests).toHaveLength(1);
  });

  it("skips a job another region's record shows it dispatched, taking no lease", async () => {
    const w = world();
    w.records.items.set(42, { region: US });
    expect(await w.handle(dispatchMessage())).toEqual({ kind: 'elsewhere' });
    expect(w.launcher.started).toHaveLength(0);
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.counters.outcomes).toEqual([]);
  });

  it('refuses a message for another region or an unknown runner type (a trust boundary), claiming nothing', async () => {
    const w = world();
    await expect(w.handle(dispatchMessage({ region: US }))).rejects.toMatchObject({ code: 'wrong-region' });
    await expect(w.handle(dispatchMessage({ runnerType: 'gpu' }))).rejects.toMatchObject({
      code: 'unknown-runner-type',
    });
    expect(w.claims.items.size).toBe(0);
  });
});

describe('dispatch: an organisation at its cap', () => {
  it('waits: the claim is released and the message re-sent with a growing, jittered delay, then dead-lettered after the lease TTL', async () => {
    const w = world();
    w.cap.cap = 1;
    await w.handle(dispatchMessage({ job: job(1) }));
    let message = dispatchMessage();
    const delays: number[] = [];
    for (let wait = 1; wait <= 7; wait++) {
      const outcome = await w.handle(message);
      expect(outcome).toMatchObject({ kind: 'waiting', limit: 'organisation', waits: wait });
      expect(w.claims.held(42)).toBeUndefined();
      const resent = w.queue.sent.at(-1);
      expect(resent?.runnerType).toBe('standard');
      message = resent?.message as DispatchMessage;
      expect(message).toMatchObject({ waits: wait, waitingSince: T0 });
      delays.push(resent?.delaySec ?? 0);
      w.clock.t += (resent?.delaySec ?? 0) * 1000;
    }
    // 30 s doubling, the upper half jittered (random 0.5 -> three quarters of the ceiling), at most 900 s.
    expect(delays).toEqual([23, 45, 90, 180, 360, 675, 675]);
    expect(w.launcher.started).toHaveLength(1);
    expect(w.cap.demand.at(-1)).toEqual({ organization: 'acme', wanted: 2, held: 1 });

    // Still at the cap (the first job's lease lives until T0 + 3600 s), a job that began waiting a lease TTL ago.
    const last = w.handle({ ...message, waitingSince: w.clock.t - 3600 * 1000 });
    await expect(last).rejects.toBeInstanceOf(PermanentError);
    await expect(last).rejects.toMatchObject({ code: 'organisation-at-cap' });
    expect(w.claims.held(42)).toBeUndefined();
    expect(w.counters.outcomes).toEqual(['dispatched']);
  });

  it('dispatches a waiting job once a slot frees', async () => {
    const w = world();
    w.cap.cap = 1;
    await w.handle(dispatchMessage({ job: job(1) }));
    await w.handle(dispatchMessage());
    const resent = w.queue.sent.at(-1)?.message as DispatchMessage;
    await w.handle(completed(1));
    expect(await w.handle(resent)).toEqual({ kind: 'dispatched', retry: 0 });
    expect(w.table.leasesOf('acme')).toEqual(['42']);
  });

  it("caps by the region's capacity over every organisation, giving the lease back", async () => {
    const w = world();
    for (let i = 1; i <= 4; i++) await w.handle(dispatchMessage({ job: job(i, `org${i}`) }));
    expect(await w.handle(dispatchMessage())).toMatchObject({ kind: 'waiting', limit: 'region' });
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.cap.demand.at(-1)).toEqual({ organization: 'acme', wanted: 1, held: 0 });
    await expect(
      w.handle({ ...dispatchMessage(), waits: 9, waitingSince: T0 - 3600 * 1000 }),
    ).rejects.toMatchObject({
      code: 'region-at-capacity',
    });
  });

  it('keeps a cap of the region capacity when the organisation cap is larger', async () => {
    const w = world();
    w.cap.cap = 100;
    for (let i = 1; i <= 4; i++) await w.handle(dispatchMessage({ job: job(i) }));
    expect(await w.handle(dispatchMessage({ job: job(5) }))).toMatchObject({
      kind: 'waiting',
      limit: 'organisation',
    });
  });

  it('bounds the wait delay: 30 s doubling, at most 900 s', () => {
    for (let waits = 0; waits < 40; waits++)
      for (const r of [0, 0.5, 0.999999]) {
        const ceiling = Math.min(WAIT_CAP_SEC, 30 * 2 ** waits);
        const delay = waitDelaySec(waits, () => r);
        expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
        expect(delay).toBeLessThanOrEqual(ceiling);
      }
  });
});

describe('dispatch: failures after the claim', () => {
  it('a permanent GitHub refusal releases the lease and the claim, counts a failure and is rethrown', async () => {
    const w = world();
    const refusal = new PermanentError('github-404', 'generate-jitconfig: GitHub answered 404');
    w.github.failure = refusal;
    await expect(w.handle(dispatchMessage(), 'msg-a')).rejects.toBe(refusal);
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.claims.held(42)).toBeUndefined();
    expect(w.counters.outcomes).toEqual(['failed']);
    expect(w.failed).toEqual([refusal]);
    expect(w.launcher.started).toHaveLength(0);
  });

  it('a transient one does the same, and the redelivered message dispatches', async () => {
    const w = world();
    w.github.failure = new RetryableError('github-unavailable', 'generate-jitconfig: GitHub answered 502');
    await expect(w.handle(dispatchMessage(), 'msg-a')).rejects.toBeInstanceOf(RetryableError);
    expect(w.table.leasesOf('acme')).toEqual([]);
    w.github.failure = undefined;
    expect(await w.handle(dispatchMessage(), 'msg-a')).toEqual({ kind: 'dispatched', retry: 0 });
    expect(w.counters.outcomes).toEqual(['failed', 'dispatched']);
  });

  it('a RunTask failure releases the lease and the claim too', async () => {
    const w = world();
    w.launcher.failure = new RetryableError('runner-task-not-placed', 'ECS placed no task: RESOURCE:MEMORY');
    await expect(w.handle(dispatchMessage())).rejects.toMatchObject({ code: 'runner-task-not-placed' });
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.claims.held(42)).toBeUndefined();
    expect(w.counters.outcomes).toEqual(['failed']);
  });

  it('a redelivery that meets its own online runner keeps the lease and claim and starts nothing', async () => {
    const w = world();
    w.github.failure = new RunnerExistsError();
    expect(await w.handle(dispatchMessage(), 'msg-a')).toEqual({ kind: 'runner-exists' });
    expect(w.table.leasesOf('acme')).toEqual(['42']);
    expect(w.claims.held(42)?.owner).toBe('msg-a');
    expect(w.counters.outcomes).toEqual([]);
  });

  it('once the task started, a failed record write is retried, then reported: the dispatch stands', async () => {
    const w = world();
    w.records.failPuts = 5;
    expect(await w.handle(dispatchMessage())).toEqual({ kind: 'dispatched', retry: 0 });
    expect(w.records.putAttempts).toBe(3);
    expect(w.steps).toEqual(['record-job']);
    expect(w.counters.outcomes).toEqual(['dispatched']);
    expect(w.queue.sent).toHaveLength(1);
  });
});

describe('dispatch: check-queued', () => {
  it('dispatches a job still queued once more, as retry 1 under its own claim, and never a third time', async () => {
    const w = world();
    await w.handle(dispatchMessage());
    const scheduled = w.queue.sent[0]?.message as QueuedCheckMessage;
    const outcome = await w.handle(scheduled, 'check-a');
    expect(outcome).toEqual({ kind: 'retried', outcome: { kind: 'dispatched', retry: 1 } });
    expect(w.github.statusRequests).toEqual([{ repository: 'acme/app', jobId: 42 }]);
    expect(w.claims.held(42, 1)?.owner).toBe('check-a');
    expect(w.github.jitRequests.map((r) => r.runnerName)).toEqual([`${EU}-42-0`, `${EU}-42-1`]);
    expect(w.launcher.started).toHaveLength(2);
    // The one lease of the job, refreshed; no second check is scheduled.
    expect(w.table.leasesOf('acme')).toEqual(['42']);
    expect(w.queue.sent).toHaveLength(1);
    // A copy of the check finds the retry's claim.
    expect(await w.handle(scheduled, 'check-b')).toEqual({ kind: 'retried', outcome: { kind: 'duplicate' } });
    // A check of a retry does nothing.
    expect(await w.handle(check({ ...dispatchMessage(), retry: 1 }))).toEqual({
      kind: 'checked',
      status: 'retried-before',
    });
    expect(w.launcher.started).toHaveLength(2);
  });

  it.each(['in_progress', 'completed', 'unknown'] as const)(
    'does nothing for a job GitHub reports %s',
    async (status) => {
      const w = world();
      w.github.status = status;
      expect(await w.handle(check())).toEqual({ kind: 'checked', status });
      expect(w.launcher.started).toHaveLength(0);
      expect(w.claims.items.size).toBe(0);
    },
  );
});

describe('dispatch: completed', () => {
  it("releases the organisation's lease and deletes the job's record, never stopping a task", async () => {
    const w = world();
    await w.handle(dispatchMessage());
    expect(w.records.items.has(42)).toBe(true);
    expect(await w.handle(completed())).toEqual({ kind: 'completed' });
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.records.items.has(42)).toBe(false);
    expect(w.launcher.started).toHaveLength(1);
    // Idempotent: a second `completed` finds nothing to release.
    expect(await w.handle(completed())).toEqual({ kind: 'completed' });
  });
});

// ------------------------------------------------------------------------------------------- ECS

class RecordingEcs {
  readonly commands: { name: string; input: RunTaskCommandInput }[] = [];
  answer: { tasks?: { taskArn?: string }[]; failures?: { arn?: string; reason?: string }[] } = {
    tasks: [{ taskArn: 'arn:aws:ecs:eu-central-1:111122223333:task/runners/abc' }],
  };
  async send(command: { constructor: { name: string }; input: RunTaskCommandInput }) {
    this.commands.push({ name: command.constructor.name, input: command.input });
    return this.answer;
  }
  asClient(): ECSClient {
    return this as unknown as ECSClient;
  }
}

function launcher(ecs: RecordingEcs) {
  return new EcsRunnerLauncher({
    ecs: ecs.asClient(),
    cluster: 'runners',
    taskDefinitions: new Map([
      ['standard', 'estate-runners-standard'],
      ['docker', 'estate-runners-docker'],
    ]),
    runnerTypes: CONFIG.runnerTypes,
    subnets: ['subnet-a', 'subnet-b'],
    securityGroup: 'sg-1',
    ec2CapacityProvider: 'runners-ec2',
  });
}

const launch = (runnerType: string): LaunchRequest => ({
  runnerType,
  jitConfig: JIT,
  environment: { RUNNER_CACHE_TOKEN: CACHE_TOKEN, RUNNER_CACHE_URL: 'https://cache' },
  jobId: 123456789012,
  organization: 'acme',
});

describe('EcsRunnerLauncher', () => {
  it('runs one task of the type: Fargate Spot, private subnets, no public IP, the JIT config in the override', async () => {
    const ecs = new RecordingEcs();
    expect(await launcher(ecs).start(launch('standard'))).toEqual({
      taskArn: 'arn:aws:ecs:eu-central-1:111122223333:task/runners/abc',
    });
    expect(ecs.commands.map((c) => c.name)).toEqual(['RunTaskCommand']);
    expect(ecs.commands[0]?.input).toEqual({
      cluster: 'runners',
      taskDefinition: 'estate-runners-standard',
      count: 1,
      capacityProviderStrategy: [{ capacityProvider: 'FARGATE_SPOT', weight: 1 }],
      networkConfiguration: {
        awsvpcConfiguration: {
          subnets: ['subnet-a', 'subnet-b'],
          securityGroups: ['sg-1'],
          assignPublicIp: 'DISABLED',
        },
      },
      overrides: {
        containerOverrides: [
          {
            name: 'runner',
            environment: [
              { name: 'RUNNER_JITCONFIG', value: JIT },
              { name: 'RUNNER_CACHE_TOKEN', value: CACHE_TOKEN },
              { name: 'RUNNER_CACHE_URL', value: 'https://cache' },
            ],
          },
        ],
      },
      startedBy: 'job-123456789012',
      enableECSManagedTags: true,
      propagateTags: 'TASK_DEFINITION',
      tags: [
        { key: 'runner-job-id', value: '123456789012' },
        { key: 'runner-organization', value: 'acme' },
        { key: 'runner-type', value: 'standard' },
      ],
    });
  });

  it('places an ec2 type on the EC2 capacity provider', async () => {
    const ecs = new RecordingEcs();
    await launcher(ecs).start(launch('docker'));
    const input = ecs.commands[0]?.input;
    expect(input?.capacityProviderStrategy).toEqual([{ capacityProvider: 'runners-ec2', weight: 1 }]);
    expect(input?.networkConfiguration?.awsvpcConfiguration?.assignPublicIp).toBeUndefined();
    expect(input?.taskDefinition).toBe('estate-runners-docker');
  });

  it('treats an answer with failures and no task as transient, with a bounded reason that names no ARN', async () => {
    const ecs = new RecordingEcs();
    ecs.answer = {
      failures: [
        { arn: 'arn:aws:ecs:eu-central-1:111122223333:container-instance/x', reason: 'RESOURCE:MEMORY' },
      ],
    };
    const failure = launcher(ecs).start(launch('standard'));
    await expect(failure).rejects.toBeInstanceOf(RetryableError);
    await expect(failure).rejects.toMatchObject({ reason: 'ECS placed no task: RESOURCE:MEMORY' });
    const reason = failureReason(`Capacity unavailable for arn:aws:ecs:x:111122223333:y ${'z'.repeat(200)}`);
    expect(reason).not.toContain('111122223333');
    expect(reason.length).toBeLessThan(120);
  });

  it('refuses a runner type without a task definition, permanently', () => {
    const ecs = new RecordingEcs();
    expect(() => launcher(ecs).input(launch('gpu'))).toThrow(PermanentError);
  });
});

// ------------------------------------------------------------------------------------------ handler

describe('parseRunnerQueueMessage', () => {
  it('reads each kind of message', () => {
    for (const message of [dispatchMessage({ waits: 2, waitingSince: T0 }), check(), completed()])
      expect(parseRunnerQueueMessage(JSON.stringify(message))).toEqual(message);
  });

  it.each([
    ['not JSON', '{', 'body: expected JSON'],
    ['an unknown kind', JSON.stringify({ ...dispatchMessage(), kind: 'stop' }), 'body.kind'],
    [
      'a missing job id',
      JSON.stringify({ ...dispatchMessage(), job: { ...job(), jobId: undefined } }),
      'body.job.jobId',
    ],
    [
      'a fractional job id',
      JSON.stringify({ ...dispatchMessage(), job: { ...job(), jobId: 1.5 } }),
      'body.job.jobId',
    ],
    [
      'an unsafe run id',
      JSON.stringify({ ...dispatchMessage(), job: { ...job(), runId: 2 ** 53 } }),
      'body.job.runId',
    ],
    ['a retry of 2', JSON.stringify({ ...dispatchMessage(), retry: 2 }), 'body.retry'],
    [
      'a login with a space',
      JSON.stringify({ ...dispatchMessage(), job: { ...job(), organization: 'a b' } }),
      'body.job.organization',
    ],
    [
      'a repository outside the organisation',
      JSON.stringify({ ...dispatchMessage(), job: { ...job(), repository: 'other/app' } }),
      'body.job.repository',
    ],
    ['a version 2', JSON.stringify({ ...dispatchMessage(), version: 2 }), 'body.version'],
    ['a check without its dispatch', JSON.stringify({ version: 1, kind: 'check-queued' }), 'body.dispatch'],
  ])('refuses %s, naming the field and never the value', (_, body, field) => {
    let error: unknown;
    try {
      parseRunnerQueueMessage(body);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(PermanentError);
    expect((error as PermanentError).code).toBe('malformed-message');
    expect((error as PermanentError).reason.startsWith(field)).toBe(true);
    expect((error as PermanentError).reason).not.toMatch(/a b|other\/app|stop/);
  });

  it('checks the queue that delivered a message against its runner type and region', () => {
    const source = { region: EU, queuePrefix: 'dev-runners', runnerTypes: ['standard', 'docker'] };
    const record = (name: string, region = EU) =>
      ({ eventSourceARN: `arn:aws:sqs:${region}:111122223333:${name}` }) as SQSRecord;
    expect(() => checkSource(record('dev-runners-standard'), dispatchMessage(), source)).not.toThrow();
    expect(() => checkSource(record('dev-runners-docker'), completed(), source)).not.toThrow();
    expect(() => checkSource(record('dev-runners-docker'), dispatchMessage(), source)).toThrow(
      PermanentError,
    );
    expect(() => checkSource(record('dev-runners-docker'), check(), source)).toThrow(PermanentError);
    expect(() => checkSource(record('dev-runners-standard', US), dispatchMessage(), source)).toThrow(
      PermanentError,
    );
    expect(() => checkSource(record('elsewhere'), completed(), source)).toThrow(PermanentError);
  });
});

class RecordingMetrics implements MetricsSink {
  readonly counts = new Map<string, number>();
  published = 0;
  addMetric(name: string, _unit: string, value: number) {
    this.counts.set(name, (this.counts.get(name) ?? 0) + value);
  }
  publishStoredMetrics() {
    this.published++;
  }
}

/** Captures every log line's text. */
function recordingLogger() {
  const lines: string[] = [];
  const log = (level: string) => (message: string, extra?: unknown) =>
    lines.push(`${level} ${message} ${JSON.stringify(extra ?? {})}`);
  const logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
  return { lines, logger: logger as unknown as Logger };
}

function sqsRecord(message: RunnerQueueMessage | string, messageId: string, receiveCount = 1): SQSRecord {
  const body = typeof message === 'string' ? message : JSON.stringify(message);
  const type =
    typeof message === 'string'
      ? 'standard'
      : message.kind === 'check-queued'
        ? message.dispatch.runnerType
        : message.kind === 'dispatch'
          ? message.runnerType
          : 'standard';
  return {
    messageId,
    receiptHandle: `rh-${messageId}`,
    body,
    attributes: {
      ApproximateReceiveCount: String(receiveCount),
      SentTimestamp: '0',
      SenderId: 'x',
      ApproximateFirstReceiveTimestamp: '0',
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: `arn:aws:sqs:${EU}:111122223333:dev-runners-${type}`,
    awsRegion: EU,
  };
}

/** The core's dependencies without the test's observer: the handler brings its own. */
function withoutObserver(deps: DispatchDeps): Omit<DispatchDeps, 'observer'> {
  const copy = { ...deps };
  delete copy.observer;
  return copy;
}

function handlerWorld() {
  const w = world();
  const sqsSent: { name: string; input: Record<string, unknown> }[] = [];
  const sqs = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      sqsSent.push({ name: command.constructor.name, input: command.input });
      return {};
    },
  } as unknown as SQSClient;
  const metrics = new RecordingMetrics();
  const { lines, logger } = recordingLogger();
  const deps = withoutObserver(w.deps);
  const handler = createDispatchHandler({
    deps,
    sqs,
    account: '111122223333',
    queuePrefix: 'dev-runners',
    deadLetterQueueUrl: 'https://sqs.eu-central-1.amazonaws.com/111122223333/dev-runners-dead-letter',
    maxReceiveCount: 5,
    logger,
    metrics,
  });
  const run = (...records: SQSRecord[]) => handler({ Records: records } as SQSEvent);
  return { w, sqsSent, metrics, lines, run };
}

describe('the dispatcher handler', () => {
  it('counts each outcome, logs with the correlation id and never a secret', async () => {
    const h = handlerWorld();
    h.w.cap.cap = 1;
    const response = await h.run(
      sqsRecord(dispatchMessage({ job: job(1) }), 'a'),
      sqsRecord(dispatchMessage({ job: job(1) }), 'b'),
    );
    expect(response).toEqual({ batchItemFailures: [] });
    await h.run(sqsRecord(dispatchMessage({ job: job(2) }), 'c'));
    await h.run(sqsRecord(check(dispatchMessage({ job: job(1) })), 'd'));
    expect(Object.fromEntries(h.metrics.counts)).toEqual({
      Dispatched: 2,
      Duplicates: 1,
      Waits: 1,
      Retried: 1,
    });
    expect(h.metrics.published).toBe(3);
    expect(h.lines.some((l) => l.includes('"correlationId":"corr-1"'))).toBe(true);
    for (const line of h.lines) {
      expect(line).not.toContain(JIT);
      expect(line).not.toContain(CACHE_TOKEN);
      expect(line).not.toContain('arn:aws');
    }
  });

  it('dead-letters a malformed body with the field in its reason, and a permanent dispatch failure with its code', async () => {
    const h = handlerWorld();
    h.w.github.failure = new PermanentError('github-404', 'generate-jitconfig: GitHub answered 404');
    const response = await h.run(
      sqsRecord('{"version":1,"kind":"dispatch"}', 'bad'),
      sqsRecord(dispatchMessage(), 'refused'),
    );
    expect(response).toEqual({ batchItemFailures: [] });
    const deadLettered = h.sqsSent.filter((c) => c.name === 'SendMessageCommand');
    expect(deadLettered).toHaveLength(2);
    const reasons = deadLettered.map(
      (c) => (c.input.MessageAttributes as Record<string, { StringValue: string }>).reasonCode?.StringValue,
    );
    expect(reasons.sort()).toEqual(['github-404', 'malformed-message']);
    expect(Object.fromEntries(h.metrics.counts)).toEqual({ DeadLettered: 2, DispatchFailed: 1 });
  });

  it('redelivers a transient failure with a backoff on the queue it came from', async () => {
    const h = handlerWorld();
    h.w.launcher.failure = new RetryableError('runner-task-not-placed', 'ECS placed no task: RESOURCE:CPU');
    const response = await h.run(sqsRecord(dispatchMessage(), 'x'));
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: 'x' }] });
    const backoff = h.sqsSent.find((c) => c.name === 'ChangeMessageVisibilityCommand');
    expect(backoff?.input.QueueUrl).toBe(
      'https://sqs.eu-central-1.amazonaws.com/111122223333/dev-runners-standard',
    );
    expect(Object.fromEntries(h.metrics.counts)).toEqual({ Redelivered: 1, DispatchFailed: 1 });
  });

  it('sends the dead-letter queue a job that waited past the lease TTL, with the reason organisation-at-cap', async () => {
    const h = handlerWorld();
    h.w.cap.cap = 0;
    h.w.clock.t = T0 + 3600 * 1000;
    await h.run(sqsRecord(dispatchMessage({ waits: 8, waitingSince: T0 }), 'late'));
    const deadLettered = h.sqsSent.find((c) => c.name === 'SendMessageCommand');
    expect(
      (deadLettered?.input.MessageAttributes as Record<string, { StringValue: string }>).reasonCode
        ?.StringValue,
    ).toBe('organisation-at-cap');
  });

  it('never stops a task: completed through the real ECS launcher sends ECS nothing at all', async () => {
    const h = handlerWorld();
    const ecs = new RecordingEcs();
    const deps = withoutObserver(h.w.deps);
    const handler = createDispatchHandler({
      deps: { ...deps, launcher: launcher(ecs) },
      sqs: { send: async () => ({}) } as unknown as SQSClient,
      account: '111122223333',
      queuePrefix: 'dev-runners',
      deadLetterQueueUrl: 'https://sqs/dlq',
      maxReceiveCount: 5,
      logger: recordingLogger().logger,
      metrics: new RecordingMetrics(),
    });
    await handler({ Records: [sqsRecord(dispatchMessage(), 'a')] } as SQSEvent);
    await handler({ Records: [sqsRecord(completed(), 'b')] } as SQSEvent);
    expect(ecs.commands.map((c) => c.name)).toEqual(['RunTaskCommand']);
    expect(h.w.table.leasesOf('acme')).toEqual([]);
  });
});

describe('loadDispatcherSettings', () => {
  const env = (overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv => ({
    AWS_REGION: EU,
    ACCOUNT_ID: '111122223333',
    RUNNERS_CONFIG: JSON.stringify({
      regions: [{ region: EU, priority: 1, capacity: 4 }],
      runnerTypes: [
        { name: 'standard', labels: ['self-hosted'], launch: 'fargate' },
        { name: 'docker', labels: ['self-hosted', 'docker'], launch: 'ec2', runnerGroup: 'docker-trusted' },
      ],
    }),
    STATE_TABLE: 'state',
    WORKFLOWS_TABLE: 'workflows',
    RUNNER_QUEUE_PREFIX: 'dev-runners',
    RUNNER_DEAD_LETTER_QUEUE_URL:
      'https://sqs.eu-central-1.amazonaws.com/111122223333/dev-runners-dead-letter',
    RUNNER_MAX_RECEIVE_COUNT: '5',
    ECS_CLUSTER: 'runners',
    TASK_DEFINITIONS: JSON.stringify({ standard: 'dev-runners-standard', docker: 'dev-runners-docker' }),
    RUNNER_SUBNETS: 'subnet-0a,subnet-0b',
    RUNNER_SECURITY_GROUP: 'sg-0c',
    EC2_CAPACITY_PROVIDER: 'runners-ec2',
    GITHUB_APP_SECRET_ID: 'github-app',
    RUNNER_CACHE_URL: 'https://cache.example.com',
    CACHE_TOKEN_SECRET_ID: 'cache-key',
    ...overrides,
  });

  it('reads the settings, with defaults', () => {
    const settings = loadDispatcherSettings(env());
    expect(settings).toMatchObject({
      region: EU,
      subnets: ['subnet-0a', 'subnet-0b'],
      githubApiUrl: 'https://api.github.com',
      runnerGroupId: 1,
      containerName: 'runner',
      ec2CapacityProvider: 'runners-ec2',
    });
    expect(settings.taskDefinitions.get('docker')).toBe('dev-runners-docker');
    expect(settings.quota).toBeUndefined();
  });

  it('names every bad setting at once, quoting no value', () => {
    let error: unknown;
    try {
      loadDispatcherSettings(
        env({ ACCOUNT_ID: 'secret-ish-123', RUNNER_SUBNETS: 'nope', RUNNER_MAX_RECEIVE_COUNT: '0' }),
      );
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(HandlerConfigError);
    const problems = (error as HandlerConfigError).problems.join('\n');
    expect(problems).toMatch(/ACCOUNT_ID/);
    expect(problems).toMatch(/RUNNER_SUBNETS/);
    expect(problems).toMatch(/RUNNER_MAX_RECEIVE_COUNT/);
    expect(problems).not.toContain('secret-ish-123');
  });

  it('asks for the task definitions of every type, the EC2 provider and the quota settings when they are needed', () => {
    const config = JSON.stringify({
      regions: [{ region: EU, priority: 1, capacity: 4 }],
      runnerTypes: [{ name: 'docker', labels: ['docker'], launch: 'ec2', runnerGroup: 'docker-trusted' }],
      concurrencyResource: 'runners',
    });
    expect(() =>
      loadDispatcherSettings(
        env({ RUNNERS_CONFIG: config, TASK_DEFINITIONS: '{}', EC2_CAPACITY_PROVIDER: undefined }),
      ),
    ).toThrow(/TASK_DEFINITIONS[\s\S]*EC2_CAPACITY_PROVIDER[\s\S]*QUOTA_TABLE_NAME/);
    const quota = JSON.stringify({
      windowSec: 60,
      activationDelayMs: 2100,
      regions: [{ region: EU, weight: 1 }],
      resources: [{ name: 'runners', limit: 40_000, burstSec: 1, floors: [] }],
    });
    const settings = loadDispatcherSettings(
      env({ RUNNERS_CONFIG: config, QUOTA_TABLE_NAME: 'quota', QUOTA_CONFIG: quota }),
    );
    expect(settings.quota?.tableName).toBe('quota');
    expect(() =>
      loadDispatcherSettings(
        env({
          RUNNERS_CONFIG: config,
          QUOTA_TABLE_NAME: 'quota',
          QUOTA_CONFIG: quota.replace('"runners"', '"other"'),
        }),
      ),
    ).toThrow(/concurrencyResource/);
  });
});
