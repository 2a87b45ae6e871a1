import { PermanentError, RetryableError } from '../lib/failures';
import { withRetries } from '../lib/retry';
import { DEFAULT_RUNNER_GROUP, regionSettings, type RunnerConfig, type RunnerType } from './config';
import { LEASE_CONTENTION, leaseIdOf, leaseIdsOf } from './leases';
import type {
  CompletedMessage,
  DispatchMessage,
  QueuedCheckMessage,
  RegionStatus,
  RegionView,
  RunnerQueueMessage,
} from './model';
import { routeJob } from './route';

/**
 * The dispatcher's core (issue 12, item 5): one message of a region's runner queue at a time, every effect
 * through a port, no clock or randomness that is not passed in.
 *
 * `dispatch` (a routed `workflow_job` `queued`):
 *
 * 0. failover: when this region's effective status (region-status table, cached a few seconds) is
 *    `draining` or `out`, the job is routed again over every region's view (route.ts) and, when another
 *    region is eligible, sent to that region's queue of the same runner type (same delivery and correlation
 *    ids, reason `drained`, its waits forgotten) and acknowledged here: `rerouted`. No eligible region: the
 *    job stays and is dispatched here (it waits, as routing has it). A status or views read that fails
 *    dispatches here (reported): the region-status table being unreadable must not stop dispatch. A
 *    message re-routed before (reason `drained`) goes on after a short delay, so two regions whose cached
 *    views briefly disagree cannot bounce a job between them in a tight loop. The message counts its hops
 *    (`reroutes`): one re-routed twice already is dispatched where it is (`rerouteLimited`, RerouteLimit),
 *    so no status flapping moves a job a third time.
 * 1. claim the job in the region's state table (`runner-job#<id>` / `claim`, or `claim-retry` for the one
 *    retry), conditional, with a TTL: a copy of the same job (two regions' routers accepted one delivery in
 *    the idempotency table's replication lag; both route it here, routing being deterministic) finds the
 *    claim and is skipped. The claim names its owner (the SQS message id), so a redelivery of the message
 *    that claimed it claims it again rather than skipping its own job.
 * 2. read the job's record in the runner-workflows global table (eventually consistent):
 *    - the router's tombstone (`completed` came before a record existed): the job is over: its leases here and
 *      the claim are released, nothing starts (`job-over`);
 *    - a record of another region means the two routers saw different inputs (a drain, a health verdict, a
 *      metric) and the other region started a runner for it already: skipped (`elsewhere`). Both may still
 *      start one within the replication lag; the second runner takes another queued job of its labels or
 *      is removed at its idle timeout: GitHub gives a job to one runner only. Not for a retry re-routed
 *      from a draining region (retry 1, reason `drained`): the record names the region of the first runner,
 *      which is kept in the new record (`firstRegion`) so that `completed` reaches its lease too.
 * 2b. a runner type in a runner group other than `Default`: the job's repository must be one the group
 *    admits in its organisation (github-app.ts: a group open to every repository is refused as a
 *    configuration error, permanent). A repository the group does not list gets no lease and no task: the
 *    claim is released and the message acknowledged (`not-in-runner-group`, NotInRunnerGroup): the
 *    organisation chose which repositories may use the group; nothing for an operator to redrive.
 * 3. a runner slot: a lease of the organisation under its cap (the quota sync's allocation of its global
 *    limit, at most the region's capacity), then the region's capacity over every organisation. Each runner
 *    holds its own lease (`<job id>` for the first, `<job id>:1` for the retry's), so both runners of a
 *    retried job count. No slot: the claim is released and the message re-sent to its queue with a growing
 *    delay (it waits without spending its receive count); one that has waited longer than `leaseTtlSec` is
 *    dead-lettered with the reason `organisation-at-cap` (or `region-at-capacity`). Releasing the claim
 *    opens a window: a copy of the job processed while its twin waits claims it and waits too, and both may
 *    start a runner later (the spare one takes another queued job of its labels).
 * 4. the job's status at GitHub: anything but `queued` (cancelled, taken by another runner, a replayed body)
 *    starts nothing and releases the lease and the claim (`not-queued`), unless the lease was held before
 *    this message (an earlier delivery of it started a runner and was not acknowledged: that runner's).
 *    Decided: a status GitHub gives that this code does not know (`unknown`) dispatches, since the job came
 *    from a `queued` delivery; a spare runner costs at most the idle timeout (the reaper removes it), a job
 *    skipped wrongly would wait forever. A job `waiting` at GitHub (an environment's required reviewers or
 *    wait timer: GitHub's `waiting`, `pending`, `requested`) gets no runner yet (one started now would idle
 *    out before the approval): its fresh lease and the claim are released and the message re-sent to its
 *    own queue with the longest delay (900 s), not a failure (`awaiting-approval`, AwaitingApproval), until
 *    GitHub says `queued` (dispatched) or anything else (nothing starts). The wait is bounded at 30 days
 *    from the first `waiting` (`approvalSince`; GitHub's longest wait timer and approval window), then the
 *    message is dead-lettered (`approval-wait-exceeded`).
 * 5. a just-in-time runner config from GitHub (runner `<region>-<job id>-<retry>`, the type's labels, in the
 *    type's runner group, by name), a cache token scoped to the job, and one ephemeral runner task.
 * 6. best effort once the task started (a failure is reported, the dispatch stands: failing it now would
 *    start a second runner): the job's record, written unless the router's tombstone is there (a
 *    `completed` came meanwhile: the runner just started finds no job and the reaper removes it; the job's
 *    leases and claim are released, no check is scheduled: `started-for-completed`), the region's
 *    `dispatched` counter, and for a first dispatch a `check-queued` look at the job after
 *    `queuedTimeoutSec`.
 *
 * Failures between the claim and the task release the lease and the claim (best effort) and are rethrown:
 * transient ones are redelivered, permanent ones dead-lettered with their reason. Only failures that say
 * something about the region (transient: 5xx, throttling, timeouts, ECS placing no task, contention) count
 * as its `failed` dispatches (the error rate spillover reads); permanent ones (GitHub refusing an
 * organisation's App, permission or runner group; overrides too large) are the tenant's or the
 * configuration's and are reported apart, and so is lease contention (`lease-contention`: one
 * organisation's burst of jobs on its lease item, not the region's health; redelivered). GitHub's rate limits (a RetryableError carrying `retryAfterSec`)
 * count as neither: they are the App's budget at GitHub, the same from every region; the message waits as
 * for a slot, re-sent with GitHub's delay (at most 900 s, SQS's limit), and is dead-lettered
 * (`github-rate-limited`) once it has waited longer than `leaseTtlSec`.
 *
 * `check-queued`: a first dispatch whose job GitHub still reports `queued` is dispatched once more (retry
 * 1, its own claim and lease; re-routed as above when this region takes no new jobs); `completed` releases
 * the job's leases here (its `completed` delivery may have been lost); `waiting` re-sends the look with
 * the longest delay, bounded at 30 days as a dispatch is; anything else ends there.
 *
 * `completed`: the job's leases here are released and the `job:<id>` record deleted; when the record names
 * a `firstRegion` (the retry ran elsewhere), the message is forwarded to that region's queue so its lease
 * goes too. No task is ever stopped: GitHub decides which runner takes which job (a runner started for one
 * job may have taken another of the same labels), and ephemeral runners exit by themselves after one job.
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

/** The `job:<id>` item of the runner-workflows global table, as the dispatcher writes it. */
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
  /** The region of the job's first runner, when its retry runs in another one (a drain moved it). */
  readonly firstRegion?: string;
}

/** What this region has seen of a job's `job:<id>` item. */
export type JobRecordState =
  | {
      readonly kind: 'dispatched';
      readonly region: string;
      readonly runnerType?: string;
      readonly firstRegion?: string;
    }
  /** The router's tombstone (`completed: true`): the job's `completed` came before a record existed. */
  | { readonly kind: 'over' };

export interface JobRecords {
  /** Eventually consistent (a global table): what this region has seen of the job's record. */
  get(jobId: number): Promise<JobRecordState | undefined>;
  /** Writes the record unless a live tombstone is there: `over` then, and nothing is written. */
  put(record: JobRecord): Promise<'written' | 'over'>;
  delete(jobId: number): Promise<void>;
}

export interface LeaseGrant {
  readonly acquired: boolean;
  /** The lease is new (false: it was held already, refreshed). */
  readonly fresh: boolean;
  /** Live leases of the organisation after the call (this one included when acquired). */
  readonly held: number;
  /** Leases of the organisation waiting for a slot after the call (this one included when refused). */
  readonly waiting: number;
}

/** The organisations' runner leases in the region (leases.ts); a lease is keyed by `leaseIdOf`. */
export interface Leases {
  acquire(organization: string, lease: string, cap: number, ttlSec: number): Promise<LeaseGrant>;
  /** Releases the leases named (and their wait records), in one write. */
  release(organization: string, leases: readonly string[]): Promise<void>;
  /** Live leases in the region, every organisation. */
  inUse(): Promise<number>;
}

/** The organisation's cap in the region and the demand that sizes it (concurrency-cap.ts). */
export interface ConcurrencyCap {
  /** Runners the organisation may run at once in the region; undefined: no per-organisation cap. */
  capOf(organization: string): Promise<number | undefined>;
  /**
   * Records what the organisation wanted (held + waiting) and held at once, for the quota sync. False when
   * it could not be written (contention): reported, never fatal.
   */
  recordDemand(
    organization: string,
    level: { readonly wanted: number; readonly held: number },
  ): Promise<boolean>;
}

/**
 * A job's status at GitHub. `waiting`: held by a deployment environment's protection rules (required
 * reviewers, a wait timer): GitHub's `waiting`, `pending` and `requested`.
 */
export type GitHubJobStatus = 'queued' | 'waiting' | 'in_progress' | 'completed' | 'unknown';

export interface JitRequest {
  readonly organization: string;
  readonly runnerName: string;
  readonly labels: readonly string[];
  /** The runner group's name in the organisation (the runner type's `runnerGroup`). */
  readonly runnerGroup: string;
}

/** GitHub's side (github-app.ts): a just-in-time runner config and a job's status. */
export interface GitHubRunners {
  /** The encoded JIT config of a new runner (a secret: never logged). */
  jitConfig(request: JitRequest): Promise<string>;
  jobStatus(repository: string, jobId: number): Promise<GitHubJobStatus>;
  /**
   * Whether the runner group (by name, never `Default`) of the organisation admits the repository
   * (`owner/name`). A group open to every repository throws (permanent: the operator restricts it).
   */
  repositoryAllowed(organization: string, runnerGroup: string, repository: string): Promise<boolean>;
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
  /** 0 for the first runner of the job, 1 for the retry's: with the job id, it names the runner. */
  readonly retry: Retry;
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

/** Runner queues: this region's, and another region's (failover, a forwarded `completed`). */
export interface QueueSender {
  send(runnerType: string, message: RunnerQueueMessage, delaySec: number): Promise<void>;
  sendToRegion(
    region: string,
    runnerType: string,
    message: RunnerQueueMessage,
    delaySec: number,
  ): Promise<void>;
}

/** Where this region stands and what routing sees of every region (failover). */
export interface RegionFailover {
  /** This region's effective status (active, draining, out), cached briefly. */
  status(): Promise<RegionStatus>;
  /** Every configured region as routing sees it (status, spillover inputs, triggers). */
  views(): Promise<ReadonlyMap<string, RegionView>>;
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
  /**
   * A dispatch failed after its claim, before a runner started. `regional`: it says something about the
   * region and was counted toward its error rate (transient); else the tenant's or the configuration's
   * (permanent, dead-lettered).
   */
  dispatchFailed(error: unknown, regional: boolean): void;
  /** A best-effort step failed; what it guarded is said in `step`. */
  stepFailed(step: BestEffortStep, error: unknown): void;
  /** The organisation's demand could not be recorded for the quota sync (contention). */
  demandNotRecorded(): void;
  /**
   * This region takes no new jobs, and the job was re-routed `MAX_REROUTES` times already: it is dispatched
   * here.
   */
  rerouteLimited(status: RegionStatus): void;
}

export type BestEffortStep =
  | 'release-lease'
  | 'release-claim'
  | 'count-failed'
  | 'record-demand'
  | 'record-job'
  | 'count-dispatched'
  | 'send-check-queued'
  | 'read-region-status'
  | 'read-region-views';

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
  readonly failover: RegionFailover;
  readonly cacheTokens: CacheTokenIssuer;
  /** The region's artifact cache endpoint, given to runners as RUNNER_CACHE_URL. */
  readonly cacheUrl: string;
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

/** What a job waits for: a slot under its organisation's cap or the region's capacity, or GitHub. */
export type WaitLimit = 'organisation' | 'region' | 'github-rate-limit';

export type DispatchOutcome =
  /** A runner started. `statusUnknown`: GitHub gave a status this code does not know (see step 4). */
  | { readonly kind: 'dispatched'; readonly retry: Retry; readonly statusUnknown?: true }
  /** Another message holds the job's claim. */
  | { readonly kind: 'duplicate' }
  /** Another region's record shows it dispatched the job. */
  | { readonly kind: 'elsewhere' }
  /** An earlier delivery's runner is online already. */
  | { readonly kind: 'runner-exists' }
  | {
      readonly kind: 'waiting';
      readonly limit: WaitLimit;
      readonly waits: number;
      readonly delaySec: number;
    }
  /** GitHub reports the job no longer queued: nothing started, lease and claim released. */
  | { readonly kind: 'not-queued'; readonly status: GitHubJobStatus }
  /** The router's tombstone: the job was over before a runner started; leases and claim released. */
  | { readonly kind: 'job-over' }
  /** A runner started, then the record write found the tombstone: the reaper removes that runner. */
  | { readonly kind: 'started-for-completed'; readonly retry: Retry }
  /** This region takes no new jobs: sent to `region`'s queue. */
  | { readonly kind: 'rerouted'; readonly region: string; readonly status: RegionStatus }
  /**
   * GitHub holds the job for an environment's approval or wait timer: nothing started, lease and claim
   * released, re-sent with `delaySec`; `since` is when it was first seen waiting (epoch ms).
   */
  | { readonly kind: 'awaiting-approval'; readonly since: number; readonly delaySec: number }
  /** The runner type's group does not admit the job's repository: nothing started, no lease taken. */
  | { readonly kind: 'not-in-runner-group'; readonly runnerGroup: string };

export type MessageOutcome =
  | DispatchOutcome
  | { readonly kind: 'retried'; readonly outcome: DispatchOutcome }
  /**
   * A check found the job no longer queued (or already retried): nothing to do; `completed` released the
   * job's leases here.
   */
  | { readonly kind: 'checked'; readonly status: GitHubJobStatus | 'retried-before' }
  /** A completed job: leases released, record deleted; `forwardedTo` the region of its first runner. */
  | { readonly kind: 'completed'; readonly forwardedTo?: string };

// ------------------------------------------------------------------------------------------- policy

/** A wait's delay: 30 s doubling per wait, at most 900 s (SQS's limit), the upper half jittered. */
export const WAIT_BASE_SEC = 30;
export const WAIT_CAP_SEC = 900;
/** The delay of a job re-routed once more (see step 0): past the status and views caches. */
export const REROUTE_SETTLE_SEC = 10;
/** Hops a job makes between regions at most (see step 0): one re-routed this often stays. */
export const MAX_REROUTES = 2;
/**
 * How long a job may wait for an environment's approval or wait timer (see step 4): 30 days, GitHub's
 * longest wait timer and the time a run waits for its reviewers.
 */
export const APPROVAL_WAIT_MAX_SEC = 30 * 24 * 3600;

export function waitDelaySec(previousWaits: number, random: () => number): number {
  const ceiling = Math.min(WAIT_CAP_SEC, WAIT_BASE_SEC * 2 ** Math.min(10, Math.max(0, previousWaits)));
  return Math.min(WAIT_CAP_SEC, Math.ceil(ceiling / 2 + random() * (ceiling / 2)));
}

/**
 * The delay GitHub asked for (a RetryableError carrying `retryAfterSec`, from the GitHub adapter's rate
 * limits), in whole seconds from 1 to 900; undefined for every other failure.
 */
export function retryAfterOf(error: unknown): number | undefined {
  if (!(error instanceof RetryableError)) return undefined;
  const value = (error as { readonly retryAfterSec?: unknown }).retryAfterSec;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return undefined;
  return Math.min(WAIT_CAP_SEC, Math.max(1, Math.ceil(value)));
}

/** The runner's name at GitHub: unique per job and retry in the region. */
export const runnerNameOf = (region: string, jobId: number, retry: Retry): string =>
  `${region}-${jobId}-${retry}`;

const WAIT_REASONS: Record<WaitLimit, { code: string; reason: string }> = {
  organisation: {
    code: 'organisation-at-cap',
    reason: 'waited longer than leaseTtlSec for a runner slot under its organisation cap',
  },
  region: {
    code: 'region-at-capacity',
    reason: "waited longer than leaseTtlSec for a runner slot within the region's capacity",
  },
  'github-rate-limit': {
    code: 'github-rate-limited',
    reason: "waited longer than leaseTtlSec through GitHub's rate limits",
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

/** The job is over or not queued: its lease(s) here and this message's claim go, best effort. */
async function letGo(
  message: DispatchMessage,
  context: MessageContext,
  leases: readonly string[],
  deps: DispatchDeps,
): Promise<void> {
  const { job, retry } = message;
  await bestEffort(deps, 'release-lease', () => deps.leases.release(job.organization, leases));
  await bestEffort(deps, 'release-claim', () => deps.claims.release(job.jobId, retry, context.messageId));
}

/** Internal: a check-queued has just seen the job queued (no second look at GitHub). */
interface DispatchOptions {
  readonly seenQueued?: boolean;
}

export async function dispatch(
  message: DispatchMessage,
  context: MessageContext,
  deps: DispatchDeps,
  options: DispatchOptions = {},
): Promise<DispatchOutcome> {
  const type = runnerTypeOf(message, deps);
  const moved = await failover(message, deps);
  if (moved) return moved;

  const { job, retry } = message;
  const lease = leaseIdOf(job.jobId, retry);
  const nowSec = Math.floor(deps.now() / 1000);
  const ttlSec = deps.config.leaseTtlSec;
  if (!(await deps.claims.claim(job.jobId, retry, context.messageId, nowSec + ttlSec, nowSec)))
    return { kind: 'duplicate' };

  let leased = false;
  let refused: WaitLimit | undefined;
  try {
    const record = await deps.records.get(job.jobId);
    if (record?.kind === 'over') {
      await letGo(message, context, leaseIdsOf(job.jobId), deps);
      return { kind: 'job-over' };
    }
    const firstRegion = record && record.region !== deps.region ? record.region : undefined;
    if (firstRegion !== undefined && !(retry === 1 && message.reason === 'drained'))
      return { kind: 'elsewhere' };

    if (
      type.runnerGroup !== DEFAULT_RUNNER_GROUP &&
      !(await deps.github.repositoryAllowed(job.organization, type.runnerGroup, job.repository))
    ) {
      await bestEffort(deps, 'release-claim', () => deps.claims.release(job.jobId, retry, context.messageId));
      return { kind: 'not-in-runner-group', runnerGroup: type.runnerGroup };
    }

    const capacity = regionSettings(deps.config, deps.region)?.capacity ?? 0;
    const organisationCap = await deps.cap.capOf(job.organization);
    const cap = Math.min(capacity, organisationCap ?? capacity);
    const grant = await deps.leases.acquire(job.organization, lease, cap, ttlSec);
    leased = grant.acquired;
    let { held, waiting } = grant;
    if (!grant.acquired) refused = 'organisation';
    // The region's capacity over every organisation, checked once the lease is written: two dispatchers
    // racing for the last slot both see both leases and both back off (never both run), then retry later.
    else if (grant.fresh && (await deps.leases.inUse()) > capacity) {
      await deps.leases.release(job.organization, [lease]);
      leased = false;
      refused = 'region';
      held -= 1;
      waiting += 1;
    }
    await recordDemand(job.organization, { wanted: held + waiting, held }, deps);
    if (!refused) {
      const status = options.seenQueued ? 'queued' : await deps.github.jobStatus(job.repository, job.jobId);
      if (status === 'waiting') {
        // Bounded first: past the bound, the catch below releases the lease and the claim.
        const since = approvalSinceOf(message, deps);
        if (grant.fresh) {
          await deps.leases.release(job.organization, [lease]);
          leased = false;
        }
        // The claim goes before the re-send, as in wait().
        await deps.claims.release(job.jobId, retry, context.messageId);
        await deps.queue.send(
          message.runnerType,
          { ...withoutWait(message), approvalSince: since },
          WAIT_CAP_SEC,
        );
        return { kind: 'awaiting-approval', since, delaySec: WAIT_CAP_SEC };
      }
      if (status !== 'queued' && status !== 'unknown') {
        // A lease held before this message (an earlier delivery of it started a runner, then failed to be
        // acknowledged) is that runner's: it stays, with the claim, until its completed or its expiry.
        if (grant.fresh) await letGo(message, context, [lease], deps);
        return { kind: 'not-queued', status };
      }
      return await launch(message, type, { context, firstRegion, statusUnknown: status === 'unknown' }, deps);
    }
  } catch (error) {
    if (error instanceof RunnerExistsError) return { kind: 'runner-exists' };
    if (leased) await bestEffort(deps, 'release-lease', () => deps.leases.release(job.organization, [lease]));
    // GitHub's rate limit: the job waits for it as for a slot (wait() releases the claim).
    const retryAfterSec = retryAfterOf(error);
    if (retryAfterSec !== undefined) return wait(message, context, 'github-rate-limit', deps, retryAfterSec);
    await bestEffort(deps, 'release-claim', () => deps.claims.release(job.jobId, retry, context.messageId));
    // Lease contention is one organisation's burst on its lease item, not the region's health.
    const contention = error instanceof RetryableError && error.code === LEASE_CONTENTION;
    const regional = !(error instanceof PermanentError) && !contention;
    if (regional) await bestEffort(deps, 'count-failed', () => deps.counters.record('failed'));
    deps.observer?.dispatchFailed(error, regional);
    throw error;
  }
  return wait(message, context, refused ?? 'organisation', deps);
}

async function recordDemand(
  organization: string,
  level: { readonly wanted: number; readonly held: number },
  deps: DispatchDeps,
): Promise<void> {
  let recorded = true;
  await bestEffort(deps, 'record-demand', async () => {
    recorded = await deps.cap.recordDemand(organization, level);
  });
  if (!recorded) deps.observer?.demandNotRecorded();
}

/**
 * Step 0: this region's status, and when it takes no new jobs, the job routed again and sent on. Undefined:
 * dispatch here.
 */
async function failover(message: DispatchMessage, deps: DispatchDeps): Promise<DispatchOutcome | undefined> {
  let status: RegionStatus;
  try {
    status = await deps.failover.status();
  } catch (error) {
    deps.observer?.stepFailed('read-region-status', error);
    return undefined;
  }
  if (status === 'active') return undefined;
  if ((message.reroutes ?? 0) >= MAX_REROUTES) {
    deps.observer?.rerouteLimited(status);
    return undefined;
  }
  let views: ReadonlyMap<string, RegionView>;
  try {
    views = await deps.failover.views();
  } catch (error) {
    deps.observer?.stepFailed('read-region-views', error);
    return undefined;
  }
  const target = routeJob({ job: message.job, config: deps.config, regions: views })?.region;
  // No other eligible region (routing answers `no-region-eligible` with the job's home): the job stays.
  if (target === undefined || target === deps.region || views.get(target)?.status !== 'active')
    return undefined;
  const moved: DispatchMessage = {
    ...withoutWait(message),
    region: target,
    reason: 'drained',
    reroutes: (message.reroutes ?? 0) + 1,
  };
  await deps.queue.sendToRegion(
    target,
    message.runnerType,
    moved,
    message.reason === 'drained' ? REROUTE_SETTLE_SEC : 0,
  );
  return { kind: 'rerouted', region: target, status };
}

interface Launch {
  readonly context: MessageContext;
  /** The region of the job's first runner, when it is not this one (a re-routed retry). */
  readonly firstRegion: string | undefined;
  readonly statusUnknown: boolean;
}

/** JIT config, cache token, task; then the best-effort bookkeeping. */
async function launch(
  message: DispatchMessage,
  type: RunnerType,
  run: Launch,
  deps: DispatchDeps,
): Promise<DispatchOutcome> {
  const { job, retry } = message;
  const jitConfig = await deps.github.jitConfig({
    organization: job.organization,
    runnerName: runnerNameOf(deps.region, job.jobId, retry),
    labels: type.labels,
    runnerGroup: type.runnerGroup,
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
    retry,
    organization: job.organization,
  });

  const now = deps.now();
  const written = await recordJob(
    {
      jobId: job.jobId,
      region: deps.region,
      runnerType: type.name,
      taskArn,
      repository: job.repository,
      organization: job.organization,
      runId: job.runId,
      dispatchedAt: now,
      expiresAt: Math.floor(now / 1000) + deps.config.leaseTtlSec,
      ...(run.firstRegion === undefined ? {} : { firstRegion: run.firstRegion }),
    },
    deps,
  );
  await bestEffort(deps, 'count-dispatched', () => deps.counters.record('dispatched'));
  if (written === 'over') {
    // The job's `completed` came while its runner started: the router left a tombstone and sent no message
    // to a dispatcher, so nothing else releases what the job holds here.
    await letGo(message, run.context, leaseIdsOf(job.jobId), deps);
    return { kind: 'started-for-completed', retry };
  }
  if (retry === 0)
    await bestEffort(deps, 'send-check-queued', () =>
      deps.queue.send(
        type.name,
        { version: 1, kind: 'check-queued', dispatch: withoutApproval(withoutWait(message)) },
        Math.min(WAIT_CAP_SEC, deps.config.queuedTimeoutSec),
      ),
    );
  return { kind: 'dispatched', retry, ...(run.statusUnknown ? { statusUnknown: true as const } : {}) };
}

/**
 * The router finds the region of a `completed` by this record: retried here before it is given up
 * (`failed`, reported). `over`: the router's tombstone is there, nothing was written.
 */
async function recordJob(record: JobRecord, deps: DispatchDeps): Promise<'written' | 'over' | 'failed'> {
  try {
    return await withRetries(() => deps.records.put(record), {
      attempts: 3,
      baseMs: 100,
      capMs: 1_000,
      random: deps.random,
      ...(deps.sleep ? { sleep: deps.sleep } : {}),
    });
  } catch (error) {
    deps.observer?.stepFailed('record-job', error);
    return 'failed';
  }
}

const withoutWait = (message: DispatchMessage): DispatchMessage => {
  const rest: { -readonly [K in keyof DispatchMessage]: DispatchMessage[K] } = { ...message };
  delete rest.waits;
  delete rest.waitingSince;
  return rest;
};

/** The approval wait is over once a runner started: a later `waiting` starts a new one. */
const withoutApproval = (message: DispatchMessage): DispatchMessage => {
  const rest: { -readonly [K in keyof DispatchMessage]: DispatchMessage[K] } = { ...message };
  delete rest.approvalSince;
  return rest;
};

/**
 * When the job was first seen waiting for an approval (now for the first time); past
 * `APPROVAL_WAIT_MAX_SEC` of it, a permanent `approval-wait-exceeded`.
 */
function approvalSinceOf(message: DispatchMessage, deps: DispatchDeps): number {
  const now = deps.now();
  const since = Math.min(message.approvalSince ?? now, now);
  if (now - since >= APPROVAL_WAIT_MAX_SEC * 1000)
    throw new PermanentError(
      'approval-wait-exceeded',
      "waited longer than 30 days for a deployment environment's approval or wait timer",
    );
  return since;
}

/** How long a message has waited and how many times, and whether that is past `leaseTtlSec`. */
function nextWait(
  waited: { readonly waits?: number; readonly waitingSince?: number },
  limit: WaitLimit,
  deps: DispatchDeps,
): { readonly waits: number; readonly waitingSince: number } {
  const now = deps.now();
  const since = Math.min(waited.waitingSince ?? now, now);
  if (now - since >= deps.config.leaseTtlSec * 1000) {
    const { code, reason } = WAIT_REASONS[limit];
    throw new PermanentError(code, reason);
  }
  return { waits: (waited.waits ?? 0) + 1, waitingSince: since };
}

/**
 * No slot, or GitHub's rate limit: the claim is released (a later delivery claims again) and the message
 * re-sent to its queue with a growing delay (GitHub's, for a rate limit); acknowledged, so waiting spends
 * none of its receive count. Past `leaseTtlSec` of waiting it is dead-lettered with the reason.
 */
async function wait(
  message: DispatchMessage,
  context: MessageContext,
  limit: WaitLimit,
  deps: DispatchDeps,
  retryAfterSec?: number,
): Promise<DispatchOutcome> {
  // The claim goes first: a re-sent copy must never find it held by the message it replaces.
  await deps.claims.release(message.job.jobId, message.retry, context.messageId);
  const { waits, waitingSince } = nextWait(message, limit, deps);
  const delaySec = retryAfterSec ?? waitDelaySec(waits - 1, deps.random);
  await deps.queue.send(message.runnerType, { ...message, waits, waitingSince }, delaySec);
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
  let status: GitHubJobStatus;
  try {
    status = await deps.github.jobStatus(first.job.repository, first.job.jobId);
  } catch (error) {
    const retryAfterSec = retryAfterOf(error);
    if (retryAfterSec === undefined) throw error;
    // The look waits for GitHub as a dispatch does, its waits kept in the dispatch it carries.
    const waited = nextWait(first, 'github-rate-limit', deps);
    await deps.queue.send(first.runnerType, { ...message, dispatch: { ...first, ...waited } }, retryAfterSec);
    return { kind: 'waiting', limit: 'github-rate-limit', waits: waited.waits, delaySec: retryAfterSec };
  }
  if (status === 'completed') {
    // Its `completed` delivery may never come (or came and was lost): the lease goes now.
    await deps.leases.release(first.job.organization, leaseIdsOf(first.job.jobId));
    return { kind: 'checked', status };
  }
  if (status === 'waiting') {
    // Held for an approval: looked at again later, as a dispatch waits (the first runner's lease stays: its
    // task may still be up, and the lease expires with leaseTtlSec).
    const since = approvalSinceOf(first, deps);
    await deps.queue.send(
      first.runnerType,
      { ...message, dispatch: { ...first, approvalSince: since } },
      WAIT_CAP_SEC,
    );
    return { kind: 'awaiting-approval', since, delaySec: WAIT_CAP_SEC };
  }
  if (status !== 'queued') return { kind: 'checked', status };
  const outcome = await dispatch({ ...withoutWait(first), retry: 1 }, context, deps, { seenQueued: true });
  return { kind: 'retried', outcome };
}

async function completed(message: CompletedMessage, deps: DispatchDeps): Promise<MessageOutcome> {
  const { job } = message;
  // Never a task stopped here: see the module's comment.
  await deps.leases.release(job.organization, leaseIdsOf(job.jobId));
  const record = await deps.records.get(job.jobId);
  const firstRegion = record?.kind === 'dispatched' ? record.firstRegion : undefined;
  let forwardedTo: string | undefined;
  if (
    record?.kind === 'dispatched' &&
    firstRegion !== undefined &&
    firstRegion !== deps.region &&
    regionSettings(deps.config, firstRegion)
  ) {
    // The retry ran here, the first runner in `firstRegion`: its lease there goes with this message. The
    // region named never forwards again (the record names it as the first region, not another).
    const known = deps.config.runnerTypes.find((t) => t.name === record.runnerType);
    const runnerType = known?.name ?? deps.config.runnerTypes[0]?.name;
    if (runnerType !== undefined) {
      await deps.queue.sendToRegion(firstRegion, runnerType, message, 0);
      forwardedTo = firstRegion;
    }
  }
  await deps.records.delete(job.jobId);
  return { kind: 'completed', ...(forwardedTo === undefined ? {} : { forwardedTo }) };
}
