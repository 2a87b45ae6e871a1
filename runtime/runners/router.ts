import { classifyFailure, type Failure } from '../lib/failures';
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
import { runKey } from './tables';

/**
 * The router's core: what an authenticated `workflow_job` delivery does, over injected ports (the AWS ones
 * are in router-adapters.ts, in-memory ones in test/support/runners-fakes.ts).
 *
 * `queued`: claim the delivery id in this region's replica of the idempotency table (a duplicate answers
 * 200 and enqueues nothing); read the run's placement and every region's view; route (no runner type
 * matches: 202, not ours); when the job goes to another region, claim the delivery in that region's replica
 * too (a duplicate there answers 200); place the run if it was not (when another router placed it first in
 * a region that takes jobs, follow it: reason `sticky`); send the dispatch message to the region's queue of
 * the runner type; keep the spillover triggers that changed (best effort); answer 202.
 *
 * `completed`: claim the same way; look up the job's dispatch record (`job:<id>`): none means it was not
 * dispatched by this estate (202, ignored); else send a completed message to the queue that dispatched it.
 *
 * Jobs whose labels no runner type matches (GitHub-hosted ones, the bulk of the traffic) are answered
 * before a single write. A failure after a claim releases the claims made (best effort) and answers 500, so a
 * redelivery can succeed; bad input never reaches this file (webhook.ts answers it with a 4xx).
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
 * queued job with matching labels or exits at its idle timeout.
 */

/** Delivery ids, claimed with a TTL in a region's replica of the idempotency global table. */
export interface DeliveryLedger {
  /** True when this call wrote `delivery:<id>` in `region`'s replica; false when it was there already. */
  claim(region: string, deliveryId: string, ttlSec: number): Promise<boolean>;
  release(region: string, deliveryId: string): Promise<void>;
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

export interface JobLookup {
  get(jobId: number): Promise<JobRecord | undefined>;
}

/** Sends to `region`'s runner queue of `runnerType`. */
export interface QueueSender {
  send(region: string, runnerType: string, message: RunnerQueueMessage): Promise<void>;
}

/** What the router tells its metrics and log. Never a secret, never a body. */
export interface RouterEvents {
  decided(decision: RouteDecision, job: WorkflowJob): void;
  /** A best-effort step failed (keeping spillover triggers, releasing a claim); the delivery went on. */
  sideFailure(step: 'save-spilling' | 'release-claim', region: string, failure: Failure): void;
}

export interface RouterDeps {
  /** The region this router runs in. */
  readonly region: string;
  readonly config: RunnerConfig;
  readonly ledger: DeliveryLedger;
  readonly placements: PlacementStore;
  readonly jobs: JobLookup;
  readonly queues: QueueSender;
  readonly views: RegionViewSource;
  /** Epoch ms. */
  readonly now: () => number;
  readonly events: RouterEvents;
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
  | { readonly kind: 'not-ours' }
  | { readonly kind: 'not-dispatched' }
  | { readonly kind: 'failed'; readonly failure: Failure };

export type OutcomeKind = RouterOutcome['kind'];

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
    case 'not-ours':
      return jsonResponse(202, { status: 'ignored', reason: 'no runner type matches the labels' });
    case 'not-dispatched':
      return jsonResponse(202, { status: 'ignored', reason: 'the job was not dispatched by this estate' });
    case 'failed':
      return jsonResponse(500, { status: 'failed', reason: 'internal error; redeliver later' });
  }
}

const sameMembers = (a: ReadonlySet<SpillMetric>, b: ReadonlySet<SpillMetric>): boolean =>
  a === b || (a.size === b.size && [...a].every((metric) => b.has(metric)));

/** The delivery's claims so far, released together when a later step fails. */
class Claims {
  private readonly held: string[] = [];

  constructor(
    private readonly deps: RouterDeps,
    private readonly deliveryId: string,
  ) {}

  /** Claims the delivery in `region` unless this delivery holds it there already. */
  async claim(region: string): Promise<boolean> {
    if (this.held.includes(region)) return true;
    const won = await this.deps.ledger.claim(region, this.deliveryId, this.deps.config.deliveryTtlSec);
    if (won) this.held.push(region);
    return won;
  }

  async releaseAll(): Promise<void> {
    await Promise.all(
      this.held.map(async (region) => {
        try {
          await this.deps.ledger.release(region, this.deliveryId);
        } catch (error) {
          this.deps.events.sideFailure('release-claim', region, classifyFailure(error));
        }
      }),
    );
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

async function routeQueued(job: WorkflowJob, deliveryId: string, deps: RouterDeps, claims: Claims) {
  if (!(await claims.claim(deps.region))) return { kind: 'duplicate', region: deps.region } as const;
  const key = runKey(job.repository, job.runId, job.runAttempt);
  const [placement, views] = await Promise.all([deps.placements.get(key), deps.views.views()]);
  const decision = routeJob({
    job,
    config: deps.config,
    regions: views,
    ...(placement ? { placement } : {}),
  });
  if (!decision) return { kind: 'not-ours' } as const;
  if (!(await claims.claim(decision.region))) return { kind: 'duplicate', region: decision.region } as const;
  const target = await placed(job, decision, placement, views, deps);
  if (!(await claims.claim(target.region))) return { kind: 'duplicate', region: target.region } as const;
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
  await deps.queues.send(target.region, decision.runnerType, message);
  deps.events.decided({ ...decision, region: target.region, reason: target.reason }, job);
  await saveSpilling(decision, views, deps);
  return {
    kind: 'dispatched',
    region: target.region,
    runnerType: decision.runnerType,
    reason: target.reason,
  } as const;
}

async function routeCompleted(job: WorkflowJob, deliveryId: string, deps: RouterDeps, claims: Claims) {
  if (!(await claims.claim(deps.region))) return { kind: 'duplicate', region: deps.region } as const;
  const record = await deps.jobs.get(job.jobId);
  // A record naming a region or runner type this configuration does not know was not made by it.
  if (
    !record ||
    regionSettings(deps.config, record.region) === undefined ||
    !deps.config.runnerTypes.some((type) => type.name === record.runnerType)
  )
    return { kind: 'not-dispatched' } as const;
  if (!(await claims.claim(record.region))) return { kind: 'duplicate', region: record.region } as const;
  const message: CompletedMessage = {
    version: 1,
    kind: 'completed',
    job,
    deliveryId,
    correlationId: deliveryId,
  };
  await deps.queues.send(record.region, record.runnerType, message);
  return { kind: 'completed', region: record.region, runnerType: record.runnerType } as const;
}

/** Routes one authenticated `workflow_job` delivery (`queued` or `completed`). Never throws. */
export async function routeDelivery(
  delivery: { readonly deliveryId: string; readonly job: WorkflowJob },
  deps: RouterDeps,
): Promise<RouterOutcome> {
  const { deliveryId, job } = delivery;
  if (!runnerTypeFor(deps.config, job.labels)) return { kind: 'not-ours' };
  const claims = new Claims(deps, deliveryId);
  try {
    if (job.action === 'queued') return await routeQueued(job, deliveryId, deps, claims);
    if (job.action === 'completed') return await routeCompleted(job, deliveryId, deps, claims);
    return { kind: 'not-ours' };
  } catch (error) {
    await claims.releaseAll();
    return { kind: 'failed', failure: classifyFailure(error) };
  }
}
