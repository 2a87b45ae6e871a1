import { PermanentError } from '../lib/failures';
import { withRetries } from '../lib/retry';
import { regionSettings, type RunnerConfig, type RunnerType } from './config';
import type { CompletedMessage, DispatchMessage, QueuedCheckMessage, RunnerQueueMessage } from './model';

/**
 * The dispatcher's core (issue 12, item 5): one message of a region's runner queue at a time, every effect
 * through a port, no clock or randomness that is not passed in.
 *
 * `dispatch` (a routed `workflow_job` `queued`):
 *
 * 1. claim the job in the region's state table (`runner-job#<id>` / `claim`, or `claim-retry` for the one
 *    retry), conditional, with a TTL: a copy of the same job (two regions' routers accepted one delivery in
 *    the idempotency table's replication lag; both route it here, routing being deterministic) finds the
 *    claim and is skipped. The claim names its owner (the SQS message id), so a redelivery of the message
 *    that claimed it claims it again rather than skipping its own job.
 * 2. read the job's record in the runner-workflows global table (eventually consistent): a record of
 *    another region means the two routers saw different inputs (a drain, a health verdict, a metric) and
 *    the other region started a runner for it already: skipped. Both may still start one within the
 *    replication lag; the second runner takes another queued job of its labels or exits when its task
 *    stops: GitHub gives a job to one runner only.
 * 3. a runner slot: a lease of the organisation under its cap (the quota sync's allocation of its global
 *    limit, at most the region's capacity), then the region's capacity over every organisation. No slot:
 *    the claim is released and the message re-sent to its queue with a growing delay (it waits without
 *    spending its receive count); one that has waited longer than `leaseTtlSec` is dead-lettered with the
 *    reason `organisation-at-cap` (or `region-at-capacity`). Releasing the claim opens a window: a copy of
 *    the job processed while its twin waits claims it and waits too, and both may start a runner later
 *    (the spare one takes another queued job of its labels).
 * 4. a just-in-time runner config from GitHub (runner `<region>-<job id>-<retry>`, the type's labels), a
 *    cache token scoped to the job, and one ephemeral runner task.
 * 5. best effort once the task started (a failure is reported, the dispatch stands: failing it now would
 *    start a second runner): the job's record, the region's `dispatched` counter, and for a first dispatch
 *    a `check-queued` look at the job after `queuedTimeoutSec`.
 *
 * A failure between the claim and the task releases the lease and the claim (best effort), counts a
 * `failed` dispatch (the region's error rate) and is rethrown: transient ones are redelivered, permanent
 * ones (GitHub refusing the organisation or the App) dead-lettered with their reason.
 *
 * `check-queued`: a first dispatch whose job GitHub still reports `queued` is dispatched once more (retry
 * 1); anything else ends there.
 *
 * `completed`: the organisation's lease is released and the `job:<id>` record deleted. No task is ever
 * stopped: GitHub decides which runner takes which job (a runner started for one job may have taken
 * another of the same labels), and ephemeral runners exit by themselves after one job.
 */

// ---------------------------------------------------------------------------------------------- ports

export type Retry = 0 | 1;

/** The claim's sort key: one claim for the first dispatch, one for the retry. */
export const claimSlot = (retry: Retry): 'claim' | 'claim-retry' => (retry === 0 ? 'claim' : 'claim-retry');

/** Claims of jobs in the region's state table (strongly consistent there). */
export interface JobClaims {
  /**
   * Puts the claim unless another owner holds one that has not expired. True when `owner` holds it now
   * (a new claim, its own from an earlier delivery, or an expired one taken over).
   */
  claim(jobId: number, retry: Retry, owner: string, expiresAtSec: number, nowSec: number): Promise<boolean>;
  /** Deletes the claim if `owner` holds it. */
  release(jobId: number, retry: Retry, owner: string): Promise<void>;
}

/** The `job:<id>` item of the runner-workflows global table. */
export interface JobRecord {
  readonly jobId: number;
  readonly region: string;
  readonly runnerType: string;
  readonly taskArn: string;
  readonly repository: string;
  readonly organization: string;
  readonly runId: number;
  /** Epoch ms. */
  readonly dispatchedAt: number;
  /** Epoch seconds (the table's TTL). */
  readonly expiresAt: number;
}

export interface JobRecords {
  /** Eventually consistent (a global table): what this region has seen of the job's record. */
  get(jobId: number): Promise<Pick<JobRecord, 'region'> | undefined>;
  put(record: JobRecord): Promise<void>;
  delete(jobId: number): Promise<void>;
}

export interface LeaseGrant {
  readonly acquired: boolean;
  /** The lease is new (false: the job held one already, refreshed). */
  readonly fresh: boolean;
  /** Live leases of the organisation after the call (this job's included when acquired). */
  readonly held: number;
  /** Jobs of the organisation waiting for a slot after the call (this one included when refused). */
  readonly waiting: number;
}

/** The organisations' runner leases in the region (leases.ts). */
export interface Leases {
  acquire(organization: string, jobId: number, cap: number, ttlSec: number): Promise<LeaseGrant>;
  release(organization: string, jobId: number): Promise<void>;
  /** Live leases in the region, every organisation. */
  inUse(): Promise<number>;
}

/** The organisation's cap in the region and the demand that sizes it (concurrency-cap.ts). */
export interface ConcurrencyCap {
  /** Runners the organisation may run at once in the region; undefined: no per-organisation cap. */
  capOf(organization: string): Promise<number | undefined>;
  /** Records what the organisation wanted (held + waiting) and held at once, for the quota sync. */
  recordDemand(
    organization: string,
    level: { readonly wanted: number; readonly held: number },
  ): Promise<void>;
}

export type GitHubJobStatus = 'queued' | 'in_progress' | 'completed' | 'unknown';

export interface JitRequest {
  readonly organization: string;
  readonly runnerName: string;
  readonly labels: readonly string[];
  readonly runnerGroupId: number;
}

/** GitHub's side (github-app.ts): a just-in-time runner config and a job's status. */
export interface GitHubRunners {
  /** The encoded JIT config of a new runner (a secret: never logged). */
  jitConfig(request: JitRequest): Promise<string>;
  jobStatus(repository: string, jobId: number): Promise<GitHubJobStatus>;
}

/** A runner of this job's name is registered and online already: an earlier delivery started it. */
export class RunnerExistsError extends PermanentError {
  constructor() {
    super('runner-exists', "a runner with the job's runner name is registered and online");
    this.name = 'RunnerExistsError';
  }
}

export interface LaunchRequest {
  readonly runnerType: string;
  /** Passed to the runner as RUNNER_JITCONFIG. */
  readonly jitConfig: string;
  /** Further environment of the runner container. */
  readonly environment: Readonly<Record<string, string>>;
  readonly jobId: number;
  readonly organization: string;
}

/** Starts one ephemeral runner (ecs-launcher.ts). */
export interface RunnerLauncher {
  start(request: LaunchRequest): Promise<{ readonly taskArn: string }>;
}

/** The region's dispatch counters (`runner-dispatch` items, one per minute). */
export interface DispatchCounters {
  record(outcome: 'dispatched' | 'failed'): Promise<void>;
}

/** This region's runner queue of a type. */
export interface QueueSender {
  send(runnerType: string, message: RunnerQueueMessage, delaySec: number): Promise<void>;
}

/** Tokens that let a runner use the region's artifact cache for its job only (cache-token.ts). */
export interface CacheTokenIssuer {
  issue(
    scope: { readonly organization: string; readonly repository: string; readonly jobId: number },
    ttlSec: number,
  ): Promise<string>;
}

/** What the dispatcher reports beside its outcome: never a value, never a secret. */
export interface DispatchObserver {
  /** A dispatch failed after its claim, before a runner started (counted toward the error rate). */
  dispatchFailed(error: unknown): void;
  /** A best-effort step failed; what it guarded is said in `step`. */
  stepFailed(step: BestEffortStep, error: unknown): void;
}

export type BestEffortStep =
  | 'release-lease'
  | 'release-claim'
  | 'count-failed'
  | 'record-demand'
  | 'record-job'
  | 'count-dispatched'
  | 'send-check-queued';

export interface DispatchDeps {
  readonly region: string;
  readonly config: RunnerConfig;
  readonly claims: JobClaims;
  readonly records: JobRecords;
  readonly leases: Leases;
  readonly cap: ConcurrencyCap;
  readonly github: GitHubRunners;
  readonly launcher: RunnerLauncher;
  readonly counters: DispatchCounters;
  readonly queue: QueueSender;
  readonly cacheTokens: CacheTokenIssuer;
  /** The region's artifact cache endpoint, given to runners as RUNNER_CACHE_URL. */
  readonly cacheUrl: string;
  /** The organisation's runner group the runners join. Default: 1 (Default). */
  readonly runnerGroupId?: number;
  readonly observer?: DispatchObserver;
  readonly now: () => number;
  readonly random: () => number;
  /** For tests: the pause between retries of the job's record. */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Where the message came from: its SQS message id owns the claims it takes. */
export interface MessageContext {
  readonly messageId: string;
}

export type SlotLimit = 'organisation' | 'region';

export type DispatchOutcome =
  | { readonly kind: 'dispatched'; readonly retry: Retry }
  /** Another message holds the job's claim. */
  | { readonly kind: 'duplicate' }
  /** Another region's record shows it dispatched the job. */
  | { readonly kind: 'elsewhere' }
  /** An earlier delivery's runner is online already. */
  | { readonly kind: 'runner-exists' }
  | {
      readonly kind: 'waiting';
      readonly limit: SlotLimit;
      readonly waits: number;
      readonly delaySec: number;
    };

export type MessageOutcome =
  | DispatchOutcome
  | { readonly kind: 'retried'; readonly outcome: DispatchOutcome }
  /** A check found the job no longer queued (or already retried): nothing to do. */
  | { readonly kind: 'checked'; readonly status: GitHubJobStatus | 'retried-before' }
  | { readonly kind: 'completed' };

// ------------------------------------------------------------------------------------------- policy

/** A wait's delay: 30 s doubling per wait, at most 900 s (SQS's limit), the upper half jittered. */
export const WAIT_BASE_SEC = 30;
export const WAIT_CAP_SEC = 900;

export function waitDelaySec(previousWaits: number, random: () => number): number {
  const ceiling = Math.min(WAIT_CAP_SEC, WAIT_BASE_SEC * 2 ** Math.min(10, Math.max(0, previousWaits)));
  return Math.min(WAIT_CAP_SEC, Math.ceil(ceiling / 2 + random() * (ceiling / 2)));
}

/** The runner's name at GitHub: unique per job and retry in the region. */
export const runnerNameOf = (region: string, jobId: number, retry: Retry): string =>
  `${region}-${jobId}-${retry}`;

const WAIT_REASONS: Record<SlotLimit, { code: string; reason: string }> = {
  organisation: {
    code: 'organisation-at-cap',
    reason: 'waited longer than leaseTtlSec for a runner slot under its organisation cap',
  },
  region: {
    code: 'region-at-capacity',
    reason: "waited longer than leaseTtlSec for a runner slot within the region's capacity",
  },
};

// --------------------------------------------------------------------------------------------- core

/** Handles one validated message of a runner queue. */
export async function handleRunnerMessage(
  message: RunnerQueueMessage,
  context: MessageContext,
  deps: DispatchDeps,
): Promise<MessageOutcome> {
  switch (message.kind) {
    case 'dispatch':
      return dispatch(message, context, deps);
    case 'check-queued':
      return checkQueued(message, context, deps);
    case 'completed':
      return completed(message, deps);
  }
}

/** A message must be for this region and a runner type of the configuration (a trust boundary). */
function runnerTypeOf(message: DispatchMessage, deps: DispatchDeps): RunnerType {
  if (message.region !== deps.region)
    throw new PermanentError('wrong-region', 'region: expected the region of the queue that delivered it');
  const type = deps.config.runnerTypes.find((t) => t.name === message.runnerType);
  if (!type) throw new PermanentError('unknown-runner-type', 'runnerType: expected a configured runner type');
  return type;
}

async function bestEffort(
  deps: DispatchDeps,
  step: BestEffortStep,
  effect: () => Promise<void>,
): Promise<void> {
  try {
    await effect();
  } catch (error) {
    deps.observer?.stepFailed(step, error);
  }
}

export async function dispatch(
  message: DispatchMessage,
  context: MessageContext,
  deps: DispatchDeps,
): Promise<DispatchOutcome> {
  const type = runnerTypeOf(message, deps);
  const { job, retry } = message;
  const nowSec = Math.floor(deps.now() / 1000);
  const ttlSec = deps.config.leaseTtlSec;
  if (!(await deps.claims.claim(job.jobId, retry, context.messageId, nowSec + ttlSec, nowSec)))
    return { kind: 'duplicate' };

  let leased = false;
  let refused: SlotLimit | undefined;
  try {
    const record = await deps.records.get(job.jobId);
    if (record && record.region !== deps.region) return { kind: 'elsewhere' };

    const capacity = regionSettings(deps.config, deps.region)?.capacity ?? 0;
    const organisationCap = await deps.cap.capOf(job.organization);
    const cap = Math.min(capacity, organisationCap ?? capacity);
    const grant = await deps.leases.acquire(job.organization, job.jobId, cap, ttlSec);
    leased = grant.acquired;
    let { held, waiting } = grant;
    if (!grant.acquired) refused = 'organisation';
    // The region's capacity over every organisation, checked once the lease is written: two dispatchers
    // racing for the last slot both see both leases and both back off (never both run), then retry later.
    else if (grant.fresh && (await deps.leases.inUse()) > capacity) {
      await deps.leases.release(job.organization, job.jobId);
      leased = false;
      refused = 'region';
      held -= 1;
      waiting += 1;
    }
    await bestEffort(deps, 'record-demand', () =>
      deps.cap.recordDemand(job.organization, { wanted: held + waiting, held }),
    );
    if (!refused) {
      await launch(message, type, deps);
      return { kind: 'dispatched', retry };
    }
  } catch (error) {
    if (error instanceof RunnerExistsError) return { kind: 'runner-exists' };
    if (leased)
      await bestEffort(deps, 'release-lease', () => deps.leases.release(job.organization, job.jobId));
    await bestEffort(deps, 'release-claim', () => deps.claims.release(job.jobId, retry, context.messageId));
    await bestEffort(deps, 'count-failed', () => deps.counters.record('failed'));
    deps.observer?.dispatchFailed(error);
    throw error;
  }
  return wait(message, context, refused ?? 'organisation', deps);
}

/** JIT config, cache token, task; then the best-effort bookkeeping. */
async function launch(message: DispatchMessage, type: RunnerType, deps: DispatchDeps): Promise<void> {
  const { job, retry } = message;
  const jitConfig = await deps.github.jitConfig({
    organization: job.organization,
    runnerName: runnerNameOf(deps.region, job.jobId, retry),
    labels: type.labels,
    runnerGroupId: deps.runnerGroupId ?? 1,
  });
  const cacheToken = await deps.cacheTokens.issue(
    { organization: job.organization, repository: job.repository, jobId: job.jobId },
    deps.config.leaseTtlSec,
  );
  const { taskArn } = await deps.launcher.start({
    runnerType: type.name,
    jitConfig,
    environment: { RUNNER_CACHE_TOKEN: cacheToken, RUNNER_CACHE_URL: deps.cacheUrl },
    jobId: job.jobId,
    organization: job.organization,
  });

  const now = deps.now();
  // The router finds the region of a `completed` by this record: retried here before it is given up.
  await bestEffort(deps, 'record-job', () =>
    withRetries(
      () =>
        deps.records.put({
          jobId: job.jobId,
          region: deps.region,
          runnerType: type.name,
          taskArn,
          repository: job.repository,
          organization: job.organization,
          runId: job.runId,
          dispatchedAt: now,
          expiresAt: Math.floor(now / 1000) + deps.config.leaseTtlSec,
        }),
      {
        attempts: 3,
        baseMs: 100,
        capMs: 1_000,
        random: deps.random,
        ...(deps.sleep ? { sleep: deps.sleep } : {}),
      },
    ),
  );
  await bestEffort(deps, 'count-dispatched', () => deps.counters.record('dispatched'));
  if (retry === 0)
    await bestEffort(deps, 'send-check-queued', () =>
      deps.queue.send(
        type.name,
        { version: 1, kind: 'check-queued', dispatch: withoutWait(message) },
        Math.min(WAIT_CAP_SEC, deps.config.queuedTimeoutSec),
      ),
    );
}

const withoutWait = (message: DispatchMessage): DispatchMessage => {
  const rest: { -readonly [K in keyof DispatchMessage]: DispatchMessage[K] } = { ...message };
  delete rest.waits;
  delete rest.waitingSince;
  return rest;
};

/**
 * No slot: the claim is released (a later delivery claims again) and the message re-sent to its queue with
 * a growing delay; acknowledged, so waiting spends none of its receive count. Past `leaseTtlSec` of
 * waiting it is dead-lettered with the reason.
 */
async function wait(
  message: DispatchMessage,
  context: MessageContext,
  limit: SlotLimit,
  deps: DispatchDeps,
): Promise<DispatchOutcome> {
  const now = deps.now();
  // The claim goes first: a re-sent copy must never find it held by the message it replaces.
  await deps.claims.release(message.job.jobId, message.retry, context.messageId);
  const since = Math.min(message.waitingSince ?? now, now);
  if (now - since >= deps.config.leaseTtlSec * 1000) {
    const { code, reason } = WAIT_REASONS[limit];
    throw new PermanentError(code, reason);
  }
  const waits = (message.waits ?? 0) + 1;
  const delaySec = waitDelaySec(waits - 1, deps.random);
  await deps.queue.send(message.runnerType, { ...message, waits, waitingSince: since }, delaySec);
  return { kind: 'waiting', limit, waits, delaySec };
}

async function checkQueued(
  message: QueuedCheckMessage,
  context: MessageContext,
  deps: DispatchDeps,
): Promise<MessageOutcome> {
  const first = message.dispatch;
  runnerTypeOf(first, deps);
  if (first.retry !== 0) return { kind: 'checked', status: 'retried-before' };
  const status = await deps.github.jobStatus(first.job.repository, first.job.jobId);
  if (status !== 'queued') return { kind: 'checked', status };
  const outcome = await dispatch({ ...withoutWait(first), retry: 1 }, context, deps);
  return { kind: 'retried', outcome };
}

async function completed(message: CompletedMessage, deps: DispatchDeps): Promise<MessageOutcome> {
  // Never a task stopped here: see the module's comment.
  await deps.leases.release(message.job.organization, message.job.jobId);
  await deps.records.delete(message.job.jobId);
  return { kind: 'completed' };
}
