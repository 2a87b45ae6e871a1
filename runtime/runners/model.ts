/**
 * The runner control plane's shared vocabulary: a `workflow_job` as the router reads it, what it knows of
 * each region when it routes, its decision, and the message that carries a job to a region's dispatcher.
 */

/** The `workflow_job` actions GitHub sends; the control plane acts on `queued` and `completed`. */
export type JobAction = 'queued' | 'waiting' | 'in_progress' | 'completed';

/** The most `runs-on` labels a job may carry, and the longest label: the router and the dispatcher agree. */
export const MAX_JOB_LABELS = 100;
export const MAX_LABEL_CHARS = 100;

/**
 * A GitHub delivery id as the router takes it from `X-GitHub-Delivery` (a GUID, lower-cased): the
 * correlation id of every log line about the delivery, from the router to the dispatcher and redelivery.
 */
export const DELIVERY_GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A `workflow_job` delivery, reduced to what routing and dispatch use (names lower-cased). */
export interface WorkflowJob {
  readonly action: JobAction;
  /** `workflow_job.id`: unique across GitHub, the key of every per-job record. */
  readonly jobId: number;
  readonly runId: number;
  readonly runAttempt: number;
  /** The repository owner's login, lower-cased (GitHub logins are case-insensitive). */
  readonly organization: string;
  /** `owner/name`, lower-cased. */
  readonly repository: string;
  /** The job's `runs-on` labels, lower-cased, in the order given. */
  readonly labels: readonly string[];
  /** The GitHub App installation that sent it, when the delivery names one. */
  readonly installationId?: number;
  /** `workflow_job.runner_name`, set once a runner took the job. */
  readonly runnerName?: string;
}

/** An operator's word on a region, kept in the region-status table with no expiry. */
export type OperatorStatus = 'active' | 'draining';

/** What routing makes of a region: `out` when its latest health verdict fails or is missing. */
export type RegionStatus = 'active' | 'draining' | 'out';

/** The spillover inputs of one region, as the metrics source reads them. */
export interface RegionMetrics {
  /**
   * `ApproximateNumberOfMessages` over the region's runner queues (jobs not taken yet), plus the jobs waiting
   * for a slot (the lease items' wait records: they are re-sent with a delay, and a queue's delayed count
   * also holds the checks every dispatch schedules).
   */
  readonly queueDepth: number;
  /** Runner leases held in the region (every organisation). */
  readonly inUse: number;
  /** Runners the region may run at once (config). */
  readonly capacity: number;
  /** Dispatches that started a runner in the recent window. */
  readonly dispatched: number;
  /** Dispatches that failed in the recent window. */
  readonly failed: number;
}

/** A spillover trigger, as it appears in a decision's reason (`spillover:<metric>`). */
export type SpillMetric = 'queue-depth' | 'concurrency' | 'error-rate';
export const SPILL_METRICS: readonly SpillMetric[] = ['queue-depth', 'concurrency', 'error-rate'];

/** One region as the router sees it when it routes a job. */
export interface RegionView {
  readonly status: RegionStatus;
  readonly metrics: RegionMetrics;
  /** Triggers tripped on the last evaluation (the hysteresis state). */
  readonly spilling: ReadonlySet<SpillMetric>;
}

export type RouteReason = 'home' | 'sticky' | `spillover:${SpillMetric}` | 'drained' | 'no-region-eligible';

export interface RouteDecision {
  readonly region: string;
  readonly runnerType: string;
  readonly reason: RouteReason;
  /** The run's home region under the config rules (where it goes when nothing else applies). */
  readonly home: string;
  /** Each region's triggers after this evaluation: the router keeps them when they changed. */
  readonly spilling: ReadonlyMap<string, ReadonlySet<SpillMetric>>;
}

/** Where a workflow run was placed by its first routed job (runner-workflows table, with a TTL). */
export interface RunPlacement {
  readonly region: string;
  readonly placedAt: number;
}

/** A routed job on its way to the dispatcher of `region` (the body of a runner queue's message). */
export interface DispatchMessage {
  readonly version: 1;
  readonly kind: 'dispatch';
  readonly job: WorkflowJob;
  readonly deliveryId: string;
  readonly region: string;
  readonly runnerType: string;
  readonly reason: RouteReason;
  /** Epoch ms the router routed it. */
  readonly routedAt: number;
  /** Carried from the webhook into every log line of its dispatch. */
  readonly correlationId: string;
  /** 0 on the first dispatch; 1 once a job still queued after the timeout was dispatched again. */
  readonly retry: 0 | 1;
  /** Epoch ms the job first found its organisation at its cap (it waits, re-sent with a delay). */
  readonly waitingSince?: number;
  /** Times it was re-sent to wait for a runner slot. */
  readonly waits?: number;
  /**
   * Times a dispatcher re-routed it to another region (a drained or out region); a job re-routed twice is
   * dispatched where it is.
   */
  readonly reroutes?: number;
  /**
   * Epoch ms a dispatcher first found the job `waiting` at GitHub (an environment's approval or wait timer):
   * it is re-sent until GitHub says `queued`, for at most 30 days from then.
   */
  readonly approvalSince?: number;
}

/** A delayed look at a dispatched job: still queued after the timeout, it is dispatched once more. */
export interface QueuedCheckMessage {
  readonly version: 1;
  readonly kind: 'check-queued';
  readonly dispatch: DispatchMessage;
}

/** A job finished: the dispatcher of the region that ran it releases its lease and cleans its mapping. */
export interface CompletedMessage {
  readonly version: 1;
  readonly kind: 'completed';
  readonly job: WorkflowJob;
  readonly deliveryId: string;
  readonly correlationId: string;
}

export type RunnerQueueMessage = DispatchMessage | QueuedCheckMessage | CompletedMessage;

/**
 * Every region as routing sees it (status, spillover inputs, tripped triggers), and where the router keeps
 * a region's triggers when an evaluation changed them (conditional on those it read: the last evaluation
 * wins, none is lost to a stale one).
 */
export interface RegionViewSource {
  views(): Promise<ReadonlyMap<string, RegionView>>;
  saveSpilling(
    region: string,
    previous: ReadonlySet<SpillMetric>,
    next: ReadonlySet<SpillMetric>,
  ): Promise<void>;
}
