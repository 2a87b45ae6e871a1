import type { Logger } from '@aws-lambda-powertools/logger';
import type { ECSClient, RunTaskCommandInput } from '@aws-sdk/client-ecs';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { HandlerConfigError } from '../../runtime/lib/config';
import { captureOutput } from '../../runtime/lib/leak-check';
import { createLogger } from '../../runtime/lib/logger';
import { PermanentError, RetryableError } from '../../runtime/lib/failures';
import { parseRunnerConfig } from '../../runtime/runners/config';
import {
  APPROVAL_WAIT_MAX_SEC,
  claimSlot,
  handleRunnerMessage,
  MAX_REROUTES,
  REROUTE_SETTLE_SEC,
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
  type JobRecordState,
  type LaunchRequest,
  type QueueSender,
  type RegionFailover,
  type Retry,
  type RunnerLauncher,
} from '../../runtime/runners/dispatch';
import {
  createDispatchHandler,
  loadDispatcherSettings,
  type MetricsSink,
} from '../../runtime/runners/dispatcher/handler';
import {
  EcsRunnerLauncher,
  failureReason,
  MAX_OVERRIDES_CHARS,
  OverridesTooLargeError,
} from '../../runtime/runners/ecs-launcher';
import { checkSource, parseRunnerQueueMessage } from '../../runtime/runners/messages';
import { createRouterHandler } from '../../runtime/runners/router/handler';
import {
  RunnerLeases,
  type LeaseState,
  type LeaseTable,
  type LeaseWrite,
} from '../../runtime/runners/leases';
import {
  MAX_JOB_LABELS,
  MAX_LABEL_CHARS,
  type CompletedMessage,
  type DispatchMessage,
  type QueuedCheckMessage,
  type RegionStatus,
  type RegionView,
  type RunnerQueueMessage,
} from '../../runtime/runners/model';
import { handlerDeps, jobPayload, routerWorld, staticSecrets, webhookEvent } from '../support/runners-fakes';

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

type StoredJob = JobRecord | { region: string; runnerType?: string; firstRegion?: string } | 'tombstone';

class MemoryRecords implements JobRecords {
  readonly items = new Map<number, StoredJob>();
  failPuts = 0;
  putAttempts = 0;
  /** Plays the router: its tombstone lands between the task starting and the record write. */
  beforePut: ((jobId: number) => void) | undefined;
  async get(jobId: number): Promise<JobRecordState | undefined> {
    const item = this.items.get(jobId);
    if (item === undefined) return undefined;
    if (item === 'tombstone') return { kind: 'over' };
    return {
      kind: 'dispatched',
      region: item.region,
      ...(item.runnerType ? { runnerType: item.runnerType } : {}),
      ...(item.firstRegion ? { firstRegion: item.firstRegion } : {}),
    };
  }
  async put(record: JobRecord): Promise<'written' | 'over'> {
    this.putAttempts++;
    if (this.failPuts-- > 0) throw Object.assign(new Error('throttled'), { name: 'ThrottlingException' });
    this.beforePut?.(record.jobId);
    if (this.items.get(record.jobId) === 'tombstone') return 'over';
    this.items.set(record.jobId, record);
    return 'written';
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
  /** What recordDemand answers (false: the limiter item stayed contended). */
  recorded = true;
  readonly demand: { organization: string; wanted: number; held: number }[] = [];
  async capOf() {
    return this.cap;
  }
  async recordDemand(organization: string, level: { wanted: number; held: number }) {
    this.demand.push({ organization, ...level });
    return this.recorded;
  }
}

class FakeGitHub implements GitHubRunners {
  readonly jitRequests: JitRequest[] = [];
  readonly statusRequests: { repository: string; jobId: number }[] = [];
  /** Every call in order: `status` or `jit`. */
  readonly calls: string[] = [];
  failure: Error | undefined;
  statusFailure: Error | undefined;
  status: GitHubJobStatus = 'queued';
  readonly groupRequests: { organization: string; runnerGroup: string; repository: string }[] = [];
  /** Whether the runner group admits the repository. */
  allowed = true;
  async repositoryAllowed(organization: string, runnerGroup: string, repository: string) {
    this.calls.push('group');
    this.groupRequests.push({ organization, runnerGroup, repository });
    return this.allowed;
  }
  async jitConfig(request: JitRequest) {
    this.calls.push('jit');
    this.jitRequests.push(request);
    if (this.failure) throw this.failure;
    return JIT;
  }
  async jobStatus(repository: string, jobId: number) {
    this.calls.push('status');
    this.statusRequests.push({ repository, jobId });
    if (this.statusFailure) throw this.statusFailure;
    return this.status;
  }
}

/** GitHub's rate limit as the GitHub adapter throws it: a RetryableError carrying `retryAfterSec`. */
class RateLimited extends RetryableError {
  constructor(readonly retryAfterSec: number) {
    super('github-rate-limited', `generate-jitconfig: GitHub answered 429 (rate limited)`);
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
  readonly elsewhere: {
    region: string;
    runnerType: string;
    message: RunnerQueueMessage;
    delaySec: number;
  }[] = [];
  async send(runnerType: string, message: RunnerQueueMessage, delaySec: number) {
    this.sent.push({ runnerType, message, delaySec });
  }
  async sendToRegion(region: string, runnerType: string, message: RunnerQueueMessage, delaySec: number) {
    this.elsewhere.push({ region, runnerType, message, delaySec });
  }
}

const view = (status: RegionStatus): RegionView => ({
  status,
  metrics: { queueDepth: 0, inUse: 0, capacity: 4, dispatched: 0, failed: 0 },
  spilling: new Set(),
});

/** This region's status and every region's view, as the test sets them. */
class FakeFailover implements RegionFailover {
  own: RegionStatus = 'active';
  statusFailure: Error | undefined;
  regions = new Map<string, RegionView>([
    [EU, view('active')],
    [US, view('active')],
  ]);
  viewReads = 0;
  async status() {
    if (this.statusFailure) throw this.statusFailure;
    return this.own;
  }
  async views() {
    this.viewReads++;
    return this.regions;
  }
  /** This region drained (or out), the other regions as given. */
  set(own: RegionStatus, others: RegionStatus = 'active') {
    this.own = own;
    this.regions = new Map([
      [EU, view(own)],
      [US, view(others)],
    ]);
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
  const failover = new FakeFailover();
  const failed: unknown[] = [];
  const regional: boolean[] = [];
  const steps: string[] = [];
  const notes = { demandNotRecorded: 0, rerouteLimited: [] as RegionStatus[] };
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
    failover,
    cacheTokens,
    cacheUrl: 'https://cache.eu.example.com',
    observer: {
      dispatchFailed: (error, counted) => {
        failed.push(error);
        regional.push(counted);
      },
      stepFailed: (step) => steps.push(step),
      demandNotRecorded: () => notes.demandNotRecorded++,
      rerouteLimited: (status) => notes.rerouteLimited.push(status),
    },
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
    failover,
    failed,
    regional,
    steps,
    notes,
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
      {
        organization: 'acme',
        runnerName: `${EU}-42-0`,
        labels: ['self-hosted', 'linux'],
        runnerGroup: 'Default',
      },
    ]);
    // The job's status first: a runner is only started for a job GitHub still has queued.
    expect(w.github.calls).toEqual(['status', 'jit']);
    expect(w.github.statusRequests).toEqual([{ repository: 'acme/app', jobId: 42 }]);
    expect(w.launcher.started).toEqual([
      {
        runnerType: 'standard',
        jitConfig: JIT,
        environment: { RUNNER_CACHE_TOKEN: CACHE_TOKEN, RUNNER_CACHE_URL: 'https://cache.eu.example.com' },
        jobId: 42,
        retry: 0,
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
  it("a permanent GitHub refusal releases the lease and the claim and is rethrown, never counted toward the region's error rate", async () => {
    const w = world();
    const refusal = new PermanentError('github-404', 'generate-jitconfig: GitHub answered 404');
    w.github.failure = refusal;
    await expect(w.handle(dispatchMessage(), 'msg-a')).rejects.toBe(refusal);
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.claims.held(42)).toBeUndefined();
    // The tenant's App or permissions say nothing about the region: no `failed` dispatch for spillover.
    expect(w.counters.outcomes).toEqual([]);
    expect(w.failed).toEqual([refusal]);
    expect(w.regional).toEqual([false]);
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
    expect(w.regional).toEqual([true]);
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
    // One look at GitHub per dispatch: the check's look serves its retry.
    expect(w.github.statusRequests).toEqual([
      { repository: 'acme/app', jobId: 42 },
      { repository: 'acme/app', jobId: 42 },
    ]);
    expect(w.claims.held(42, 1)?.owner).toBe('check-a');
    expect(w.github.jitRequests.map((r) => r.runnerName)).toEqual([`${EU}-42-0`, `${EU}-42-1`]);
    expect(w.launcher.started).toHaveLength(2);
    // Each runner holds its own lease; no second check is scheduled.
    expect(w.table.leasesOf('acme')).toEqual(['42', '42:1']);
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

// ------------------------------------------------------------------------------ review of issue 12

describe('dispatch: the job must still be queued at GitHub before a runner starts', () => {
  it.each(['in_progress', 'completed'] as const)(
    'a job GitHub reports %s starts nothing: lease and claim released, no JIT config',
    async (status) => {
      const w = world();
      w.github.status = status;
      expect(await w.handle(dispatchMessage(), 'msg-a')).toEqual({ kind: 'not-queued', status });
      expect(w.github.calls).toEqual(['status']);
      expect(w.launcher.started).toHaveLength(0);
      expect(w.table.leasesOf('acme')).toEqual([]);
      expect(w.claims.held(42)).toBeUndefined();
      expect(w.counters.outcomes).toEqual([]);
      expect(w.queue.sent).toEqual([]);
      expect(w.records.items.has(42)).toBe(false);
    },
  );

  it("keeps a lease held before the message (an earlier delivery's runner took the job) when GitHub says it runs", async () => {
    const w = world();
    expect(await w.handle(dispatchMessage(), 'msg-a')).toEqual({ kind: 'dispatched', retry: 0 });
    // The same message again (its acknowledgement was lost): its runner took the job meanwhile.
    w.github.status = 'in_progress';
    expect(await w.handle(dispatchMessage(), 'msg-a')).toEqual({ kind: 'not-queued', status: 'in_progress' });
    expect(w.table.leasesOf('acme')).toEqual(['42']);
    expect(w.claims.held(42)?.owner).toBe('msg-a');
    expect(w.launcher.started).toHaveLength(1);
  });

  it('a status this code does not know dispatches (the job came from a queued delivery), said in the outcome', async () => {
    const w = world();
    w.github.status = 'unknown';
    expect(await w.handle(dispatchMessage())).toEqual({ kind: 'dispatched', retry: 0, statusUnknown: true });
    expect(w.launcher.started).toHaveLength(1);
  });

  it('a transient failure of the status look is transient: released, counted for the region, rethrown', async () => {
    const w = world();
    w.github.statusFailure = new RetryableError('github-unavailable', 'get-job: GitHub answered 502');
    await expect(w.handle(dispatchMessage(), 'msg-a')).rejects.toMatchObject({ code: 'github-unavailable' });
    expect(w.github.calls).toEqual(['status']);
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.claims.held(42)).toBeUndefined();
    expect(w.counters.outcomes).toEqual(['failed']);
    expect(w.regional).toEqual([true]);
  });

  it('a replayed body of a finished job starts nothing', async () => {
    const w = world();
    await w.handle(dispatchMessage(), 'msg-a');
    await w.handle(completed());
    // Replayed once the job's claim has expired (a copy within it finds the claim).
    w.clock.t += 3601 * 1000;
    w.github.status = 'completed';
    expect(await w.handle(dispatchMessage(), 'replayed')).toEqual({
      kind: 'not-queued',
      status: 'completed',
    });
    expect(w.launcher.started).toHaveLength(1);
    expect(w.table.leasesOf('acme')).toEqual([]);
  });
});

describe("dispatch: the router's tombstone (a completed before a record existed)", () => {
  it('is read as the job being over: nothing starts, its leases here and the claim are released', async () => {
    const w = world();
    // A lease of the job left by an earlier delivery that failed after taking it.
    await w.deps.leases.acquire('acme', '42', 4, 3600);
    w.records.items.set(42, 'tombstone');
    expect(await w.handle(dispatchMessage(), 'msg-a')).toEqual({ kind: 'job-over' });
    expect(w.github.calls).toEqual([]);
    expect(w.launcher.started).toHaveLength(0);
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.claims.held(42)).toBeUndefined();
    expect(w.records.items.get(42)).toBe('tombstone');
  });

  it('written while the runner starts, is never overwritten: the dispatch reports the orphan, releases and schedules no check', async () => {
    const w = world();
    w.records.beforePut = (jobId) => w.records.items.set(jobId, 'tombstone');
    expect(await w.handle(dispatchMessage(), 'msg-a')).toEqual({ kind: 'started-for-completed', retry: 0 });
    expect(w.launcher.started).toHaveLength(1);
    expect(w.records.items.get(42)).toBe('tombstone');
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.claims.held(42)).toBeUndefined();
    expect(w.queue.sent).toEqual([]);
    expect(w.counters.outcomes).toEqual(['dispatched']);
  });
});

describe('check-queued and completed: leases', () => {
  it("releases the job's lease when GitHub says the job completed (its completed delivery may be lost)", async () => {
    const w = world();
    await w.handle(dispatchMessage());
    expect(w.table.leasesOf('acme')).toEqual(['42']);
    w.github.status = 'completed';
    expect(await w.handle(check())).toEqual({ kind: 'checked', status: 'completed' });
    expect(w.table.leasesOf('acme')).toEqual([]);
  });

  it("releases both runners' leases of a retried job on completed", async () => {
    const w = world();
    await w.handle(dispatchMessage());
    await w.handle(check(), 'check-a');
    expect(w.table.leasesOf('acme')).toEqual(['42', '42:1']);
    await w.handle(completed());
    expect(w.table.leasesOf('acme')).toEqual([]);
  });

  it("counts the retry's runner against the region's capacity", async () => {
    const w = world();
    await w.handle(dispatchMessage());
    for (let i = 1; i <= 3; i++) await w.handle(dispatchMessage({ job: job(i, `org${i}`) }));
    // Four runners in a region of capacity 4: the retry waits for a slot.
    expect(await w.handle(check(), 'check-a')).toMatchObject({
      kind: 'retried',
      outcome: { kind: 'waiting', limit: 'region' },
    });
    expect(w.launcher.started).toHaveLength(4);
    expect(w.table.leasesOf('acme')).toEqual(['42']);
  });
});

describe('dispatch: failover of queued work from a region that takes no new jobs', () => {
  it.each(['draining', 'out'] as const)(
    'a %s region re-routes a dispatch to the chosen region, same type, ids kept, reason drained, and acknowledges',
    async (status) => {
      const w = world();
      w.failover.set(status);
      const message = dispatchMessage({ waits: 3, waitingSince: T0 - 1000 });
      expect(await w.handle(message)).toEqual({ kind: 'rerouted', region: US, status });
      expect(w.queue.elsewhere).toEqual([
        {
          region: US,
          runnerType: 'standard',
          message: { ...dispatchMessage(), region: US, reason: 'drained', reroutes: 1 },
          delaySec: 0,
        },
      ]);
      expect(w.claims.items.size).toBe(0);
      expect(w.table.leasesOf('acme')).toEqual([]);
      expect(w.github.calls).toEqual([]);
      expect(w.launcher.started).toHaveLength(0);
    },
  );

  it('keeps the job when no other region is eligible (it waits here, as routing has it)', async () => {
    const w = world();
    w.failover.set('draining', 'out');
    expect(await w.handle(dispatchMessage())).toEqual({ kind: 'dispatched', retry: 0 });
    expect(w.queue.elsewhere).toEqual([]);
  });

  it('reads no view of the other regions while this one is active', async () => {
    const w = world();
    await w.handle(dispatchMessage());
    expect(w.failover.viewReads).toBe(0);
  });

  it('dispatches here when its own status cannot be read (reported)', async () => {
    const w = world();
    w.failover.statusFailure = Object.assign(new Error('throttled'), { name: 'ThrottlingException' });
    expect(await w.handle(dispatchMessage())).toEqual({ kind: 'dispatched', retry: 0 });
    expect(w.steps).toEqual(['read-region-status']);
  });

  it('delays a job re-routed once already, so two regions whose views disagree cannot bounce it in a loop', async () => {
    const w = world();
    w.failover.set('out');
    await w.handle(dispatchMessage({ reason: 'drained' }));
    expect(w.queue.elsewhere[0]?.delaySec).toBe(REROUTE_SETTLE_SEC);
  });

  it("re-routes a check's retry; the other region runs it, keeps the first runner's region, and completed reaches both leases", async () => {
    const eu = world(EU);
    await eu.handle(dispatchMessage());
    eu.records.items.set(42, { region: EU, runnerType: 'standard' });
    eu.failover.set('draining');
    const outcome = await eu.handle(check(), 'check-a');
    expect(outcome).toEqual({
      kind: 'retried',
      outcome: { kind: 'rerouted', region: US, status: 'draining' },
    });
    const moved = eu.queue.elsewhere[0]?.message as DispatchMessage;
    expect(moved).toEqual({ ...dispatchMessage(), region: US, reason: 'drained', retry: 1, reroutes: 1 });
    expect(eu.table.leasesOf('acme')).toEqual(['42']);

    // us-east-1: the record names eu-central-1 (the first runner), which is expected for a re-routed retry.
    const us = world(US);
    us.records.items.set(42, { region: EU, runnerType: 'standard' });
    expect(await us.handle(moved, 'moved-a')).toEqual({ kind: 'dispatched', retry: 1 });
    expect(us.github.jitRequests.map((r) => r.runnerName)).toEqual([`${US}-42-1`]);
    expect(us.records.items.get(42)).toMatchObject({ region: US, firstRegion: EU });
    expect(us.table.leasesOf('acme')).toEqual(['42:1']);

    // completed reaches us-east-1 (the record's region): both leases there go, and it is forwarded to
    // eu-central-1, whose lease of the first runner goes too; eu-central-1 forwards it nowhere.
    expect(await us.handle(completed())).toEqual({ kind: 'completed', forwardedTo: EU });
    expect(us.table.leasesOf('acme')).toEqual([]);
    expect(us.queue.elsewhere).toEqual([
      { region: EU, runnerType: 'standard', message: completed(), delaySec: 0 },
    ]);
    eu.records.items.set(42, { region: US, runnerType: 'standard', firstRegion: EU });
    expect(await eu.handle(completed())).toEqual({ kind: 'completed' });
    expect(eu.table.leasesOf('acme')).toEqual([]);
    expect(eu.queue.elsewhere).toHaveLength(1);
  });

  it("still skips a first dispatch another region's record shows it ran", async () => {
    const us = world(US);
    us.records.items.set(42, { region: EU });
    expect(await us.handle(dispatchMessage({ region: US, reason: 'drained' }))).toEqual({
      kind: 'elsewhere',
    });
    expect(await us.handle(dispatchMessage({ region: US, retry: 1 }))).toEqual({ kind: 'elsewhere' });
  });
});

describe("dispatch: GitHub's rate limits", () => {
  it('re-sends the message delayed by GitHub retryAfterSec (at most 900) and acknowledges, counting no failure', async () => {
    const w = world();
    w.github.failure = new RateLimited(120);
    expect(await w.handle(dispatchMessage(), 'msg-a')).toEqual({
      kind: 'waiting',
      limit: 'github-rate-limit',
      waits: 1,
      delaySec: 120,
    });
    expect(w.queue.sent).toEqual([
      {
        runnerType: 'standard',
        message: { ...dispatchMessage(), waits: 1, waitingSince: T0 },
        delaySec: 120,
      },
    ]);
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.claims.held(42)).toBeUndefined();
    expect(w.counters.outcomes).toEqual([]);
    expect(w.failed).toEqual([]);

    w.github.failure = new RateLimited(3_600);
    expect(await w.handle(dispatchMessage())).toMatchObject({ delaySec: WAIT_CAP_SEC });
  });

  it('dead-letters a job that waited on rate limits longer than the lease TTL', async () => {
    const w = world();
    w.github.failure = new RateLimited(60);
    const late = w.handle(dispatchMessage({ waits: 30, waitingSince: T0 - 3600 * 1000 }));
    await expect(late).rejects.toBeInstanceOf(PermanentError);
    await expect(late).rejects.toMatchObject({ code: 'github-rate-limited' });
    expect(w.queue.sent).toEqual([]);
  });

  it("re-sends a check whose look at GitHub was rate limited, delayed by GitHub's delay", async () => {
    const w = world();
    w.github.statusFailure = new RateLimited(45);
    expect(await w.handle(check())).toEqual({
      kind: 'waiting',
      limit: 'github-rate-limit',
      waits: 1,
      delaySec: 45,
    });
    expect(w.queue.sent).toEqual([
      {
        runnerType: 'standard',
        message: check({ ...dispatchMessage(), waits: 1, waitingSince: T0 }),
        delaySec: 45,
      },
    ]);
    // The retry it makes later carries no wait of the check.
    w.github.statusFailure = undefined;
    await w.handle(w.queue.sent[0]?.message as QueuedCheckMessage, 'check-b');
    expect(w.queue.sent).toHaveLength(1);
    expect(w.claims.held(42, 1)?.owner).toBe('check-b');
  });
});

describe('dispatch: runner groups, overrides, demand', () => {
  it("asks GitHub for a runner in the runner type's group, by name", async () => {
    const w = world();
    await w.handle(dispatchMessage({ runnerType: 'docker' }));
    expect(w.github.jitRequests[0]).toEqual({
      organization: 'acme',
      runnerName: `${EU}-42-0`,
      labels: ['self-hosted', 'linux', 'docker'],
      runnerGroup: 'docker-trusted',
    });
  });

  it('an override ECS would refuse is permanent, releases, counts no region failure and deletes nothing at GitHub', async () => {
    const w = world();
    w.launcher.failure = new OverridesTooLargeError('runner', 9_000);
    await expect(w.handle(dispatchMessage())).rejects.toMatchObject({ code: 'runner-overrides-too-large' });
    expect(w.github.calls).toEqual(['status', 'jit']);
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.counters.outcomes).toEqual([]);
    expect(w.regional).toEqual([false]);
  });

  it('reports a demand the quota sync could not be told of (contention)', async () => {
    const w = world();
    w.cap.recorded = false;
    expect(await w.handle(dispatchMessage())).toEqual({ kind: 'dispatched', retry: 0 });
    expect(w.notes.demandNotRecorded).toBe(1);
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
  retry: 0,
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
        { key: 'runner-retry', value: '0' },
        { key: 'runner-organization', value: 'acme' },
        { key: 'runner-type', value: 'standard' },
      ],
    });
  });

  it('places an ec2 type (a bridge task) on the EC2 capacity provider, one runner per instance, with no network configuration', async () => {
    const ecs = new RecordingEcs();
    await launcher(ecs).start(launch('docker'));
    const input = ecs.commands[0]?.input;
    expect(input?.capacityProviderStrategy).toEqual([{ capacityProvider: 'runners-ec2', weight: 1 }]);
    expect(input?.taskDefinition).toBe('estate-runners-docker');
    // ECS refuses networkConfiguration for a bridge task: none is sent.
    expect(input && 'networkConfiguration' in input).toBe(false);
    expect(input?.placementConstraints).toEqual([{ type: 'distinctInstance' }]);
    // distinctInstance separates the tasks of one group: every ec2 type shares this one.
    expect(input?.group).toBe('ec2-runners');
  });

  it('keeps Fargate tasks in awsvpc without a public address, with no placement constraint', () => {
    const input = launcher(new RecordingEcs()).input(launch('standard'));
    expect(input.networkConfiguration?.awsvpcConfiguration?.assignPublicIp).toBe('DISABLED');
    expect(input.placementConstraints).toBeUndefined();
    expect(input.group).toBeUndefined();
  });

  it("refuses overrides past ECS's 8,192 characters before calling ECS, naming the container environment", async () => {
    const ecs = new RecordingEcs();
    // The rest of the override is about 230 characters of JSON: a JIT config of 7,900 fits, 8,000 does not.
    const fits = { ...launch('standard'), jitConfig: 'j'.repeat(7_900) };
    expect(JSON.stringify(launcher(ecs).input(fits).overrides).length).toBeLessThanOrEqual(
      MAX_OVERRIDES_CHARS,
    );
    const large = { ...launch('standard'), jitConfig: 'j'.repeat(8_000) };
    const refusal = launcher(ecs).start(large);
    await expect(refusal).rejects.toBeInstanceOf(OverridesTooLargeError);
    await expect(refusal).rejects.toBeInstanceOf(PermanentError);
    await expect(refusal).rejects.toMatchObject({
      code: 'runner-overrides-too-large',
      reason: expect.stringMatching(
        /^overrides\.containerOverrides\.runner\.environment: expected at most 8192/,
      ),
    });
    await expect(refusal).rejects.not.toMatchObject({ reason: expect.stringContaining('jjjj') });
    expect(ecs.commands).toEqual([]);
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

  it('bounds labels as the router does: MAX_JOB_LABELS of MAX_LABEL_CHARS characters', () => {
    const withLabels = (labels: string[]) =>
      JSON.stringify({ ...dispatchMessage(), job: { ...job(), labels } });
    const many = Array.from({ length: MAX_JOB_LABELS }, (_, i) => `label-${i}`);
    expect(parseRunnerQueueMessage(withLabels(many))).toMatchObject({ job: { labels: many } });
    expect(parseRunnerQueueMessage(withLabels(['x'.repeat(MAX_LABEL_CHARS)]))).toBeDefined();
    expect(() => parseRunnerQueueMessage(withLabels([...many, 'one-more']))).toThrow(
      /^malformed-message: body\.job\.labels: expected at most 100 labels/,
    );
    expect(() => parseRunnerQueueMessage(withLabels(['x'.repeat(MAX_LABEL_CHARS + 1)]))).toThrow(
      /body\.job\.labels\.0: expected at most 100 characters/,
    );
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

function handlerWorld(options: { logger?: Logger } = {}) {
  const w = world();
  const sqsSent: { name: string; input: Record<string, unknown> }[] = [];
  const sqs = {
    send: async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
      sqsSent.push({ name: command.constructor.name, input: command.input });
      return {};
    },
  } as unknown as SQSClient;
  const metrics = new RecordingMetrics();
  const recording = recordingLogger();
  const { lines } = recording;
  const logger = options.logger ?? recording.logger;
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
    h.w.cap.cap = 3;
    await h.run(sqsRecord(dispatchMessage({ job: job(3) }), 'e'));
    // Job 2 waits at the cap of 1; so does job 1's retry (its runner needs a lease of its own).
    expect(Object.fromEntries(h.metrics.counts)).toEqual({
      Dispatched: 2,
      Duplicates: 1,
      Waits: 2,
      Retried: 1,
    });
    expect(h.metrics.published).toBe(4);
    expect(h.lines.some((l) => l.includes('"correlation_id":"corr-1"'))).toBe(true);
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
    expect(Object.fromEntries(h.metrics.counts)).toEqual({ DeadLettered: 2, TenantFailures: 1 });
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

describe('the dispatcher handler: what the review asked to count', () => {
  const reasonCodes = (sent: { name: string; input: Record<string, unknown> }[]) =>
    sent
      .filter((c) => c.name === 'SendMessageCommand')
      .map(
        (c) => (c.input.MessageAttributes as Record<string, { StringValue: string }>).reasonCode?.StringValue,
      );

  it('counts NotQueued, CompletedBeforeDispatch and RunnerForCompletedJob, acknowledging each', async () => {
    const h = handlerWorld();
    h.w.github.status = 'in_progress';
    expect(await h.run(sqsRecord(dispatchMessage({ job: job(1) }), 'a'))).toEqual({ batchItemFailures: [] });
    h.w.records.items.set(2, 'tombstone');
    await h.run(sqsRecord(dispatchMessage({ job: job(2) }), 'b'));
    h.w.github.status = 'queued';
    h.w.records.beforePut = (jobId) => h.w.records.items.set(jobId, 'tombstone');
    await h.run(sqsRecord(dispatchMessage({ job: job(3) }), 'c'));
    expect(Object.fromEntries(h.metrics.counts)).toEqual({
      NotQueued: 1,
      CompletedBeforeDispatch: 1,
      RunnerForCompletedJob: 1,
    });
    expect(h.lines.some((l) => l.includes('"status":"in_progress"'))).toBe(true);
  });

  it('counts Rerouted and sends nothing to the dead-letter queue', async () => {
    const h = handlerWorld();
    h.w.failover.set('draining');
    expect(await h.run(sqsRecord(dispatchMessage(), 'a'))).toEqual({ batchItemFailures: [] });
    expect(Object.fromEntries(h.metrics.counts)).toEqual({ Rerouted: 1 });
    expect(h.w.queue.elsewhere.map((m) => m.region)).toEqual([US]);
    expect(h.sqsSent).toEqual([]);
    expect(h.lines.some((l) => l.includes(`"to":"${US}"`) && l.includes('"reason":"drained"'))).toBe(true);
  });

  it("acknowledges a rate-limited message after re-sending it with GitHub's delay: no redelivery, no failure counted", async () => {
    const h = handlerWorld();
    h.w.github.failure = new RateLimited(200);
    expect(await h.run(sqsRecord(dispatchMessage(), 'a'))).toEqual({ batchItemFailures: [] });
    expect(h.w.queue.sent.map((m) => m.delaySec)).toEqual([200]);
    expect(h.sqsSent).toEqual([]);
    expect(Object.fromEntries(h.metrics.counts)).toEqual({ RateLimited: 1 });
  });

  it('dead-letters an override too large with its reason and counts it apart from the region', async () => {
    const h = handlerWorld();
    h.w.launcher.failure = new OverridesTooLargeError('runner', 9_000);
    expect(await h.run(sqsRecord(dispatchMessage(), 'a'))).toEqual({ batchItemFailures: [] });
    expect(reasonCodes(h.sqsSent)).toEqual(['runner-overrides-too-large']);
    expect(Object.fromEntries(h.metrics.counts)).toEqual({ DeadLettered: 1, OverridesTooLarge: 1 });
  });

  it('counts DemandNotRecorded and logs it', async () => {
    const h = handlerWorld();
    h.w.cap.recorded = false;
    await h.run(sqsRecord(dispatchMessage(), 'a'));
    expect(h.metrics.counts.get('DemandNotRecorded')).toBe(1);
    expect(h.lines.some((l) => l.startsWith('warn') && l.includes('demand was not recorded'))).toBe(true);
  });

  it('takes a job of 100 labels the router accepted (it dead-lettered more than 50 before)', async () => {
    const h = handlerWorld();
    const labels = Array.from({ length: MAX_JOB_LABELS }, (_, i) => `l${i}`);
    const message = dispatchMessage({ job: { ...job(), labels } });
    expect(await h.run(sqsRecord(message, 'a'))).toEqual({ batchItemFailures: [] });
    expect(h.metrics.counts.get('Dispatched')).toBe(1);
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
    REGION_STATUS_TABLE: 'region-status',
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
      regionStatusTable: 'region-status',
      containerName: 'runner',
      ec2CapacityProvider: 'runners-ec2',
    });
    expect(settings.taskDefinitions.get('docker')).toBe('dev-runners-docker');
    expect(settings.quota).toBeUndefined();
  });

  it('reads the runner group from each runner type (no RUNNER_GROUP_ID), and needs the region-status table', () => {
    const settings = loadDispatcherSettings(env({ RUNNER_GROUP_ID: '7' }));
    expect(Object.keys(settings)).not.toContain('runnerGroupId');
    expect(settings.config.runnerTypes.map((t) => t.runnerGroup)).toEqual(['Default', 'docker-trusted']);
    expect(() => loadDispatcherSettings(env({ REGION_STATUS_TABLE: undefined }))).toThrow(
      /REGION_STATUS_TABLE/,
    );
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

// ------------------------------------------------------------------------------- re-review (issue 12)

describe("dispatch: a job held by an environment's approval or wait timer", () => {
  const DAY_MS = 24 * 3600 * 1000;

  it('starts nothing, releases the lease and the claim, and re-sends the job with the longest delay, counting no failure', async () => {
    const w = world();
    w.github.status = 'waiting';
    const message = dispatchMessage({ waits: 2, waitingSince: T0 - 60_000 });
    expect(await w.handle(message, 'msg-a')).toEqual({
      kind: 'awaiting-approval',
      since: T0,
      delaySec: WAIT_CAP_SEC,
    });
    expect(w.launcher.started).toEqual([]);
    expect(w.github.calls).toEqual(['status']);
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.claims.items.size).toBe(0);
    expect(w.counters.outcomes).toEqual([]);
    expect(w.failed).toEqual([]);
    // Its slot waits are over (it had a slot): only the approval wait is carried.
    expect(w.queue.sent).toEqual([
      {
        runnerType: 'standard',
        message: { ...dispatchMessage(), approvalSince: T0 },
        delaySec: WAIT_CAP_SEC,
      },
    ]);
  });

  it('keeps the first time it was seen waiting, and dispatches once GitHub says queued (the check carries no approval wait)', async () => {
    const w = world();
    w.github.status = 'waiting';
    await w.handle(dispatchMessage());
    w.clock.t += 900_000;
    const again = w.queue.sent[0]?.message as DispatchMessage;
    expect(await w.handle(again)).toEqual({ kind: 'awaiting-approval', since: T0, delaySec: WAIT_CAP_SEC });
    w.github.status = 'queued';
    expect(await w.handle(w.queue.sent[1]?.message as DispatchMessage)).toEqual({
      kind: 'dispatched',
      retry: 0,
    });
    expect(w.launcher.started).toHaveLength(1);
    expect(w.queue.sent[2]).toEqual({
      runnerType: 'standard',
      message: check(dispatchMessage()),
      delaySec: 600,
    });
  });

  it('stops when GitHub says anything else once approved or rejected', async () => {
    const w = world();
    w.github.status = 'completed';
    expect(await w.handle(dispatchMessage({ approvalSince: T0 - DAY_MS }))).toEqual({
      kind: 'not-queued',
      status: 'completed',
    });
    expect(w.queue.sent).toEqual([]);
  });

  it('dead-letters a job that waited 30 days (approval-wait-exceeded), released, not counted for the region', async () => {
    const w = world();
    w.github.status = 'waiting';
    const old = dispatchMessage({ approvalSince: T0 - APPROVAL_WAIT_MAX_SEC * 1000 + 1 });
    expect(await w.handle(old)).toMatchObject({ kind: 'awaiting-approval' });
    await expect(w.handle(dispatchMessage({ approvalSince: T0 - 30 * DAY_MS }))).rejects.toMatchObject({
      code: 'approval-wait-exceeded',
    });
    expect(w.table.leasesOf('acme')).toEqual([]);
    expect(w.claims.items.size).toBe(0);
    expect(w.counters.outcomes).toEqual([]);
    expect(w.regional).toEqual([false]);
    expect(w.queue.sent).toHaveLength(1);
  });

  it('a check-queued look that finds the job waiting looks again later, bounded the same way', async () => {
    const w = world();
    w.github.status = 'waiting';
    expect(await w.handle(check())).toEqual({
      kind: 'awaiting-approval',
      since: T0,
      delaySec: WAIT_CAP_SEC,
    });
    expect(w.launcher.started).toEqual([]);
    expect(w.queue.sent).toEqual([
      {
        runnerType: 'standard',
        message: check(dispatchMessage({ approvalSince: T0 })),
        delaySec: WAIT_CAP_SEC,
      },
    ]);
    w.github.status = 'queued';
    expect(await w.handle(w.queue.sent[0]?.message as QueuedCheckMessage)).toEqual({
      kind: 'retried',
      outcome: { kind: 'dispatched', retry: 1 },
    });
    w.github.status = 'waiting';
    await expect(w.handle(check(dispatchMessage({ approvalSince: T0 - 30 * DAY_MS })))).rejects.toMatchObject(
      { code: 'approval-wait-exceeded' },
    );
  });

  it('the handler counts AwaitingApproval, acknowledges, and dead-letters a wait past 30 days with its reason', async () => {
    const h = handlerWorld();
    h.w.github.status = 'waiting';
    expect(await h.run(sqsRecord(dispatchMessage({ job: job(1) }), 'a'))).toEqual({ batchItemFailures: [] });
    expect(h.sqsSent).toEqual([]);
    expect(Object.fromEntries(h.metrics.counts)).toEqual({ AwaitingApproval: 1 });
    await h.run(sqsRecord(dispatchMessage({ job: job(2), approvalSince: T0 - 30 * DAY_MS }), 'b'));
    const codes = h.sqsSent
      .filter((c) => c.name === 'SendMessageCommand')
      .map(
        (c) => (c.input.MessageAttributes as Record<string, { StringValue: string }>).reasonCode?.StringValue,
      );
    expect(codes).toEqual(['approval-wait-exceeded']);
    expect(h.metrics.counts.get('DispatchFailed')).toBeUndefined();
  });

  it('parses the approval wait and the hops a message carries', () => {
    const message = dispatchMessage({ approvalSince: T0, reroutes: 2 });
    expect(parseRunnerQueueMessage(JSON.stringify(message))).toEqual(message);
  });
});

describe("dispatch: a repository outside the runner type's group", () => {
  it('is acknowledged before a lease: no status look, no JIT config, no task, the claim released', async () => {
    const w = world();
    w.github.allowed = false;
    expect(await w.handle(dispatchMessage({ runnerType: 'docker' }))).toEqual({
      kind: 'not-in-runner-group',
      runnerGroup: 'docker-trusted',
    });
    expect(w.github.calls).toEqual(['group']);
    expect(w.github.groupRequests).toEqual([
      { organization: 'acme', runnerGroup: 'docker-trusted', repository: 'acme/app' },
    ]);
    expect(w.table.items.size).toBe(0);
    expect(w.cap.demand).toEqual([]);
    expect(w.claims.items.size).toBe(0);
    expect(w.launcher.started).toEqual([]);
    expect(w.counters.outcomes).toEqual([]);
  });

  it('is checked only for a group other than Default, and an admitted repository dispatches', async () => {
    const w = world();
    await w.handle(dispatchMessage({ job: job(1) }));
    expect(w.github.calls).toEqual(['status', 'jit']);
    await w.handle(dispatchMessage({ job: job(2), runnerType: 'docker' }));
    expect(w.github.calls.slice(2)).toEqual(['group', 'status', 'jit']);
  });

  it('the handler counts NotInRunnerGroup and logs the repository and the group, dead-lettering nothing', async () => {
    const h = handlerWorld();
    h.w.github.allowed = false;
    expect(await h.run(sqsRecord(dispatchMessage({ runnerType: 'docker' }), 'a'))).toEqual({
      batchItemFailures: [],
    });
    expect(h.sqsSent).toEqual([]);
    expect(Object.fromEntries(h.metrics.counts)).toEqual({ NotInRunnerGroup: 1 });
    expect(
      h.lines.some(
        (l) => l.includes('"repository":"acme/app"') && l.includes('"runnerGroup":"docker-trusted"'),
      ),
    ).toBe(true);
  });
});

describe('dispatch: re-route hops', () => {
  it(`counts each hop, and dispatches here a job re-routed ${MAX_REROUTES} times already`, async () => {
    const w = world();
    w.failover.set('draining');
    expect(await w.handle(dispatchMessage({ reason: 'drained', reroutes: 1 }))).toMatchObject({
      kind: 'rerouted',
    });
    expect(w.queue.elsewhere[0]?.message).toMatchObject({ reroutes: 2 });
    expect(await w.handle(dispatchMessage({ reason: 'drained', reroutes: 2 }))).toEqual({
      kind: 'dispatched',
      retry: 0,
    });
    expect(w.queue.elsewhere).toHaveLength(1);
    expect(w.notes.rerouteLimited).toEqual(['draining']);
  });

  it('the handler counts RerouteLimit', async () => {
    const h = handlerWorld();
    h.w.failover.set('out');
    await h.run(sqsRecord(dispatchMessage({ reason: 'drained', reroutes: 2 }), 'a'));
    expect(Object.fromEntries(h.metrics.counts)).toEqual({ RerouteLimit: 1, Dispatched: 1 });
  });
});

describe("dispatch: lease contention is not the region's failure", () => {
  it('is rethrown (redelivered) and released, never counted toward the error rate', async () => {
    const w = world();
    w.table.write = async () => false;
    await expect(w.handle(dispatchMessage())).rejects.toMatchObject({ code: 'lease-contention' });
    expect(w.counters.outcomes).toEqual([]);
    expect(w.regional).toEqual([false]);
    expect(w.claims.items.size).toBe(0);
  });

  it('the handler counts LeaseContention, not DispatchFailed or TenantFailures, and redelivers', async () => {
    const h = handlerWorld();
    h.w.table.write = async () => false;
    const response = await h.run(sqsRecord(dispatchMessage(), 'a'));
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: 'a' }]);
    expect(Object.fromEntries(h.metrics.counts)).toEqual({ LeaseContention: 1, Redelivered: 1 });
  });
});

describe('EcsRunnerLauncher: two ec2 types', () => {
  it('puts every ec2 type in one task group, so distinctInstance keeps them on different instances', () => {
    const config = parseRunnerConfig({
      regions: [{ region: EU, priority: 1, capacity: 4 }],
      runnerTypes: [
        { name: 'docker', labels: ['self-hosted', 'docker'], launch: 'ec2', runnerGroup: 'docker-trusted' },
        { name: 'gpu', labels: ['self-hosted', 'gpu'], launch: 'ec2', runnerGroup: 'gpu-trusted' },
      ],
    });
    const ecs = new EcsRunnerLauncher({
      ecs: new RecordingEcs().asClient(),
      cluster: 'runners',
      taskDefinitions: new Map([
        ['docker', 'estate-runners-docker'],
        ['gpu', 'estate-runners-gpu'],
      ]),
      runnerTypes: config.runnerTypes,
      subnets: ['subnet-a'],
      securityGroup: 'sg-1',
      ec2CapacityProvider: 'runners-ec2',
    });
    const groups = ['docker', 'gpu'].map((type) => ecs.input(launch(type)));
    expect(groups.map((i) => i.group)).toEqual(['ec2-runners', 'ec2-runners']);
    expect(groups.map((i) => i.placementConstraints)).toEqual([
      [{ type: 'distinctInstance' }],
      [{ type: 'distinctInstance' }],
    ]);
  });
});

// ------------------------------------------------------------------------------- correlation in logs

/** The structured log lines (Powertools' JSON) in what the process wrote, EMF metric lines left out. */
function logLines(output: readonly string[]): Record<string, unknown>[] {
  return output
    .join('')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => typeof line.level === 'string' && typeof line.message === 'string');
}

/** Runs `fn` recording what the process writes (Powertools' loggers included). */
async function captured(fn: () => Promise<unknown>): Promise<string[]> {
  const output = captureOutput();
  try {
    await fn();
  } finally {
    output.restore();
  }
  return output.lines;
}

const withAttribute = (record: SQSRecord, correlationId: unknown): SQSRecord =>
  ({
    ...record,
    messageAttributes: { correlationId: { dataType: 'String', stringValue: correlationId } },
  }) as unknown as SQSRecord;

describe('correlation ids from the webhook to the dispatch (structured JSON logs)', () => {
  const DELIVERY = '5d1b0a9e-3c4f-4e21-9b7a-0c2d4e6f8a10';

  it('gives every line the router and the dispatcher write of one webhook the delivery id as correlation_id', async () => {
    const routerSide = routerWorld();
    const route = createRouterHandler(handlerDeps(routerSide, EU, staticSecrets('s'), 'powertools'));
    const h = handlerWorld({ logger: createLogger('runner-dispatcher') });
    // The first delivery of the message fails transiently (redelivered), the second dispatches.
    h.w.launcher.failure = new RetryableError('runner-task-not-placed', 'ECS placed no task: RESOURCE:CPU');
    const lines = logLines(
      await captured(async () => {
        const response = await route(
          webhookEvent(JSON.stringify(jobPayload('queued')), 's', { deliveryId: DELIVERY }),
        );
        expect(response.statusCode).toBe(202);
        const [sent] = routerSide.queues.sent;
        expect(sent?.message).toMatchObject({ kind: 'dispatch', correlationId: DELIVERY });
        const message = sent?.message as RunnerQueueMessage;
        expect(await h.run(sqsRecord(message, 'm-1'))).toEqual({
          batchItemFailures: [{ itemIdentifier: 'm-1' }],
        });
        h.w.launcher.failure = undefined;
        expect(await h.run(sqsRecord(message, 'm-1', 2))).toEqual({ batchItemFailures: [] });
      }),
    );
    const of = (service: string) => lines.filter((line) => line.service === service);
    expect(of('runner-router').map((line) => line.message)).toEqual(['job routed', 'delivery handled']);
    expect(of('runner-dispatcher').map((line) => line.message)).toEqual([
      'dispatch failed; lease and claim released',
      'message will be redelivered',
      'runner dispatched',
    ]);
    for (const line of [...of('runner-router'), ...of('runner-dispatcher')])
      expect(line).toMatchObject({ correlation_id: DELIVERY });
    expect(lines.filter((line) => !('correlation_id' in line))).toEqual([]);
    expect(lines.some((line) => 'correlationId' in line)).toBe(false);
  });

  it("keeps each record's id on its own lines in a batch processed at once, and none on the next batch", async () => {
    const h = handlerWorld();
    h.w.github.failure = new PermanentError('github-404', 'generate-jitconfig: GitHub answered 404');
    await h.run(
      sqsRecord(dispatchMessage({ job: job(1), correlationId: 'corr-a' }), 'a'),
      sqsRecord(dispatchMessage({ job: job(2), correlationId: 'corr-b' }), 'b'),
    );
    const byRecord = (id: string) => h.lines.filter((l) => l.includes(`"correlation_id":"${id}"`));
    expect(byRecord('corr-a')).toHaveLength(2); // dispatch failed, dead-lettered
    expect(byRecord('corr-b')).toHaveLength(2);
    expect(byRecord('corr-a').every((l) => !l.includes('corr-b'))).toBe(true);
    expect(h.lines.filter((l) => l.includes('message dead-lettered'))).toHaveLength(2);
    expect(h.lines.every((l) => l.includes('"correlation_id"'))).toBe(true);
    // The next batch's unreadable body has no id of its own: nothing of the last batch is carried over.
    h.lines.length = 0;
    await h.run(sqsRecord('{"version":1,"kind":"dispatch"}', 'a'));
    expect(h.lines.filter((l) => l.includes('message dead-lettered'))).toHaveLength(1);
    expect(h.lines.some((l) => l.includes('correlation_id'))).toBe(false);
  });

  it("traces a body it cannot read by the router's correlationId attribute, when that is well-formed", async () => {
    const h = handlerWorld();
    await h.run(
      withAttribute(sqsRecord('{"version":1,"kind":"dispatch"}', 'bad'), DELIVERY),
      withAttribute(sqsRecord('not json', 'huge'), 'x'.repeat(100_000)),
      withAttribute(sqsRecord('not json', 'number'), 42),
      withAttribute(sqsRecord('not json', 'object'), { toString: () => DELIVERY }),
      {
        ...sqsRecord('not json', 'proto'),
        messageAttributes: JSON.parse(
          `{"__proto__":{"correlationId":{"dataType":"String","stringValue":"${DELIVERY}"}}}`,
        ) as SQSRecord['messageAttributes'],
      },
      {
        ...sqsRecord('not json', 'inherited'),
        messageAttributes: Object.create({
          correlationId: { dataType: 'String', stringValue: DELIVERY },
        }) as SQSRecord['messageAttributes'],
      },
    );
    const deadLettered = h.lines.filter((l) => l.includes('message dead-lettered'));
    expect(deadLettered).toHaveLength(6);
    expect(deadLettered.filter((l) => l.includes(`"correlation_id":"${DELIVERY}"`))).toEqual([
      expect.stringContaining('"messageId":"bad"'),
    ]);
    expect(h.lines.some((l) => l.includes('xxxxxxxxxx'))).toBe(false);
    // The body's own id wins over the attribute once the body is read.
    h.lines.length = 0;
    await h.run(withAttribute(sqsRecord(dispatchMessage(), 'ok'), DELIVERY));
    expect(h.lines.filter((l) => l.includes('correlation_id'))).toEqual([
      expect.stringContaining('"correlation_id":"corr-1"'),
    ]);
  });
});
