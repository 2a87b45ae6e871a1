import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { bundleHandler } from '../../modules/bundled-function/bundle';
import { loadBundleExports } from '../../scripts/lib/load-bundle';
import { parseRunnerConfig, type RunnerConfig } from '../../runtime/runners/config';
import type {
  RegionMetrics,
  RegionStatus,
  RegionView,
  RegionViewSource,
  RunnerQueueMessage,
  RunPlacement,
  SpillMetric,
} from '../../runtime/runners/model';
import type {
  ClaimLedger,
  ClaimRequest,
  ClaimResult,
  JobEntry,
  JobLookup,
  JobRecord,
  MarkResult,
  PlacementStore,
  QueueSender,
} from '../../runtime/runners/router';
import type { RouterHandler, RouterHandlerDeps, RouterTelemetry } from '../../runtime/runners/router/handler';
import type { SecretReader, SecretStage, WebhookSecrets } from '../../runtime/runners/webhook-secret';

/**
 * In-memory ports of the runner router (unit tests, the bench, the bundled-router tests): per-region
 * replicas of the idempotency table, run placements, job records, runner queues, region views, the
 * webhook secret's staging labels. Each can be made to fail (`fault`), and each counts its calls.
 */

export const EU = 'eu-central-1';
export const US = 'us-east-1';
export const AP = 'ap-southeast-1';

/** The fakes' default clock (routerWorld), epoch ms: 2025-10-09T08:53:20Z. */
export const WORLD_NOW = 1_760_000_000_000;

/** Three regions, two runner types; acme lives in eu, globex in us, one repository overridden to ap. */
export function testRunnerConfig(overrides: Record<string, unknown> = {}): RunnerConfig {
  return parseRunnerConfig({
    regions: [
      { region: EU, priority: 1, capacity: 50 },
      { region: US, priority: 2, capacity: 50 },
      { region: AP, priority: 3, capacity: 50 },
    ],
    organizations: { acme: EU, globex: US },
    repositories: { 'acme/mobile': AP },
    runnerTypes: [
      { name: 'standard', labels: ['self-hosted', 'linux', 'x64'], launch: 'fargate-spot' },
      {
        name: 'docker',
        labels: ['self-hosted', 'linux', 'x64', 'docker'],
        launch: 'ec2',
        runnerGroup: 'docker-trusted',
      },
    ],
    ...overrides,
  });
}

/** A fault to throw from a port operation, or undefined to let it through. */
export type Fault = (operation: string, region?: string) => Error | undefined;

/** An error as the AWS SDK shapes a transient one (throttled: HTTP 400, retryable). */
export function awsError(name: string, status = 500): Error {
  const error = new Error(`${name} (simulated)`);
  error.name = name;
  Object.assign(error, { $metadata: { httpStatusCode: status } });
  return error;
}

const noFault: Fault = () => undefined;

/** A claim as a replica of the idempotency table holds it (tables.ts). */
export interface ClaimItem {
  readonly state: 'pending' | 'done';
  readonly owner: string;
  readonly deliveryId: string;
  /** Epoch ms. */
  readonly pendingUntil: number;
  /** Epoch seconds. */
  readonly expiresAt: number;
}

/** Claims per region replica, in two phases (router.ts), with expiry in epoch seconds. */
export class MemoryLedger implements ClaimLedger {
  readonly replicas = new Map<string, Map<string, ClaimItem>>();
  readonly calls: { op: 'claim' | 'finish' | 'release'; region: string; key: string }[] = [];
  fault: Fault = noFault;
  /** Runs before each operation answers: a test hangs one here (a promise that never settles). */
  delay: (operation: string, region: string) => Promise<void> | undefined = () => undefined;

  constructor(private readonly now: () => number) {}

  replica(region: string): Map<string, ClaimItem> {
    let replica = this.replicas.get(region);
    if (!replica) this.replicas.set(region, (replica = new Map()));
    return replica;
  }

  /** The keys claimed in `region`, sorted. */
  keys(region: string): string[] {
    return [...this.replica(region).keys()].sort();
  }

  private async enter(op: 'claim' | 'finish' | 'release', region: string, key: string): Promise<void> {
    this.calls.push({ op, region, key });
    await this.delay(op, region);
    const fault = this.fault(op, region);
    if (fault) throw fault;
  }

  async claim(region: string, request: ClaimRequest): Promise<ClaimResult> {
    await this.enter('claim', region, request.key);
    const replica = this.replica(region);
    const existing = replica.get(request.key);
    const nowSec = Math.floor(this.now() / 1000);
    const live = existing !== undefined && existing.expiresAt >= nowSec;
    if (live && (existing.state === 'done' || existing.pendingUntil >= this.now()))
      return existing.state === 'done' ? 'done' : 'pending';
    replica.set(request.key, {
      state: 'pending',
      owner: request.owner,
      deliveryId: request.deliveryId,
      pendingUntil: request.pendingUntil,
      expiresAt: nowSec + request.ttlSec,
    });
    return live ? 'taken-over' : 'claimed';
  }

  async finish(region: string, request: ClaimRequest): Promise<boolean> {
    await this.enter('finish', region, request.key);
    const replica = this.replica(region);
    if (replica.get(request.key)?.owner !== request.owner) return false;
    replica.set(request.key, {
      state: 'done',
      owner: request.owner,
      deliveryId: request.deliveryId,
      pendingUntil: request.pendingUntil,
      expiresAt: Math.floor(this.now() / 1000) + request.ttlSec,
    });
    return true;
  }

  async release(region: string, key: string, owner: string): Promise<void> {
    await this.enter('release', region, key);
    const replica = this.replica(region);
    if (replica.get(key)?.owner === owner) replica.delete(key);
  }

  /** Copies every claim of `from` to `to`, as the global table's replication would. */
  replicate(from: string, to: string): void {
    for (const [key, item] of this.replica(from)) this.replica(to).set(key, item);
  }
}

export class MemoryPlacements implements PlacementStore {
  readonly items = new Map<string, RunPlacement>();
  fault: Fault = noFault;
  /** Runs just before a placement is written: a test places the run elsewhere here to lose the race. */
  beforePlace: (runKey: string) => void = () => undefined;

  constructor(private readonly now: () => number) {}

  async get(runKey: string): Promise<RunPlacement | undefined> {
    const fault = this.fault('get');
    if (fault) throw fault;
    return this.items.get(runKey);
  }

  async placeIfAbsent(runKey: string, region: string, _ttlSec: number): Promise<RunPlacement> {
    const fault = this.fault('place');
    if (fault) throw fault;
    this.beforePlace(runKey);
    const existing = this.items.get(runKey);
    if (existing) return existing;
    const placement = { region, placedAt: this.now() };
    this.items.set(runKey, placement);
    return placement;
  }
}

/** The `job:<id>` items of runner-workflows in the router's replica: records and tombstones. */
export class MemoryJobs implements JobLookup {
  readonly records = new Map<number, JobRecord>();
  /** Tombstones: epoch ms completed, epoch seconds they expire. */
  readonly tombstones = new Map<number, { completedAt: number; expiresAt: number }>();
  /** Items that are neither a record nor a tombstone. */
  readonly unreadable = new Set<number>();
  fault: Fault = noFault;
  /** Runs just before a tombstone is written: a test writes a record here to lose the race. */
  beforeMark: (jobId: number) => void = () => undefined;

  constructor(private readonly now: () => number = Date.now) {}

  private entry(jobId: number): JobEntry {
    const record = this.records.get(jobId);
    if (record) return { kind: 'record', record };
    const tombstone = this.tombstones.get(jobId);
    if (tombstone && tombstone.expiresAt >= Math.floor(this.now() / 1000)) return { kind: 'tombstone' };
    if (this.unreadable.has(jobId)) return { kind: 'unreadable' };
    return { kind: 'absent' };
  }

  async get(jobId: number): Promise<JobEntry> {
    const fault = this.fault('get');
    if (fault) throw fault;
    return this.entry(jobId);
  }

  async markCompleted(jobId: number, ttlSec: number): Promise<MarkResult> {
    const fault = this.fault('mark');
    if (fault) throw fault;
    this.beforeMark(jobId);
    const found = this.entry(jobId);
    if (found.kind !== 'absent') return found;
    const now = this.now();
    this.tombstones.set(jobId, { completedAt: now, expiresAt: Math.floor(now / 1000) + ttlSec });
    return { kind: 'marked' };
  }
}

export interface SentMessage {
  readonly region: string;
  readonly runnerType: string;
  readonly message: RunnerQueueMessage;
}

export class MemoryQueues implements QueueSender {
  readonly sent: SentMessage[] = [];
  fault: Fault = noFault;
  /** Runs before a send: a test hangs one here (a promise that never settles). */
  delay: (region: string) => Promise<void> | undefined = () => undefined;

  async send(region: string, runnerType: string, message: RunnerQueueMessage): Promise<void> {
    await this.delay(region);
    const fault = this.fault('send', region);
    if (fault) throw fault;
    // What SQS would carry: the JSON text, read back.
    this.sent.push({
      region,
      runnerType,
      message: JSON.parse(JSON.stringify(message)) as RunnerQueueMessage,
    });
  }
}

export const IDLE: RegionMetrics = { queueDepth: 0, inUse: 0, capacity: 50, dispatched: 0, failed: 0 };

export function view(
  status: RegionStatus = 'active',
  metrics: Partial<RegionMetrics> = {},
  spilling: readonly SpillMetric[] = [],
): RegionView {
  return { status, metrics: { ...IDLE, ...metrics }, spilling: new Set(spilling) };
}

export class MemoryRegionViews implements RegionViewSource {
  readonly regions = new Map<string, RegionView>();
  readonly saved: { region: string; previous: SpillMetric[]; next: SpillMetric[] }[] = [];
  fault: Fault = noFault;

  constructor(regions: readonly string[]) {
    for (const region of regions) this.regions.set(region, view());
  }

  async views(): Promise<ReadonlyMap<string, RegionView>> {
    const fault = this.fault('views');
    if (fault) throw fault;
    return new Map(this.regions);
  }

  async saveSpilling(
    region: string,
    previous: ReadonlySet<SpillMetric>,
    next: ReadonlySet<SpillMetric>,
  ): Promise<void> {
    const fault = this.fault('saveSpilling', region);
    if (fault) throw fault;
    this.saved.push({ region, previous: [...previous], next: [...next] });
    const current = this.regions.get(region) ?? view();
    this.regions.set(region, { ...current, spilling: new Set(next) });
  }
}

/** The webhook secret's staging labels; counts reads of AWSCURRENT. */
export class MemorySecret {
  current: string;
  previous: string | undefined;
  reads = 0;
  fault: Fault = noFault;

  constructor(current: string, previous?: string) {
    this.current = current;
    this.previous = previous;
  }

  /** Rotates: the current value becomes the previous one. */
  rotate(next: string): void {
    this.previous = this.current;
    this.current = next;
  }

  readonly reader: SecretReader = async (stage: SecretStage) => {
    if (stage === 'AWSCURRENT') this.reads += 1;
    const fault = this.fault('read', stage);
    if (fault) throw fault;
    return stage === 'AWSCURRENT' ? this.current : this.previous;
  };
}

/** Fixed secrets, never refreshed. */
export const staticSecrets = (...secrets: string[]): WebhookSecrets => ({
  secrets: async () => secrets,
  refreshed: async () => undefined,
});

export interface TelemetryRecord {
  readonly kind: string;
  readonly detail: Readonly<Record<string, unknown>>;
}

/** Telemetry that records what it is told (and prints nothing). */
export function recordingTelemetry(): RouterTelemetry & { readonly records: TelemetryRecord[] } {
  const records: TelemetryRecord[] = [];
  const note = (kind: string, detail: Record<string, unknown> = {}) => records.push({ kind, detail });
  return {
    records,
    begin: (deliveryId) => note('begin', { deliveryId }),
    refused: (refusal) => note('refused', { code: refusal.code, status: refusal.status }),
    ignored: (reason) => note('ignored', { reason }),
    decided: (decision) => note('decided', { reason: decision.reason, region: decision.region }),
    sideFailure: (step, region, failure) => note('sideFailure', { step, region, code: failure.code }),
    outcome: (outcome) => note('outcome', { kind: outcome.kind }),
    unreadable: (failure) => note('unreadable', { code: failure.code }),
    regionUnreadable: (region, reason) => note('regionUnreadable', { region, reason }),
    claimTakenOver: (region) => note('claimTakenOver', { region }),
    secretUnreadable: (stage, failure) => note('secretUnreadable', { stage, code: failure.code }),
    end: () => note('end'),
  };
}

/** Every fake port of one router, sharing a clock. */
export interface RouterWorld {
  now: number;
  readonly config: RunnerConfig;
  readonly ledger: MemoryLedger;
  readonly placements: MemoryPlacements;
  readonly jobs: MemoryJobs;
  readonly queues: MemoryQueues;
  readonly views: MemoryRegionViews;
}

export function routerWorld(config: RunnerConfig = testRunnerConfig(), now = WORLD_NOW): RouterWorld {
  const world = { now } as { now: number };
  const clock = () => world.now;
  return Object.assign(world, {
    config,
    ledger: new MemoryLedger(clock),
    placements: new MemoryPlacements(clock),
    jobs: new MemoryJobs(clock),
    queues: new MemoryQueues(),
    views: new MemoryRegionViews(config.regions.map((r) => r.region)),
  });
}

/** The handler dependencies of a router in `region` of `world` (`powertools`: the handler's own telemetry). */
export function handlerDeps(
  world: RouterWorld,
  region: string,
  secrets: WebhookSecrets,
  telemetry: RouterTelemetry | 'powertools' = recordingTelemetry(),
): RouterHandlerDeps {
  return {
    region,
    config: world.config,
    secrets,
    ledger: world.ledger,
    placements: world.placements,
    jobs: world.jobs,
    queues: world.queues,
    views: world.views,
    now: () => world.now,
    ...(telemetry === 'powertools' ? {} : { telemetry }),
  };
}

/**
 * A `workflow_job` payload (GitHub's field names). `status` defaults to the action (`waiting`: a job behind
 * an environment's approval); `createdAt` (ISO 8601) defaults to a minute before WORLD_NOW; the owner is an
 * organisation unless `ownerType` says otherwise.
 */
export function jobPayload(
  action: string,
  options: {
    jobId?: number;
    runId?: number;
    runAttempt?: number;
    labels?: readonly string[];
    repository?: string;
    installationId?: number;
    status?: string;
    createdAt?: string;
    ownerType?: string;
  } = {},
): Record<string, unknown> {
  const repository = options.repository ?? 'acme/web';
  const [owner] = repository.split('/');
  return {
    action,
    workflow_job: {
      id: options.jobId ?? 9001,
      run_id: options.runId ?? 7001,
      run_attempt: options.runAttempt ?? 1,
      labels: options.labels ?? ['self-hosted', 'linux', 'x64'],
      runner_name: null,
      status: options.status ?? action,
      created_at: options.createdAt ?? new Date(WORLD_NOW - 60_000).toISOString().replace('.000Z', 'Z'),
    },
    repository: { full_name: repository, owner: { login: owner, type: options.ownerType ?? 'Organization' } },
    ...(options.installationId ? { installation: { id: options.installationId } } : {}),
  };
}

/**
 * GitHub's `X-Hub-Signature-256` of `body` (what `sign` of @octokit/webhooks-methods computes; that package
 * is ESM-only, which tsx cannot require from the bench, so the tests' signer is node:crypto's).
 */
export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

/** An API Gateway HTTP API event of a delivery, signed with `secret` (undefined: no signature header). */
export function webhookEvent(
  body: string,
  secret: string | undefined,
  options: { event?: string; deliveryId?: string; base64?: boolean; headers?: Record<string, string> } = {},
): { headers: Record<string, string>; body: string; isBase64Encoded: boolean } {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-github-event': options.event ?? 'workflow_job',
    'x-github-delivery': options.deliveryId ?? randomUUID(),
    ...(secret === undefined ? {} : { 'x-hub-signature-256': signature(secret, body) }),
    ...options.headers,
  };
  return {
    headers,
    body: options.base64 ? Buffer.from(body, 'utf8').toString('base64') : body,
    isBase64Encoded: options.base64 ?? false,
  };
}

// --- the router as esbuild bundles it ------------------------------------------------------------------

/** What the router's bundle exports (the entry's exports, read in the bundle's own module). */
export interface RouterBundle {
  readonly handler: (event: unknown) => Promise<unknown>;
  readonly createRouterHandler: (deps: RouterHandlerDeps) => RouterHandler;
  readonly WebhookSecretSource: new (
    read: SecretReader,
    options?: { ttlMs?: number; minRefreshMs?: number; now?: () => number },
  ) => WebhookSecrets;
}

const ROUTER_ENTRY = 'runtime/runners/router/handler.ts';

/** The router's bundle, as the construct deploys it. */
export function routerBundleSource(): { source: string; filename: string } {
  const bundle = bundleHandler(ROUTER_ENTRY);
  return { source: readFileSync(bundle.codePath, 'utf8'), filename: bundle.codePath };
}

/**
 * Loads the bundle as a fresh module (scripts/lib/load-bundle.ts), keeping every export of the entry (not
 * only `handler`): the tests build the handler with injected ports through the bundle's own
 * `createRouterHandler`.
 */
export function loadRouterBundle(source: string, filename: string): RouterBundle {
  const exports = loadBundleExports(source, filename) as Partial<RouterBundle>;
  const { handler, createRouterHandler, WebhookSecretSource } = exports;
  if (typeof handler !== 'function' || typeof createRouterHandler !== 'function' || !WebhookSecretSource)
    throw new Error(`${filename} does not export handler, createRouterHandler and WebhookSecretSource`);
  return { handler, createRouterHandler, WebhookSecretSource };
}
