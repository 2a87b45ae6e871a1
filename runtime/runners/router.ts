import { randomUUID } from 'node:crypto';
import { classifyFailure, RetryableError, type Failure } from '../lib/failures';
import { jsonResponse, type HttpResponse } from '../lib/http';
import { regionSettings, runnerTypeFor, type RunnerConfig } from './config';
import type {
  CompletedMessage,
  DispatchMessage,
  RegionView,
  RegionViewSource,
  RouteDecision,
  RouteReason,
  RunnerQueueMessage,
  RunPlacement,
  SpillMetric,
  WorkflowJob,
} from './model';
import { routeJob } from './route';
import { deliveryKey, jobEventKey, runKey } from './tables';

/**
 * The router's core: what an authenticated `workflow_job` delivery does, over injected ports (the AWS ones
 * are in router-adapters.ts, in-memory ones in test/support/runners-fakes.ts).
 *
 * Answered before a single write: jobs whose labels no runner type matches (GitHub-hosted ones, the bulk
 * of the traffic: 202, not ours); jobs of a user-owned repository (202: this estate registers its
 * just-in-time runners per organisation, by its own choice). A body's age is not judged: a job behind an
 * environment's approval keeps its creation time however late it is approved, and a replayed old body is
 * harmless (the dispatcher asks GitHub whether the job is still queued before it starts a runner).
 *
 * Claims, in two phases. Every delivery claims two keys in the idempotency table: its delivery id
 * (`delivery:<X-GitHub-Delivery>`), and the identity of its signed body (`job:<job id>:<action>:<run
 * attempt>:<workflow_job.status>`): the delivery id is not signed, so a captured body resent with a fresh
 * one finds the body's claim (and a job sent through two webhooks, an organisation's and the App's, is
 * acted on once). The status is part of it because a job behind an environment's approval or wait timer is
 * sent `queued` with status `waiting` when it is created; a `queued` sent when it is approved (status
 * `queued`) is another event, not a duplicate of that one. A claim is
 * written `pending`, held by this invocation (`owner`) until `pendingUntil` (now + 30 s, longer than the
 * function's 10 s timeout), and marked `done` only once the message was sent. A delivery that finds a key
 * `done` answers 200 duplicate (and marks its own claims done: it was handled); one that finds it `pending`
 * within its lease answers 409 (another copy is in flight; GitHub counts a 409 as a failed delivery, so it
 * can be redelivered if that copy fails) and releases its own claims; a `pending` claim past its lease was
 * left by a router that died (timeout, hung call): a redelivery takes it over with a conditional write.
 *
 * `queued`: claim in this region's replica; read the run's placement and every region's view; route; when
 * the job goes to another region, claim there too (a duplicate there answers 200, a live claim 409); place
 * the run if it was not (when another router placed it first in a region that takes jobs, follow it:
 * reason `sticky`); send the dispatch message to the region's queue of the runner type; mark the claims
 * done; keep the spillover triggers that changed (best effort); answer 202.
 *
 * `completed`: claim the same way; look up the job's dispatch record (`job:<id>`, runner-workflows) and send
 * a completed message to the queue that dispatched it. With no record, the job ended before its dispatch
 * (cancelled while queued or waiting): the router writes a tombstone `job:<id>` (`completed`, conditional on
 * no item) so that the dispatcher skips the job when its dispatch message comes; if the conditional write
 * finds a record (the dispatcher wrote it meanwhile), the completed message goes to its region as usual.
 *
 * Deadline. A delivery has `deadlineMs` (6 s from its arrival, the webhook secret's read included; every
 * SDK call is bounded by its client's timeouts): none left, it claims nothing and answers 500; past it the
 * router releases what it claimed (within `settleBudgetMs`, 1 s) and answers 500, so a redelivery can
 * succeed. The 7 s in all stay well inside API Gateway's 10 s integration timeout (and the function's),
 * a cold start included. A call still in flight then may complete later: a dispatch
 * message sent after the deadline is sent again by the redelivery, and the dispatcher's job claim keeps it
 * to one runner. A failure after a claim likewise releases the claims made (best effort) and answers 500;
 * bad input never reaches this file (webhook.ts answers it with a 4xx).
 *
 * The cross-region window. A global table's conditional write is checked in the region written only, so
 * two regions can both accept one delivery (GitHub redelivered it, Route 53 sent each copy to another
 * region) within the replication lag. Both route it deterministically to the same region when they saw
 * the same inputs, and that region's replica is claimed by whichever comes second there (the target-region
 * claim above), and the dispatcher there claims the job id in its regional table (strongly consistent)
 * before starting a runner: one runner. If the two routers saw different inputs (a spillover state or a
 * health verdict changed between them) they may send the job to different regions: the run's placement,
 * written conditionally and followed by the loser when it is visible, makes that rare; when it happens two
 * runners start for one job: GitHub gives the job to one, and the other ephemeral runner takes the next
 * queued job with matching labels or exits at its idle timeout. The tombstone has the same window: written
 * in this region's replica, it could replace (last writer wins) a record the dispatcher wrote in another
 * region less than a replication lag earlier; that job's lease then lasts until it expires.
 */

/** How long a delivery may take before its claims are released and it answers 500. */
export const DEFAULT_DEADLINE_MS = 6_000;
/** A pending claim's lease: longer than the function's timeout (10 s), so only a dead router's expires. */
export const DEFAULT_CLAIM_LEASE_MS = 30_000;
/** The most time spent marking claims done or releasing them (and keeping spillover triggers) after it. */
export const DEFAULT_SETTLE_BUDGET_MS = 1_000;

/** What claiming a key in a region's replica found. */
export type ClaimResult =
  /** Written `pending`, held by the request's owner. */
  | 'claimed'
  /** A `pending` claim whose lease had passed (its router died), now held by the request's owner. */
  | 'taken-over'
  /** Another delivery sent its message: nothing to do. */
  | 'done'
  /** Another router holds it, within its lease. */
  | 'pending';

export interface ClaimRequest {
  /** `delivery:<id>` or `job:<job id>:<action>:<run attempt>:<status>` (bodyKey, tables.ts). */
  readonly key: string;
  /** This invocation's token: only it marks the claim done or releases it. */
  readonly owner: string;
  readonly deliveryId: string;
  /** Epoch ms the delivery was received. */
  readonly receivedAt: number;
  /** Epoch ms: the end of the owner's lease while the claim is `pending`. */
  readonly pendingUntil: number;
  readonly ttlSec: number;
}

/** Claims in each region's replica of the idempotency global table, in two phases (see above). */
export interface ClaimLedger {
  claim(region: string, request: ClaimRequest): Promise<ClaimResult>;
  /** Marks the owner's claim `done`; false when it is no longer the owner's (taken over or released). */
  finish(region: string, request: ClaimRequest): Promise<boolean>;
  /** Deletes the owner's claim; a claim another owner holds is left alone. */
  release(region: string, key: string, owner: string): Promise<void>;
}

/** Where each workflow run went (runner-workflows `run:<repo>:<run>:<attempt>`). */
export interface PlacementStore {
  get(runKey: string): Promise<RunPlacement | undefined>;
  /** Places the run in `region` unless it was placed: answers the placement that holds (the winner). */
  placeIfAbsent(runKey: string, region: string, ttlSec: number): Promise<RunPlacement>;
}

/** What the dispatcher recorded of a job it started a runner for (runner-workflows `job:<id>`). */
export interface JobRecord {
  readonly region: string;
  readonly runnerType: string;
}

/** A job's `job:<id>` item in runner-workflows, as this region's replica has it. */
export type JobEntry =
  | { readonly kind: 'absent' }
  /** The router's mark of a job that completed before a dispatch record was written (`completed`: true). */
  | { readonly kind: 'tombstone' }
  | { readonly kind: 'record'; readonly record: JobRecord }
  /** An item that is neither (no region or runner type): not this estate's to act on. */
  | { readonly kind: 'unreadable' };

export type MarkResult = { readonly kind: 'marked' } | Exclude<JobEntry, { readonly kind: 'absent' }>;

export interface JobLookup {
  get(jobId: number): Promise<JobEntry>;
  /**
   * Writes the tombstone of `jobId` (expiring in `ttlSec`) unless an item is there: `marked`, or the entry
   * found (a dispatcher's record written meanwhile, another router's tombstone).
   */
  markCompleted(jobId: number, ttlSec: number): Promise<MarkResult>;
}

/** Sends to `region`'s runner queue of `runnerType`. */
export interface QueueSender {
  send(region: string, runnerType: string, message: RunnerQueueMessage): Promise<void>;
}

export type SideStep = 'save-spilling' | 'release-claim' | 'finish-claim';

/** What the router tells its metrics and log. Never a secret, never a body. */
export interface RouterEvents {
  decided(decision: RouteDecision, job: WorkflowJob): void;
  /** A best-effort step failed (keeping spillover triggers, settling a claim); the delivery went on. */
  sideFailure(step: SideStep, region: string, failure: Failure): void;
  /** A pending claim past its lease (a router died holding it) was taken over in `region`. */
  claimTakenOver?(region: string): void;
}

export interface RouterDeps {
  /** The region this router runs in. */
  readonly region: string;
  readonly config: RunnerConfig;
  readonly ledger: ClaimLedger;
  readonly placements: PlacementStore;
  readonly jobs: JobLookup;
  readonly queues: QueueSender;
  readonly views: RegionViewSource;
  /** Epoch ms. */
  readonly now: () => number;
  readonly events: RouterEvents;
  /** Default DEFAULT_DEADLINE_MS. */
  readonly deadlineMs?: number;
  /** Default DEFAULT_CLAIM_LEASE_MS. */
  readonly claimLeaseMs?: number;
  /** Default DEFAULT_SETTLE_BUDGET_MS. */
  readonly settleBudgetMs?: number;
  /** A claim owner's token, unique per delivery handled. Default: a random UUID. */
  readonly newOwner?: () => string;
}

/** An authenticated delivery of a `workflow_job` (webhook.ts), what the router needs of it. */
export interface JobDelivery {
  readonly deliveryId: string;
  readonly job: WorkflowJob;
  /** `workflow_job.status` (webhook.ts): part of the signed body's identity (see above). */
  readonly jobStatus: string;
  /** `repository.owner.type`, lower-cased. */
  readonly ownerType?: string;
}

export type RouterOutcome =
  | {
      readonly kind: 'dispatched';
      readonly region: string;
      readonly runnerType: string;
      readonly reason: RouteReason;
    }
  | { readonly kind: 'completed'; readonly region: string; readonly runnerType: string }
  | { readonly kind: 'duplicate'; readonly region: string }
  /** Another copy holds a claim within its lease: 409, redeliver later. */
  | { readonly kind: 'in-flight'; readonly region: string }
  | { readonly kind: 'not-ours' }
  | { readonly kind: 'user-owned' }
  | { readonly kind: 'awaiting-approval' }
  | { readonly kind: 'not-dispatched' }
  /** A `completed` before a dispatch record was written: the tombstone was written. */
  | { readonly kind: 'tombstoned' }
  | { readonly kind: 'failed'; readonly failure: Failure };

export type OutcomeKind = RouterOutcome['kind'];

/** Job statuses of a job held by an environment's reviewers or wait timer. */
const AWAITING_APPROVAL = new Set(['waiting', 'pending', 'requested']);
export const AWAITING_APPROVAL_REASON =
  'waiting for approval: dispatched when GitHub queues it (a new queued delivery)';

export const USER_OWNED_REASON =
  'user-owned repositories are not served: this estate registers runners per organisation';

/** The claim key of a signed body's identity: `job:<job id>:<action>:<run attempt>:<status>`. */
export const bodyKey = (job: WorkflowJob, jobStatus: string): string =>
  `${jobEventKey(job.jobId, job.action, job.runAttempt)}:${jobStatus}`;

/** The HTTP answer of an outcome: nothing of the input, nothing internal. */
export function outcomeResponse(outcome: RouterOutcome): HttpResponse {
  switch (outcome.kind) {
    case 'dispatched':
      return jsonResponse(202, {
        status: 'queued',
        region: outcome.region,
        runnerType: outcome.runnerType,
        reason: outcome.reason,
      });
    case 'completed':
      return jsonResponse(202, {
        status: 'completed',
        region: outcome.region,
        runnerType: outcome.runnerType,
      });
    case 'duplicate':
      return jsonResponse(200, { status: 'duplicate', duplicate: true });
    case 'in-flight':
      return jsonResponse(409, {
        status: 'in-flight',
        reason: 'another copy of this delivery is being handled; redeliver later if it fails',
      });
    case 'not-ours':
      return jsonResponse(202, { status: 'ignored', reason: 'no runner type matches the labels' });
    case 'user-owned':
      return jsonResponse(202, { status: 'ignored', reason: USER_OWNED_REASON });
    case 'awaiting-approval':
      return jsonResponse(202, { status: 'ignored', reason: AWAITING_APPROVAL_REASON });
    case 'not-dispatched':
      return jsonResponse(202, { status: 'ignored', reason: 'the job was not dispatched by this estate' });
    case 'tombstoned':
      return jsonResponse(202, {
        status: 'ignored',
        reason: 'the job was not dispatched; it is recorded as completed, so it never will be',
      });
    case 'failed':
      return jsonResponse(500, { status: 'failed', reason: 'internal error; redeliver later' });
  }
}

const sameMembers = (a: ReadonlySet<SpillMetric>, b: ReadonlySet<SpillMetric>): boolean =>
  a === b || (a.size === b.size && [...a].every((metric) => b.has(metric)));

/** `expired` resolves true after `ms`, or false at once when cleared; the timer keeps no process alive. */
function timer(ms: number): { readonly expired: Promise<boolean>; clear(): void } {
  let handle: ReturnType<typeof setTimeout> | undefined;
  let resolve: (expired: boolean) => void = () => undefined;
  const expired = new Promise<boolean>((r) => {
    resolve = r;
    handle = setTimeout(() => r(true), ms);
    handle.unref?.();
  });
  return {
    expired,
    clear: () => {
      clearTimeout(handle);
      resolve(false);
    },
  };
}

/** Waits for `work` at most `ms` (it goes on after that, unwaited; its failure is its own to report). */
async function within(ms: number, work: Promise<void>): Promise<void> {
  const limit = timer(ms);
  try {
    await Promise.race([work, limit.expired]);
  } finally {
    limit.clear();
  }
}

class DeadlineExceeded extends RetryableError {
  constructor(ms: number) {
    super('deadline', `the delivery was not handled within ${ms} ms; its claims were released`);
  }
}

/** The delivery's time limit: every step that writes checks it first. */
class Deadline {
  private readonly limit: ReturnType<typeof timer>;
  private over = false;

  constructor(readonly ms: number) {
    this.limit = timer(ms);
    void this.limit.expired.then((expired) => (this.over = expired));
  }

  /** Resolves when the time ran out (never, once cleared). */
  get passed(): Promise<void> {
    return this.limit.expired.then((expired) => (expired ? undefined : new Promise<void>(() => undefined)));
  }

  check(): void {
    if (this.over) throw new DeadlineExceeded(this.ms);
  }

  clear(): void {
    this.limit.clear();
  }
}

const CLAIM_LOST: Failure = {
  permanent: false,
  code: 'claim-lost',
  reason: 'the claim was taken over or released before it was marked done',
};

/** The delivery's claims so far: marked done together once it is handled, or released together. */
class Claims {
  private readonly held: { readonly region: string; readonly request: ClaimRequest }[] = [];
  private readonly regions = new Set<string>();
  private closed = false;

  constructor(
    private readonly deps: RouterDeps,
    private readonly requests: readonly ClaimRequest[],
  ) {}

  /**
   * Claims every key in `region` unless this delivery holds them there already: `claimed`, or what another
   * holder has (`done` wins over `pending`). Keys won are held (and settled later) whatever the others found.
   */
  async claim(region: string): Promise<'claimed' | 'done' | 'pending'> {
    if (this.regions.has(region)) return 'claimed';
    const results = await Promise.allSettled(this.requests.map((request) => this.claimOne(region, request)));
    const failure = results.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
    const found = results.map((result) => (result as PromiseFulfilledResult<ClaimResult>).value);
    if (found.includes('done')) return 'done';
    if (found.includes('pending')) return 'pending';
    this.regions.add(region);
    return 'claimed';
  }

  private async claimOne(region: string, request: ClaimRequest): Promise<ClaimResult> {
    const result = await this.deps.ledger.claim(region, request);
    if (result !== 'claimed' && result !== 'taken-over') return result;
    if (result === 'taken-over') this.deps.events.claimTakenOver?.(region);
    // Won after the delivery was given up (its deadline passed): not kept.
    if (this.closed) await this.releaseOne(region, request);
    else this.held.push({ region, request });
    return result;
  }

  private async releaseOne(region: string, request: ClaimRequest): Promise<void> {
    try {
      await this.deps.ledger.release(region, request.key, request.owner);
    } catch (error) {
      this.deps.events.sideFailure('release-claim', region, classifyFailure(error));
    }
  }

  /** Marks every claim held done: the delivery was handled (sent, or found handled). */
  async finishAll(): Promise<void> {
    const held = this.take();
    await Promise.all(
      held.map(async ({ region, request }) => {
        try {
          if (!(await this.deps.ledger.finish(region, request)))
            this.deps.events.sideFailure('finish-claim', region, CLAIM_LOST);
        } catch (error) {
          this.deps.events.sideFailure('finish-claim', region, classifyFailure(error));
        }
      }),
    );
  }

  /** Releases every claim held, and every one won from now on: a redelivery can be taken. */
  async releaseAll(): Promise<void> {
    await Promise.all(this.take().map(({ region, request }) => this.releaseOne(region, request)));
  }

  private take() {
    this.closed = true;
    return this.held.splice(0, this.held.length);
  }
}

/** Keeps every region's triggers that this evaluation changed; failures are reported, never thrown. */
async function saveSpilling(
  decision: RouteDecision,
  views: ReadonlyMap<string, RegionView>,
  deps: RouterDeps,
): Promise<void> {
  const empty: ReadonlySet<SpillMetric> = new Set();
  await Promise.all(
    [...decision.spilling].map(async ([region, next]) => {
      const previous = views.get(region)?.spilling ?? empty;
      if (sameMembers(previous, next)) return;
      try {
        await deps.views.saveSpilling(region, previous, next);
      } catch (error) {
        deps.events.sideFailure('save-spilling', region, classifyFailure(error));
      }
    }),
  );
}

/** The run's placement, made by this router or followed when another one placed it first. */
async function placed(
  job: WorkflowJob,
  decision: RouteDecision,
  existing: RunPlacement | undefined,
  views: ReadonlyMap<string, RegionView>,
  deps: RouterDeps,
): Promise<{ region: string; reason: RouteReason }> {
  const chosen = { region: decision.region, reason: decision.reason };
  if (existing) return chosen;
  const key = runKey(job.repository, job.runId, job.runAttempt);
  const winner = await deps.placements.placeIfAbsent(key, decision.region, deps.config.stickyTtlSec);
  if (winner.region === decision.region) return chosen;
  const follow =
    regionSettings(deps.config, winner.region) !== undefined && views.get(winner.region)?.status === 'active';
  return follow ? { region: winner.region, reason: 'sticky' } : chosen;
}

/** An outcome, and what is left to do once its claims are settled (best effort, within the budget). */
interface Routed {
  readonly outcome: RouterOutcome;
  readonly afterwards?: () => Promise<void>;
}

/** The outcome of a key another holder has in `region`. */
const heldElsewhere = (found: 'done' | 'pending', region: string): Routed => ({
  outcome: found === 'done' ? { kind: 'duplicate', region } : { kind: 'in-flight', region },
});

async function routeQueued(
  job: WorkflowJob,
  deliveryId: string,
  deps: RouterDeps,
  claims: Claims,
  deadline: Deadline,
): Promise<Routed> {
  const local = await claims.claim(deps.region);
  if (local !== 'claimed') return heldElsewhere(local, deps.region);
  const key = runKey(job.repository, job.runId, job.runAttempt);
  const [placement, views] = await Promise.all([deps.placements.get(key), deps.views.views()]);
  const decision = routeJob({
    job,
    config: deps.config,
    regions: views,
    ...(placement ? { placement } : {}),
  });
  if (!decision) return { outcome: { kind: 'not-ours' } };
  deadline.check();
  const atDecision = await claims.claim(decision.region);
  if (atDecision !== 'claimed') return heldElsewhere(atDecision, decision.region);
  deadline.check();
  const target = await placed(job, decision, placement, views, deps);
  deadline.check();
  const atTarget = await claims.claim(target.region);
  if (atTarget !== 'claimed') return heldElsewhere(atTarget, target.region);
  const message: DispatchMessage = {
    version: 1,
    kind: 'dispatch',
    job,
    deliveryId,
    region: target.region,
    runnerType: decision.runnerType,
    reason: target.reason,
    routedAt: deps.now(),
    correlationId: deliveryId,
    retry: 0,
  };
  deadline.check();
  await deps.queues.send(target.region, decision.runnerType, message);
  deps.events.decided({ ...decision, region: target.region, reason: target.reason }, job);
  return {
    outcome: {
      kind: 'dispatched',
      region: target.region,
      runnerType: decision.runnerType,
      reason: target.reason,
    },
    afterwards: () => saveSpilling(decision, views, deps),
  };
}

/** A record this configuration made: its region and runner type are known. */
const madeHere = (record: JobRecord, config: RunnerConfig): boolean =>
  regionSettings(config, record.region) !== undefined &&
  config.runnerTypes.some((type) => type.name === record.runnerType);

async function routeCompleted(
  job: WorkflowJob,
  deliveryId: string,
  deps: RouterDeps,
  claims: Claims,
  deadline: Deadline,
): Promise<Routed> {
  const local = await claims.claim(deps.region);
  if (local !== 'claimed') return heldElsewhere(local, deps.region);
  let entry: Exclude<JobEntry, { kind: 'absent' }>;
  const found = await deps.jobs.get(job.jobId);
  if (found.kind === 'absent') {
    deadline.check();
    const marked = await deps.jobs.markCompleted(job.jobId, deps.config.leaseTtlSec);
    if (marked.kind === 'marked') return { outcome: { kind: 'tombstoned' } };
    entry = marked;
  } else entry = found;
  // A tombstone (completed already), or a record this configuration did not make.
  if (entry.kind !== 'record' || !madeHere(entry.record, deps.config))
    return { outcome: { kind: 'not-dispatched' } };
  const { record } = entry;
  deadline.check();
  const atRecord = await claims.claim(record.region);
  if (atRecord !== 'claimed') return heldElsewhere(atRecord, record.region);
  const message: CompletedMessage = {
    version: 1,
    kind: 'completed',
    job,
    deliveryId,
    correlationId: deliveryId,
  };
  deadline.check();
  await deps.queues.send(record.region, record.runnerType, message);
  return { outcome: { kind: 'completed', region: record.region, runnerType: record.runnerType } };
}

/** Routes one authenticated `workflow_job` delivery (`queued` or `completed`). Never throws. */
export async function routeDelivery(delivery: JobDelivery, deps: RouterDeps): Promise<RouterOutcome> {
  const { deliveryId, job } = delivery;
  if (job.action !== 'queued' && job.action !== 'completed') return { kind: 'not-ours' };
  if (!runnerTypeFor(deps.config, job.labels)) return { kind: 'not-ours' };
  if (delivery.ownerType === 'user') return { kind: 'user-owned' };
  // A job behind an approval or wait timer: GitHub sends `queued` again, with status `queued`, once it
  // may run; a runner started now would only idle until the reaper removed it.
  if (job.action === 'queued' && AWAITING_APPROVAL.has(delivery.jobStatus))
    return { kind: 'awaiting-approval' };
  const deadlineMs = deps.deadlineMs ?? DEFAULT_DEADLINE_MS;
  // Spent before routing began (the handler's secret read): nothing claimed, redeliver later.
  if (deadlineMs <= 0) return { kind: 'failed', failure: classifyFailure(new DeadlineExceeded(deadlineMs)) };

  const owner = (deps.newOwner ?? randomUUID)();
  const receivedAt = deps.now();
  const base = {
    owner,
    deliveryId,
    receivedAt,
    pendingUntil: receivedAt + (deps.claimLeaseMs ?? DEFAULT_CLAIM_LEASE_MS),
    ttlSec: deps.config.deliveryTtlSec,
  };
  const claims = new Claims(deps, [
    { ...base, key: deliveryKey(deliveryId) },
    { ...base, key: bodyKey(job, delivery.jobStatus) },
  ]);
  const deadline = new Deadline(deadlineMs);
  const route = job.action === 'queued' ? routeQueued : routeCompleted;
  const timedOut: Routed = {
    outcome: { kind: 'failed', failure: classifyFailure(new DeadlineExceeded(deadline.ms)) },
  };
  let routed: Routed;
  try {
    routed = await Promise.race([
      route(job, deliveryId, deps, claims, deadline),
      deadline.passed.then(() => timedOut),
    ]);
  } catch (error) {
    routed = { outcome: { kind: 'failed', failure: classifyFailure(error) } };
  } finally {
    deadline.clear();
  }

  const { outcome, afterwards } = routed;
  const budget = deps.settleBudgetMs ?? DEFAULT_SETTLE_BUDGET_MS;
  const release = outcome.kind === 'failed' || outcome.kind === 'in-flight';
  await within(
    budget,
    (async () => {
      await (release ? claims.releaseAll() : claims.finishAll());
      await afterwards?.();
    })(),
  );
  return outcome;
}
